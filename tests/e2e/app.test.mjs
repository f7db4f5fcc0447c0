// The real app, built in release (`tauri build --no-bundle`), under Xvfb, driven through Debian's WebKitWebDriver:
// type a prompt, generate on the demo model, see the image, cancel a long job. Saves docs/screenshot.png and prints
// measurements (cold start to an interactive window, memory at idle, click handling during a job) without
// asserting on them. Run it through `xvfb-run` (scripts/test.sh does).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Driver, Keys, startWebKitWebDriver } from "./webdriver.mjs";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const binary = join(root, "target/release/pigment-app");
const port = 4444 + (process.pid % 1000);
const home = mkdtempSync(join(tmpdir(), "pigment-e2e-"));
const outputs = join(home, "data/dev.pigment.studio/outputs");
const metrics = {};

let driverProcess;
const driver = new Driver(port);

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

function appPid() {
  const children = execFileSync("ps", ["-e", "-o", "pid=,ppid=,comm="], { encoding: "utf8" }).trim().split("\n");
  const line = children.map((l) => l.trim().split(/\s+/)).find(([, ppid, comm]) => Number(ppid) === driverProcess.pid && comm.startsWith("pigment"));
  return line ? Number(line[0]) : null;
}

const state = (script) => driver.execute(script);

async function setInput(css, value) {
  const element = await driver.find(css);
  await driver.clear(element);
  await driver.type(element, String(value));
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
  const started = performance.now();
  await driver.start(binary);
  // Interactive: the model list has loaded from Rust and the prompt takes input.
  await driver.waitFor("#model option", { timeout: 60000 });
  metrics.coldStartToInteractiveMs = Math.round(performance.now() - started);
});

after(async () => {
  await driver.quit().catch(() => {});
  driverProcess?.kill();
  writeFileSync(join(root, "target/e2e-metrics.json"), JSON.stringify(metrics, null, 2));
  console.log(`# e2e measurements: ${JSON.stringify(metrics)}`);
  rmSync(home, { recursive: true, force: true });
});

describe("the real app on the demo model", () => {
  it("is idle after start with ONNX Runtime loaded", async () => {
    await driver.waitFor(".device", { check: async (e) => (await driver.text(e)).startsWith("CPU") });
    await new Promise((r) => setTimeout(r, 1500));
    const pid = appPid();
    assert.ok(pid, "the app process runs under WebKitWebDriver");
    metrics.idleRssMb = Math.round(treeRssKb(pid) / 1024);
  });

  it("generates an image from a typed prompt and shows it", async () => {
    const prompt = await driver.find("#prompt");
    await driver.type(prompt, "a lighthouse on a cliff at sunset");
    await setInput("#steps", 12);
    await setInput("#width", 256);
    await setInput("#height", 256);
    await setInput("#cfg", 7);
    await driver.execute(`document.querySelector('select[aria-label="Seed mode"]').value = "fixed";
      document.querySelector('select[aria-label="Seed mode"]').dispatchEvent(new Event("change"));`);
    await setInput("#seed", 42);
    await driver.type(prompt, Keys.Control + Keys.Enter + Keys.Null);
    const image = await driver.waitFor('img[alt="Seed 42"]', {
      timeout: 120000,
      check: async () => state(`const img = document.querySelector('img[alt="Seed 42"]'); return img.complete && img.naturalWidth;`),
    });
    assert.ok(image);
    const size = await state(`const img = document.querySelector('img[alt="Seed 42"]'); return [img.naturalWidth, img.src];`);
    assert.equal(size[0], 256, "the PNG came through the asset protocol at full size");
    assert.match(size[1], /^(asset:\/\/localhost|http:\/\/asset\.localhost)\//);
    const files = readdirSync(outputs);
    assert.deepEqual(files, ["00000-42.png"]);
    const pid = appPid();
    metrics.rssAfterFirstImageMb = pid ? Math.round(treeRssKb(pid) / 1024) : null;
    await new Promise((r) => setTimeout(r, 300));
    writeFileSync(join(root, "docs/screenshot.png"), Buffer.from(await driver.screenshot(), "base64"));
  });

  it("keeps answering clicks while a long job runs, and cancels it with Esc", async () => {
    await setInput("#steps", 1000);
    await driver.click(await driver.find("#generate"));
    await driver.waitFor("#progress-label", {
      timeout: 60000,
      check: async (e) => /Step ([3-9]|\d\d+)\/1000/.test(await driver.text(e)),
    });
    // A click during generation: the WebDriver round trip, and the time from the click event to the view's change
    // as the page sees it.
    const tab = await driver.find('[role="tab"]:nth-child(3)');
    const before = performance.now();
    await driver.click(tab);
    metrics.clickRoundTripDuringJobMs = Math.round(performance.now() - before);
    await driver.waitFor("#save-settings");
    metrics.clickToViewChangeDuringJobMs = await state(`
      const tab = document.querySelector('[role="tab"]');
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
