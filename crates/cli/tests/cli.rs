//! The `pigment` binary as a user runs it: real ONNX Runtime, the demo model, real files. Every bad input ends
//! with one readable line on stderr, a non-zero exit code, no panic and no file written.

mod common;

use std::path::Path;
use std::process::Command;

use common::{files_in, pigment, repo_root};

const FAST: &[&str] = &["--width", "64", "--height", "64", "--steps", "3", "--device", "cpu"];

/// Runs `generate` with FAST settings plus `extra` into an empty folder and expects a refusal containing `expected`.
fn assert_refused(extra: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut args = vec!["generate", "--prompt", "a cat", "--output", out.to_str().unwrap()];
    // FAST's settings, except those `extra` gives (clap refuses an option twice).
    for pair in FAST.chunks(2) {
        if !extra.contains(&pair[0]) {
            args.extend_from_slice(pair);
        }
    }
    args.extend_from_slice(extra);
    let output = pigment(&args, dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{extra:?} should fail; stderr: {stderr}");
    assert!(stderr.contains(expected), "{extra:?}: stderr {stderr:?} should contain {expected:?}");
    assert!(!stderr.contains("panicked"), "{extra:?} panicked: {stderr}");
    assert!(files_in(&out).is_empty(), "{extra:?} wrote {:?}", files_in(&out));
}

#[test]
fn generate_writes_a_png_with_a1111_parameters_and_a_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "generate",
        "--prompt",
        "a photo of a cat",
        "--negative-prompt",
        "blurry",
        "--seed",
        "42",
        "--sampler",
        "DPM++ 2M Karras",
        "--batch-size",
        "2",
        "--json",
        "--output",
        ".",
    ];
    args.extend_from_slice(FAST);
    let output = pigment(&args, dir.path());
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    assert_eq!(summary["seeds"], serde_json::json!([42, 43]));
    let files = summary["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert!(summary["timings_ms"]["unet_calls"].as_u64().unwrap() >= 3);
    let first = dir.path().join(files[0].as_str().unwrap());
    assert!(first.ends_with("00000-42.png"), "{}", first.display());
    let text = pigment_engine::image::read_png_text(&first, "parameters").unwrap().expect("a parameters chunk");
    let info = pigment_engine::image::InfoText::parse(&text).unwrap();
    assert_eq!(info.prompt, "a photo of a cat");
    assert_eq!(info.negative_prompt, "blurry");
    assert_eq!(info.get("Seed"), Some("42"));
    assert_eq!(info.get("Sampler"), Some("DPM++ 2M"));
    assert_eq!(info.get("Schedule type"), Some("Karras"));
    assert_eq!(info.get("Steps"), Some("3"));
    assert_eq!(info.get("Model"), Some("tiny-sd"));
    assert_eq!(image::open(&first).unwrap().to_rgb8().dimensions(), (64, 64));
}

#[test]
fn the_same_seed_gives_the_same_image_and_an_empty_prompt_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.png", "b.png"] {
        let mut args = vec!["generate", "--prompt", "", "--seed", "7", "--output", name];
        args.extend_from_slice(FAST);
        let output = pigment(&args, dir.path());
        assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    }
    let a = image::open(dir.path().join("a.png")).unwrap().to_rgb8();
    let b = image::open(dir.path().join("b.png")).unwrap().to_rgb8();
    assert_eq!(a, b);
}

#[test]
fn bad_sizes_steps_and_cfg_are_refused_with_their_values() {
    assert_refused(&["--width", "100"], "invalid width: 100");
    assert_refused(&["--height", "4104"], "invalid height: 4104");
    assert_refused(&["--steps", "0"], "invalid steps: 0");
    assert_refused(&["--steps", "1001"], "invalid steps: 1001");
    assert_refused(&["--cfg", "-2"], "invalid cfg scale: -2");
    assert_refused(&["--cfg", "lots"], "invalid cfg scale: lots");
    assert_refused(&["--seed", "abc"], "invalid seed: abc");
}

#[test]
fn an_unknown_sampler_lists_the_known_ones() {
    assert_refused(&["--sampler", "Euler b"], "unknown sampler \"Euler b\"; known samplers:");
    assert_refused(&["--sampler", "Euler b"], "DPM++ 2M Karras");
}

