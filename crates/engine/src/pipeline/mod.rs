//! Generation pipelines. A request is validated before anything runs; progress is reported after every model
//! step and the caller may cancel there; each finished image is handed over at once, so cancelling a long batch
//! never loses the images already made.

mod denoise;
mod guidance;
mod request;
mod txt2img;

use std::time::Duration;

use image::RgbImage;
use serde::Serialize;

pub use request::{GenerateRequest, MAX_BATCH_SIZE, MAX_DIMENSION, MAX_STEPS};
pub use txt2img::txt2img;

use crate::error::Result;
use crate::image::InfoText;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    EncodingPrompt,
    Denoising,
    Decoding,
}

/// Where a generation is. `step` counts model evaluations of the current batch, 1-based.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub stage: Stage,
    pub batch: usize,
    pub batches: usize,
    pub step: usize,
    pub steps: usize,
    pub elapsed: Duration,
}

/// What the caller answers to a progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Cancel,
}

#[derive(Debug, Clone)]
pub struct GeneratedImage {
    pub image: RgbImage,
    pub seed: u64,
    /// Index of the image in the whole request (batch k, image i: k * batch_size + i).
    pub index: usize,
    pub infotext: InfoText,
}

/// Receives what a generation produces while it runs.
pub trait GenerationObserver {
    /// Called at the start of each stage and after every model step; returning [`Control::Cancel`] stops the
    /// generation with [`crate::EngineError::Cancelled`] before the next step.
    fn progress(&mut self, progress: &Progress) -> Control;
    /// Called once per finished image, in order; an error stops the generation and is returned.
    fn image(&mut self, image: GeneratedImage) -> Result<()>;
}

/// Where the time went, for `pigment bench` and `--json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub text_encoder: Duration,
    /// Time inside the UNet's `Session::run`, all calls together.
    pub unet: Duration,
    pub unet_calls: usize,
    /// The whole denoising loop: UNet plus everything around it (scaling, guidance, sampler step, noise).
    pub denoising_loop: Duration,
    pub vae_decode: Duration,
    pub total: Duration,
}

impl Timings {
    /// The share of the denoising loop spent outside ONNX Runtime.
    pub fn loop_overhead_fraction(&self) -> f64 {
        let total = self.denoising_loop.as_secs_f64();
        if total == 0.0 { 0.0 } else { (total - self.unet.as_secs_f64()).max(0.0) / total }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GenerateSummary {
    pub seeds: Vec<u64>,
    pub timings: Timings,
}
