// The real app, built in release (`tauri build --no-bundle`), under Xvfb, driven through Debian's WebKitWebDriver:
// type a prompt, generate on the demo model, see the image, cancel a long job. Saves docs/screenshot.png and prints
// measurements (cold start to an interactive window, memory at idle, click handling during a job) without
// asserting on them. Run it through `xvfb-run` (scripts/test.sh does).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Keys } from "./webdriver.mjs";
import { dataFolder, findTab, freshHome, generate, root, startApp, stopApp, tabNamed } from "./steps.mjs";

const home = freshHome("e2e");
const outputs = join(dataFolder(home), "outputs");
const metrics = {};

let app;
let driver;

/** Resident memory (kB) of a process and all its descendants (the app plus WebKit's web and network processes). */
function treeRssKb(pid) {
  const table = execFileSync("ps", ["-e", "-o", "pid=,ppid=,rss="], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map((line) => line.trim().split(/\s+/).map(Number));
  let total = 0;
  const pending = [pid];
  while (pending.length) {
    const current = pending.pop();
    for (const [p, parent, rss] of table) {
      if (p === current) total += rss;
      if (parent === current) pending.push(p);
    }
  }
  return total;
}

const state = (script) => driver.execute(script);

before(async () => {
  app = await startApp(home);
  driver = app.driver;
  metrics.coldStartToInteractiveMs = app.readyMs;
});

after(async () => {
  if (app) await stopApp(app);
  writeFileSync(join(root, "target/e2e-metrics.json"), JSON.stringify(metrics, null, 2));
  console.log(`# e2e measurements: ${JSON.stringify(metrics)}`);
  rmSync(home, { recursive: true, force: true });
});

describe("the real app on the demo model", () => {
  it("is idle after start with ONNX Runtime loaded", async () => {
    await driver.waitFor(".device", { check: async (e) => (await driver.text(e)).startsWith("CPU") });
    await new Promise((r) => setTimeout(r, 1500));
    const pid = app.appPid;
    assert.ok(pid, "the app process runs under WebKitWebDriver");
    metrics.idleRssMb = Math.round(treeRssKb(pid) / 1024);
  });

  it("generates an image from a typed prompt and shows it", async () => {
    const image = await generate(driver, { prompt: "a lighthouse on a cliff at sunset", steps: 12, width: 256, height: 256, cfg: 7, seed: 42 });
    assert.ok(image);
    const size = await state(`const img = document.querySelector('img[alt="Seed 42"]'); return [img.naturalWidth, img.src];`);
    assert.equal(size[0], 256, "the PNG came through the asset protocol at full size");
    assert.match(size[1], /^(asset:\/\/localhost|http:\/\/asset\.localhost)\//);
    const files = readdirSync(outputs);
    assert.deepEqual(files, ["00000-42.png"]);
    const pid = app.appPid;
    metrics.rssAfterFirstImageMb = pid ? Math.round(treeRssKb(pid) / 1024) : null;
    await new Promise((r) => setTimeout(r, 300));
    writeFileSync(join(root, "docs/screenshot.png"), Buffer.from(await driver.screenshot(), "base64"));
  });

  it("keeps answering clicks while a long job runs, and cancels it with Esc", async () => {
    await driver.fill("#steps", 1000);
    await driver.click(await driver.find("#generate"));
    await driver.waitFor("#progress-label", {
      timeout: 60000,
      check: async (e) => /Step ([3-9]|\d\d+)\/1000/.test(await driver.text(e)),
    });
    // A click during generation: the WebDriver round trip, and the time from the click event to the view's change
    // as the page sees it.
    const tab = await findTab(driver, "Settings");
    const before = performance.now();
    await driver.click(tab);
    metrics.clickRoundTripDuringJobMs = Math.round(performance.now() - before);
    await driver.waitFor("#save-settings");
    metrics.clickToViewChangeDuringJobMs = await state(`
      const tab = ${tabNamed("Generate")};
      const started = performance.now();
      tab.click();
      return new Promise((done) => {
        const check = () => document.querySelector('#prompt') ? done(Math.round((performance.now() - started) * 10) / 10) : requestAnimationFrame(check);
        check();
      });`);
    const stepBefore = await state(`return document.querySelector('#progress-label')?.textContent ?? ""`);
    assert.match(stepBefore, /Step \d+\/1000/, "the job still runs");
    await driver.type(await driver.find("#prompt"), Keys.Escape);
    await driver.waitFor("#jobs-notice", { timeout: 30000, check: async (e) => (await driver.text(e)).startsWith("Job cancelled") });
    assert.equal(await state(`return document.querySelectorAll('#progress-label').length`), 0);
    assert.deepEqual(readdirSync(outputs), ["00000-42.png"], "the cancelled job saved nothing");
  });
});
