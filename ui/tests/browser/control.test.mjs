// The control panel of the built UI (vite preview of ui/dist) in headless Chromium, with Tauri's IPC mocked
// (ipc-mock.js): a picture opened from a file becomes a PNG unit picture, the preview is asked for and shown, and the
// job carries the units; in the Canvas view the canvas's picture and its painted mask (as a scribble) are sources.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { PNG } from "pngjs";
import { calls, openUi, startBuiltUi } from "./harness.mjs";

/** A picture with a bright square on a dark ground. */
function squarePng(width, height) {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = x > width / 4 && x < (3 * width) / 4 && y > height / 4 && y < (3 * height) / 4;
      const i = (y * width + x) * 4;
      png.data.set(inside ? [240, 200, 40, 255] : [20, 30, 60, 255], i);
    }
  }
  return PNG.sync.write(png);
}

const decode = (base64) => PNG.sync.read(Buffer.from(base64, "base64"));

let ui;
before(async () => (ui = await startBuiltUi()));
after(() => ui?.close());

describe("the control panel in the built UI", () => {
  it("takes a picture from a file, previews it and sends the unit with the job", async () => {
    const { page, errors } = await openUi(ui);
    await page.click("summary:has-text('ControlNet / T2I-Adapter')");
    await page.click("#control-add");
    assert.equal(await page.inputValue("#control-0-model"), "tiny-canny");
    await page.setInputFiles("#control-0-file", { name: "edges.png", mimeType: "image/png", buffer: squarePng(96, 64) });
    await page.locator("#control-0-source", { hasText: "edges.png (96 × 64)" }).waitFor();
    await page.selectOption("#control-0-preprocessor", "canny");
    await page.fill("#control-0-canny-high", "180");
    await page.locator('img[alt="Control unit 1: canny"]').waitFor();
    const previews = await calls(page, "preprocess_control");
    const last = previews.at(-1).args;
    assert.deepEqual([last.unit.preprocessor, last.unit.cannyHigh, last.width, last.height], ["canny", 180, 512, 512]);
    const sent = decode(last.unit.image);
    assert.deepEqual([sent.width, sent.height], [96, 64], "the file went to Rust as a PNG of its size");
    assert.deepEqual([...sent.data.subarray((32 * 96 + 48) * 4, (32 * 96 + 48) * 4 + 3)], [240, 200, 40]);

    // A bad threshold: the Rust side's message appears in the unit.
    await page.fill("#control-0-canny-high", "300");
    await page.locator("#control-0-preview-error", { hasText: "invalid canny high: 300" }).waitFor();
    await page.fill("#control-0-canny-high", "200");
    await page.fill("#control-0-weight", "0.7");
    await page.fill("#control-0-start", "0.1");
    await page.click("#generate");
    await page.locator('img[alt="Seed 1234"]').waitFor();
    const [job] = await calls(page, "submit_job");
    const [unit] = job.args.params.controls;
    assert.deepEqual(
      [unit.kind, unit.model, unit.preprocessor, unit.cannyHigh, unit.weight, unit.start, unit.end, unit.enabled],
      ["controlnet", "tiny-canny", "canny", 200, 0.7, 0.1, 1, true],
    );
    assert.equal(unit.image, last.unit.image);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("uses the canvas picture and the painted mask as a scribble in the Canvas view", async () => {
    const { page, errors } = await openUi(ui);
    await page.getByRole("tab", { name: "Canvas" }).click();
    await page.setInputFiles("#canvas-open", { name: "picture.png", mimeType: "image/png", buffer: squarePng(128, 96) });
    await page.locator("#canvas-size", { hasText: "128 × 96" }).waitFor();
    await page.click("summary:has-text('ControlNet / T2I-Adapter')");
    await page.click("#control-add");
    await page.click("#control-0-from-canvas");
    await page.locator("#control-0-source", { hasText: "canvas picture (128 × 96)" }).waitFor();
    await page.locator('img[alt="Control unit 1: none"]').waitFor();
    const fromPicture = (await calls(page, "preprocess_control")).at(-1).args;
    // The canvas works at its picture's size, rounded to multiples of 8.
    assert.deepEqual([fromPicture.width, fromPicture.height], [128, 96]);
    assert.deepEqual([decode(fromPicture.unit.image).width, decode(fromPicture.unit.image).height], [128, 96]);

    // A stroke on the mask, then the mask as the unit's scribble.
    const surface = page.locator("#mask-canvas");
    const box = await surface.boundingBox();
    await page.mouse.move(box.x + box.width / 2 - 30, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 30, box.y + box.height / 2, { steps: 8 });
    await page.mouse.up();
    await page.click("#control-0-from-mask");
    assert.equal(await page.inputValue("#control-0-preprocessor"), "scribble");
    await page.locator('img[alt="Control unit 1: scribble"]').waitFor();
    const scribble = decode((await calls(page, "preprocess_control")).at(-1).args.unit.image);
    const white = [...Array(scribble.width * scribble.height).keys()].filter((i) => scribble.data[i * 4] > 127).length;
    assert.ok(white > 100 && white < scribble.width * scribble.height / 2, `the stroke is in the scribble (${white} white pixels)`);

    await page.click("#canvas-generate");
    await page.waitForFunction(() => window.__PIGMENT_CALLS__.some((c) => c.cmd === "submit_job"));
    const [job] = await calls(page, "submit_job");
    assert.equal(job.args.params.mode.kind, "inpaint");
    assert.equal(job.args.params.controls[0].preprocessor, "scribble");
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("offers depth only when its annotator model is installed", async () => {
    // Installed: depth is offered, previewed and sent with the job; openpose (not installed) stays disabled.
    const { page, errors } = await openUi(ui, { globals: { __PIGMENT_ANNOTATORS__: ["depth"] } });
    await page.click("summary:has-text('ControlNet / T2I-Adapter')");
    await page.click("#control-add");
    const option = (id) => page.locator(`#control-0-preprocessor option[value="${id}"]`);
    assert.equal(await option("depth").isDisabled(), false);
    assert.equal(await option("openpose").isDisabled(), true);
    assert.equal(await page.locator("#control-0-depth-missing").count(), 0);
    await page.locator("#control-0-openpose-missing", { hasText: "install an openpose model in /data/models/annotators/openpose..." }).waitFor();
    await page.setInputFiles("#control-0-file", { name: "scene.png", mimeType: "image/png", buffer: squarePng(64, 64) });
    await page.selectOption("#control-0-preprocessor", "depth");
    await page.locator('img[alt="Control unit 1: depth"]').waitFor();
    assert.equal((await calls(page, "preprocess_control")).at(-1).args.unit.preprocessor, "depth");
    await page.click("#generate");
    await page.locator('img[alt="Seed 1234"]').waitFor();
    const [job] = await calls(page, "submit_job");
    assert.equal(job.args.params.controls[0].preprocessor, "depth");
    assert.deepEqual(errors, []);
    await page.close();

    // Not installed: both are shown disabled, with where to install them.
    const bare = await openUi(ui);
    await bare.page.click("summary:has-text('ControlNet / T2I-Adapter')");
    await bare.page.click("#control-add");
    for (const id of ["depth", "openpose"]) {
      assert.equal(await bare.page.locator(`#control-0-preprocessor option[value="${id}"]`).isDisabled(), true, id);
    }
    await bare.page.locator("#control-0-depth-missing", { hasText: "install a depth model in /data/models/annotators/depth..." }).waitFor();
    assert.deepEqual(bare.errors, []);
    await bare.page.close();
  });
});
