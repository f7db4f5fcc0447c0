#!/usr/bin/env bash
# On the GPU benchmark machine (shared/gpu/README.md), from the repository root, with these carried:
#   .ortgpu  ONNX Runtime 1.31.1 + CUDA provider (shared/gpu/pack-ort-cuda.sh)
#   .gpu     pigment.xz (the release binary built here), diffusers.tar.xz (diffusers without most pipelines),
#            tokenizer.tar.xz (CLIP's vocab.json + merges.txt)
# Exports SD 1.5-architecture random-weight models there, times Pigment on them and diffusers + torch fp16 on the
# same card, and prints a table. Then short runs on the fused model (its graph cached): IO binding on and off,
# the peak VRAM of each CUDA memory setting, medium-VRAM mode; a second table. Results also land in $OUT.
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

# Short runs on the fused model, its optimized graph cached by the first so the others load fast.
# IO binding: the same 20 steps with it on and off (auto leaves it off until these numbers decide; the JSON's
# io_binding says which ran).
quick() {
  local name=$1; shift
  step "pigment bench $name"
  timeout 120 /tmp/pigment bench --model /tmp/models/sd15-fused --size 512 --cfg 7.5 --sampler Euler --device cuda \
    --cache-dir /tmp/pigment-cache-fused --json "$@" | tee "$OUT/$name.json"
}
quick io-binding-on --steps 20 --runs 3 --io-binding on
quick io-binding-off --steps 20 --runs 3 --io-binding off
# VRAM in the fully loaded mode: the driver's peak for each CUDA setting that may explain the gap with torch
# (io-binding-on ran with the defaults: exhaustive search, maximal workspace, arena grown as requested).
quick vram-no-max-workspace --steps 5 --runs 1 --cuda-conv-max-workspace off
quick vram-heuristic-small-workspace --steps 5 --runs 1 --cuda-conv-search heuristic --cuda-conv-max-workspace off
quick vram-arena-power-of-two --steps 5 --runs 1 --cuda-arena next-power-of-two
quick vram-shrink --steps 5 --runs 1 --cuda-shrink-after-single-runs
quick vram-shared-arena --steps 5 --runs 1 --cuda-shared-arena
# Medium mode (explicit only so far): the UNet stays loaded, the text encoder and VAE take turns.
quick medium-vram --steps 20 --runs 3 --low-vram medium

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
print()
print(f"{'short runs (fused fp16)':<38}{'end to end ms':>15}{'UNet call ms':>14}{'peak GPU GiB':>17}{'after load GiB':>16}  IO binding")
for m in ["io-binding-on", "io-binding-off", "vram-no-max-workspace", "vram-heuristic-small-workspace", "vram-arena-power-of-two", "vram-shrink",
          "vram-shared-arena", "medium-vram"]:
    p = load(m + ".json")
    if "end_to_end_ms" not in p:
        print(f"{m}: {p}")
        continue
    print(f"{m:<38}{p['end_to_end_ms']:>15.1f}{p['unet_per_call_ms']:>14.2f}{p['peak_GPU_memory_MiB']/1024:>17.2f}"
          f"{p.get('GPU_memory_after_load_MiB', 0)/1024:>16.2f}  {p.get('io_binding')}  ({p['steps']} steps)")
PY
step done
