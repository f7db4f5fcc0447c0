//! The depth preprocessor against the reference (tests/fixtures/annotators, made by
//! scripts/fixtures/make_annotator_fixtures.py): tiny random Depth Anything and DPT models from transformers, the
//! network input made with OpenCV's bicubic, the network run by torch, the depth map post-processed as the
//! ControlNet extension does. Tolerances: network input within 1e-4 (OpenCV's f32 coefficients), network output
//! within 1e-4 of its range (ONNX Runtime against torch), the 8-bit depth map within one level everywhere (the
//! truncation to 8 bits flips where the two runtimes differ in the last bits) and equal on 99% of the pixels.
//! Then the folder errors: missing model, wrong input or output, bad preprocessor_config.json, and cancel.

mod common;

use std::path::PathBuf;

use common::{json_shape, read_f32};
use ndarray::Array4;
use pigment_engine::EngineError;
use pigment_engine::image::control::depth::{depth_control, depth_input, estimate_depth, network_size};
use pigment_engine::model::{AnnotatorKind, DepthConfig, DepthModel};
use pigment_engine::pipeline::{Flow, Progress, Stage};

const INPUT_TOLERANCE: f32 = 1e-4;
const OUTPUT_RELATIVE_TOLERANCE: f32 = 1e-4;
const MIN_EQUAL_PIXELS: f64 = 0.99;

fn annotators() -> PathBuf {
    common::fixtures().join("annotators")
}

fn never_cancel(_: &Progress) -> Flow {
    Flow::Continue
}

