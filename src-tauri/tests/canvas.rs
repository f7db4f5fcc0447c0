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
use tauri::Manager;

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

#[test]
fn an_exported_mask_is_written_as_the_canvas_painted_it_and_bad_masks_are_refused_before_any_dialog() {
    let dir = tempfile::tempdir().unwrap();
    let mask = GrayImage::from_fn(40, 30, |x, y| Luma([if x > 10 && y < 20 { 255 } else { (x * 3) as u8 }]));
    let decoded = pigment_app::canvas::decode_mask_png(&base64_png(DynamicImage::ImageLuma8(mask.clone()))).unwrap();
    assert_eq!(decoded, mask);
    let saved = dir.path().join("mask.png");
    pigment_app::canvas::write_mask(&saved, &decoded).unwrap();
    assert_eq!(pigment_engine::image::load_mask(&saved).unwrap(), mask, "the file holds the mask, pixel for pixel");
    let leftovers: Vec<_> = dir.path().read_dir().unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["mask.png"], "no temporary file is left");
    // A folder that does not exist: the error names the file, and nothing is written.
    let error = pigment_app::canvas::write_mask(&dir.path().join("gone/mask.png"), &mask).unwrap_err();
    assert!(error.to_string().contains("gone/mask.png"), "{error}");

    // Through the window's IPC: both are refused before the save dialog would open.
    let app = common::test_app();
    let error = app.invoke("save_mask_as", json!({"pngBase64": "data:image/png;base64,not*base64"})).unwrap_err();
    assert_eq!(error["field"], "mask");
    assert!(error["message"].as_str().unwrap().starts_with("invalid mask: not base64 image data"), "{error}");
    let mut jpeg = Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(mask).write_to(&mut jpeg, ImageFormat::Jpeg).unwrap();
    let jpeg = base64::engine::general_purpose::STANDARD.encode(jpeg.into_inner());
    let error = app.invoke("save_mask_as", json!({"pngBase64": jpeg})).unwrap_err();
    assert_eq!(error["field"], "mask");
    assert_eq!(error["message"], "invalid mask: not a PNG image (its first bytes are ff d8 ff e0 00 10 4a 46)");
    // PNG's signature on bytes that are not a PNG.
    let truncated = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nthe rest is missing");
    let error = app.invoke("save_mask_as", json!({"pngBase64": truncated})).unwrap_err();
    assert_eq!(error["field"], "mask");
    assert!(error["message"].as_str().unwrap().starts_with("invalid mask: not an image, or a damaged one"), "{error}");
}

#[test]
fn a_picture_dropped_on_the_window_is_read_for_the_canvas_and_no_other_path_is() {
    let app = common::test_app();
    let desktop = app.dir.path().join("Desktop");
    std::fs::create_dir_all(&desktop).unwrap();
    let photo = picture(48, 32);
    let jpeg = desktop.join("photo.JPG");
    DynamicImage::ImageRgb8(photo.clone()).save_with_format(&jpeg, ImageFormat::Jpeg).unwrap();
    let bmp = desktop.join("photo.bmp");
    DynamicImage::ImageRgb8(photo.clone()).save_with_format(&bmp, ImageFormat::Bmp).unwrap();
    let fake = desktop.join("fake.png");
    std::fs::write(&fake, b"not a picture").unwrap();
    app.invoke("watch_dropped_files", json!({"onDrop": "__CHANNEL__:3"})).unwrap();
    let state = app.app.state::<AppState>();
    state.gallery.dropped(&[jpeg.clone(), desktop.join("notes.txt"), bmp.clone(), fake.clone()]);
    // Every picture goes to the window (which gives it to the canvas when shown); PNG Info is for PNGs.
    let sent = app.messages_until(3, |file| file["fileName"] == "fake.png");
    let names: Vec<&str> = sent.iter().map(|file| file["fileName"].as_str().unwrap()).collect();
    assert_eq!(names, ["photo.JPG", "photo.bmp", "fake.png"]);
    assert_eq!(sent[0]["error"], "photo.JPG is not a PNG: PNG Info reads the parameters PNG files carry");

    let read = |path: &Path| app.invoke_bytes("read_dropped_picture", json!({"path": path}));
    // Sent as a PNG of what the engine reads from the file (JPEG decoding included).
    let png = read(&jpeg).unwrap();
    assert_eq!(image::guess_format(&png).unwrap(), ImageFormat::Png);
    let sent = image::load_from_memory(&png).unwrap().into_rgb8();
    assert_eq!(sent, pigment_engine::image::load_image(&jpeg).unwrap().image);
    let sent = image::load_from_memory(&read(&bmp).unwrap()).unwrap().into_rgb8();
    assert_eq!(sent, photo, "BMP is lossless");

    // A dropped file that is no picture: the error names it.
    let error = read(&fake).unwrap_err();
    assert_eq!(error["kind"], "engine");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(&*fake.to_string_lossy()) && message.contains("not an image"), "{message}");
    // A picture never dropped (the window may name no other file), even one beside a dropped one.
    let other = desktop.join("other.bmp");
    std::fs::copy(&bmp, &other).unwrap();
    for path in [other, PathBuf::from("/etc/hostname")] {
        let error = read(&path).unwrap_err();
        assert_eq!(error["kind"], "path_not_allowed");
        assert_eq!(
            error["message"],
            format!(
                "{} is not allowed here: only pictures dropped on the window can be opened on the canvas",
                path.display()
            )
        );
    }
}
