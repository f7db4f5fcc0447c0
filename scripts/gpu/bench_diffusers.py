"""The baseline Pigment is compared with: diffusers' StableDiffusionPipeline with torch in fp16 (SDPA attention)
on the same SD 1.5-architecture random weights, 512x512, 20 Euler steps, CFG 7.5, batch 1.
Prints one JSON line: end to end (median of 5 after 2 warm-ups), UNet per call (CUDA events), peak VRAM as torch's
allocator counts it and as the driver counts the whole process.

Usage: python bench_diffusers.py TOKENIZER_DIR
"""

import json
import os
import statistics
import subprocess
import sys
import time

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
from transformers import CLIPTokenizer

from make_sd15 import sd15_modules


def process_gpu_memory_gib():
    """What the driver says this process holds (context, caching allocator, cuDNN/cuBLAS workspaces): the figure
    `pigment bench` reports as GPU memory, so the two stacks compare on the same measure."""
    try:
        rows = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for row in rows.splitlines():
        pid, used = (field.strip() for field in row.split(","))
        if int(pid) == os.getpid():
            return int(used) / 1024
    return None


def main(tokenizer_dir):
    torch.manual_seed(0)
    text, unet, vae = sd15_modules()
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir),
                                   unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe = pipe.to("cuda", torch.float16)
    pipe.set_progress_bar_config(disable=True)
    unet_times = []
    starts = {}

    def before(module, args):
        starts["event"] = torch.cuda.Event(enable_timing=True)
        starts["event"].record()

    def after(module, args, output):
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        torch.cuda.synchronize()
        unet_times.append(starts["event"].elapsed_time(end))

    def run():
        generator = torch.Generator("cpu").manual_seed(0)
        torch.cuda.synchronize()
        started = time.perf_counter()
        pipe("a photo of a cat", num_inference_steps=20, guidance_scale=7.5, height=512, width=512,
             generator=generator, output_type="np")
        torch.cuda.synchronize()
        return time.perf_counter() - started

    for _ in range(2):
        run()
    torch.cuda.reset_peak_memory_stats()
    end_to_end = [run() for _ in range(5)]
    peak = torch.cuda.max_memory_allocated()
    hooks = [unet.register_forward_pre_hook(before), unet.register_forward_hook(after)]
    run()  # the hooks synchronise after every UNet call, so this run times the UNet alone
    for hook in hooks:
        hook.remove()
    print(json.dumps({
        "stack": f"diffusers + torch {torch.__version__} fp16",
        "end_to_end_ms": statistics.median(end_to_end) * 1000,
        "unet_per_call_ms": statistics.median(unet_times),
        "peak_vram_gib": peak / 2**30,
        "peak_vram_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        "process_gpu_memory_gib": process_gpu_memory_gib(),
        "gpu": torch.cuda.get_device_name(),
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
