//! `--control`, `--adapter`, `--preprocess` and `pigment preprocess` as a user runs them: real ONNX Runtime, the
//! ControlNet fixtures (tests/fixtures/controlnet, adapter, models/tiny-sd-control), real files. Bad input ends
//! with one `error:` line naming the flag and the value, a non-zero exit code and no file written.

mod common;

use std::process::{Command, Output};

use common::{assert_refusal, files_in, fixture, parameters, repo_root, run_into_empty_folder};

/// Runs `pigment` with `args` (plus the control model unless `args` name one, CPU, no cache) into an empty output
/// folder.
fn run(args: &[&str]) -> (Output, tempfile::TempDir, String) {
    let model = fixture("models/tiny-sd-control");
    let mut extra = vec!["--device", "cpu", "--no-cache"];
    if !args.contains(&"--model") {
        extra.extend_from_slice(&["--model", &model]);
    }
    run_into_empty_folder(args, &extra)
}

fn rgb(path: &str) -> image::RgbImage {
    image::open(path).unwrap().to_rgb8()
}

fn assert_refused(args: &[&str], expected: &[&str]) {
    assert_refusal(args, run(args), expected);
}

const REFERENCE_CASE: &[&str] =
    &["--prompt", "a house", "--sampler", "euler", "--steps", "8", "--cfg", "7.5", "--seed", "31"];

#[test]
fn generate_with_a_control_image_as_it_is_matches_diffusers() {
    let control = format!("{}:{}", fixture("controlnet/tiny-canny"), fixture("reference/controlnet/canny_64_rgb.png"));
    let mut args = vec!["generate", "--control", &control, "--width", "64", "--height", "64", "--json"];
    args.extend_from_slice(REFERENCE_CASE);
    let (output, dir, stderr) = run(&args);
    assert!(output.status.success(), "{stderr}");
    let files = files_in(&dir.path().join("out"));
    assert_eq!(files.len(), 1, "no preprocessing: only the result is written ({files:?})");
    let ours = rgb(files[0].to_str().unwrap());
    let reference = rgb(&fixture("reference/controlnet/canny_euler.png"));
    let largest = ours.as_raw().iter().zip(reference.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(largest <= 3, "differs from diffusers by {largest}/255");
    let unit = parameters(&files[0]).control_units().remove(0);
    assert_eq!(unit[0], ("Module".into(), "none".into()));
    assert_eq!(unit[1], ("Model".into(), "tiny-canny".into()));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["control_images"][0]["module"], "none");
    assert!(summary["control_images"][0]["saved"].is_null());
}

#[test]
fn the_preprocessed_control_image_is_saved_next_to_the_result_and_recorded() {
    let control = format!("{}:{}:0.8:0:0.6", fixture("controlnet/tiny-canny"), fixture("images/scene_64.png"));
    let second = format!("{}:{}:0.6:0.25:1", fixture("controlnet/tiny-scribble"), fixture("images/scene_64.png"));
    let (output, dir, stderr) = run(&[
        "generate",
        "--control",
        &control,
        "--control",
        &second,
        "--preprocess",
        "canny",
        "--canny-low",
        "100",
        "--canny-high",
        "200",
        "--width",
        "64",
        "--height",
        "64",
        "--steps",
        "4",
        "--seed",
        "7",
        "--json",
    ]);
    assert!(output.status.success(), "{stderr}");
    let files = files_in(&dir.path().join("out"));
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into()).collect();
    assert_eq!(names, ["00000-7.png", "00000-control-0.png", "00000-control-1.png"]);
    // The saved control image is OpenCV's Canny of the picture.
    assert_eq!(rgb(files[1].to_str().unwrap()), rgb(&fixture("reference/controlnet/canny_64_rgb.png")));
    assert!(stderr.contains("control image 0 (canny)"), "{stderr}");
    let info = parameters(&files[0]);
    let units = info.control_units();
    assert_eq!(units.len(), 2);
    let field = |unit: &Vec<(String, String)>, key: &str| unit.iter().find(|(k, _)| k == key).unwrap().1.clone();
    assert_eq!(field(&units[0], "Module"), "canny");
    assert_eq!(field(&units[0], "Threshold A"), "100");
    assert_eq!(field(&units[0], "Weight"), "0.8");
    assert_eq!(field(&units[0], "Guidance End"), "0.6");
    assert_eq!(field(&units[1], "Model"), "tiny-scribble");
    assert_eq!(field(&units[1], "Guidance Start"), "0.25");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["control_images"][1]["saved"].as_str().unwrap(), files[2].to_str().unwrap());
}

