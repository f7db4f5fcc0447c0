"""Builds Stable Diffusion 1.5-architecture models with random weights on the GPU machine and exports them in the
diffusers/optimum ONNX layout, for `pigment bench` (random weights time the same as real ones).

Three folders:
  sd15-fp16/   plain fp16 export (torch .half(), no fusions): UNet and VAE decoder fp16, text encoder fp32
  sd15-fused/  the UNet exported in fp32, fused with ONNX Runtime's transformer optimizer for UNets (attention,
               GroupNorm, BiasSplitGelu, NhwcConv ...) and converted to fp16 — the documented preparation step
               (scripts/prepare_unet.py holds the same two calls for users' models)
  sd15-fp32/   the fp32 UNet export as it is (text encoder and VAE as in sd15-fp16): Pigment converts it to fp16
               itself at load (crates/engine/src/model/fp16.rs)

Usage: python make_sd15.py OUT_DIR TOKENIZER_DIR
"""

import json
import os
import shutil
import sys
import time

import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from prepare_unet import fuse_and_convert  # noqa: E402  (scripts/prepare_unet.py)

from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402



# SMOKE=1 shrinks every width by 8 and runs on the CPU: a quick local check of the script before GPU time is spent.
SMOKE = os.environ.get("SMOKE") == "1"
DEVICE = torch.device("cpu" if SMOKE else "cuda")
W = 8 if SMOKE else 1


def sd15_modules():
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768 // W, intermediate_size=3072 // W,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                        hidden_act="quick_gelu", projection_dim=768 // W)).eval()
    unet = UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                                block_out_channels=tuple(c // W for c in (320, 640, 1280, 1280)),
                                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                                cross_attention_dim=768 // W, attention_head_dim=8,
                                norm_num_groups=32 // (4 if SMOKE else 1)).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=tuple(c // W for c in (128, 256, 512, 512)), layers_per_block=2,
                        latent_channels=4, sample_size=512, norm_num_groups=32 // (4 if SMOKE else 1)).eval()
    return text, unet, vae


class Decoder(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample):
        return self.vae.decode(latent_sample).sample


class Unet(torch.nn.Module):
    """The UNet with a float32 timestep of rank 1, whatever the weights' type (as the demo model)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


def save(model_path, external):
    model = onnx.load(model_path, load_external_data=True)
    model.ir_version = 8  # ONNX Runtime 1.31 reads IR 13 at most
    for f in os.listdir(os.path.dirname(model_path)):
        if f != "model.onnx":
            os.remove(os.path.join(os.path.dirname(model_path), f))
    onnx.save_model(model, model_path, save_as_external_data=external, all_tensors_to_one_file=True,
                    location="model.onnx_data", size_threshold=1024)


def export(module, args, names, outputs, axes, path, external=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(module, args, path, input_names=names, output_names=outputs, dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    save(path, external)


def layout(folder, tokenizer):
    os.makedirs(os.path.join(folder, "scheduler"), exist_ok=True)
    shutil.copytree(tokenizer, os.path.join(folder, "tokenizer"), dirs_exist_ok=True)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump({"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                   "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "steps_offset": 1,
                   "set_alpha_to_one": False, "clip_sample": False, "skip_prk_steps": True}, f)
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump({"_class_name": "OnnxStableDiffusionPipeline"}, f)


def main(out, tokenizer):
    torch.manual_seed(0)
    started = time.time()
    text, unet, vae = sd15_modules()
    ids = torch.zeros((1, 77), dtype=torch.int64)
    axes_text = {"input_ids": {0: "batch", 1: "sequence"}}
    axes_unet = {"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
                 "encoder_hidden_states": {0: "batch", 1: "sequence"}}
    axes_vae = {"latent_sample": {0: "batch", 2: "height", 3: "width"}}
    for name in ["sd15-fp16", "sd15-fused"]:
        layout(os.path.join(out, name), tokenizer)
        export(text, (ids,), ["input_ids"], ["last_hidden_state", "pooler_output"], axes_text,
               os.path.join(out, name, "text_encoder", "model.onnx"))
    print(f"text encoders {time.time() - started:.0f}s", flush=True)

    cuda = DEVICE
    unet16 = Unet(unet).half().to(cuda)
    args16 = (torch.randn(2, 4, 64, 64, device=cuda, dtype=torch.float16), torch.tensor([999.0, 999.0], device=cuda),
              torch.randn(2, 77, 768 // W, device=cuda, dtype=torch.float16))
    export(unet16, args16, ["sample", "timestep", "encoder_hidden_states"], ["out_sample"], axes_unet,
           os.path.join(out, "sd15-fp16", "unet", "model.onnx"), external=True)
    decoder16 = Decoder(vae).half().to(cuda)
    latents16 = torch.randn(1, 4, 64, 64, device=cuda, dtype=torch.float16)
    with torch.no_grad():
        finite = torch.isfinite(decoder16(latents16)).all().item()
    print(f"fp16 VAE decode finite: {finite}", flush=True)
    for name in ["sd15-fp16", "sd15-fused"]:
        export(decoder16, (latents16,), ["latent_sample"], ["sample"], axes_vae,
               os.path.join(out, name, "vae_decoder", "model.onnx"))
    del unet16, decoder16
    torch.cuda.empty_cache()
    print(f"fp16 exports {time.time() - started:.0f}s", flush=True)

    unet32 = Unet(unet.float()).to(cuda)  # .half() above converted the module in place
    args32 = (args16[0].float(), args16[1], args16[2].float())
    fp32_path = os.path.join(out, "unet-fp32", "model.onnx")
    export(unet32, args32, ["sample", "timestep", "encoder_hidden_states"], ["out_sample"], axes_unet, fp32_path,
           external=True)
    del unet32
    torch.cuda.empty_cache()
    print(f"fp32 UNet export {time.time() - started:.0f}s", flush=True)
    fuse_and_convert(fp32_path, os.path.join(out, "sd15-fused", "unet", "model.onnx"))
    print(f"fused fp16 UNet {time.time() - started:.0f}s", flush=True)
    # The fp32 UNet stays as sd15-fp32/, for Pigment's own fp32 -> fp16 conversion at load on the GPU.
    fp32_folder = os.path.join(out, "sd15-fp32")
    layout(fp32_folder, tokenizer)
    shutil.rmtree(os.path.join(fp32_folder, "unet"), ignore_errors=True)
    shutil.move(os.path.dirname(fp32_path), os.path.join(fp32_folder, "unet"))
    for part in ["text_encoder", "vae_decoder"]:
        shutil.rmtree(os.path.join(fp32_folder, part), ignore_errors=True)
        shutil.copytree(os.path.join(out, "sd15-fp16", part), os.path.join(fp32_folder, part))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
