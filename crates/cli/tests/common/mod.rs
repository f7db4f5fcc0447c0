//! Shared by the `pigment` integration tests: paths into the repository, running the binary into an empty output
//! folder, and what a refusal must look like.
#![allow(dead_code)] // each test file is its own crate and uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pigment_engine::image::{InfoText, read_png_text};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures")
}

/// A path under tests/fixtures, as a command-line argument.
pub fn fixture(path: &str) -> String {
    fixtures().join(path).to_str().unwrap().to_string()
}

pub fn pigment(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pigment")).args(args).current_dir(cwd).output().expect("pigment runs")
}

/// The files of `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// The A1111 `parameters` a PNG written by `pigment` carries.
pub fn parameters(path: &Path) -> InfoText {
    InfoText::parse(&read_png_text(path, "parameters").unwrap().expect("a parameters chunk")).unwrap()
}

/// Runs `pigment` with `args`, `--output` an empty folder `out` and `extra`, in a fresh folder; returns (output,
/// folder, stderr). No run may panic, whatever its input.
pub fn run_into_empty_folder(args: &[&str], extra: &[&str]) -> (Output, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&["--output", out.to_str().unwrap()]);
    all.extend_from_slice(extra);
    let output = pigment(&all, dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    (output, dir, stderr)
}

/// `run`, the result of [`run_into_empty_folder`] for `args`, is a refusal: a failure with one `error:` line that
/// contains each of `expected`, and no file written.
pub fn assert_refusal(args: &[&str], run: (Output, tempfile::TempDir, String), expected: &[&str]) {
    let (output, dir, stderr) = run;
    assert!(!output.status.success(), "{args:?} should fail; stderr: {stderr}");
    for text in expected {
        assert!(stderr.contains(text), "{args:?}: stderr {stderr:?} should contain {text:?}");
    }
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error:")).count(), 1, "{stderr}");
    assert!(files_in(&dir.path().join("out")).is_empty(), "{args:?} wrote a file");
}
