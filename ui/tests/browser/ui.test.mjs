// The built UI (vite preview of ui/dist) in headless Chromium through playwright-core, with Tauri's IPC mocked
// (ipc-mock.js): the generate flow, cancel, and error display.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { preview } from "vite";

const here = fileURLToPath(new URL(".", import.meta.url));
const ipcMock = readFileSync(`${here}/ipc-mock.js`, "utf8");
// A 2x2 PNG served for every asset:// image.
const png = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==",
  "base64",
);

let server;
let browser;
let baseUrl;

before(async () => {
  server = await preview({ configFile: fileURLToPath(new URL("../../vite.config.ts", import.meta.url)), preview: { port: 4173, strictPort: false } });
  baseUrl = server.resolvedUrls.local[0];
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run"],
  });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function open(scenario) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.route("http://asset.localhost/**", (route) => route.fulfill({ contentType: "image/png", body: png }));
  await page.addInitScript(`window.__PIGMENT_SCENARIO__ = ${JSON.stringify(scenario)};`);
  await page.addInitScript(ipcMock);
  await page.goto(baseUrl);
  await page.locator("#model").filter({ has: page.locator("option", { hasText: "tiny-sd" }) }).waitFor();
  return { page, errors };
}

const calls = (page, cmd) => page.evaluate((cmd) => window.__PIGMENT_CALLS__.filter((c) => c.cmd === cmd), cmd);

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
