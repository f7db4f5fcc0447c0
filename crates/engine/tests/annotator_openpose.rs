//! The openpose preprocessor against controlnet_aux 0.0.10's `OpenposeDetector` (tests/fixtures/annotators, made
//! by scripts/fixtures/make_annotator_fixtures.py). Both are fed the same network outputs: maps drawn from a known
//! two-person skeleton, and the outputs of a tiny random-weight body model (openpose-tiny). Stated agreement
//! (measured: everything equal):
//! - the network input within 1e-6 (OpenCV's 8-bit Lanczos-4 is followed in its fixed point, its area filter in
//!   floating point);
//! - the peaks (position and number) and the people (which peak each part is, the number of parts) exactly; scores
//!   within 1e-4 (the maps are resized in f32 as OpenCV, summed in another order);
//! - the drawing: at least 99.9% of the pixels equal (OpenCV's ellipse polygon, outline and fill are followed step
//!   by step; its sine table is rebuilt from sines rounded to 7 decimals, which a rounding tie could move).

mod common;

use std::path::PathBuf;

use common::{json_shape, read_f32};
use ndarray::{Array3, Array4};
use pigment_engine::EngineError;
use pigment_engine::image::control::openpose::{BodyPoses, body_input, decode_body, detect_body, draw_body};
use pigment_engine::model::PoseModel;
use pigment_engine::pipeline::{Flow, Progress, Stage};

const INPUT_TOLERANCE: f32 = 1e-6;
const SCORE_TOLERANCE: f64 = 1e-4;
const MIN_DRAWING_AGREEMENT: f64 = 0.999;

fn annotators() -> PathBuf {
    common::fixtures().join("annotators")
}

fn reference_dir() -> PathBuf {
    annotators().join("reference/openpose")
}

fn cases() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(reference_dir().join("cases.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    cases["cases"].as_array().unwrap().clone()
}

/// The peaks and people must be the reference's; returns a summary line.
fn assert_same_poses(name: &str, ours: &BodyPoses, case: &serde_json::Value) -> String {
    let peaks = case["peaks"].as_array().unwrap();
    assert_eq!(ours.peaks.len(), peaks.len(), "{name}: number of peaks");
    for (peak, want) in ours.peaks.iter().zip(peaks) {
        let want: Vec<f64> = want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!([peak.x as f64, peak.y as f64, peak.id as f64], [want[0], want[1], want[3]], "{name}: peak");
        assert!((peak.score - want[2]).abs() <= SCORE_TOLERANCE, "{name}: peak score {} vs {}", peak.score, want[2]);
    }
    let people = case["people"].as_array().unwrap();
    assert_eq!(ours.people.len(), people.len(), "{name}: number of people");
    for (person, want) in ours.people.iter().zip(people) {
        let parts: Vec<i64> = want["parts"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        let ours_parts: Vec<i64> = person.parts.iter().map(|p| p.map_or(-1, |id| id as i64)).collect();
        assert_eq!(ours_parts, parts, "{name}: parts of a person");
        assert_eq!(person.count as u64, want["count"].as_u64().unwrap(), "{name}: part count");
        let score = want["score"].as_f64().unwrap();
        assert!((person.score - score).abs() <= SCORE_TOLERANCE * score.abs().max(1.0), "{name}: person score");
    }
    format!("{} peaks, {} people", ours.peaks.len(), ours.people.len())
}

fn drawing_agreement(name: &str, ours: &BodyPoses, case: &serde_json::Value, width: u32, height: u32) -> f64 {
    let drawn = draw_body(ours, width, height);
    let want = image::open(reference_dir().join(case["drawing"].as_str().unwrap())).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), want.dimensions(), "{name}: drawing size");
    let equal = drawn.pixels().zip(want.pixels()).filter(|(a, b)| a == b).count();
    let agreement = equal as f64 / f64::from(width * height);
    assert!(agreement >= MIN_DRAWING_AGREEMENT, "{name}: only {agreement:.5} of the drawing's pixels are equal");
    agreement
}

