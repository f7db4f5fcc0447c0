#!/usr/bin/env bash
# The Linux installer as a user meets it: installs the .deb that `npx tauri build --bundles deb,rpm` made (building it
# when missing), then tests/e2e/installed.test.mjs starts the installed program under Xvfb through WebKitWebDriver,
# generates with the demo model, uninstalls with `dpkg -r` and checks that the user's data stayed. Needs root (dpkg).
#
#   scripts/test-deb.sh          the CPU package
#   scripts/test-deb.sh --cuda   also packages pigment-cuda (scripts/package-cuda.sh, uncompressed to save time) and
#                                checks that the app switches to its ONNX Runtime
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=0
case "${1:-}" in
  --cuda) cuda=1 ;;
  "") ;;
  *) echo "test-deb: unknown option $1 (expected --cuda or nothing)" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "test-deb: run as root (it installs and removes the package with dpkg)" >&2; exit 1; }
version=$(node -p 'require("./src-tauri/tauri.conf.json").version')
product=$(node -p 'require("./src-tauri/tauri.conf.json").productName')
deb="target/release/bundle/deb/${product}_${version}_amd64.deb"
rpm="target/release/bundle/rpm/${product}-${version}-1.x86_64.rpm"

if [ ! -f "$deb" ]; then
  npx tauri build --bundles deb,rpm --ci
fi
for package in pigment-cuda pigment; do
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    echo "test-deb: removing the $package package left from an earlier run" >&2
    dpkg -r "$package" >/dev/null
  fi
done
cleanup() {
  # A failed test must not leave the packages installed.
  dpkg -r pigment-cuda pigment >/dev/null 2>&1 || true
}
trap cleanup EXIT

env=(PIGMENT_DEB_TEST=1)
if [ "$cuda" = 1 ]; then
  PIGMENT_DEB_COMPRESSION=none scripts/package-cuda.sh
  env+=(PIGMENT_CUDA_DEB="$PWD/target/release/bundle/deb/pigment-cuda_${version}_amd64.deb")
fi
# Dependencies (WebKitGTK, GTK) come from the distribution's repositories when missing.
dpkg -i "$deb" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -f -y -qq >/dev/null
echo "test-deb: $(du -h "$deb" | cut -f1) $deb, $(du -h "$rpm" | cut -f1) $rpm," \
  "installed $(dpkg-query -W -f='${Installed-Size}' pigment) KiB" >&2
env "${env[@]}" xvfb-run -a --server-args="-screen 0 1400x1000x24" node --test tests/e2e/installed.test.mjs
