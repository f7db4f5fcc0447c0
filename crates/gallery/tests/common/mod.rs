//! PNG files as AUTOMATIC1111 (through the engine's writer), ComfyUI and InvokeAI lay out their metadata, and the
//! PNG files a folder holds.
#![allow(dead_code)] // each test file is its own crate and uses a different part of this module

use std::path::Path;

use image::RgbImage;
use pigment_engine::image::{InfoText, PARAMETERS_KEY, write_png_atomically};

/// The names of the PNG files in `folder`, sorted; hidden ones (an atomic write's temporary file) left out.
pub fn png_names(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".png") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

pub fn pixels(width: u32, height: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7 + seed) as u8, (y * 13 + seed * 3) as u8, ((x ^ y) + seed * 11) as u8])
    })
}

pub fn a1111_text(prompt: &str, negative: &str, sampler: &str, seed: u64, width: u32, height: u32) -> String {
    let mut info = InfoText { prompt: prompt.into(), negative_prompt: negative.into(), params: Vec::new() };
    info.set("Steps", 20);
    info.set("Sampler", sampler);
    info.set("CFG scale", 7);
    info.set("Seed", seed);
    info.set("Size", format!("{width}x{height}"));
    info.set("Model hash", "0123456789");
    info.set("Model", "tiny-sd");
    info.to_text()
}

/// Writes an A1111 PNG; returns its picture and parameters text, as a generation holds them.
pub fn write_a1111(
    path: &Path,
    prompt: &str,
    negative: &str,
    sampler: &str,
    seed: u64,
    size: (u32, u32),
) -> (RgbImage, String) {
    let text = a1111_text(prompt, negative, sampler, seed, size.0, size.1);
    let picture = pixels(size.0, size.1, seed as u32);
    write_png_atomically(path, &picture, &[(PARAMETERS_KEY, text.as_str())]).unwrap();
    (picture, text)
}

/// ComfyUI's default text-to-image graph as its SaveImage node writes it (`prompt` = the API graph, `workflow` =
/// the editor graph), with a LoRA loader between the checkpoint and the sampler, and the negative prompt's node
/// numbered before the positive one (the sampler's wiring decides which is which, not the order).
pub const COMFYUI_PROMPT: &str = r#"{
 "3": {"inputs": {"seed": 156680208700286, "steps": 25, "cfg": 6.5, "sampler_name": "dpmpp_2m", "scheduler": "karras",
       "denoise": 1, "model": ["10", 0], "positive": ["7", 0], "negative": ["6", 0], "latent_image": ["5", 0]},
       "class_type": "KSampler", "_meta": {"title": "KSampler"}},
 "4": {"inputs": {"ckpt_name": "dreamshaper_8.safetensors"}, "class_type": "CheckpointLoaderSimple"},
 "5": {"inputs": {"width": 512, "height": 640, "batch_size": 1}, "class_type": "EmptyLatentImage"},
 "6": {"inputs": {"text": "text, watermark", "clip": ["10", 1]}, "class_type": "CLIPTextEncode"},
 "7": {"inputs": {"text": "beautiful scenery nature glass bottle landscape, purple galaxy bottle", "clip": ["10", 1]},
       "class_type": "CLIPTextEncode"},
 "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode"},
 "9": {"inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}, "class_type": "SaveImage"},
 "10": {"inputs": {"lora_name": "detail.safetensors", "strength_model": 1, "strength_clip": 1, "model": ["4", 0],
        "clip": ["4", 1]}, "class_type": "LoraLoader"}
}"#;

pub const COMFYUI_WORKFLOW: &str = r#"{"last_node_id": 10, "last_link_id": 12, "nodes": [
 {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["beautiful scenery nature glass bottle landscape, purple galaxy bottle"]},
 {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["text, watermark"]},
 {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["dreamshaper_8.safetensors"]},
 {"id": 3, "type": "KSampler", "widgets_values": [156680208700286, "randomize", 25, 6.5, "dpmpp_2m", "karras", 1]}
], "links": [], "version": 0.4}"#;

pub fn write_comfyui(path: &Path, with_prompt: bool) {
    let mut texts = vec![("workflow", COMFYUI_WORKFLOW)];
    if with_prompt {
        texts.insert(0, ("prompt", COMFYUI_PROMPT));
    }
    write_png_atomically(path, &pixels(64, 80, 5), &texts).unwrap();
}

/// InvokeAI 5's `invokeai_metadata` for a text-to-image generation.
pub const INVOKEAI_METADATA: &str = r#"{"generation_mode": "sdxl_txt2img", "positive_prompt": "a red fox sleeping in the snow",
 "negative_prompt": "blurry, lowres", "width": 1024, "height": 768, "seed": 3213904, "rand_device": "cpu",
 "cfg_scale": 7.5, "cfg_rescale_multiplier": 0, "steps": 30, "scheduler": "euler_a",
 "model": {"key": "2a6ebd6c-0b34-4cdd-9d13-4c9d2be7f34c", "hash": "blake3:aa", "name": "Juggernaut XL v9", "base": "sdxl",
           "type": "main"}, "app_version": "5.4.2"}"#;

pub fn write_invokeai(path: &Path) {
    write_png_atomically(path, &pixels(96, 72, 9), &[("invokeai_metadata", INVOKEAI_METADATA)]).unwrap();
}

pub fn no_progress() -> impl FnMut(pigment_gallery::ScanProgress) {
    |_| {}
}

pub fn never() -> bool {
    false
}
