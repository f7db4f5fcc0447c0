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
