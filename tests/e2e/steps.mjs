// The steps the end-to-end tests share: the app started for a new user through WebKitWebDriver and stopped again,
// an image generated through the form, a view's tab found by its name. Holds no tests (`node --test tests/e2e/`
// runs only the *.test.mjs files).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { Driver, ELEMENT, Keys, startWebKitWebDriver } from "./webdriver.mjs";

export const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
/** What `npx tauri build --no-bundle` builds. */
export const releaseBinary = join(root, "target/release/pigment-app");
export const appConfig = JSON.parse(readFileSync(join(root, "src-tauri/tauri.conf.json"), "utf8"));

/** A new home folder (in the temp folder, its name starting `pigment-<name>-`) for a user who never ran the app. */
export function freshHome(name) {
  const home = mkdtempSync(join(tmpdir(), `pigment-${name}-`));
  mkdirSync(join(home, "data"));
  mkdirSync(join(home, "config"));
  return home;
}

/** The app's data folder for the user at `home`: its outputs/ holds the images, models/ the user's models. */
export const dataFolder = (home) => join(home, "data", appConfig.identifier);

/** The pid of the app that the WebKitWebDriver process `driverPid` launched, or null. */
function appPidUnder(driverPid) {
  const line = execFileSync("ps", ["-e", "-o", "pid=,ppid=,comm="], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find(([, ppid, comm]) => Number(ppid) === driverPid && comm.startsWith("pigment"));
  return line ? Number(line[0]) : null;
}

/**
 * Starts the app at `binary` for the user at `home` (its data, settings and cache there) through a new
 * WebKitWebDriver, which works in `home` so that the app's downloads land there too, and waits until the app is
 * interactive: the model list has loaded from Rust and the prompt takes input. Returns the driver, the
 * WebKitWebDriver process, the app's pid, and `readyMs`, the time from the session request to interactive.
 */
export async function startApp(home, { binary = releaseBinary, port = 4444 + (process.pid % 1000) } = {}) {
  const hint = binary === releaseBinary ? ": run `npx tauri build --no-bundle` first" : "";
  assert.ok(existsSync(binary), `${binary} is missing${hint}`);
  const env = {
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, "data"),
    XDG_CONFIG_HOME: join(home, "config"),
    XDG_CACHE_HOME: join(home, "cache"),
    TAURI_WEBVIEW_AUTOMATION: "true",
  };
  const driverProcess = await startWebKitWebDriver(port, env, home);
  const driver = new Driver(port);
  try {
    const started = performance.now();
    await driver.start(binary);
    await driver.waitFor("#model option", { timeout: 60000 });
    const readyMs = Math.round(performance.now() - started);
    return { driver, driverProcess, appPid: appPidUnder(driverProcess.pid), readyMs };
  } catch (error) {
    await driver.quit().catch(() => {});
    driverProcess.kill();
    throw error;
  }
}

/** Ends the session and waits until the app's process has exited (its files are complete, dpkg may remove it). */
export async function stopApp({ driver, driverProcess, appPid }) {
  await driver.quit().catch(() => {});
  driverProcess.kill();
  for (let i = 0; appPid && i < 100; i++) {
    try {
      process.kill(appPid, 0);
    } catch {
      return;
    }
    await sleep(100);
  }
  if (appPid) process.kill(appPid, "SIGKILL");
}

/**
 * Generates one image from the Generate view's form: types `prompt`, sets the steps, size, CFG (when given) and a
 * fixed `seed`, submits with Ctrl+Enter in the prompt, and waits until the result's image has loaded. Returns it.
 */
export async function generate(driver, { prompt, steps, width, height, cfg, seed }) {
  await driver.fill("#prompt", prompt);
  await driver.fill("#steps", steps);
  await driver.fill("#width", width);
  await driver.fill("#height", height);
  if (cfg !== undefined) await driver.fill("#cfg", cfg);
  await driver.execute(`const mode = document.querySelector('select[aria-label="Seed mode"]');
    mode.value = "fixed"; mode.dispatchEvent(new Event("change"));`);
  await driver.fill("#seed", seed);
  await driver.type(await driver.find("#prompt"), Keys.Control + Keys.Enter + Keys.Null);
  const image = `img[alt="Seed ${seed}"]`;
  return driver.waitFor(image, {
    timeout: 120000,
    check: () => driver.execute(`const img = document.querySelector('${image}'); return img.complete && img.naturalWidth;`),
  });
}

/** Page script: the expression for the tab (`[role="tab"]`) named `name`. */
export const tabNamed = (name) =>
  `[...document.querySelectorAll('[role="tab"]')].find((t) => t.textContent.trim() === ${JSON.stringify(name)})`;

/** The tab named `name` (a view's, or one inside a view), as a WebDriver element. */
export async function findTab(driver, name) {
  const tab = await driver.execute(`return ${tabNamed(name)} ?? null;`);
  assert.ok(tab, `there is a tab named ${name}`);
  return tab[ELEMENT];
}

/** Shows the view (or a view's part) behind the tab named `name`, clicked in the page. */
export async function showTab(driver, name) {
  await driver.execute(`${tabNamed(name)}.click();`);
}