#[test]
fn depth_matches_the_reference_at_every_stage() {
    let reference_dir = annotators().join("reference/depth");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference_dir.join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut model = DepthModel::open(&common::runtime(), &annotators().join(case["model"].as_str().unwrap()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let picture =
            image::open(common::fixtures().join("images").join(case["image"].as_str().unwrap())).unwrap().to_rgb8();

        // 1. The network input: size and values.
        let input_shape = json_shape(&case["input_shape"]);
        let config = model.config().clone();
        let size = model
            .fixed_input_size()
            .unwrap_or_else(|| network_size(&config, picture.height() as usize, picture.width() as usize));
        assert_eq!([1, 3, size.0, size.1], input_shape.as_slice(), "{name}: network input size");
        let input = depth_input(&picture, size.0, size.1, config.mean, config.std);
        let want_input = read_f32(&reference_dir.join(format!("{name}_input.f32")), &input_shape);
        let input_diff = input.iter().zip(want_input.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);

        // 2. The network output, fed the reference's own input.
        let want_input: Array4<f32> = want_input.into_dimensionality().unwrap();
        let output = model.predict(&want_input).unwrap();
        let want_output =
            read_f32(&reference_dir.join(format!("{name}_output.f32")), &json_shape(&case["output_shape"]));
        let want_output = want_output.index_axis(ndarray::Axis(0), 0).to_owned();
        assert_eq!(output.shape(), want_output.shape(), "{name}: output shape");
        let range = want_output.iter().copied().fold(f32::MIN, f32::max);
        let output_diff = output.iter().zip(want_output.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / range;

        // 3. The whole preprocessor: the depth map.
        let mut reports = Vec::new();
        let depth = estimate_depth(&mut model, &picture, &mut |p: &Progress| {
            reports.push((p.stage, p.step, p.steps));
            Flow::Continue
        })
        .unwrap();
        let want = image::open(reference_dir.join(case["depth"].as_str().unwrap())).unwrap().to_luma8();
        assert_eq!(depth.dimensions(), want.dimensions(), "{name}: the depth map has the picture's size");
        let max_level_diff = depth.as_raw().iter().zip(want.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        let equal = depth.as_raw().iter().zip(want.as_raw()).filter(|(a, b)| a == b).count() as f64
            / depth.as_raw().len() as f64;
        println!(
            "{name}: input max diff {input_diff:.2e}, output max diff {output_diff:.2e} of its range, depth map: \
             {equal:.4} of pixels equal, max {max_level_diff} level"
        );
        assert!(input_diff <= INPUT_TOLERANCE, "{name}: network input differs by {input_diff}");
        assert!(output_diff <= OUTPUT_RELATIVE_TOLERANCE, "{name}: network output differs by {output_diff}");
        assert!(max_level_diff <= 1, "{name}: depth map differs by {max_level_diff} levels");
        assert!(equal >= MIN_EQUAL_PIXELS, "{name}: only {equal:.4} of the depth map's pixels are equal");
        assert_eq!(reports, [(Stage::Preprocessing, 0, 1), (Stage::Preprocessing, 1, 1)]);
    }
}

#[test]
fn the_folder_configures_the_model() {
    let runtime = common::runtime();
    let model = DepthModel::open(&runtime, &annotators().join("depth-anything-tiny")).unwrap();
    assert_eq!(model.module(), "depth_anything");
    assert_eq!(model.config().size, (42, 42));
    assert_eq!(model.config().multiple_of, 14);
    assert!(model.config().keep_aspect_ratio);
    assert_eq!(model.fixed_input_size(), None);
    let dpt = DepthModel::open(&runtime, &annotators().join("dpt-tiny")).unwrap();
    assert_eq!(dpt.module(), "depth_midas");
    assert_eq!(dpt.config().mean, [0.5; 3]);
    assert_eq!(dpt.fixed_input_size(), Some((64, 64)));

    // Without preprocessor_config.json and config.json: Depth Anything's own values, the module named "depth".
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("depth-bare");
    common::copy_folder_without(
        &annotators().join("depth-anything-tiny"),
        &bare,
        &["preprocessor_config.json", "config.json"],
    );
    let model = DepthModel::open(&runtime, &bare).unwrap();
    assert_eq!(model.config(), &DepthConfig::default());
    assert_eq!(model.module(), "depth");

    // Hugging Face's ONNX layout: onnx/model.onnx.
    let hub = dir.path().join("depth-hub");
    std::fs::create_dir_all(hub.join("onnx")).unwrap();
    std::fs::copy(annotators().join("depth-anything-tiny/model.onnx"), hub.join("onnx/model.onnx")).unwrap();
    DepthModel::open(&runtime, &hub).unwrap();
}

#[test]
fn the_control_image_is_rgb_at_the_generation_size_and_named_for_the_metadata() {
    let mut model = DepthModel::open(&common::runtime(), &annotators().join("depth-anything-tiny")).unwrap();
    let picture = image::open(common::fixtures().join("images/scene_96x64.png")).unwrap().to_rgb8();
    let (control, info) = depth_control(&mut model, &picture, 64, 64, &mut never_cancel).unwrap();
    assert_eq!(control.image.dimensions(), (64, 64));
    assert!(control.image.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    let levels: std::collections::BTreeSet<u8> = control.image.pixels().map(|p| p.0[0]).collect();
    assert!(levels.contains(&0) && levels.contains(&255) && levels.len() > 50, "a full range of depths");
    assert_eq!(info.module, "depth_anything");
    assert_eq!(info.params, [("Preprocessor model".to_string(), "depth-anything-tiny".to_string())]);
}

#[test]
fn cancelling_stops_before_the_model_runs() {
    let mut model = DepthModel::open(&common::runtime(), &annotators().join("depth-anything-tiny")).unwrap();
    let picture = image::open(common::fixtures().join("images/scene_64.png")).unwrap().to_rgb8();
    let mut calls = 0;
    let error = estimate_depth(&mut model, &picture, &mut |_: &Progress| {
        calls += 1;
        Flow::Cancel
    })
    .unwrap_err();
    assert!(matches!(error, EngineError::Cancelled), "{error}");
    assert_eq!(calls, 1);
}

#[test]
fn bad_folders_are_refused_naming_the_folder_and_the_input() {
    let runtime = common::runtime();
    let dir = tempfile::tempdir().unwrap();

    let error = DepthModel::open(&runtime, &dir.path().join("nowhere")).unwrap_err().to_string();
    assert!(error.contains("nowhere") && error.contains("does not exist"), "{error}");

    let empty = dir.path().join("depth-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let error = DepthModel::open(&runtime, &empty).unwrap_err().to_string();
    assert!(error.contains("depth-empty") && error.contains("model.onnx"), "{error}");

    // An upscaler: its output is an RGB image, not a depth map.
    let error = DepthModel::open(&runtime, &common::fixtures().join("models/tiny-esrgan-x4")).unwrap_err().to_string();
    assert!(error.contains("one depth map") && error.contains("tiny-esrgan-x4"), "{error}");

    // A ControlNet: four inputs.
    let error = DepthModel::open(&runtime, &common::fixtures().join("controlnet/tiny-canny")).unwrap_err().to_string();
    assert!(error.contains("one image input") && error.contains("sample") && error.contains("tiny-canny"), "{error}");

    // A broken preprocessor_config.json names the file.
    let broken = dir.path().join("depth-broken");
    common::copy_folder(&annotators().join("depth-anything-tiny"), &broken);
    std::fs::write(broken.join("preprocessor_config.json"), r#"{"size": {"height": 0, "width": 0}}"#).unwrap();
    let error = DepthModel::open(&runtime, &broken).unwrap_err().to_string();
    assert!(error.contains("preprocessor_config.json") && error.contains("must be positive"), "{error}");
    std::fs::write(broken.join("preprocessor_config.json"), r#"{"image_std": [0.2, 0.0, 0.2]}"#).unwrap();
    let error = DepthModel::open(&runtime, &broken).unwrap_err().to_string();
    assert!(error.contains("image_std 0"), "{error}");
    std::fs::write(broken.join("preprocessor_config.json"), "{ not json").unwrap();
    let error = DepthModel::open(&runtime, &broken).unwrap_err().to_string();
    assert!(error.contains("preprocessor_config.json"), "{error}");
}

#[test]
fn annotators_are_found_in_the_models_folder() {
    let dir = tempfile::tempdir().unwrap();
    let error = AnnotatorKind::Depth.find(dir.path()).unwrap_err().to_string();
    assert!(error.contains("annotators") && error.contains("depth"), "{error}");
    let folder = dir.path().join("annotators/depth_anything_v2");
    common::copy_folder(&annotators().join("depth-anything-tiny"), &folder);
    std::fs::create_dir_all(dir.path().join("annotators/depth_empty")).unwrap();
    assert_eq!(AnnotatorKind::Depth.find(dir.path()).unwrap(), folder);
    assert!(AnnotatorKind::Openpose.find(dir.path()).is_err());
    assert_eq!(AnnotatorKind::parse("Depth_Midas"), Some(AnnotatorKind::Depth));
    assert_eq!(AnnotatorKind::parse("openpose"), Some(AnnotatorKind::Openpose));
    assert_eq!(AnnotatorKind::parse("canny"), None);
}
