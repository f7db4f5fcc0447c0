//! Shared by the integration tests: paths into the repository and the one ONNX Runtime a process may have.
#![allow(dead_code)] // each test file uses a different part of this module

use std::path::PathBuf;
use std::sync::OnceLock;

use pigment_engine::runtime::{DeviceChoice, Runtime, RuntimeOptions};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn demo_model() -> PathBuf {
    repo_root().join("models/tiny-sd")
}

pub fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures")
}

pub fn reference(name: &str) -> serde_json::Value {
    let path = fixtures().join("reference").join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reference {} is missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("reference {} is not JSON: {e}", path.display()))
}

/// ONNX Runtime allows one environment per process: the tests of a file share this one (on the CPU, so results
/// do not depend on the machine's GPU).
pub fn runtime() -> Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Runtime::load(&RuntimeOptions { device: DeviceChoice::Cpu, ..RuntimeOptions::default() })
                .expect("ONNX Runtime loads (run `npm run setup` first)")
        })
        .clone()
}

/// (largest per-channel difference, mean absolute difference) between two images, in 8-bit steps.
pub fn difference(ours: &image::RgbImage, reference: &image::RgbImage) -> (i32, f64) {
    assert_eq!(ours.dimensions(), reference.dimensions());
    let mut largest = 0;
    let mut sum = 0u64;
    for (a, b) in ours.as_raw().iter().zip(reference.as_raw()) {
        let d = (*a as i32 - *b as i32).abs();
        largest = largest.max(d);
        sum += d as u64;
    }
    (largest, sum as f64 / ours.as_raw().len() as f64)
}
