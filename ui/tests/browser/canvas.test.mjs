// The Canvas tab of the built UI (vite preview of ui/dist) in headless Chromium, with Tauri's IPC mocked
// (ipc-mock.js): strokes drawn with real pointer events at several zoom levels, pans and device pixel ratios, the
// exported mask compared pixel by pixel with where the strokes went; undo/redo; the inpaint job's params.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { PNG } from "pngjs";
import { calls, openUi, startBuiltUi } from "./harness.mjs";

const WIDTH = 256;
const HEIGHT = 192;

/** A test picture: a gradient, so the canvas has something to show. */
function picturePng(width = WIDTH, height = HEIGHT) {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      png.data[i] = x & 255;
      png.data[i + 1] = y & 255;
      png.data[i + 2] = 128;
      png.data[i + 3] = 255;
    }
  }
  return PNG.sync.write(png);
}

let ui;
before(async () => (ui = await startBuiltUi()));
after(() => ui?.close());

async function openCanvas({ deviceScaleFactor = 1 } = {}) {
  const { page, context, errors } = await openUi(ui, {
    deviceScaleFactor,
    // Results through the asset protocol, which allows the window's origin (as Tauri's does).
    asset: (route) => route.fulfill({ contentType: "image/png", body: picturePng(64, 48), headers: { "Access-Control-Allow-Origin": "*" } }),
  });
  await page.getByRole("tab", { name: "Canvas" }).click();
  await page.setInputFiles("#canvas-open", { name: "picture.png", mimeType: "image/png", buffer: picturePng() });
  await page.locator("#canvas-size", { hasText: `${WIDTH} × ${HEIGHT}` }).waitFor();
  await page.fill("#brush-size-number", "20");
  await page.press("#brush-size-number", "Tab");
  await setRange(page, "#brush-hardness", "1");
  return { page, context, errors };
}

/**
 * The view as the test predicts it (its own arithmetic, not the app's): zoom and the viewport position of the
 * image's top-left corner, in CSS pixels.
 */
class ExpectedView {
  constructor(box) {
    this.box = box;
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
  }
  actualSize(dpr) {
    this.zoom = 1;
    this.panX = Math.round(((this.box.width - WIDTH) / 2) * dpr) / dpr;
    this.panY = Math.round(((this.box.height - HEIGHT) / 2) * dpr) / dpr;
  }
  fit(dpr) {
    this.zoom = Math.min((this.box.width - 32) / WIDTH, (this.box.height - 32) / HEIGHT);
    this.panX = Math.round(((this.box.width - WIDTH * this.zoom) / 2) * dpr) / dpr;
    this.panY = Math.round(((this.box.height - HEIGHT * this.zoom) / 2) * dpr) / dpr;
  }
  /** A wheel turn of `deltaY` with the pointer at page point (px, py). */
  wheel(px, py, deltaY) {
    const [sx, sy] = [px - this.box.x, py - this.box.y];
    const [ix, iy] = [(sx - this.panX) / this.zoom, (sy - this.panY) / this.zoom];
    this.zoom *= Math.pow(1.2, -deltaY / 100);
    this.panX = sx - ix * this.zoom;
    this.panY = sy - iy * this.zoom;
  }
  /** The page point over image point (x, y). */
  toPage(x, y) {
    return [this.box.x + this.panX + x * this.zoom, this.box.y + this.panY + y * this.zoom];
  }
  /** The image point under page point (px, py). */
  toImage(px, py) {
    return [(px - this.box.x - this.panX) / this.zoom, (py - this.box.y - this.panY) / this.zoom];
  }
}

async function setRange(page, selector, value) {
  await page.locator(selector).evaluate((input, value) => {
    input.value = value;
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}

/** Keyboard shortcuts go to the window unless a text field has the focus. */
async function unfocus(page) {
  await page.evaluate(() => document.activeElement?.blur());
}

async function canvasBox(page) {
  return page.locator("#mask-canvas").boundingBox();
}

/** A stroke with the mouse through page points; returns the image points the pointer actually went through. */
async function stroke(page, view, points, steps = 25) {
  await page.mouse.move(...points[0]);
  await page.mouse.down();
  for (const point of points.slice(1)) await page.mouse.move(...point, { steps });
  await page.mouse.up();
  return points.map(([px, py]) => view.toImage(px, py));
}

/** "Export mask…": the mask the canvas hands to the app's save dialog (save_mask_as). */
async function exportedMask(page) {
  const before = (await calls(page, "save_mask_as")).length;
  await page.click("#mask-export");
  await page.waitForFunction((n) => window.__PIGMENT_CALLS__.filter((c) => c.cmd === "save_mask_as").length > n, before);
  const { pngBase64 } = (await calls(page, "save_mask_as")).at(-1).args;
  const png = PNG.sync.read(Buffer.from(pngBase64, "base64"));
  assert.deepEqual([png.width, png.height], [WIDTH, HEIGHT], "the mask is at image resolution");
  const values = new Uint8Array(WIDTH * HEIGHT);
  for (let i = 0; i < values.length; i++) values[i] = png.data[i * 4];
  return values;
}

function distanceToSegment(x, y, [ax, ay], [bx, by]) {
  const [dx, dy] = [bx - ax, by - ay];
  const length2 = dx * dx + dy * dy;
  const t = length2 === 0 ? 0 : Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / length2));
  return Math.hypot(x - (ax + t * dx), y - (ay + t * dy));
}

