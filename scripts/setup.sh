#!/usr/bin/env bash
# Everything a fresh checkout needs before it builds, runs or tests: checks the toolchain and fetches ONNX
# Runtime's library from PyPI into .ort/lib (see scripts/fetch-onnxruntime.sh). Quick when already done.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
"$root/scripts/fetch-onnxruntime.sh"
mkdir -p "$root/outputs"
