// The gallery in the real app (release build, WebKitWebDriver, Xvfb): generate an image on the demo model, find it by
// a word of its prompt, reuse its parameters in the generate form, delete it to the (XDG) trash, undo. Run it
// through `xvfb-run` (scripts/test.sh does).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Driver, Keys, startWebKitWebDriver } from "./webdriver.mjs";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const binary = join(root, "target/release/pigment-app");
const port = 5444 + (process.pid % 1000);
const home = mkdtempSync(join(tmpdir(), "pigment-e2e-gallery-"));
const outputs = join(home, "data/dev.pigment.studio/outputs");
const trash = join(home, "data/Trash/files");

let driverProcess;
const driver = new Driver(port);
const run = (script) => driver.execute(script);

async function setInput(css, value) {
  const element = await driver.find(css);
  await driver.clear(element);
  await driver.type(element, String(value));
}

async function showTab(name) {
  await run(`[...document.querySelectorAll('[role="tab"]')].find((t) => t.textContent.trim() === ${JSON.stringify(name)}).click();`);
}

async function waitForCount(text) {
  await driver.waitFor("#gallery-count", { timeout: 30000, check: async (e) => (await driver.text(e)) === text });
}

before(async () => {
  assert.ok(existsSync(binary), `${binary} is missing: run \`npx tauri build --no-bundle\` first`);
  mkdirSync(join(home, "data"), { recursive: true });
  mkdirSync(join(home, "config"), { recursive: true });
  driverProcess = await startWebKitWebDriver(port, {
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, "data"),
    XDG_CONFIG_HOME: join(home, "config"),
    TAURI_WEBVIEW_AUTOMATION: "true",
  });
  await driver.start(binary);
  await driver.waitFor("#model option", { timeout: 60000 });
});

after(async () => {
  await driver.quit().catch(() => {});
  driverProcess?.kill();
  rmSync(home, { recursive: true, force: true });
});

describe("the gallery in the real app", () => {
  it("finds a generated image by its prompt, reuses its parameters, deletes it and undoes the delete", async () => {
    const prompt = "a weathervane on a barn roof";
    await driver.type(await driver.find("#prompt"), prompt);
    await setInput("#steps", 4);
    await setInput("#width", 64);
    await setInput("#height", 64);
    await run(`const mode = document.querySelector('select[aria-label="Seed mode"]'); mode.value = "fixed";
      mode.dispatchEvent(new Event("change"));`);
    await setInput("#seed", 77);
    await driver.type(await driver.find("#prompt"), Keys.Control + Keys.Enter + Keys.Null);
    await driver.waitFor('img[alt="Seed 77"]', { timeout: 120000 });
    assert.deepEqual(readdirSync(outputs), ["00000-77.png"]);

    // Another prompt and settings in the form, so "reuse" has something to change.
    await setInput("#prompt", "something else entirely");
    await setInput("#steps", 20);
    await setInput("#seed", 5);

    await showTab("Gallery");
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

    await showTab("Gallery");
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

    await showTab("History");
    await driver.waitFor('[data-testid="gallery-history"] li', { check: async () =>
      (await run(`return document.querySelector('[data-testid="gallery-history"] li').textContent`)).includes(prompt) });
    const entry = await run(`return document.querySelector('[data-testid="gallery-history"] li').textContent`);
    assert.match(entry, /Euler a · 4 steps · CFG 7\s+· seed 77 · 64×64/, "the generation's settings are listed");
  });
});
