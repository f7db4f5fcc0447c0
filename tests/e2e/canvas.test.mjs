// The canvas in the real app (release build, Xvfb, WebKitWebDriver): make a picture with the demo model, send it to
// the canvas, paint a mask with W3C pointer actions, inpaint, and check in the saved PNGs that every pixel outside
// the mask is the picture's. Run it through `xvfb-run` (scripts/test.sh does).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { PNG } from "pngjs";
import { ELEMENT } from "./webdriver.mjs";
import { dataFolder, freshHome, generate, startApp, stopApp } from "./steps.mjs";

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

// The app works in `home` (startApp), where WebKitGTK saves downloads such as the exported mask.
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

    // The mask as the canvas holds it, exported as a PNG.
    await driver.click(await driver.find("#mask-export"));
    const href = await driver.execute(`return document.querySelector('a[download="mask.png"]').getAttribute("href");`);
    const mask = PNG.sync.read(Buffer.from(href.split(",")[1], "base64"));
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
});