#[test]
fn decoding_and_drawing_match_controlnet_aux_on_the_same_network_outputs() {
    let cases = cases();
    assert_eq!(cases.len(), 4);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let picture = image::open(reference_dir().join(case["image"].as_str().unwrap())).unwrap().to_rgb8();
        let (width, height) = picture.dimensions();

        let (input, layout) = body_input(&picture);
        let want_input =
            read_f32(&reference_dir().join(format!("{name}_input.f32")), &json_shape(&case["input_shape"]));
        assert_eq!(input.shape(), want_input.shape(), "{name}: network input size");
        let input_diff = input.iter().zip(want_input.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        let input_equal =
            input.iter().zip(want_input.iter()).filter(|(a, b)| a == b).count() as f64 / input.len() as f64;
        assert!(input_diff <= INPUT_TOLERANCE, "{name}: network input differs by {input_diff}");

        let pafs: Array3<f32> =
            read_f32(&reference_dir().join(format!("{name}_pafs.f32")), &json_shape(&case["pafs_shape"]))
                .into_dimensionality()
                .unwrap();
        let heatmaps: Array3<f32> =
            read_f32(&reference_dir().join(format!("{name}_heatmaps.f32")), &json_shape(&case["heatmaps_shape"]))
                .into_dimensionality()
                .unwrap();
        let poses = decode_body(pafs.view(), heatmaps.view(), layout, width as usize, height as usize);
        let summary = assert_same_poses(name, &poses, case);
        let agreement = drawing_agreement(name, &poses, case, width, height);
        println!(
            "{name}: input max diff {input_diff:.2e} ({input_equal:.4} equal), {summary}, drawing {agreement:.5} equal"
        );
    }
    let synthetic = cases.iter().find(|c| c["name"] == "synthetic_256x384").unwrap();
    let counts: Vec<u64> =
        synthetic["people"].as_array().unwrap().iter().map(|p| p["count"].as_u64().unwrap()).collect();
    assert_eq!(counts, [18, 15], "the drawn skeletons: one whole, one without its left arm and ear");
}

#[test]
fn the_onnx_body_model_gives_the_reference_outputs_and_poses() {
    let mut model = PoseModel::open(&common::runtime(), &annotators().join("openpose-tiny")).unwrap();
    for case in cases().iter().filter(|c| c["kind"] == "model") {
        let name = case["name"].as_str().unwrap();
        let input: Array4<f32> =
            read_f32(&reference_dir().join(format!("{name}_input.f32")), &json_shape(&case["input_shape"]))
                .into_dimensionality()
                .unwrap();
        let (pafs, heatmaps) = model.predict(&input).unwrap();
        for (what, ours, file, shape_key) in
            [("pafs", &pafs, "pafs", "pafs_shape"), ("heatmaps", &heatmaps, "heatmaps", "heatmaps_shape")]
        {
            let want = read_f32(&reference_dir().join(format!("{name}_{file}.f32")), &json_shape(&case[shape_key]));
            assert_eq!(ours.shape(), want.shape(), "{name}: {what}");
            let diff = ours.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(diff <= 1e-4, "{name}: {what} differ by {diff}");
        }

        // The whole preprocessor from the picture: progress before and after the model run.
        let picture = image::open(reference_dir().join(case["image"].as_str().unwrap())).unwrap().to_rgb8();
        let mut reports = Vec::new();
        let poses = detect_body(&mut model, &picture, &mut |p: &Progress| {
            reports.push((p.stage, p.step, p.steps));
            Flow::Continue
        })
        .unwrap();
        assert_eq!(reports, [(Stage::Preprocessing, 0, 1), (Stage::Preprocessing, 1, 1)]);
        let summary = assert_same_poses(name, &poses, case);
        println!("{name}: from the picture through ONNX Runtime: {summary}");
    }
}

#[test]
fn cancelling_stops_before_the_model_runs() {
    let mut model = PoseModel::open(&common::runtime(), &annotators().join("openpose-tiny")).unwrap();
    let picture = image::open(common::fixtures().join("images/scene_64.png")).unwrap().to_rgb8();
    let error = detect_body(&mut model, &picture, &mut |_: &Progress| Flow::Cancel).unwrap_err();
    assert!(matches!(error, EngineError::Cancelled), "{error}");
}

#[test]
fn models_of_another_kind_are_refused_naming_the_outputs_and_the_folder() {
    let runtime = common::runtime();
    let error = PoseModel::open(&runtime, &annotators().join("depth-anything-tiny")).unwrap_err().to_string();
    assert!(
        error.contains("predicted_depth") && error.contains("[1, 38, h, w]") && error.contains("depth-anything-tiny"),
        "{error}"
    );
    let dir = tempfile::tempdir().unwrap();
    let error = PoseModel::open(&runtime, dir.path()).unwrap_err().to_string();
    assert!(error.contains("model.onnx"), "{error}");
}
