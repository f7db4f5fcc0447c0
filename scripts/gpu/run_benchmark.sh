#!/usr/bin/env bash
# On the GPU benchmark machine (shared/gpu/README.md), from the repository root, with these carried:
#   .ortgpu  ONNX Runtime 1.31.1 + CUDA provider (shared/gpu/pack-ort-cuda.sh)
#   .gpu     pigment.xz (the release binary built here), diffusers.tar.xz (diffusers without most pipelines),
#            tokenizer.tar.xz (CLIP's vocab.json + merges.txt)
# Exports SD 1.5-architecture random-weight models there, times Pigment on them and diffusers + torch fp16 on the
# same card, and prints a table. Results also land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/bench-out}
mkdir -p "$OUT" /tmp/site /tmp/tok /tmp/models
started=$(date +%s)
step() { echo "== [$(( $(date +%s) - started ))s] $*"; }

step unpack
bash .ortgpu/unpack-ort-cuda.sh .ortgpu /tmp/ort >/dev/null
export ORT_DYLIB_PATH=/tmp/ort/libonnxruntime.so
export LD_LIBRARY_PATH=/tmp/ort:/usr/local/cuda-13.0/lib64:${LD_LIBRARY_PATH:-}
tar xJf .gpu/diffusers.tar.xz -C /tmp/site
tar xJf .gpu/tokenizer.tar.xz -C /tmp/tok
xz -dc .gpu/pigment.xz > /tmp/pigment && chmod +x /tmp/pigment
export PYTHONPATH=/tmp/site:$PWD/scripts/gpu:$PWD/scripts PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

step "pigment devices"
/tmp/pigment devices --device cuda --no-cache | tee "$OUT/devices.txt"

step "diffusers baseline"
timeout 240 python3 scripts/gpu/bench_diffusers.py /tmp/tok/tokenizer | tee "$OUT/diffusers.json"

step "export SD 1.5-architecture models"
timeout 300 python3 scripts/gpu/make_sd15.py /tmp/models /tmp/tok/tokenizer 2>&1 | grep -v -i warn | tail -8

# name, folder, extra flags. --no-cache: every load optimizes afresh, so load times compare; the fp32 folder needs a
# cache folder, where its fp16 conversion is made on the first load (that load's time includes the conversion).
bench() {
  local name=$1 model=$2; shift 2
  step "pigment bench $name"
  [ -d /tmp/models/$model/unet ] || { echo "no $model"; return; }
  timeout 240 /tmp/pigment bench --model /tmp/models/$model --size 512 --steps 20 --cfg 7.5 --sampler Euler \
    --runs 5 --device cuda --json "$@" | tee "$OUT/$name.json"
}
bench sd15-fused sd15-fused --no-cache
bench sd15-fused-low-vram sd15-fused --no-cache --low-vram on
bench sd15-fp16 sd15-fp16 --no-cache
bench sd15-fp32-converted sd15-fp32 --cache-dir /tmp/pigment-cache --precision fp16

step table
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.loads(open(os.path.join(out, name)).read().strip().splitlines()[-1])
    except Exception as e:
        return {"error": str(e)}
d = load("diffusers.json")
print(f"{'stack':<38}{'end to end ms':>15}{'UNet call ms':>14}{'process GPU GiB':>17}")
print(f"{d.get('stack','diffusers'):<38}{d.get('end_to_end_ms',0):>15.1f}{d.get('unet_per_call_ms',0):>14.2f}"
      f"{d.get('process_gpu_memory_gib') or 0:>17.2f}   torch allocator peak {d.get('peak_vram_gib',0):.2f} GiB")
for m in ["sd15-fused", "sd15-fused-low-vram", "sd15-fp16", "sd15-fp32-converted"]:
    p = load(m + ".json")
    if "end_to_end_ms" not in p:
        print(f"pigment {m}: {p}")
        continue
    print(f"{'pigment ' + m:<38}{p['end_to_end_ms']:>15.1f}{p['unet_per_call_ms']:>14.2f}{p.get('peak_GPU_memory_MiB', p['GPU_memory_MiB'])/1024:>17.2f}"
          f"   load {p['model_load_ms']/1000:.1f}s, outside ORT {p['outside_ORT_in_loop_percent']:.1f}%,"
          f" speed-up {d.get('end_to_end_ms',0)/p['end_to_end_ms']:.2f}x on {p['execution_provider'][:40]}")
PY
step done