#[test]
fn broken_model_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_folder(&repo_root().join("models/tiny-sd"), &model);
    std::fs::remove_dir_all(model.join("vae_decoder")).unwrap();
    assert_refused(&["--model", model.to_str().unwrap()], "has no vae_decoder");

    copy_folder(&repo_root().join("models/tiny-sd"), &model);
    let unet = model.join("unet/model.onnx");
    let bytes = std::fs::read(&unet).unwrap();
    std::fs::write(&unet, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&["--model", model.to_str().unwrap()], "unet/model.onnx could not be loaded");

    std::fs::write(&unet, "<html>not a model</html>").unwrap();
    assert_refused(&["--model", model.to_str().unwrap()], "does not start like an ONNX model");

    let mismatch = repo_root().join("tests/fixtures/models/tiny-sd-mismatch");
    assert_refused(&["--model", mismatch.to_str().unwrap()], "encoder_hidden_states 48 wide");
    assert_refused(&["--model", "/no/such/model"], "model folder /no/such/model does not exist");
}

#[test]
fn output_folders_that_do_not_exist_or_cannot_be_written_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let mut args = vec!["generate", "--prompt", "a cat", "--output", missing.to_str().unwrap()];
    args.extend_from_slice(FAST);
    let output = pigment(&args, dir.path());
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
    assert!(!missing.exists());

    // /proc refuses new files even to root, which chmod-based checks cannot do when the tests run as root.
    if cfg!(target_os = "linux") {
        let mut args = vec!["generate", "--prompt", "a cat", "--output", "/proc"];
        args.extend_from_slice(FAST);
        let output = pigment(&args, dir.path());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains("output folder /proc cannot be written"), "{stderr}");
    }
}

#[test]
fn models_inspect_prints_the_components_and_their_inputs() {
    let demo = repo_root().join("models/tiny-sd");
    let output = pigment(&["models", "inspect", demo.to_str().unwrap(), "--device", "cpu"], &repo_root());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for expected in [
        "tiny-sd",
        "input_ids int64",
        "timestep float32",
        "external weights",
        "encoder_hidden_states float32[?, ?, 32]",
        "CPU",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing from:\n{stdout}");
    }
    let output = pigment(&["models", "inspect", demo.to_str().unwrap(), "--json", "--device", "cpu"], &repo_root());
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(info["unet_in_channels"], 4);
}

#[test]
fn samplers_lists_a1111_names() {
    let output = pigment(&["samplers"], &repo_root());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for name in ["Euler a", "Euler", "DDIM", "DPM++ 2M", "DPM++ 2M Karras"] {
        assert!(stdout.lines().any(|line| line == name), "{name} missing from {stdout}");
    }
}

#[test]
fn a_missing_onnxruntime_library_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pigment"))
        .args(["generate", "--prompt", "x", "--output", "."])
        .args(FAST)
        .env("ORT_DYLIB_PATH", "/no/such/libonnxruntime.so")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("ONNX Runtime library not found") && stderr.contains("npm run setup"), "{stderr}");
    assert!(files_in(dir.path()).is_empty());
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn cuda_requested_without_cuda_falls_back_to_the_cpu_and_says_why() {
    let output = pigment(&["devices", "--device", "cuda"], &repo_root());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("memory"), "{stdout}");
    if !stdout.contains("runs on    CUDA") {
        // This machine has no CUDA: the report names the provider that runs and why CUDA does not.
        assert!(stdout.contains("runs on    CPU; CUDA unavailable: "), "{stdout}");
        assert!(stdout.contains("precision  fp32 on the CPU"), "{stdout}");
    }
    let generated = tempfile::tempdir().unwrap();
    let mut args = vec!["generate", "--prompt", "x", "--output", "."];
    args.extend_from_slice(&FAST[..FAST.len() - 2]);
    args.extend_from_slice(&["--device", "cuda", "--json"]);
    let output = pigment(&args, generated.path());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(summary["execution_provider"].as_str().unwrap().starts_with("CPU") || stdout.contains("runs on    CUDA"));
}
