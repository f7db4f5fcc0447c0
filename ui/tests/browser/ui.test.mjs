// The built UI (vite preview of ui/dist) in headless Chromium through playwright-core, with Tauri's IPC mocked
// (ipc-mock.js): the generate flow, cancel, and error display.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { calls, openUi, startBuiltUi } from "./harness.mjs";

let ui;
before(async () => (ui = await startBuiltUi()));
after(() => ui?.close());

const open = (scenario) => openUi(ui, { globals: { __PIGMENT_SCENARIO__: scenario } });

describe("the built UI with mocked IPC", () => {
  it("generates: progress with a preview, then the image from the asset protocol", async () => {
    const { page, errors } = await open("generate");
    await page.fill("#prompt", "a lighthouse on a cliff");
    await page.fill("#steps", "12");
    await page.selectOption("#size", "256 × 256");
    await page.press("#prompt", "Control+Enter");
    await page.locator("#progress-label", { hasText: /Step \d+\/12/ }).waitFor();
    await page.getByAltText("Live preview").waitFor();
    const image = page.getByAltText("Seed 1234");
    await image.waitFor();
    assert.equal(await image.evaluate((img) => img.complete && img.naturalWidth), 2, "the image loaded");
    const [submit] = await calls(page, "submit_job");
    assert.equal(submit.args.params.prompt, "a lighthouse on a cliff");
    assert.equal(submit.args.params.steps, 12);
    assert.equal(submit.args.params.width, 256);
    assert.equal(submit.args.params.seed, null);
    assert.match(submit.args.onEvent, /^__CHANNEL__:\d+$/, "the channel crosses the IPC as its id");
    await page.locator("#progress-label").waitFor({ state: "detached" });
    // The dark theme from the settings is applied.
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("cancels a running job with Esc", async () => {
    const { page, errors } = await open("cancel");
    await page.fill("#prompt", "a long job");
    await page.click("#generate");
    await page.locator("#progress-label", { hasText: /Step \d+\/1000/ }).waitFor();
    await page.keyboard.press("Escape");
    await page.locator("#jobs-notice", { hasText: "Job cancelled." }).waitFor();
    const [cancel] = await calls(page, "cancel_job");
    assert.equal(cancel.args.id, 1);
    assert.equal(await page.locator("#progress-label").count(), 0);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("shows the engine's error next to the width", async () => {
    const { page } = await open("error");
    await page.fill("#width", "100");
    await page.click("#generate");
    const error = page.locator("#width-error");
    await error.waitFor();
    assert.equal(await error.textContent(), "invalid width: 100 (must be a positive multiple of 8)");
    assert.equal(await page.getAttribute("#width", "aria-invalid"), "true");
    assert.equal(await page.locator("#progress-label").count(), 0);
    await page.close();
  });
});
