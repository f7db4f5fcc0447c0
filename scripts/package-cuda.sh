#!/usr/bin/env bash
# Makes target/release/bundle/deb/pigment-cuda_<version>_amd64.deb: ONNX Runtime's CUDA build for the installed app,
# taken from PyPI's onnxruntime-gpu wheel (checked against a pinned SHA-256). It installs next to the `pigment`
# package, in /usr/lib/Pigment/onnxruntime-cuda/, which the app prefers to its CPU build (src-tauri/src/paths.rs).
#
# The CUDA provider links CUDA 13 (cudart, cuBLAS, cuRAND) and loads cuFFT, NVRTC and cuDNN 9 when it starts; those
# are Recommends on the package names of NVIDIA's CUDA apt repository, so apt brings them when that repository is
# set up and still installs the package without it. Without them (or without an NVIDIA driver) the CUDA build runs
# on the CPU and the app says why CUDA is unavailable.
#
#   scripts/package-cuda.sh     (npm run build:cuda; the version is the app's, from tauri.conf.json)
# PIGMENT_DEB_COMPRESSION (default xz) is dpkg-deb's -Z: scripts/test-deb.sh uses `none`, which packs in seconds.
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.31.1}"
# sha256 of onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl on PyPI; set ORT_GPU_WHEEL_SHA256 with
# ORT_VERSION to package another release.
ORT_GPU_WHEEL_SHA256="${ORT_GPU_WHEEL_SHA256:-05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7}"
root="$(cd "$(dirname "$0")/.." && pwd)"
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || { echo "package-cuda: onnxruntime-gpu's Linux wheel is for x86_64 only" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "package-cuda: dpkg-deb is needed (Debian/Ubuntu)" >&2; exit 1; }
python=$(command -v python3 || command -v python) || { echo "package-cuda: python3 is needed to download the wheel" >&2; exit 1; }

read -r product version < <("$python" -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["productName"], c["version"])' \
  "$root/src-tauri/tauri.conf.json")

wheel_dir="$root/.ort/wheel-gpu"
wheel="$wheel_dir/onnxruntime_gpu-$ORT_VERSION-cp312-cp312-manylinux_2_28_x86_64.whl"
if [ ! -f "$wheel" ]; then
  echo "package-cuda: downloading onnxruntime-gpu==$ORT_VERSION from PyPI" >&2
  mkdir -p "$wheel_dir"
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.12 --implementation cp -d "$wheel_dir" "onnxruntime-gpu==$ORT_VERSION"
fi
echo "$ORT_GPU_WHEEL_SHA256  $wheel" | sha256sum --check --quiet - || {
  echo "package-cuda: $wheel does not have the pinned SHA-256 $ORT_GPU_WHEEL_SHA256; delete it to download it again" >&2
  exit 1
}

package=pigment-cuda
stage="$root/target/release/bundle/deb/${package}_${version}_amd64"
out="$root/target/release/bundle/deb/${package}_${version}_amd64.deb"
rm -rf "$stage"
lib_dir="$stage/usr/lib/$product/onnxruntime-cuda"
doc_dir="$stage/usr/share/doc/$package"
mkdir -p "$lib_dir" "$doc_dir" "$stage/DEBIAN"
# The core library, the provider bridge and the CUDA provider; not the TensorRT provider (Pigment does not use it) or
# the Python module.
"$python" - "$wheel" "$lib_dir" "$doc_dir" "$ORT_VERSION" <<'PY'
import os, sys, zipfile
wheel, lib_dir, doc_dir, version = sys.argv[1:]
wanted = {
    f"onnxruntime/capi/libonnxruntime.so.{version}": lib_dir,
    "onnxruntime/capi/libonnxruntime_providers_shared.so": lib_dir,
    "onnxruntime/capi/libonnxruntime_providers_cuda.so": lib_dir,
    "onnxruntime/LICENSE": doc_dir,
    "onnxruntime/ThirdPartyNotices.txt": doc_dir,
}
with zipfile.ZipFile(wheel) as z:
    missing = sorted(set(wanted) - set(z.namelist()))
    if missing:
        sys.exit(f"package-cuda: {wheel} lacks {', '.join(missing)}")
    for name, folder in wanted.items():
        target = os.path.join(folder, os.path.basename(name))
        with z.open(name) as src, open(target, "wb") as dst:
            dst.write(src.read())
        os.chmod(target, 0o644)
PY
cp "$doc_dir/LICENSE" "$doc_dir/copyright"

installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: amd64
Maintainer: The Pigment developers
Installed-Size: $installed_kb
Depends: pigment (= $version)
Recommends: cuda-cudart-13-0, libcublas-13-0, libcurand-13-0, libcufft-13-0, cuda-nvrtc-13-0, libcudnn9-cuda-13
Section: graphics
Priority: optional
Homepage: https://pypi.org/project/onnxruntime-gpu/
Description: NVIDIA CUDA support for Pigment
 ONNX Runtime $ORT_VERSION built with its CUDA execution provider, for Pigment's
 Stable Diffusion studio: with an NVIDIA driver and the CUDA 13 and cuDNN 9
 libraries (NVIDIA's CUDA apt repository) Pigment generates on the GPU.
 Without them it runs on the CPU as before.
EOF
# Recompute the md5sums dpkg keeps for `dpkg --verify`.
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
dpkg-deb --root-owner-group "-Z${PIGMENT_DEB_COMPRESSION:-xz}" --build "$stage" "$out" >/dev/null
rm -rf "$stage"
echo "package-cuda: $out ($(du -h "$out" | cut -f1), installed $((installed_kb / 1024)) MiB)" >&2
