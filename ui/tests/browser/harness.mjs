// What the browser tests and benchmarks in this folder start from: the built UI (vite preview of ui/dist) in headless
// Chromium through playwright-core, with Tauri's IPC mocked by ipc-mock.js. This module holds no tests: `node --test`
// on the folder runs only the files named like tests (*.test.mjs).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { preview } from "vite";

const ipcMock = readFileSync(fileURLToPath(new URL("./ipc-mock.js", import.meta.url)), "utf8");

/** A 2x2 PNG, served for every asset:// image unless a page asks for another answer. */
export const tinyPng = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==",
  "base64",
);

/** Serves ui/dist (vite preview, on the first free port from 4173) and launches headless Chromium; `close` ends both. */
export async function startBuiltUi() {
  const configFile = fileURLToPath(new URL("../../vite.config.ts", import.meta.url));
  const server = await preview({ configFile, preview: { port: 4173, strictPort: false } });
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"],
    });
  } catch (error) {
    await server.close();
    throw error;
  }
  return {
    browser,
    baseUrl: server.resolvedUrls.local[0],
    close: async () => {
      await browser.close();
      await server.close();
    },
  };
}

/**
 * Opens the UI in a new page (its own browser context) and waits until the model list has come through the mocked
 * IPC. `globals` are set on `window` before the mock runs (`__PIGMENT_SCENARIO__` picks the mock's answers, "generate"
 * unless given; `__PIGMENT_GALLERY_SIZE__` the gallery's size); `scripts` run after the mock, before the app;
 * `asset` answers the asset protocol's requests (http://asset.localhost/...). Uncaught page errors are collected in
 * `errors`; closing the page closes its context.
 */
export async function openUi(ui, {
  globals = {},
  scripts = [],
  viewport = { width: 1280, height: 820 },
  deviceScaleFactor = 1,
  asset = (route) => route.fulfill({ contentType: "image/png", body: tinyPng }),
} = {}) {
  const page = await ui.browser.newPage({ viewport, deviceScaleFactor });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.route("http://asset.localhost/**", asset);
  const assignments = Object.entries({ __PIGMENT_SCENARIO__: "generate", ...globals })
    .map(([name, value]) => `window.${name} = ${JSON.stringify(value)};`);
  await page.addInitScript(assignments.join(" "));
  await page.addInitScript(ipcMock);
  for (const script of scripts) await page.addInitScript(script);
  await page.goto(ui.baseUrl);
  await page.locator("#model").filter({ has: page.locator("option", { hasText: "tiny-sd" }) }).waitFor();
  return { page, context: page.context(), errors };
}

/** The calls of IPC command `cmd` the mock has recorded, oldest first. */
export const calls = (page, cmd) => page.evaluate((cmd) => window.__PIGMENT_CALLS__.filter((c) => c.cmd === cmd), cmd);
