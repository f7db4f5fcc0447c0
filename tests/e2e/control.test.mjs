// The control panel in the real app (release build, Xvfb, WebKitWebDriver), with the ControlNet fixtures in the
// app's models folder (tests/fixtures/models/tiny-sd-control and controlnet/tiny-canny): make a picture, send it
// to the canvas, use it as a canny unit's picture in the Generate view, see the preprocessed picture before
// generating, generate, and check the saved control picture and `ControlNet 0:` in the PNG's parameters.
// Run it through `xvfb-run` (scripts/test.sh does).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { PNG } from "pngjs";
import { dataFolder, freshHome, generate, root, showTab, startApp, stopApp } from "./steps.mjs";

const home = freshHome("e2e-control");
const models = join(dataFolder(home), "models");
const outputs = join(dataFolder(home), "outputs");

let app;
let driver;

/** The text of a PNG's `tEXt` chunk `keyword`, or null. */
function pngText(path, keyword) {
  const bytes = readFileSync(path);
  for (let at = 8; at < bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString("latin1", at + 4, at + 8);
    if (type === "tEXt") {
      const body = bytes.subarray(at + 8, at + 8 + length);
      const nul = body.indexOf(0);
      if (body.toString("latin1", 0, nul) === keyword) return body.toString("latin1", nul + 1);
    }
    at += 12 + length;
  }
  return null;
}

before(async () => {
  // The user put a base model with unet_controlnet/ and a ControlNet into the models folder before starting.
  mkdirSync(models, { recursive: true });
  cpSync(join(root, "tests/fixtures/models/tiny-sd-control"), join(models, "tiny-sd-control"), { recursive: true });
  cpSync(join(root, "tests/fixtures/controlnet/tiny-canny"), join(models, "tiny-canny"), { recursive: true });
  app = await startApp(home);
  driver = app.driver;
});

after(async () => {
  if (app) await stopApp(app);
  rmSync(home, { recursive: true, force: true });
});

describe("the control panel in the real app", () => {
  it("generates with a canny ControlNet and saves the control picture it showed", async () => {
    await driver.execute(`const model = document.querySelector("#model");
      model.value = [...model.options].find((o) => o.textContent.trim().startsWith("tiny-sd-control")).value;
      model.dispatchEvent(new Event("change"));`);
    // A picture to guide with: text to image on the same model, sent to the canvas.
    await generate(driver, { prompt: "a lighthouse", steps: 4, width: 64, height: 64, seed: 42 });
    await driver.execute(`[...document.querySelectorAll("figcaption button")].find((b) => b.textContent === "Send to canvas").click();`);
    await driver.waitFor("#canvas-size", { timeout: 30000, check: async (e) => (await driver.text(e)) === "64 × 64" });
    await showTab(driver, "Generate");

    // One ControlNet unit: the canvas picture, canny 100/200; the preview comes from the Rust side.
    await driver.execute(`document.querySelector("details.control").open = true;`);
    await driver.click(await driver.find("#control-add"));
    await driver.waitFor("#control-0-model", { check: () => driver.execute(`return document.querySelector("#control-0-model").value === "tiny-canny";`) });
    await driver.click(await driver.find("#control-0-from-canvas"));
    await driver.execute(`const p = document.querySelector("#control-0-preprocessor"); p.value = "canny";
      p.dispatchEvent(new Event("change"));`);
    const previewImage = 'img[alt="Control unit 1: canny"]';
    await driver.waitFor(previewImage, {
      timeout: 30000,
      check: () => driver.execute(`const img = document.querySelector('${previewImage}'); return img.complete && img.naturalWidth === 64;`),
    });
    const shown = await driver.execute(`return document.querySelector('${previewImage}').src;`);

    await generate(driver, { prompt: "a lighthouse", steps: 4, width: 64, height: 64, seed: 7 });
    const result = join(outputs, "00001-7.png");
    const controlFile = join(outputs, "00001-control-0.png");
    assert.ok(existsSync(result) && existsSync(controlFile), "the result and its control picture are saved side by side");
    const parameters = pngText(result, "parameters");
    assert.match(parameters, /ControlNet 0: "Module: canny, Model: tiny-canny, Weight: 1, .*Threshold A: 100, Threshold B: 200/);

    // The saved control picture is the preview shown before generating: canny edges, white on black.
    const saved = PNG.sync.read(readFileSync(controlFile));
    const preview = PNG.sync.read(Buffer.from(shown.split(",")[1], "base64"));
    assert.deepEqual([saved.width, saved.height], [64, 64]);
    assert.ok(saved.data.equals(preview.data), "the saved control picture is the one the panel showed");
    let edges = 0;
    for (let i = 0; i < 64 * 64; i++) {
      assert.ok(saved.data[i * 4] === 0 || saved.data[i * 4] === 255, "edges are black or white");
      edges += saved.data[i * 4] === 255 ? 1 : 0;
    }
    assert.ok(edges > 0, "the picture has edges");
  });
});
