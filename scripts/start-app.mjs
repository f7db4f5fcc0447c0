// `npm start`, after `tauri build --no-bundle`: opens the release app built from this checkout. Its first view is
// the generate view on the bundled demo model.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const binary = `${root}target/release/pigment-app${process.platform === "win32" ? ".exe" : ""}`;
if (!existsSync(binary)) {
  console.error(`start: ${binary} was not built`);
  process.exit(1);
}
if (process.platform === "linux" && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
  console.error("start: no display (DISPLAY / WAYLAND_DISPLAY unset); run it in a desktop session or under xvfb-run");
  process.exit(1);
}
const app = spawn(binary, process.argv.slice(2), { stdio: "inherit" });
app.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => app.kill(signal));
