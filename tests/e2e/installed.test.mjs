// The app as a user gets it: the .deb that scripts/test-deb.sh installed with dpkg, started from /usr/bin under Xvfb
// through WebKitWebDriver. It checks what the package put on disk (desktop entry, icons, bundled ONNX Runtime and demo
// model), generates with the demo model on a first start, saves target/installed-app.png, then uninstalls with
// `dpkg -r` and checks that the program is gone and the user's data stayed. With PIGMENT_CUDA_DEB set it also
// installs that pigment-cuda package and checks that the app loads its ONNX Runtime (which, without CUDA libraries,
// runs on the CPU and says why CUDA is unavailable). Prints the first start time (not asserted).
//
// `node --test tests/e2e/` (the suite on target/release) skips it: scripts/test-deb.sh runs it with PIGMENT_DEB_TEST=1.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { appConfig as config, dataFolder, freshHome, generate, root, startApp, stopApp } from "./steps.mjs";

const product = config.productName;
const binary = `/usr/bin/${config.mainBinaryName}`;
const resources = `/usr/lib/${product}`;
const cudaDeb = process.env.PIGMENT_CUDA_DEB;
const port = 5444 + (process.pid % 1000);
const metrics = {};
let home, data, outputs;

const dpkg = (...args) => execFileSync("dpkg", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const installed = (pkg) => {
  try {
    return dpkg("-s", pkg).includes("Status: install ok installed");
  } catch {
    return false;
  }
};

/** Every file under `folder`, relative to it, with its size: what the user has. */
function snapshot(folder) {
  const files = {};
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files[relative(folder, path)] = statSync(path).size;
    }
  };
  walk(folder);
  return files;
}

/** Starts the installed app (steps.mjs) and waits until ONNX Runtime has loaded. */
async function startInstalledApp() {
  const app = await startApp(home, { binary, port });
  // ONNX Runtime loads in the background; the header shows the provider once it has.
  await app.driver.waitFor(".device", { timeout: 60000, check: async (e) => (await app.driver.text(e)).startsWith("CPU") });
  return app;
}

const invoke = (driver, command) => driver.execute(`return window.__TAURI_INTERNALS__.invoke(${JSON.stringify(command)});`);

/** An image from the demo model with `seed`, 256x256 in 6 steps. */
const generateWithSeed = (driver, seed) =>
  generate(driver, { prompt: "a red fox in the snow, watercolour", steps: 6, width: 256, height: 256, seed });

