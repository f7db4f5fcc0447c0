// A control unit's slow preview in the built UI (vite preview of ui/dist) in headless Chromium, with Tauri's IPC
// mocked (ipc-mock.js, whose annotator previews take __PIGMENT_PREVIEW_STEPS__ steps of 100 ms and report each on
// the watched channel): the unit shows the progress and a Cancel button; Cancel calls `cancel_control_preview` and
// leaves no error; a newer preview of the unit replaces the running one, again without an error.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { PNG } from "pngjs";
import { calls, openUi, startBuiltUi } from "./harness.mjs";

function grayPng(width, height) {
  const png = new PNG({ width, height });
  png.data.fill(128);
  return PNG.sync.write(png);
}

let ui;
before(async () => (ui = await startBuiltUi()));
after(() => ui?.close());

/** The UI with both annotators installed and a unit holding a picture, previewed as it is. */
async function unitWithPicture(steps) {
  const opened = await openUi(ui, { globals: { __PIGMENT_ANNOTATORS__: ["depth", "openpose"], __PIGMENT_PREVIEW_STEPS__: steps } });
  const { page } = opened;
  await page.click("summary:has-text('ControlNet / T2I-Adapter')");
  await page.click("#control-add");
  await page.setInputFiles("#control-0-file", { name: "scene.png", mimeType: "image/png", buffer: grayPng(64, 64) });
  await page.locator('img[alt="Control unit 1: none"]').waitFor();
  return opened;
}

const annotatorCalls = async (page) =>
  (await calls(page, "preprocess_control")).filter((c) => ["depth", "openpose"].includes(c.args.unit.preprocessor));

describe("a control unit's slow preview", () => {
  it("shows its progress and a Cancel button; Cancel stops it and leaves no error", async () => {
    const { page, errors } = await unitWithPicture(100);
    await page.selectOption("#control-0-preprocessor", "depth");
    // A few steps in: the percentage, the bar and the button.
    await page.locator("#control-0-preview-progress", { hasText: /Preprocessing… ([3-9]|\d\d) %/ }).waitFor();
    const bar = page.getByRole("progressbar", { name: "Control unit 1 preview" });
    assert.ok(Number(await bar.getAttribute("aria-valuenow")) >= 3);
    const cancel = page.locator("#control-0-cancel-preview");
    assert.equal(await cancel.textContent(), "Cancel");

    await cancel.click();
    await page.locator("#control-0-previewing").waitFor({ state: "detached" });
    const [depth] = await annotatorCalls(page);
    assert.equal(typeof depth.args.unit.id, "number", "the preview names its unit");
    assert.deepEqual((await calls(page, "cancel_control_preview")).map((c) => c.args), [{ unitId: depth.args.unit.id }]);
    assert.equal(await page.locator("#control-0-preview-error").count(), 0);
    assert.equal(await page.locator('fieldset[aria-label="Control unit 1"] [role="alert"]').count(), 0);
    // The depth picture never came; the one shown before stays.
    assert.equal(await page.locator('img[alt="Control unit 1: depth"]').count(), 0);
    assert.equal(await page.locator('img[alt="Control unit 1: none"]').count(), 1);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("is replaced by a newer preview of the same unit, without an error", async () => {
    const { page, errors } = await unitWithPicture(100);
    await page.selectOption("#control-0-preprocessor", "depth");
    await page.locator("#control-0-preview-progress", { hasText: /Preprocessing… [1-9]\d* %/ }).waitFor();
    // The newer preview is quick; the mock, as the Rust side, cancels the running depth one when it starts.
    await page.evaluate(() => (window.__PIGMENT_PREVIEW_STEPS__ = 5));
    await page.selectOption("#control-0-preprocessor", "openpose");
    await page.locator('img[alt="Control unit 1: openpose"]').waitFor();
    await page.locator("#control-0-previewing").waitFor({ state: "detached" });
    const previews = await annotatorCalls(page);
    assert.deepEqual(previews.map((c) => c.args.unit.preprocessor), ["depth", "openpose"]);
    assert.equal(previews[0].args.unit.id, previews[1].args.unit.id);
    assert.equal(await page.locator("#control-0-preview-error").count(), 0);
    assert.deepEqual(await calls(page, "cancel_control_preview"), [], "no Cancel was clicked");
    assert.deepEqual(errors, []);
    await page.close();
  });
});
