// The gallery in the real app (release build, WebKitWebDriver, Xvfb): generate an image on the demo model, find it by
// a word of its prompt, reuse its parameters in the generate form, delete it to the (XDG) trash, undo. Run it
// through `xvfb-run` (scripts/test.sh does).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { dataFolder, freshHome, generate, showTab, startApp, stopApp } from "./steps.mjs";

const home = freshHome("e2e-gallery");
const outputs = join(dataFolder(home), "outputs");
const trash = join(home, "data/Trash/files");

let app;
let driver;
const run = (script) => driver.execute(script);

async function waitForCount(text) {
  await driver.waitFor("#gallery-count", { timeout: 30000, check: async (e) => (await driver.text(e)) === text });
}

before(async () => {
  app = await startApp(home);
  driver = app.driver;
});

after(async () => {
  if (app) await stopApp(app);
  rmSync(home, { recursive: true, force: true });
});

describe("the gallery in the real app", () => {
  it("finds a generated image by its prompt, reuses its parameters, deletes it and undoes the delete", async () => {
    const prompt = "a weathervane on a barn roof";
    await generate(driver, { prompt, steps: 4, width: 64, height: 64, seed: 77 });
    assert.deepEqual(readdirSync(outputs), ["00000-77.png"]);

    // Another prompt and settings in the form, so "reuse" has something to change.
    await driver.fill("#prompt", "something else entirely");
    await driver.fill("#steps", 20);
    await driver.fill("#seed", 5);

    await showTab(driver, "Gallery");
    await driver.type(await driver.find("#gallery-search"), "weathervane");
    await waitForCount("1 image");
    const thumbnail = await run(`const img = document.querySelector('[data-file="00000-77.png"] img');
      return img && [img.alt, img.src];`);
    assert.equal(thumbnail[0], prompt);
    assert.match(thumbnail[1], /^(asset:\/\/localhost|http:\/\/asset\.localhost)\/.*thumbnails/, "the thumbnail, through the asset protocol");
    await driver.click(await driver.find('[data-file="00000-77.png"]'));
    await driver.waitFor('[data-testid="param-prompt"]', { check: async (e) => (await driver.text(e)) === prompt });
    await driver.click(await driver.find("#gallery-reuse"));
    await driver.waitFor("#prompt");
    const form = await run(`return ["#prompt", "#steps", "#seed", "#width", "#height", "#sampler"]
      .map((css) => document.querySelector(css).value);`);
    assert.deepEqual(form, [prompt, "4", "77", "64", "64", "euler_a"]);

    await showTab(driver, "Gallery");
    await waitForCount("1 image");
    assert.equal(await run(`return document.querySelector("#gallery-search").value`), "weathervane", "the search is kept");
    await driver.click(await driver.find('[data-file="00000-77.png"]'));
    await driver.click(await driver.waitFor("#gallery-delete"));
    await waitForCount("0 images");
    await driver.waitFor("#gallery-undo");
    assert.deepEqual(readdirSync(outputs), [], "the file left the output folder");
    assert.deepEqual(readdirSync(trash), ["00000-77.png"], "into the trash");

    await run(`[...document.querySelectorAll("#gallery-undo button")].find((b) => b.textContent === "Undo").click();`);
    await waitForCount("1 image");
    assert.deepEqual(readdirSync(outputs), ["00000-77.png"], "restored in place");
    assert.deepEqual(readdirSync(trash), []);

    await showTab(driver, "History");
    await driver.waitFor('[data-testid="gallery-history"] li', { check: async () =>
      (await run(`return document.querySelector('[data-testid="gallery-history"] li').textContent`)).includes(prompt) });
    const entry = await run(`return document.querySelector('[data-testid="gallery-history"] li').textContent`);
    assert.match(entry, /Euler a · 4 steps · CFG 7\s+· seed 77 · 64×64/, "the generation's settings are listed");
  });
});
