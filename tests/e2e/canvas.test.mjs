// The canvas in the real app (release build, Xvfb, WebKitWebDriver): make a picture with the demo model, send it to
// the canvas, paint a mask with W3C pointer actions, export it through the native save dialog, inpaint, and check
// in the saved PNGs that every pixel outside the mask is the picture's; then drag a picture from a desktop window
// onto the canvas with real X input. The GTK windows outside the page (the save dialog, the drag source) are driven
// with xdotool. Run it through `xvfb-run` (scripts/test.sh does).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { PNG } from "pngjs";
import { ELEMENT } from "./webdriver.mjs";
import { dataFolder, freshHome, generate, root, showTab, startApp, stopApp } from "./steps.mjs";

const home = freshHome("e2e-canvas");
const outputs = join(dataFolder(home), "outputs");

let app;
let driver;

/** A mouse stroke over `element` through `points` (CSS pixels from the element's centre), as W3C actions. */
function stroke(element, points) {
  const origin = { [ELEMENT]: element };
  const [first, ...rest] = points;
  return driver.request("POST", "/actions", {
    actions: [{
      type: "pointer",
      id: "mouse",
      parameters: { pointerType: "mouse" },
      actions: [
        { type: "pointerMove", duration: 0, origin, x: first[0], y: first[1] },
        { type: "pointerDown", button: 0 },
        ...rest.map(([x, y]) => ({ type: "pointerMove", duration: 150, origin, x, y })),
        { type: "pointerUp", button: 0 },
      ],
    }],
  });
}

function readPng(path) {
  return PNG.sync.read(readFileSync(path));
}

/** Runs xdotool (real X input through XTEST, as a user's mouse and keyboard); returns its output. */
function xdotool(...args) {
  return execFileSync("xdotool", args, { encoding: "utf8", timeout: 30000 }).trim();
}

/** Waits for the native window titled `title`; returns its X window id. */
async function nativeWindow(title) {
  for (let i = 0; i < 300; i++) {
    try {
      return xdotool("search", "--onlyvisible", "--name", `^${title}$`).split("\n")[0];
    } catch {
      await sleep(100); // xdotool fails while no window matches
    }
  }
  throw new Error(`no window titled ${title} appeared`);
}

/** Answers the GTK save dialog titled `title`: its file name field gets `path`, then Return saves. */
async function saveWith(title, path) {
  const dialog = await nativeWindow(title);
  // No window manager under Xvfb: give the dialog the keyboard focus ourselves.
  xdotool("windowfocus", "--sync", dialog);
  await sleep(300);
  xdotool("key", "--clearmodifiers", "ctrl+a");
  xdotool("type", "--delay", "20", path);
  await sleep(300);
  xdotool("key", "Return");
}

/** A 24-bit BMP (no image library writes one here) whose pixel (x, y) is `color(x, y)` = [r, g, b]. */
function bmp(width, height, color) {
  const row = Math.ceil((width * 3) / 4) * 4;
  const file = Buffer.alloc(54 + row * height);
  file.write("BM", 0);
  file.writeUInt32LE(file.length, 2);
  file.writeUInt32LE(54, 10);
  file.writeUInt32LE(40, 14);
  file.writeInt32LE(width, 18);
  file.writeInt32LE(height, 22);
  file.writeUInt16LE(1, 26);
  file.writeUInt16LE(24, 28);
  file.writeUInt32LE(row * height, 34);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = color(x, y);
      file.set([b, g, r], 54 + (height - 1 - y) * row + x * 3);
    }
  }
  return file;
}

/**
 * Drags `file` from a desktop window (tests/e2e/drag-source.py, a GTK drag source like a file manager's) to the
 * screen point (x, y): the pointer is pressed on the source, moved in steps and released, all real X input, so the
 * app gets the drop through the X drag-and-drop protocol as from a user's desktop.
 */
