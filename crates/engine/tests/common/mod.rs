//! Shared by the integration tests: paths into the repository, the one ONNX Runtime a process may have, the models
//! and fixture images they load, an observer that keeps what a generation reports, and image comparisons.
#![allow(dead_code)] // each test file is its own crate and uses a different part of this module

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::RgbImage;
use pigment_engine::Result;
use pigment_engine::model::{LoadedModel, ResidualKind};
use pigment_engine::pipeline::{
    ControlImage, ControlSpec, ControlUnitSpec, Flow, GenerateRequest, GenerateSummary, GeneratedImage, Generation,
    GenerationObserver, Preprocessing, Progress, Resources, Stage, generate,
};
use pigment_engine::runtime::{DeviceChoice, Runtime, RuntimeOptions};
use pigment_engine::schedulers::parse_sampler;

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

/// A copy of folder `from` in `to`.
pub fn copy_folder(from: &Path, to: &Path) {
    copy_folder_without(from, to, &[]);
}

/// A copy of folder `from` in `to` (links followed), without the entries of `from` named in `leave_out`.
pub fn copy_folder_without(from: &Path, to: &Path, leave_out: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if leave_out.iter().any(|name| entry.file_name() == *name) {
            continue;
        }
        let (path, target) = (entry.path(), to.join(entry.file_name()));
        if path.is_dir() {
            copy_folder(&path, &target);
        } else {
            std::fs::copy(&path, target).unwrap();
        }
    }
}

/// A model folder loaded on [`runtime`].
pub fn load_model(folder: &Path) -> LoadedModel {
    LoadedModel::open(&runtime(), folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
}

/// The demo model (models/tiny-sd) loaded on [`runtime`].
pub fn load_demo_model() -> LoadedModel {
    load_model(&demo_model())
}

/// The demo model's twin with residual UNet exports for ControlNets and adapters.
pub fn control_model() -> PathBuf {
    fixtures().join("models/tiny-sd-control")
}

/// A unit of `kind` with the model in `folder` and the defaults: weight 1, active for every step, no preprocessor.
pub fn control_unit(kind: ResidualKind, folder: PathBuf, image: ControlImage) -> ControlUnitSpec {
    ControlUnitSpec {
        kind,
        model: folder,
        image,
        preprocessing: Preprocessing::default(),
        weight: 1.0,
        start: 0.0,
        end: 1.0,
        annotation: None,
    }
}

/// A unit of the ControlNet `name` from tests/fixtures/controlnet.
pub fn controlnet_unit(name: &str, image: ControlImage) -> ControlUnitSpec {
    control_unit(ResidualKind::ControlNet, fixtures().join("controlnet").join(name), image)
}

/// A unit of the adapter `name` from tests/fixtures/adapter.
pub fn adapter_unit(name: &str, image: ControlImage) -> ControlUnitSpec {
    control_unit(ResidualKind::Adapter, fixtures().join("adapter").join(name), image)
}

/// `units`, with the other settings at their defaults.
pub fn control_spec(units: Vec<ControlUnitSpec>) -> ControlSpec {
    ControlSpec { units, ..ControlSpec::default() }
}

/// Runs `generation` on `model` alone: control models opened for it, no upscaler model.
pub fn run(
    model: &mut LoadedModel,
    generation: &Generation,
    observer: &mut dyn GenerationObserver,
) -> Result<GenerateSummary> {
    generate(Resources::new(model), generation, observer)
}

/// Text to image of `params` on `model`.
pub fn txt2img(
    model: &mut LoadedModel,
    params: &GenerateRequest,
    observer: &mut dyn GenerationObserver,
) -> Result<GenerateSummary> {
    run(model, &Generation::text(params.clone()), observer)
}

/// An image under tests/fixtures, as RGB.
pub fn fixture_image(path: &str) -> RgbImage {
    let path = fixtures().join(path);
    image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8()
}

/// The request a reference case (made by the scripts in scripts/fixtures) records.
pub fn case_request(case: &serde_json::Value) -> GenerateRequest {
    let (sampler, schedule) = parse_sampler(case["sampler"].as_str().unwrap()).unwrap();
    GenerateRequest {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative_prompt"].as_str().unwrap().into(),
        seed: Some(case["seed"].as_u64().unwrap()),
        steps: case["steps"].as_u64().unwrap() as usize,
        cfg_scale: case["cfg"].as_f64().unwrap() as f32,
        sampler,
        schedule,
        width: case["width"].as_u64().unwrap() as u32,
        height: case["height"].as_u64().unwrap() as u32,
        // Only the cases that make a batch record its size.
        batch_size: case["batch_size"].as_u64().unwrap_or(1) as usize,
        ..GenerateRequest::default()
    }
}

/// Keeps what a generation reports: its images, its warnings and the stage of each progress report.
#[derive(Default)]
pub struct Collect {
    pub images: Vec<GeneratedImage>,
    pub warnings: Vec<String>,
    pub stages: Vec<Stage>,
}

impl Collect {
    /// The pictures alone, in the order they came.
    pub fn pictures(&self) -> Vec<&RgbImage> {
        self.images.iter().map(|generated| &generated.image).collect()
    }
}

impl GenerationObserver for Collect {
    fn progress(&mut self, progress: &Progress) -> Flow {
        self.stages.push(progress.stage);
        Flow::Continue
    }
    fn image(&mut self, image: GeneratedImage) -> Result<()> {
        self.images.push(image);
        Ok(())
    }
    fn warning(&mut self, message: &str) {
        self.warnings.push(message.to_string());
    }
}

/// (largest per-channel difference, mean absolute difference) between two images, in 8-bit steps.
pub fn difference(ours: &RgbImage, reference: &RgbImage) -> (i32, f64) {
    difference_where(ours, reference, |_, _| true)
}

/// (largest per-channel difference, mean absolute difference) over the pixels `include` selects, in 8-bit steps.
pub fn difference_where(ours: &RgbImage, reference: &RgbImage, include: impl Fn(u32, u32) -> bool) -> (i32, f64) {
    assert_eq!(ours.dimensions(), reference.dimensions());
    let (mut largest, mut sum, mut count) = (0, 0u64, 0u64);
    for (x, y, pixel) in ours.enumerate_pixels() {
        if !include(x, y) {
            continue;
        }
        for (a, b) in pixel.0.iter().zip(reference.get_pixel(x, y).0) {
            let d = (*a as i32 - b as i32).abs();
            largest = largest.max(d);
            sum += d as u64;
            count += 1;
        }
    }
    (largest, sum as f64 / count.max(1) as f64)
}

/// A reference array written by a fixture script: little-endian f32 values of `shape`.
pub fn read_f32(path: &Path, shape: &[usize]) -> ndarray::ArrayD<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), values).unwrap()
}

/// A shape as a reference's JSON lists it.
pub fn json_shape(value: &serde_json::Value) -> Vec<usize> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect()
}
