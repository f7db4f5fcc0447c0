#!/usr/bin/env bash
# Everything a fresh checkout needs before it builds, runs or tests: checks the toolchain, fetches ONNX Runtime's
# library from PyPI into .ort/lib (see scripts/fetch-onnxruntime.sh), installs the system packages the desktop app
# and its tests need (Debian/Ubuntu, when missing) and the npm packages (`npm ci`, when the lock file changed).
# Quick when already done.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
"$root/scripts/fetch-onnxruntime.sh"
mkdir -p "$root/outputs"

# Tauri 2 on Linux builds against WebKitGTK 4.1 and GTK 3; the end-to-end tests drive the app through
# WebKitWebDriver under Xvfb, and its native windows (save dialog, drag and drop from a GTK drag source in
# Debian's Python) with xdotool; the UI's browser tests use Debian's Chromium (Playwright downloads no browser).
system_packages=(
  libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libsoup-3.0-dev
  libjavascriptcoregtk-4.1-dev webkit2gtk-driver xvfb xauth chromium xdotool python3-gi gir1.2-gtk-3.0
  python3-venv
)
if [ "$(uname -s)" = Linux ] && command -v dpkg-query >/dev/null; then
  missing=()
  for package in "${system_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null || { echo "setup: run as root or install: ${missing[*]}" >&2; exit 1; }
      sudo=(sudo)
    fi
    echo "setup: installing system packages: ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
elif [ "$(uname -s)" = Linux ]; then
  echo "setup: not a Debian-based system; install the equivalents of: ${system_packages[*]}" >&2
fi

# npm packages from the committed lock file; node_modules/.package-lock.json is npm's record of the last install.
cd "$root"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

# The API test's client (scripts/test-api.sh): PyPI's webuiapi in its own virtual environment.
api_venv="$root/.venv-api"
if ! "$api_venv/bin/python" -c "import webuiapi" 2>/dev/null; then
  echo "setup: webuiapi into .venv-api" >&2
  python3 -m venv "$api_venv"
  "$api_venv/bin/pip" install --quiet --disable-pip-version-check webuiapi==0.9.17
fi