async function dragFileTo(file, [x, y]) {
  const source = spawn("/usr/bin/python3", [join(root, "tests/e2e/drag-source.py"), file, "1300", "880"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const [line] = await Promise.race([
      once(createInterface({ input: source.stdout }), "line"),
      sleep(30000).then(() => ["timed out"]),
    ]);
    assert.equal(line, "ready", "the drag source window is shown");
    const exited = once(source, "exit");
    const path = [[1340, 920], [1320, 900], [1200, 800], [(1200 + x) / 2, (800 + y) / 2], [x, y], [x + 4, y + 4]];
    xdotool("mousemove", "--sync", "1340", "920");
    xdotool("mousedown", "1");
    for (const [px, py] of path) {
      await sleep(150);
      xdotool("mousemove", String(Math.round(px)), String(Math.round(py)));
    }
    await sleep(400);
    xdotool("mouseup", "1");
    await Promise.race([exited, sleep(10000).then(() => assert.fail("the drag did not end"))]);
  } finally {
    source.kill();
  }
}

// The app works in `home` (startApp).
before(async () => {
  app = await startApp(home);
  driver = app.driver;
});

after(async () => {
  if (app) await stopApp(app);
  rmSync(home, { recursive: true, force: true });
});

describe("the canvas in the real app", () => {
  it("inpaints a painted mask on the demo model and keeps every pixel outside it", async () => {
    // A picture to work on: text to image on the demo model.
    await generate(driver, { prompt: "a lighthouse", steps: 4, width: 128, height: 128, seed: 42 });
    await driver.execute(`[...document.querySelectorAll("figcaption button")].find((b) => b.textContent === "Send to canvas").click();`);
    await driver.waitFor("#canvas-size", { timeout: 30000, check: async (e) => (await driver.text(e)) === "128 × 128" });

    // Paint: a 16 px brush, hard, across the middle of the picture (which "fit" centres in the view).
    await driver.execute(`const set = (css, value, type) => { const e = document.querySelector(css); e.value = value;
        e.dispatchEvent(new Event(type, { bubbles: true })); };
      set("#brush-size-number", "16", "change"); set("#brush-hardness", "1", "input"); set("#mask-blur", "0", "input");`);
    const settings = await driver.execute(`return ["#brush-size-number", "#brush-hardness", "#mask-blur"]
      .map((css) => document.querySelector(css).value);`);
    assert.deepEqual(settings, ["16", "1", "0"]);
    const surface = await driver.find("#mask-canvas");
    const zoom = await driver.execute(`return Number(document.querySelector("#canvas-zoom").textContent.replace("%", "")) / 100;`);
    const s = (imagePixels) => Math.round(imagePixels * zoom);
    await stroke(surface, [[s(-40), s(-20)], [s(0), s(10)], [s(40), s(-10)]]);

    // The mask as the canvas holds it, exported through the native save dialog to a folder of our choosing.
    const maskFile = join(home, "exported", "painted mask.png");
    mkdirSync(join(home, "exported"));
    await driver.click(await driver.find("#mask-export"));
    await saveWith("Save mask as", maskFile);
    await driver.waitFor("#canvas-notice", {
      timeout: 30000,
      check: async (e) => (await driver.text(e)) === `Mask saved to ${maskFile}`,
    });
    assert.deepEqual(readdirSync(join(home, "exported")), ["painted mask.png"], "no temporary file is left");
    const mask = readPng(maskFile);
    assert.deepEqual([mask.width, mask.height], [128, 128]);
    let maskedPixels = 0;
    for (let i = 0; i < 128 * 128; i++) maskedPixels += mask.data[i * 4] >= 128 ? 1 : 0;
    // A 16 px line about 110 px long: some 1500 pixels.
    assert.ok(maskedPixels > 800 && maskedPixels < 4000, `the stroke painted ${maskedPixels} pixels`);

    await driver.click(await driver.find("#canvas-generate"));
    const pngs = () => readdirSync(outputs).filter((name) => name.endsWith(".png")).sort();
    await driver.waitFor('img[alt^="Result seed"]', { timeout: 120000, check: async () => pngs().length === 2 });
    const [pictureFile, resultFile] = pngs();
    assert.equal(pictureFile, "00000-42.png");
    const picture = readPng(join(outputs, pictureFile));
    const result = readPng(join(outputs, resultFile));
    assert.deepEqual([result.width, result.height], [128, 128]);
    let changedInside = 0;
    for (let i = 0; i < 128 * 128; i++) {
      const same = [0, 1, 2].every((c) => picture.data[i * 4 + c] === result.data[i * 4 + c]);
      if (mask.data[i * 4] === 0) assert.ok(same, `pixel (${i % 128}, ${Math.floor(i / 128)}) outside the mask changed`);
      else if (mask.data[i * 4] >= 128 && !same) changedInside++;
    }
    assert.ok(changedInside > maskedPixels / 2, `the masked area was repainted (${changedInside} of ${maskedPixels} pixels)`);
  });

  it("opens a picture dragged from the desktop onto the canvas", async () => {
    // A BMP (the browser would not be asked to decode it: the app reads it as the engine reads pictures): red on
    // the left, blue on the right.
    const [red, blue] = [[200, 40, 40], [40, 80, 200]];
    const picture = join(home, "Desktop", "holiday photo.bmp");
    mkdirSync(join(home, "Desktop"));
    writeFileSync(picture, bmp(96, 64, (x) => (x < 48 ? red : blue)));
    await showTab(driver, "Canvas");
    const stage = await driver.execute(`const r = document.querySelector('[aria-label="Canvas picture"]')
      .getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];`);
    // The app's window on the screen (no window manager: no frame; its page fills it).
    const windowId = xdotool("search", "--onlyvisible", "--pid", String(app.appPid)).split("\n")[0];
    const geometry = Object.fromEntries(
      xdotool("getwindowgeometry", "--shell", windowId).split("\n").map((line) => line.split("=")),
    );
    xdotool("windowraise", windowId);
    await dragFileTo(picture, [Number(geometry.X) + stage[0], Number(geometry.Y) + stage[1]]);

    await driver.waitFor("#canvas-size", { timeout: 30000, check: async (e) => (await driver.text(e)) === "96 × 64" });
    assert.equal(await driver.execute(`return document.querySelector('[data-testid="png-info"]') !== null;`), false);
    // The view shows the picture's pixels: sample the middle of each half of the (empty-masked) picture, once the
    // view has drawn the new picture (on an animation frame).
    await driver.click(await driver.find("#canvas-fit"));
    const close = (sample, expected) => expected.every((v, c) => Math.abs(sample[c] - v) <= 3);
    let samples;
    for (let i = 0; i < 50 && !(samples && close(samples[0], red) && close(samples[1], blue)); i++) {
      if (samples) await sleep(100);
      samples = await driver.execute(`const surface = document.querySelector("#mask-canvas");
        const zoom = Number(document.querySelector("#canvas-zoom").textContent.replace("%", "")) / 100;
        const dpr = window.devicePixelRatio;
        const [cx, cy] = [surface.width / 2, surface.height / 2];
        const at = (dx) => [...surface.getContext("2d").getImageData(Math.round(cx + dx * zoom * dpr), Math.round(cy), 1, 1).data];
        return [at(-24), at(24)];`);
    }
    assert.ok(close(samples[0], red), `the left half shows ${samples[0]}, not ${red}`);
    assert.ok(close(samples[1], blue), `the right half shows ${samples[1]}, not ${blue}`);
  });
});
