//! `pigment img2img`, `inpaint`, `outpaint`, `upscale` and `generate --hires-scale` as a user runs them: real ONNX
//! Runtime, the fixture models, real files. Bad input ends with one line naming the input, a non-zero exit code and
//! no file written; input that can be handled is handled, with a `warning:` line.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{assert_refusal, files_in, fixture, parameters, repo_root, run_into_empty_folder};

const FAST: &[&str] = &["--steps", "4", "--seed", "5", "--device", "cpu"];

/// Runs `pigment` with `args` + FAST (upscale: only the CPU) into an empty output folder; returns (output, folder,
/// stderr).
fn run_in_folder(args: &[&str]) -> (Output, tempfile::TempDir, String) {
    let extra: &[&str] = if args[0] != "upscale" { FAST } else { &["--device", "cpu"] };
    run_into_empty_folder(args, extra)
}

fn single_output(dir: &tempfile::TempDir) -> PathBuf {
    let files = files_in(&dir.path().join("out"));
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn assert_refused(args: &[&str], expected: &[&str]) {
    assert_refusal(args, run_in_folder(args), expected);
}

#[test]
fn img2img_takes_the_pictures_size_and_records_the_strength() {
    let image = fixture("images/scene_96x64.png");
    let (output, dir, stderr) =
        run_in_folder(&["img2img", "--image", &image, "--prompt", "a house", "--strength", "0.6", "--json"]);
    assert!(output.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["seeds"], serde_json::json!([5]));
    let file = single_output(&dir);
    assert_eq!(image::open(&file).unwrap().dimensions_tuple(), (96, 64));
    let info = parameters(&file);
    assert_eq!(info.get("Denoising strength"), Some("0.6"));
    assert_eq!(info.size(), Some((96, 64)));

    // Another size with a resize mode.
    let (output, dir, stderr) =
        run_in_folder(&["img2img", "--image", &image, "--width", "64", "--height", "64", "--resize-mode", "crop"]);
    assert!(output.status.success(), "{stderr}");
    let file = single_output(&dir);
    assert_eq!(parameters(&file).get("Resize mode"), Some("Crop and resize"));
}

trait Dimensions {
    fn dimensions_tuple(&self) -> (u32, u32);
}

impl Dimensions for image::DynamicImage {
    fn dimensions_tuple(&self) -> (u32, u32) {
        (self.width(), self.height())
    }
}

#[test]
fn inpaint_with_every_control_keeps_the_unmasked_pixels() {
    let image = fixture("images/scene_64.png");
    let mask = fixture("images/mask_64.png");
    let model = fixture("models/tiny-sd-inpaint");
    let (output, dir, stderr) = run_in_folder(&[
        "inpaint",
        "--image",
        &image,
        "--mask",
        &mask,
        "--model",
        &model,
        "--mask-blur",
        "0",
        "--masked-content",
        "latent-noise",
        "--strength",
        "0.9",
        "--invert-mask",
    ]);
    assert!(output.status.success(), "{stderr}");
    let file = single_output(&dir);
    let result = image::open(&file).unwrap().to_rgb8();
    let original = image::open(&image).unwrap().to_rgb8();
    let mask = image::open(&mask).unwrap().to_luma8();
    for (x, y, pixel) in result.enumerate_pixels() {
        // Inverted: the white part of the mask is kept.
        if mask.get_pixel(x, y).0[0] >= 128 {
            assert_eq!(pixel, original.get_pixel(x, y), "({x}, {y})");
        }
    }
    let info = parameters(&file);
    assert_eq!(info.get("Masked content"), Some("latent noise"));
    assert_eq!(info.get("Mask mode"), Some("Inpaint not masked"));
    assert_eq!(info.get("Mask blur"), Some("0"));
    assert_eq!(info.get("Denoising strength"), Some("0.9"));

    let (output, dir, stderr) = run_in_folder(&[
        "inpaint",
        "--image",
        &image,
        "--mask",
        &fixture("images/mask_64.png"),
        "--only-masked",
        "--padding",
        "4",
    ]);
    assert!(output.status.success(), "{stderr}");
    let info = parameters(&single_output(&dir));
    assert_eq!(info.get("Inpaint area"), Some("Only masked"));
    assert_eq!(info.get("Masked area padding"), Some("4"));
}

#[test]
fn a_mask_of_another_size_is_resized_and_an_empty_mask_returns_the_picture() {
    let work = tempfile::tempdir().unwrap();
    let big_mask = work.path().join("big-mask.png");
    image::GrayImage::from_fn(128, 128, |x, _| image::Luma([if x > 64 { 255 } else { 0 }])).save(&big_mask).unwrap();
    let image = fixture("images/scene_64.png");
    let (output, _dir, stderr) = run_in_folder(&["inpaint", "--image", &image, "--mask", big_mask.to_str().unwrap()]);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("warning:") && stderr.contains("128x128") && stderr.contains("resized"), "{stderr}");

    let empty = work.path().join("empty.png");
    image::GrayImage::new(64, 64).save(&empty).unwrap();
    let (output, dir, stderr) = run_in_folder(&["inpaint", "--image", &image, "--mask", empty.to_str().unwrap()]);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("warning: the mask is empty"), "{stderr}");
    let result = image::open(single_output(&dir)).unwrap().to_rgb8();
    assert_eq!(result, image::open(&image).unwrap().to_rgb8());
}

