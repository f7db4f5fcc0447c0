//! Upscaler models: ESRGAN-family networks (ESRGAN, Real-ESRGAN, 4x-UltraSharp, ...) exported to ONNX. A folder
//! holding `model.onnx` (the layout of a ControlNet folder), or the `.onnx` file itself.
//!
//! The network takes one RGB image `[1, 3, h, w]` in [0, 1] and returns `[1, 3, h * s, w * s]` in [0, 1], as
//! Real-ESRGAN's inference code feeds it. Names and element types are read from the model; the factor `s` is
//! measured once at load time by running a small probe, which also refuses models of another shape.

use std::path::{Path, PathBuf};

use ndarray::{Array4, ArrayD};

use super::folder::{ComponentFiles, folder_name};
use super::io::{self, TensorSpec};
use super::sessions::ComponentSession;
use crate::error::{EngineError, Result};
use crate::runtime::Runtime;

const COMPONENT: &str = "upscaler";
/// Side of the probe image when the model does not fix its input size: small enough to cost nothing, large enough
/// for every ESRGAN variant (Real-ESRGAN x2 unshuffles by 2, x1 by 4).
const PROBE_SIDE: usize = 16;
/// Factors accepted from the probe (ESRGAN-family models are x1 to x8).
const MAX_SCALE: usize = 8;

pub struct UpscalerSession {
    session: ComponentSession,
    input: TensorSpec,
    output: String,
    scale: u32,
    name: String,
    path: PathBuf,
}

impl std::fmt::Debug for UpscalerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpscalerSession").field("name", &self.name).field("scale", &self.scale).finish()
    }
}

impl UpscalerSession {
    /// Loads the upscaler at `path`: a folder with `model.onnx`, or an `.onnx` file.
    pub fn open(runtime: &Runtime, path: &Path) -> Result<UpscalerSession> {
        let model = if path.is_dir() { path.join("model.onnx") } else { path.to_path_buf() };
        if !model.is_file() {
            return Err(EngineError::ReadFile {
                path: model,
                reason: "no upscaler model here (expected a folder with model.onnx, or an .onnx file)".into(),
            });
        }
        let size = std::fs::metadata(&model)
            .map_err(|e| EngineError::ReadFile { path: model.clone(), reason: e.to_string() })?
            .len();
        let name = folder_name(if path.is_dir() { path } else { path.parent().unwrap_or(path) });
        let files = ComponentFiles { model: model.clone(), external_data: Vec::new(), size };
        let session = ComponentSession::load(runtime, COMPONENT, &files)?;
        let input = io::single_rgb_image(COMPONENT, &session.inputs, "an upscaler")?;
        let output = session.first_output()?.clone();
        io::check_rgb_image(COMPONENT, &output, "output")?;
        let mut upscaler = UpscalerSession { output: output.name, session, input, scale: 1, name, path: model };
        upscaler.scale = upscaler.measure_scale()?;
        Ok(upscaler)
    }

    /// The model's factor (2 for an x2 model, 4 for an x4).
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The name A1111 would show: the folder's (or the file's folder's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model's own tile size when it fixes its input's height and width.
    pub fn fixed_input_size(&self) -> Option<(usize, usize)> {
        Some((self.input.fixed_dim(2)?, self.input.fixed_dim(3)?))
    }

    /// Runs on `[1, 3, h, w]` in [0, 1]; returns `[1, 3, h * scale, w * scale]`.
    pub(crate) fn run(&mut self, tile: &Array4<f32>) -> Result<ArrayD<f32>> {
        let value = io::float_input(COMPONENT, &self.input, tile.view().into_dyn())?;
        let output = self.output.clone();
        self.session.run(vec![(self.input.name.clone(), value)], &output)
    }

    fn measure_scale(&mut self) -> Result<u32> {
        let (height, width) = self.fixed_input_size().unwrap_or((PROBE_SIDE, PROBE_SIDE));
        let probe = Array4::from_elem((1, 3, height, width), 0.5f32);
        let out = self.run(&probe)?;
        let shape = out.shape().to_vec();
        let scale = shape.get(2).map_or(0, |h| h / height);
        let fits = shape.len() == 4
            && shape[0] == 1
            && shape[1] == 3
            && (1..=MAX_SCALE).contains(&scale)
            && shape[2] == height * scale
            && shape[3] == width * scale;
        if !fits {
            return Err(unexpected_io(
                &self.output,
                format!(
                    "for a [1, 3, {height}, {width}] image the model returned {shape:?}; an upscaler returns \
                     [1, 3, {height}s, {width}s] for a whole factor s from 1 to {MAX_SCALE}"
                ),
            ));
        }
        Ok(scale as u32)
    }
}

fn unexpected_io(name: &str, detail: String) -> EngineError {
    EngineError::UnsupportedModelIo { component: COMPONENT, name: name.to_string(), detail }
}
