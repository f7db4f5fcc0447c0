//! The canvas's modes as the window submits them (JSON params with base64 PNGs), run by the app's real job queue on
//! the bundled demo model with the real ONNX Runtime; results are read back from the saved PNG files.

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use base64::Engine as _;
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use pigment_app::models::{GenerateParams, JobEvent};
use pigment_app::queue::EventSink;
use pigment_app::state::AppState;
use serde_json::{Value, json};

struct Collector(Mutex<mpsc::Sender<JobEvent>>);

impl EventSink for Collector {
    fn send(&self, event: JobEvent) {
        let _ = self.0.lock().unwrap().send(event);
    }
}

/// Submits `params` as the window would send them and waits for the job's last event; returns the saved images.
fn run_job(state: &AppState, params: Value) -> Vec<PathBuf> {
    let params: GenerateParams = serde_json::from_value(params).expect("the window's JSON");
    let (tx, rx) = mpsc::channel();
    state.submit(&params, Box::new(Collector(Mutex::new(tx)))).expect("accepted");
    let mut saved = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(180)).expect("the job ends") {
            JobEvent::Image(image) => saved.push(image.path),
            JobEvent::Finished { .. } => return saved,
            JobEvent::Failed { error } => panic!("the job failed: {error:?}"),
            JobEvent::Cancelled { .. } => panic!("cancelled"),
            _ => {}
        }
    }
}

fn base64_png(image: DynamicImage) -> String {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png).unwrap();
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes.into_inner()))
}

/// A picture with structure everywhere (gradients and a checker), so a changed pixel shows.
fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let checker = if (x / 8 + y / 8) % 2 == 0 { 40 } else { 0 };
        Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 100 + checker])
    })
}

fn params(mode: Value) -> Value {
    json!({
        "modelId": "", "prompt": "a red ball", "negativePrompt": "", "sampler": "euler_a", "schedule": "automatic",
        "steps": 4, "cfgScale": 7.0, "seed": 5, "width": 64, "height": 64, "batchSize": 1, "batchCount": 1,
        "mode": mode
    })
}

fn read_rgb(path: &Path) -> RgbImage {
    image::open(path).unwrap().into_rgb8()
}

#[test]
fn inpainting_repaints_the_mask_and_leaves_every_pixel_outside_it_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::app_state(dir.path());
    let original = picture(64, 64);
    // A painted blob: a disc of radius 12 around (24, 30).
    let mask = GrayImage::from_fn(64, 64, |x, y| {
        let (dx, dy) = (x as f32 - 24.0, y as f32 - 30.0);
        Luma([if dx * dx + dy * dy <= 144.0 { 255 } else { 0 }])
    });
    let inpaint = |mask_blur: u32| {
        params(json!({
            "kind": "inpaint", "image": base64_png(DynamicImage::ImageRgb8(original.clone())),
            "mask": base64_png(DynamicImage::ImageLuma8(mask.clone())), "strength": 1.0, "maskBlur": mask_blur,
            "invertMask": false, "maskedContent": "original", "onlyMasked": false, "padding": 32
        }))
    };

    let saved = run_job(&state, inpaint(0));
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].parent().unwrap(), dir.path().join("outputs"), "saved where text-to-image results go");
    let result = read_rgb(&saved[0]);
    assert_eq!(result.dimensions(), (64, 64));
    let (mut inside_changed, mut inside) = (0, 0);
    for (x, y, pixel) in result.enumerate_pixels() {
        if mask.get_pixel(x, y).0[0] == 0 {
            assert_eq!(pixel, original.get_pixel(x, y), "pixel ({x}, {y}) outside the mask changed");
        } else {
            inside += 1;
            inside_changed += usize::from(pixel != original.get_pixel(x, y));
        }
    }
    assert!(inside_changed * 2 > inside, "the mask was repainted: {inside_changed} of {inside} pixels changed");
    let parameters = pigment_engine::image::read_png_text(&saved[0], "parameters").unwrap().unwrap();
    assert!(parameters.contains("Mask blur: 0") && parameters.contains("Masked content: original"), "{parameters}");

    // With a blur the edge fades; beyond the blur's reach (2 * int(2.5 * 4 + 0.5) + 1 taps: 10 pixels) the
    // picture is still exact.
    let saved = run_job(&state, inpaint(4));
    let result = read_rgb(&saved[0]);
    for (x, y, pixel) in result.enumerate_pixels() {
        let (dx, dy) = (x as f32 - 24.0, y as f32 - 30.0);
        if (dx * dx + dy * dy).sqrt() > 12.0 + 10.0 * std::f32::consts::SQRT_2 {
            assert_eq!(pixel, original.get_pixel(x, y), "pixel ({x}, {y}) beyond the blurred mask changed");
        }
    }
    state.shutdown();
}

#[test]
fn img2img_and_outpaint_run_from_the_canvas_picture() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::app_state(dir.path());
    let original = picture(64, 64);
    let image = base64_png(DynamicImage::ImageRgb8(original.clone()));

    let saved = run_job(&state, params(json!({"kind": "img2img", "image": image, "strength": 0.5})));
    let result = read_rgb(&saved[0]);
    assert_eq!(result.dimensions(), (64, 64));
    assert_ne!(result, original, "image to image changed the picture");
    let parameters = pigment_engine::image::read_png_text(&saved[0], "parameters").unwrap().unwrap();
    assert!(parameters.contains("Denoising strength: 0.5"), "{parameters}");

    let saved = run_job(
        &state,
        // The demo UNet halves its latents twice: sides stay multiples of 16 pixels.
        params(json!({"kind": "outpaint", "image": image, "left": 16, "right": 0, "top": 0, "bottom": 16})),
    );
    let result = read_rgb(&saved[0]);
    assert_eq!(result.dimensions(), (80, 80), "the picture with its new borders");
    for (x, y, pixel) in original.enumerate_pixels() {
        assert_eq!(result.get_pixel(x + 16, y), pixel, "the original pixel ({x}, {y}) is kept");
    }
    state.shutdown();
}

#[test]
fn a_bad_mask_is_refused_at_submit_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::app_state(dir.path());
    let image = base64_png(DynamicImage::ImageRgb8(picture(64, 64)));
    let small_mask = base64_png(DynamicImage::ImageLuma8(GrayImage::new(32, 32)));
    let params: GenerateParams = serde_json::from_value(params(json!({
        "kind": "inpaint", "image": image, "mask": small_mask
    })))
    .unwrap();
    let (tx, _rx) = mpsc::channel();
    let error = state.submit(&params, Box::new(Collector(Mutex::new(tx)))).unwrap_err();
    let json = serde_json::to_value(&error).unwrap();
    assert_eq!(json["field"], "mask");
    assert_eq!(json["message"], "invalid mask: 32x32 differs from the picture's 64x64");
    assert!(!dir.path().join("outputs").read_dir().unwrap().any(|_| true), "nothing was written");
    state.shutdown();
}