#[test]
fn grey_sixteen_bit_and_rgba_pictures_are_converted() {
    let work = tempfile::tempdir().unwrap();
    let grey = work.path().join("grey.png");
    image::GrayImage::from_fn(64, 64, |x, y| image::Luma([(x + y) as u8])).save(&grey).unwrap();
    let deep = work.path().join("deep.png");
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(64, 64, |x, _| image::Rgb([x as u16 * 1000, 30000, 65535]))
        .save(&deep)
        .unwrap();
    let rgba = work.path().join("rgba.png");
    image::RgbaImage::from_fn(64, 64, |x, _| image::Rgba([200, 100, 50, if x < 32 { 255 } else { 0 }]))
        .save(&rgba)
        .unwrap();
    for (path, warning) in [(&grey, false), (&deep, false), (&rgba, true)] {
        let (output, dir, stderr) = run_in_folder(&["img2img", "--image", path.to_str().unwrap()]);
        assert!(output.status.success(), "{}: {stderr}", path.display());
        assert_eq!(stderr.contains("transparent"), warning, "{stderr}");
        assert_eq!(image::open(single_output(&dir)).unwrap().dimensions_tuple(), (64, 64));
    }
}

#[test]
fn bad_pictures_and_upscalers_are_refused_naming_them() {
    let work = tempfile::tempdir().unwrap();
    let text = work.path().join("notes.png");
    std::fs::write(&text, "not pixels").unwrap();
    let text = text.to_str().unwrap().to_string();
    assert_refused(&["img2img", "--image", &text], &["notes.png", "not an image"]);
    let scene = fixture("images/scene_64.png");
    assert_refused(&["inpaint", "--image", &scene, "--mask", &text], &["notes.png", "not an image"]);
    assert_refused(&["img2img", "--image", "missing.png"], &["missing.png"]);

    // A header claiming 20000 x 20000: refused from the header, before any pixel is decoded.
    let huge = work.path().join("huge.png");
    std::fs::write(&huge, png_header(20000, 20000)).unwrap();
    let huge = huge.to_str().unwrap().to_string();
    assert_refused(&["upscale", "--image", &huge, "--scale", "2"], &["20000x20000", "16384", "huge.png"]);
    // A request for a 20000 x 20000 result, refused before the model loads.
    assert_refused(&["upscale", "--image", &scene, "--scale", "312.5"], &["upscaled size: 20000x20000", "16384"]);
    assert_refused(&["generate", "--width", "20000", "--height", "20000"], &["width: 20000", "4096"]);

    // Upscaler models of another shape.
    let demo = repo_root().join("models/tiny-sd");
    let text_encoder = demo.join("text_encoder").to_str().unwrap().to_string();
    assert_refused(
        &["upscale", "--image", &scene, "--scale", "2", "--upscaler", &text_encoder],
        &["upscaler", "input_ids"],
    );
    let decoder = demo.join("vae_decoder").to_str().unwrap().to_string();
    assert_refused(
        &["generate", "--width", "64", "--height", "64", "--hires-scale", "2", "--upscaler", &decoder],
        &["upscaler", "latent_sample", "RGB"],
    );

    assert_refused(&["inpaint", "--image", &scene, "--mask", &scene, "--masked-content", "noise"], &["masked content"]);
    assert_refused(&["img2img", "--image", &scene, "--strength", "1.5"], &["strength: 1.5"]);
    assert_refused(&["outpaint", "--image", &scene], &["left, right, top or bottom"]);
}

