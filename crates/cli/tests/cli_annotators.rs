//! `--preprocess depth|openpose` and `pigment preprocess depth|openpose` as a user runs them, on the annotator
//! fixtures (tests/fixtures/annotators: tiny random Depth Anything and body pose models, made by
//! scripts/fixtures/make_annotator_fixtures.py): the control image written is the reference's (the engine's
//! parity tests state the tolerances), found by folder or in the models folder; bad folders are refused naming them.

mod common;

use std::path::Path;

use common::{assert_refusal, files_in, fixture, parameters, pigment, run_into_empty_folder};

fn grey(path: &Path) -> image::GrayImage {
    image::open(path).unwrap().to_luma8()
}

fn preprocess(kind: &str, picture: &str, extra: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("control.png");
    let mut args = vec!["preprocess", kind, picture, "-o", out.to_str().unwrap(), "--device", "cpu", "--no-cache"];
    args.extend_from_slice(extra);
    (pigment(&args, dir.path()), dir)
}

#[test]
fn pigment_preprocess_depth_writes_the_reference_depth_map() {
    let model = fixture("annotators/depth-anything-tiny");
    let (output, dir) = preprocess("depth", &fixture("images/scene_96x64.png"), &["--annotator-model", &model]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let ours = grey(&dir.path().join("control.png"));
    let want = grey(&common::fixtures().join("annotators/reference/depth/depth_anything_96x64.png"));
    assert_eq!(ours.dimensions(), (96, 64));
    let largest = ours.as_raw().iter().zip(want.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(largest <= 1, "differs from the reference by {largest} levels");
}

#[test]
fn pigment_preprocess_openpose_draws_the_reference_skeletons() {
    let model = fixture("annotators/openpose-tiny");
    let picture = fixture("annotators/reference/openpose/picture_256x384.png");
    let (output, dir) = preprocess("openpose", &picture, &["--annotator-model", &model]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let ours = image::open(dir.path().join("control.png")).unwrap().to_rgb8();
    let want =
        image::open(common::fixtures().join("annotators/reference/openpose/model_256x384.png")).unwrap().to_rgb8();
    let equal = ours.pixels().zip(want.pixels()).filter(|(a, b)| a == b).count() as f64
        / f64::from(ours.width() * ours.height());
    assert!(equal >= 0.995, "only {equal:.4} of the pixels equal the reference drawing");
}

#[test]
fn annotators_are_found_in_the_models_folder() {
    let models = tempfile::tempdir().unwrap();
    let folder = models.path().join("annotators/depth_anything");
    std::fs::create_dir_all(&folder).unwrap();
    for file in ["model.onnx", "preprocessor_config.json", "config.json"] {
        std::fs::copy(common::fixtures().join("annotators/depth-anything-tiny").join(file), folder.join(file)).unwrap();
    }
    let (output, dir) =
        preprocess("depth", &fixture("images/scene_96x64.png"), &["--models-folder", models.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("depth_anything"), "{stderr}");
    assert!(dir.path().join("control.png").is_file());
}

#[test]
fn generate_saves_and_records_the_depth_control_image() {
    let control = format!("{}:{}", fixture("controlnet/tiny-canny"), fixture("images/scene_96x64.png"));
    let annotator = fixture("annotators/depth-anything-tiny");
    let (output, dir, stderr) = run_into_empty_folder(
        &[
            "generate",
            "--control",
            &control,
            "--preprocess",
            "depth",
            "--annotator-model",
            &annotator,
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "2",
            "--seed",
            "5",
        ],
        &["--model", &fixture("models/tiny-sd-control"), "--device", "cpu", "--no-cache"],
    );
    assert!(output.status.success(), "{stderr}");
    let files = files_in(&dir.path().join("out"));
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into()).collect();
    assert_eq!(names, ["00000-5.png", "00000-control-0.png"]);
    let depth = image::open(&files[1]).unwrap().to_rgb8();
    assert_eq!(depth.dimensions(), (64, 64));
    assert!(depth.pixels().any(|p| p.0[0] == 255) && depth.pixels().any(|p| p.0[0] == 0), "a full depth range");
    let unit = parameters(&files[0]).get("ControlNet 0").unwrap().to_string();
    assert!(unit.contains("Module: depth_anything"), "{unit}");
    assert!(stderr.contains("control image 0 (depth_anything)"), "{stderr}");
}

#[test]
fn bad_annotator_folders_are_refused_naming_them() {
    let control = format!("{}:{}", fixture("controlnet/tiny-canny"), fixture("images/scene_64.png"));
    let extra = ["--model", &fixture("models/tiny-sd-control"), "--device", "cpu", "--no-cache"];
    let generate = |preprocess: &'static str, annotator: Option<String>| {
        let mut args: Vec<String> = ["generate", "--control", &control, "--preprocess", preprocess, "--steps", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(folder) = annotator {
            args.extend(["--annotator-model".to_string(), folder]);
        }
        args
    };
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (generate("depth", Some(fixture("annotators/nowhere"))), vec!["annotators/nowhere", "does not exist"]),
        (
            generate("openpose", Some(fixture("annotators/depth-anything-tiny"))),
            vec!["predicted_depth", "depth-anything-tiny"],
        ),
        (generate("depth", Some(fixture("controlnet/tiny-canny"))), vec!["one image input", "tiny-canny"]),
        (generate("openpose", None), vec!["--preprocess openpose", "--annotator-model"]),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refusal(&args, run_into_empty_folder(&args, &extra), &expected);
    }
}