#[test]
fn img2img_inpaint_and_adapters_take_control() {
    let control = format!("{}:{}", fixture("controlnet/tiny-canny"), fixture("reference/controlnet/canny_64_rgb.png"));
    let image = fixture("images/scene_64.png");
    let mask = fixture("images/mask_64.png");
    for args in [
        vec!["img2img", "--image", &image, "--control", &control, "--guess-mode"],
        vec!["inpaint", "--image", &image, "--mask", &mask, "--control", &control],
    ] {
        let mut all = args.clone();
        all.extend_from_slice(&["--steps", "4", "--seed", "3", "--prompt", "a house"]);
        let (output, dir, stderr) = run(&all);
        assert!(output.status.success(), "{args:?}: {stderr}");
        let files = files_in(&dir.path().join("out"));
        assert_eq!(files.len(), 1);
        assert!(parameters(&files[0]).get("ControlNet 0").unwrap().contains("Model: tiny-canny"));
    }
    let adapter =
        format!("{}:{}:0.8", fixture("adapter/tiny-adapter"), fixture("reference/controlnet/canny_64_rgb.png"));
    let (output, dir, stderr) = run(&[
        "generate",
        "--adapter",
        &adapter,
        "--adapter-factor",
        "0.5",
        "--width",
        "64",
        "--height",
        "64",
        "--steps",
        "4",
        "--seed",
        "3",
    ]);
    assert!(output.status.success(), "{stderr}");
    let files = files_in(&dir.path().join("out"));
    let unit = parameters(&files[0]).get("ControlNet 0").unwrap().to_string();
    assert!(unit.contains("Model: tiny-adapter") && unit.contains("Weight: 0.8") && unit.contains("Guidance End: 0.5"));
}

#[test]
fn pigment_preprocess_canny_writes_opencvs_edges() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("edges.png");
    let output = Command::new(env!("CARGO_BIN_EXE_pigment"))
        .args(["preprocess", "canny", &fixture("images/scene_64.png"), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(rgb(out.to_str().unwrap()), rgb(&fixture("reference/controlnet/canny_64_rgb.png")));
}

#[test]
fn bad_control_values_are_refused_naming_the_flag_and_value() {
    let canny = fixture("controlnet/tiny-canny");
    let image = fixture("images/scene_64.png");
    let with = |rest: &str| format!("{canny}:{image}{rest}");
    let size = ["--width", "64", "--height", "64", "--steps", "2"];
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec!["--control".into(), "just-a-model".into()], vec!["--control", "just-a-model", "MODEL:IMAGE"]),
        (vec!["--control".into(), with(":strong")], vec!["--control", "weight \"strong\" is not a number"]),
        (vec!["--control".into(), with(":1:0.8:0.2")], vec!["--control", "control start: 0.8"]),
        (vec!["--control".into(), with(":1:0:1.5")], vec!["--control", "control end: 1.5"]),
        (vec!["--control".into(), with(":-1")], vec!["--control", "control weight: -1"]),
        (vec!["--adapter".into(), with(":1:2")], vec!["--adapter", "MODEL:IMAGE:WEIGHT"]),
        (vec!["--control".into(), with(""), "--preprocess".into(), "depth".into()], vec!["--preprocess", "depth"]),
        (
            vec![
                "--control".into(),
                with(""),
                "--preprocess".into(),
                "canny".into(),
                "--canny-high".into(),
                "300".into(),
            ],
            vec!["canny high: 300"],
        ),
        (
            vec!["--control".into(), with(""), "--adapter-factor".into(), "2".into()],
            vec!["adapter conditioning factor: 2"],
        ),
        (vec!["--control".into(), format!("{canny}:missing.png")], vec!["missing.png"]),
        (vec!["--control".into(), format!("{}:{image}", fixture("controlnet/none"))], vec!["controlnet/none"]),
        (
            vec!["--control".into(), format!("{}:{image}", fixture("controlnet/tiny-wide"))],
            vec!["ControlNet tiny-wide", "48 wide", "32 wide"],
        ),
    ];
    for (flags, expected) in cases {
        let mut args: Vec<&str> = vec!["generate"];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(&size);
        assert_refused(&args, &expected);
    }
    // The demo model has no unet_controlnet/.
    let demo = repo_root().join("models/tiny-sd");
    let control = with("");
    assert_refused(
        &["generate", "--model", demo.to_str().unwrap(), "--control", &control, "--width", "64", "--height", "64"],
        &["unet_controlnet/model.onnx", "down_block_{i}_additional_residual"],
    );
}