/// A PNG that says it is `width` x `height` (8-bit RGB) and holds almost no data: its signature, IHDR, an IDAT
/// with an empty zlib stream, IEND.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let crc32 = |bytes: &[u8]| {
        let mut crc = 0xffff_ffffu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    };
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], header), (b"IDAT", vec![0x78, 0x9c, 0x03, 0, 0, 0, 0, 1]), (b"IEND", vec![])] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&chunk);
        bytes.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    bytes
}

#[test]
fn outpaint_extends_the_canvas() {
    let image = fixture("images/scene_64.png");
    let (output, dir, stderr) = run_in_folder(&["outpaint", "--image", &image, "--right", "32", "--top", "16"]);
    assert!(output.status.success(), "{stderr}");
    let file = single_output(&dir);
    let result = image::open(&file).unwrap().to_rgb8();
    assert_eq!(result.dimensions(), (96, 80));
    let original = image::open(&image).unwrap().to_rgb8();
    for (x, y, pixel) in original.enumerate_pixels() {
        assert_eq!(result.get_pixel(x, y + 16), pixel);
    }
    assert_eq!(parameters(&file).get("Outpaint"), Some("right 32, top 16"));
}

#[test]
fn upscale_with_a_model_or_lanczos_keeps_the_pictures_parameters() {
    // A picture made by `generate`, then upscaled: its parameters stay and the upscale's are added.
    let (output, dir, stderr) =
        run_in_folder(&["generate", "--prompt", "a lighthouse", "--width", "64", "--height", "64"]);
    assert!(output.status.success(), "{stderr}");
    let generated = single_output(&dir);
    let generated = generated.to_str().unwrap();
    let model = fixture("models/tiny-esrgan-x4");
    let (output, dir, stderr) = run_in_folder(&[
        "upscale",
        "--image",
        generated,
        "--scale",
        "2",
        "--upscaler",
        &model,
        "--tile",
        "24",
        "--json",
    ]);
    assert!(output.status.success(), "{stderr}");
    let file = single_output(&dir);
    assert!(file.file_name().unwrap().to_str().unwrap().ends_with("-upscaled.png"), "{}", file.display());
    assert_eq!(image::open(&file).unwrap().dimensions_tuple(), (128, 128));
    let info = parameters(&file);
    assert_eq!(info.prompt, "a lighthouse");
    assert_eq!(info.get("Postprocess upscale by"), Some("2"));
    assert_eq!(info.get("Postprocess upscaler"), Some("tiny-esrgan-x4"));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["width"], 128);

    let (output, dir, stderr) =
        run_in_folder(&["upscale", "--image", &fixture("images/scene_64.png"), "--scale", "1.5"]);
    assert!(output.status.success(), "{stderr}");
    let file = single_output(&dir);
    assert_eq!(image::open(&file).unwrap().dimensions_tuple(), (96, 96));
    assert_eq!(parameters(&file).get("Postprocess upscaler"), Some("Lanczos"));
}

#[test]
fn generate_with_the_hires_fix() {
    let model = fixture("models/tiny-esrgan-x2");
    let (output, dir, stderr) = run_in_folder(&[
        "generate",
        "--prompt",
        "a castle",
        "--width",
        "64",
        "--height",
        "48",
        "--hires-scale",
        "2",
        "--hires-strength",
        "0.5",
        "--hires-steps",
        "3",
        "--upscaler",
        &model,
    ]);
    assert!(output.status.success(), "{stderr}");
    let file = single_output(&dir);
    assert_eq!(image::open(&file).unwrap().dimensions_tuple(), (128, 96));
    let info = parameters(&file);
    assert_eq!(info.get("Hires upscale"), Some("2"));
    assert_eq!(info.get("Hires upscaler"), Some("tiny-esrgan-x2"));
    assert_eq!(info.get("Hires steps"), Some("3"));
    assert_eq!(info.get("Denoising strength"), Some("0.5"));
    assert_eq!(info.size(), Some((64, 48)));

    assert_refused(&["generate", "--hires-strength", "0.5"], &["--hires-scale"]);
    assert_refused(
        &["generate", "--width", "64", "--height", "64", "--hires-scale", "2", "--hires-upscaler", "bicubic"],
        &["hires upscaler: bicubic"],
    );
}
