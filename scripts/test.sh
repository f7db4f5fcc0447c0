#!/usr/bin/env bash
# The whole suite, as `npm test` and CI run it: formatting, lints, then every Rust test (unit, parity against
# the committed diffusers/transformers/torch references, CLI end to end on the demo model).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --locked