describe("the installed .deb", { skip: !process.env.PIGMENT_DEB_TEST && "scripts/test-deb.sh runs this" }, () => {
  before(() => {
    assert.ok(installed("pigment"), "scripts/test-deb.sh installs the pigment package before this test");
    home = freshHome("installed");
    data = dataFolder(home);
    outputs = join(data, "outputs");
  });

  after(() => {
    writeFileSync(join(root, "target/installed-metrics.json"), JSON.stringify(metrics, null, 2));
    console.log(`# installed-app measurements: ${JSON.stringify(metrics)}`);
    rmSync(home, { recursive: true, force: true });
  });

  it("puts the program, its resources, a desktop entry and icons in place", () => {
    assert.ok(statSync(binary).mode & 0o111, `${binary} is executable`);
    assert.ok(existsSync(`${resources}/models/tiny-sd/model_index.json`), "the demo model is bundled");
    assert.ok(
      readdirSync(`${resources}/onnxruntime`).some((f) => f.startsWith("libonnxruntime.so")),
      "ONNX Runtime (CPU) is bundled",
    );
    const desktop = readFileSync(`/usr/share/applications/${product}.desktop`, "utf8");
    const entry = Object.fromEntries(desktop.split("\n").filter((l) => l.includes("=")).map((l) => l.split(/=(.*)/s, 2)));
    assert.equal(entry.Type, "Application");
    assert.equal(entry.Name, product);
    assert.equal(entry.Exec, config.mainBinaryName);
    assert.match(entry.Categories, /(^|;)Graphics;/);
    assert.equal(entry.Comment, config.bundle.shortDescription);
    assert.ok(existsSync(`/usr/share/icons/hicolor/128x128/apps/${entry.Icon}.png`), `icon ${entry.Icon} is installed`);
    const status = dpkg("-s", "pigment");
    metrics.installedSizeKb = Number(/^Installed-Size: (\d+)/m.exec(status)[1]);
    assert.ok(metrics.installedSizeKb > 0);
  });

  it("starts from /usr/bin on a fresh account and generates with the bundled demo model", async () => {
    const app = await startInstalledApp();
    metrics.firstStartToInteractiveMs = app.readyMs;
    try {
      // First run: the data folders exist, the demo model comes from the bundle, ONNX Runtime from the bundle.
      assert.ok(existsSync(join(data, "models")), "the models folder is created on first start");
      const models = await invoke(app.driver, "list_models");
      const demo = models.find((m) => m.name === "tiny-sd");
      assert.ok(demo, `the demo model is listed: ${JSON.stringify(models)}`);
      assert.equal(demo.path, `${resources}/models/tiny-sd`);
      assert.equal(demo.problem, null);
      const info = await invoke(app.driver, "app_info");
      assert.equal(info.runtimeError, null);
      // The CPU build of ONNX Runtime names CUDA as "not enabled in this build".
      assert.match(info.executionProvider, /^CPU; CUDA unavailable: CUDA execution provider is not enabled/);

      await generateWithSeed(app.driver, 7);
      assert.deepEqual(readdirSync(outputs), ["00000-7.png"]);
      await sleep(300);
      writeFileSync(join(root, "target/installed-app.png"), Buffer.from(await app.driver.screenshot(), "base64"));
    } finally {
      await stopApp(app);
    }
  });

  it("uses ONNX Runtime's CUDA build once pigment-cuda is installed", { skip: !cudaDeb && "PIGMENT_CUDA_DEB is not set" }, async () => {
    dpkg("-i", cudaDeb);
    try {
      assert.ok(installed("pigment-cuda"));
      const app = await startInstalledApp();
      try {
        const info = await invoke(app.driver, "app_info");
        // No CUDA libraries here: the CUDA build runs on the CPU, and its reason names the provider it tried to load
        // from the pigment-cuda folder.
        assert.match(info.executionProvider, /^CPU; CUDA unavailable: /);
        assert.ok(
          info.executionProvider.includes(`${resources}/onnxruntime-cuda/libonnxruntime_providers_cuda.so`),
          info.executionProvider,
        );
        await generateWithSeed(app.driver, 8);
        assert.deepEqual(readdirSync(outputs).sort(), ["00000-7.png", "00001-8.png"]);
      } finally {
        await stopApp(app);
      }
    } finally {
      dpkg("-r", "pigment-cuda");
    }
    assert.ok(!existsSync(`${resources}/onnxruntime-cuda`), "removing pigment-cuda removes its library");
    assert.ok(existsSync(`${resources}/onnxruntime`), "and leaves the app's own");
  });

  it("uninstalls with dpkg -r, leaving the user's images, models folder and settings", () => {
    const before = snapshot(home);
    assert.ok(Object.keys(before).some((f) => f.endsWith("00000-7.png")), "the generated image is in the user's data");
    dpkg("-r", "pigment");
    assert.ok(!installed("pigment"), "the package is removed");
    assert.ok(!existsSync(binary), `${binary} is gone`);
    assert.ok(!existsSync(resources), `${resources} is gone`);
    assert.ok(!existsSync(`/usr/share/applications/${product}.desktop`), "the desktop entry is gone");
    assert.deepEqual(snapshot(home), before, "every file under the user's home stayed, unchanged in size");
    assert.ok(existsSync(join(data, "models")), "the models folder stayed");
  });
});
