#!/usr/bin/env bash
# Puts ONNX Runtime's shared library into .ort/lib, taken from the onnxruntime wheel on PyPI
# (the only place it can come from here: nothing else is reachable). Idempotent and quick when done.
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.31.1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.ort/lib"
marker="$dest/.version"

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$ORT_VERSION" ]; then
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) platform=manylinux_2_28_x86_64 ;;
  Linux-aarch64) platform=manylinux_2_28_aarch64 ;;
  Darwin-arm64) platform=macosx_13_0_arm64 ;;
  *) echo "fetch-onnxruntime: no onnxruntime wheel known for $(uname -s)-$(uname -m); set ORT_DYLIB_PATH to an ONNX Runtime $ORT_VERSION library" >&2; exit 1 ;;
esac

python=$(command -v python3 || command -v python) || { echo "fetch-onnxruntime: python3 is needed to download the onnxruntime wheel from PyPI" >&2; exit 1; }
wheel_dir="$root/.ort/wheel"
mkdir -p "$wheel_dir" "$dest"
echo "fetch-onnxruntime: downloading onnxruntime==$ORT_VERSION from PyPI" >&2
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform "$platform" --python-version 3.12 --implementation cp \
  -d "$wheel_dir" "onnxruntime==$ORT_VERSION"
wheel=$(ls "$wheel_dir"/onnxruntime-"$ORT_VERSION"-*.whl | head -n 1)
"$python" - "$wheel" "$dest" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("onnxruntime/capi/") and ("libonnxruntime" in n)]
    if not names:
        sys.exit(f"fetch-onnxruntime: no libonnxruntime in {wheel}")
    for n in names:
        target = os.path.join(dest, os.path.basename(n))
        with z.open(n) as src, open(target + ".part", "wb") as out:
            out.write(src.read())
        os.replace(target + ".part", target)
        print(f"fetch-onnxruntime: {target}", file=sys.stderr)
PY
echo "$ORT_VERSION" > "$marker"
