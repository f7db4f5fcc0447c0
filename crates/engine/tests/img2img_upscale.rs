//! Upscaling with the tiny ESRGAN fixtures (tests/fixtures/models/tiny-esrgan-x2, -x4: RRDBNet with random
//! weights, made by scripts/fixtures/make_img2img_fixtures.py): tiles leave no seam on a constant picture, agree
//! with a single whole-picture run within a stated tolerance, report progress per tile and stop when cancelled;
//! an upscaler of another shape is refused naming its input or output.

mod common;

use image::{Rgb, RgbImage};
use pigment_engine::EngineError;
use pigment_engine::model::UpscalerSession;
use pigment_engine::pipeline::{Flow, Progress, Stage, UpscaleTiling, upscale};

fn upscaler(name: &str) -> UpscalerSession {
    UpscalerSession::open(&common::runtime(), &common::fixtures().join("models").join(name)).unwrap()
}

fn scene() -> RgbImage {
    image::open(common::fixtures().join("images/scene_96x64.png")).unwrap().to_rgb8()
}

/// Small tiles so a small picture has many, with every kind of edge.
const SMALL_TILES: UpscaleTiling = UpscaleTiling { tile: 40, overlap: 8, margin: 16 };

#[test]
fn the_models_scale_is_measured() {
    assert_eq!(upscaler("tiny-esrgan-x4").scale(), 4);
    assert_eq!(upscaler("tiny-esrgan-x2").scale(), 2);
    // The .onnx file itself is accepted too, and named after its folder.
    let file = common::fixtures().join("models/tiny-esrgan-x2/model.onnx");
    let session = UpscalerSession::open(&common::runtime(), &file).unwrap();
    assert_eq!(session.name(), "tiny-esrgan-x2");
}

#[test]
fn a_constant_picture_stays_constant_across_tiles() {
    let mut model = upscaler("tiny-esrgan-x4");
    let flat = RgbImage::from_pixel(100, 70, Rgb([90, 140, 200]));
    let out = upscale(&flat, 400, 280, Some(&mut model), SMALL_TILES, &mut |_| Flow::Continue).unwrap();
    assert_eq!(out.dimensions(), (400, 280));
    let first = *out.get_pixel(0, 0);
    let off: Vec<(u32, u32)> =
        out.enumerate_pixels().filter(|(_, _, p)| **p != first).map(|(x, y, _)| (x, y)).take(5).collect();
    assert!(off.is_empty(), "pixels differ from {first:?} at {off:?}");
}

/// Mean absolute difference (8-bit levels) allowed between a tiled run and a single whole-picture run: tiles see
/// 16 pixels of context (plus the blended overlap), the tiny network's receptive field is ~18 pixels, and at the
/// picture's edges the whole run sees the network's zero padding where tiles see the mirrored picture.
const TILED_UPSCALE_MEAN_TOLERANCE: f64 = 1.0;

#[test]
fn tiles_agree_with_one_whole_picture_run() {
    let mut model = upscaler("tiny-esrgan-x4");
    let picture = scene();
    let tiled = upscale(&picture, 384, 256, Some(&mut model), SMALL_TILES, &mut |_| Flow::Continue).unwrap();
    let whole =
        upscale(&picture, 384, 256, Some(&mut model), UpscaleTiling::whole_image(), &mut |_| Flow::Continue).unwrap();
    let (mut sum, mut largest, mut interior_largest) = (0u64, 0u8, 0u8);
    for (x, y, p) in tiled.enumerate_pixels() {
        for (a, b) in p.0.iter().zip(whole.get_pixel(x, y).0) {
            let d = a.abs_diff(b);
            sum += u64::from(d);
            largest = largest.max(d);
            // 20 input pixels (80 output) away from the picture's edges.
            if (80..384 - 80).contains(&x) && (80..256 - 80).contains(&y) {
                interior_largest = interior_largest.max(d);
            }
        }
    }
    let mean = sum as f64 / tiled.as_raw().len() as f64;
    println!(
        "x4 upscale, tiles of 40 (overlap 8, margin 16) vs whole: mean {mean:.4}, max {largest}, interior max {interior_largest}"
    );
    assert!(mean < TILED_UPSCALE_MEAN_TOLERANCE, "mean {mean}");
    assert!(interior_largest <= 2, "inside the picture the tiles agree within 2 levels: {interior_largest}");
}

#[test]
fn passes_and_lanczos_reach_any_target_size() {
    let mut x2 = upscaler("tiny-esrgan-x2");
    let picture = scene();
    let mut tiles = 0;
    // x3 with an x2 model: two passes (x4), then Lanczos down to x3, as A1111.
    let out = upscale(&picture, 288, 192, Some(&mut x2), SMALL_TILES, &mut |p: &Progress| {
        assert_eq!(p.stage, Stage::Upscaling);
        tiles = p.step;
        assert!(p.step <= p.steps);
        Flow::Continue
    })
    .unwrap();
    assert_eq!(out.dimensions(), (288, 192));
    // Pass 1: 96x64 in tiles of 40 -> 3 x 2 tiles; pass 2: 192x128 -> 6 x 4 tiles.
    assert_eq!(tiles, 6 + 24);
}

#[test]
fn cancelling_stops_between_tiles() {
    let mut model = upscaler("tiny-esrgan-x4");
    let mut seen = 0;
    let error = upscale(&scene(), 384, 256, Some(&mut model), SMALL_TILES, &mut |p: &Progress| {
        seen = p.step;
        if p.step >= 2 { Flow::Cancel } else { Flow::Continue }
    })
    .unwrap_err();
    assert!(matches!(error, EngineError::Cancelled), "{error}");
    assert_eq!(seen, 2);
}

#[test]
fn an_upscaler_with_unexpected_io_is_refused() {
    let runtime = common::runtime();
    let demo = common::demo_model();
    // Token ids in: not an image.
    let error = UpscalerSession::open(&runtime, &demo.join("text_encoder")).unwrap_err().to_string();
    assert!(error.contains("upscaler") && error.contains("input_ids") && error.contains("float image"), "{error}");
    // A float image of 4 channels in (the VAE decoder's latents).
    let error = UpscalerSession::open(&runtime, &demo.join("vae_decoder")).unwrap_err().to_string();
    assert!(error.contains("upscaler") && error.contains("latent_sample") && error.contains("RGB"), "{error}");
    // No model at all.
    let dir = tempfile::tempdir().unwrap();
    let error = UpscalerSession::open(&runtime, dir.path()).unwrap_err().to_string();
    assert!(error.contains("model.onnx"), "{error}");
}