/**
 * Every pixel clearly inside a painted polyline (radius `radius` image pixels) is set and every pixel clearly
 * outside is not; the band of one image pixel around the edge (plus the pointer's rounding to whole CSS pixels,
 * `slack` image pixels) may go either way. `erased` polylines win over `painted` ones.
 */
function assertMask(values, { painted, erased = [] }, slack) {
  const near = (x, y, lines) =>
    Math.min(...lines.flatMap(({ points, radius }) =>
      points.slice(1).map((p, i) => distanceToSegment(x + 0.5, y + 0.5, points[i], p) - radius)));
  const margin = 1 + slack;
  let checked = 0;
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const toPaint = near(x, y, painted);
      const toErase = erased.length ? near(x, y, erased) : Infinity;
      const value = values[y * WIDTH + x];
      if (toErase < -margin || (toPaint > margin && toErase > margin)) {
        assert.equal(value, 0, `pixel (${x}, ${y}) should be clear`);
        checked++;
      } else if (toPaint < -margin && toErase > margin) {
        assert.equal(value, 255, `pixel (${x}, ${y}) should be painted`);
        checked++;
      }
    }
  }
  assert.ok(checked > WIDTH * HEIGHT * 0.8, `most pixels checked (${checked})`);
}

describe("the canvas with mocked IPC", () => {
  it("paints where the pointer goes at 100%, zoomed in around the pointer, after a pan, and at fit", async () => {
    const { page, context, errors } = await openCanvas();
    const view = new ExpectedView(await canvasBox(page));
    await page.click("#canvas-actual");
    view.actualSize(1);
    assert.equal(await page.textContent("#canvas-zoom"), "100%");
    const painted = [];
    painted.push({ points: await stroke(page, view, [view.toPage(20, 30), view.toPage(120, 60), view.toPage(200, 40)]), radius: 10 });
    assertMask(await exportedMask(page), { painted }, 0.5);

    // Zoom in with the wheel around a point of the picture: that point stays under the pointer.
    const [px, py] = view.toPage(60, 140);
    await page.mouse.move(px, py);
    for (let i = 0; i < 4; i++) {
      await page.mouse.wheel(0, -100);
      view.wheel(px, py, -100);
    }
    await page.locator("#canvas-zoom", { hasText: `${Math.round(view.zoom * 100)}%` }).waitFor();
    const zoomedPoints = await stroke(page, view, [view.toPage(40, 130), view.toPage(90, 150)]);
    painted.push({ points: zoomedPoints, radius: 10 });
    // At 207% a CSS pixel is under half an image pixel: the stroke lands within it.
    assertMask(await exportedMask(page), { painted }, 0.5 / view.zoom);

    // Pan with the middle button, then with space-drag, and erase across the first stroke.
    await page.mouse.move(600, 400);
    await page.mouse.down({ button: "middle" });
    await page.mouse.move(520, 380, { steps: 5 });
    await page.mouse.up({ button: "middle" });
    view.panX -= 80;
    view.panY -= 20;
    await unfocus(page);
    await page.keyboard.down(" ");
    await page.mouse.move(500, 400);
    await page.mouse.down();
    await page.mouse.move(540, 430, { steps: 5 });
    await page.mouse.up();
    await page.keyboard.up(" ");
    view.panX += 40;
    view.panY += 30;
    await page.click("#tool-eraser");
    const erased = [{ points: await stroke(page, view, [view.toPage(110, 10), view.toPage(110, 90)]), radius: 10 }];
    assertMask(await exportedMask(page), { painted, erased }, 0.5 / view.zoom);

    // Fit (whatever zoom the viewport gives), paint a thinner line with the `[` shortcut's size.
    await page.click("#canvas-fit");
    view.fit(1);
    await page.click("#tool-brush");
    await unfocus(page);
    for (let i = 0; i < 5; i++) await page.keyboard.press("[");
    const size = Number(await page.inputValue("#brush-size-number"));
    assert.ok(size < 20 && size >= 8, `[ made the brush smaller: ${size}`);
    painted.push({ points: await stroke(page, view, [view.toPage(10, 175), view.toPage(245, 175)]), radius: size / 2 });
    assertMask(await exportedMask(page), { painted, erased }, 0.5 / view.zoom);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it("on a high-DPI screen the backing store is device pixels and strokes land where they do at DPR 1", async () => {
    const { page, context, errors } = await openCanvas({ deviceScaleFactor: 2 });
    const box = await canvasBox(page);
    const backing = await page.locator("#mask-canvas").evaluate((c) => [c.width, c.height]);
    assert.deepEqual(backing, [Math.round(box.width * 2), Math.round(box.height * 2)]);
    const view = new ExpectedView(box);
    await page.click("#canvas-actual");
    view.actualSize(2);
    const [px, py] = view.toPage(128, 96);
    await page.mouse.move(px, py);
    await page.mouse.wheel(0, -300);
    // Chromium reports wheel deltas in CSS pixels: a 300 px turn is deltaY -150 at DPR 2.
    view.wheel(px, py, -300 / 2);
    await page.locator("#canvas-zoom", { hasText: `${Math.round(view.zoom * 100)}%` }).waitFor();
    const painted = [{ points: await stroke(page, view, [view.toPage(100, 80), view.toPage(150, 110)]), radius: 10 }];
    assertMask(await exportedMask(page), { painted }, 0.5 / view.zoom);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it("undoes and redoes strokes and fills with the keyboard and the buttons", async () => {
    const { page, context, errors } = await openCanvas();
    const view = new ExpectedView(await canvasBox(page));
    await page.click("#canvas-actual");
    view.actualSize(1);
    const empty = await exportedMask(page);
    await stroke(page, view, [view.toPage(30, 30), view.toPage(200, 30)]);
    const one = await exportedMask(page);
    await stroke(page, view, [view.toPage(30, 120), view.toPage(200, 160)]);
    const two = await exportedMask(page);
    await page.click("#mask-invert");
    const inverted = await exportedMask(page);
    assert.ok(inverted.every((v, i) => v === 255 - two[i]), "invert");
    await unfocus(page);
    await page.keyboard.press("Control+z");
    assert.deepEqual(await exportedMask(page), two);
    await page.keyboard.press("Control+z");
    assert.deepEqual(await exportedMask(page), one);
    await page.keyboard.press("Control+Shift+Z");
    assert.deepEqual(await exportedMask(page), two);
    await page.keyboard.press("Control+z");
    await page.keyboard.press("Control+z");
    assert.deepEqual(await exportedMask(page), empty);
    assert.ok(await page.locator("#mask-undo").isDisabled());
    await page.keyboard.press("Control+y");
    assert.deepEqual(await exportedMask(page), one);
    await page.click("#mask-fill");
    assert.ok((await exportedMask(page)).every((v) => v === 255), "fill");
    assert.ok(await page.locator("#mask-redo").isDisabled(), "a new edit drops the redo history");
    await page.click("#mask-undo");
    assert.deepEqual(await exportedMask(page), one);
    await page.click("#mask-clear");
    assert.ok((await exportedMask(page)).every((v) => v === 0), "clear");
    // 120 strokes, then every one of them undone.
    for (let i = 0; i < 120; i++) {
      const y = 10 + (i % 17) * 10;
      const x = 10 + Math.floor(i / 17) * 30;
      await stroke(page, view, [view.toPage(x, y), view.toPage(x + 20, y + 5)], 2);
    }
    for (let i = 0; i < 120; i++) await page.keyboard.press("Control+z");
    assert.ok((await exportedMask(page)).every((v) => v === 0), "120 strokes undone back to the cleared mask");
    await page.keyboard.press("Control+z");
    assert.deepEqual(await exportedMask(page), one, "and the clear before them");
    assert.deepEqual(errors, []);
    await context.close();
  });

  it("imports a mask PNG and sends an inpaint job with the picture, the mask and the settings", async () => {
    const { page, context, errors } = await openCanvas();
    const mask = new PNG({ width: WIDTH, height: HEIGHT });
    for (let y = 0; y < HEIGHT; y++) {
      for (let x = 0; x < WIDTH; x++) {
        const i = (y * WIDTH + x) * 4;
        const v = x >= 64 && x < 128 && y >= 32 && y < 96 ? 255 : 0;
        mask.data.set([v, v, v, 255], i);
      }
    }
    await page.setInputFiles("#mask-import", { name: "mask.png", mimeType: "image/png", buffer: PNG.sync.write(mask) });
    await page.waitForFunction(() => !document.querySelector("#mask-undo")?.hasAttribute("disabled"));
    const imported = await exportedMask(page);
    await page.locator("#canvas-notice", { hasText: "Mask saved to /home/user/mask.png" }).waitFor();
    for (let y = 0; y < HEIGHT; y++) {
      for (let x = 0; x < WIDTH; x++) assert.equal(imported[y * WIDTH + x], mask.data[(y * WIDTH + x) * 4], `(${x}, ${y})`);
    }
    await page.fill("#canvas-prompt", "a red ball");
    await page.fill("#mask-blur", "2");
    await page.selectOption("#masked-content", "latent-noise");
    await page.check("#only-masked");
    await page.click("#canvas-generate");
    await page.getByRole("button", { name: "Use as canvas picture" }).waitFor();
    const [submit] = await calls(page, "submit_job");
    const { params } = submit.args;
    assert.equal(params.prompt, "a red ball");
    assert.deepEqual([params.width, params.height], [WIDTH, HEIGHT]);
    assert.equal(params.mode.kind, "inpaint");
    assert.deepEqual(
      [params.mode.maskBlur, params.mode.maskedContent, params.mode.onlyMasked, params.mode.strength],
      [2, "latent-noise", true, 1],
    );
    const sentPicture = PNG.sync.read(Buffer.from(params.mode.image, "base64"));
    assert.deepEqual([...sentPicture.data.subarray(0, 8)], [...PNG.sync.read(picturePng()).data.subarray(0, 8)]);
    const sentMask = PNG.sync.read(Buffer.from(params.mode.mask, "base64"));
    for (let i = 0; i < WIDTH * HEIGHT; i++) assert.equal(sentMask.data[i * 4], imported[i]);

    // The result becomes the canvas picture (a new size: a new, empty mask).
    await page.getByRole("button", { name: "Use as canvas picture" }).click();
    await page.locator("#canvas-size", { hasText: "64 × 48" }).waitFor();
    // Outpaint shows its borders and sends them.
    await page.locator("label", { has: page.locator("#canvas-mode-outpaint") }).click();
    await page.fill("#outpaint-left", "32");
    await page.fill("#outpaint-bottom", "16");
    await page.click("#canvas-generate");
    await page.waitForFunction(() => window.__PIGMENT_CALLS__.filter((c) => c.cmd === "submit_job").length === 2);
    const outpaint = (await calls(page, "submit_job"))[1].args.params;
    assert.deepEqual([outpaint.mode.kind, outpaint.mode.left, outpaint.mode.bottom, outpaint.mode.maskedContent], ["outpaint", 32, 16, "fill"]);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it("takes a picture dropped from the desktop or pasted from the clipboard", async () => {
    const { page, context, errors } = await openCanvas();
    const dropped = picturePng(96, 64).toString("base64");
    await page.evaluate((base64) => {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const data = new DataTransfer();
      data.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
      const stage = document.querySelector('[aria-label="Canvas picture"]');
      stage.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, bubbles: true, cancelable: true }));
      stage.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
    }, dropped);
    await page.locator("#canvas-size", { hasText: "96 × 64" }).waitFor();
    const pasted = picturePng(80, 40).toString("base64");
    await page.evaluate((base64) => {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const data = new DataTransfer();
      data.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
      document.body.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
    }, pasted);
    await page.locator("#canvas-size", { hasText: "80 × 40" }).waitFor();

    // In the app, Tauri's drop handler takes the drop from the page and sends its path over the drop channel: the
    // canvas, shown, reads it through the app (served here as the asset picture, 64 × 48); PNG Info stays closed.
    const drop = { path: "/home/user/Desktop/photo.jpg", fileName: "photo.jpg", metadata: null, reuse: null,
      error: "photo.jpg is not a PNG: PNG Info reads the parameters PNG files carry" };
    await page.waitForFunction(() => typeof window.__PIGMENT_DROP__ === "function");
    await page.evaluate((drop) => window.__PIGMENT_DROP__(drop), drop);
    await page.locator("#canvas-size", { hasText: "64 × 48" }).waitFor();
    assert.deepEqual((await calls(page, "read_dropped_picture")).map((c) => c.args.path), [drop.path]);
    assert.equal(await page.getByTestId("png-info").count(), 0);
    // Any other view: the drop is the gallery's PNG Info.
    await page.getByRole("tab", { name: "Generate" }).click();
    await page.evaluate((drop) => window.__PIGMENT_DROP__(drop), drop);
    await page.getByTestId("png-info").getByText(drop.error).waitFor();
    assert.equal((await calls(page, "read_dropped_picture")).length, 1);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it("a result's Send to canvas opens the Canvas tab with that picture", async () => {
    const { page, context, errors } = await openCanvas();
    await page.getByRole("tab", { name: "Generate" }).click();
    await page.fill("#prompt", "a lighthouse");
    await page.selectOption("#size", "256 × 256");
    await page.click("#generate");
    await page.getByRole("button", { name: "Send to canvas" }).click();
    await page.locator("#canvas-size", { hasText: "64 × 48" }).waitFor();
    assert.equal(await page.getByRole("tab", { name: "Canvas" }).getAttribute("aria-selected"), "true");
    assert.deepEqual(errors, []);
    await context.close();
  });
});
