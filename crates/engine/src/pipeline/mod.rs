//! Generation: one entry point, [`generate`], over a plain-data [`Generation`] and the loaded [`Resources`]; the
//! mode follows from the generation's [`Source`]. Modes are made of the stages in `run.rs` (prompt encoding, latent
//! preparation, the denoising loop with its per-step hook, decoding). A generation is validated before anything
//! runs; progress is reported after every model step and the caller may cancel there; each finished image is
//! handed over at once, so cancelling a long batch never loses the images already made.

mod conditioning;
mod control;
mod control_spec;
mod denoise;
mod generation;
mod guidance;
mod hires;
mod img2img;
mod inpaint;
mod request;
mod run;
mod txt2img;
mod upscale;
mod vae;

use std::time::Duration;

use image::RgbImage;
use serde::Serialize;

pub use conditioning::{ScheduledConditioning, encode_texts};
pub use control::{MAX_CONTROL_WEIGHT, check_adapter_values, check_controlnet_values};
pub use control_spec::{Annotator, ControlModels, ControlSpec, ControlUnitSpec, PendingAnnotation};
pub use generation::{Generation, Resources, Source, generate};
pub use hires::{DEFAULT_HIRES_STRENGTH, HiresFix, HiresUpscaler};
pub use img2img::{DEFAULT_IMG2IMG_STRENGTH, ImageSource};
pub use inpaint::{
    DEFAULT_MASK_BLUR, DEFAULT_ONLY_MASKED_PADDING, DEFAULT_OUTPAINT_STRENGTH, InpaintArea, InpaintSource,
    MAX_MASK_BLUR, MaskedContent, OutpaintSource,
};
pub use request::{GenerateRequest, MAX_BATCH_SIZE, MAX_DIMENSION, MAX_STEPS};
pub use upscale::{UpscaleTiling, upscale};
pub use vae::{VaeTiling, VaeTilingMode, decode_latents};

pub use crate::image::control::{ControlImage, Preprocessing};
pub use crate::progress::{Flow, Progress, Stage};

use crate::error::Result;
use crate::image::InfoText;

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
    /// Called at the start of each stage and after every model step; returning [`Flow::Cancel`] stops the
    /// generation with [`crate::EngineError::Cancelled`] before the next step.
    fn progress(&mut self, progress: &Progress) -> Flow;
    /// Called once per finished image, in order; an error stops the generation and is returned.
    fn image(&mut self, image: GeneratedImage) -> Result<()>;
    /// Called after every denoising step, before [`GenerationObserver::progress`], with the batch's latents
    /// (`[batch, 4, height / 8, width / 8]`, as the sampler holds them) for a live preview. Does nothing unless
    /// the observer wants previews.
    fn preview(&mut self, _step: usize, _steps: usize, _latents: &ndarray::ArrayD<f32>) {}
    /// Called when the cancel signal stopped a model run of the current batch: answering [`Flow::Skip`] (after
    /// clearing the signal) drops that batch and the generation goes on with the next; anything else ends it with
    /// [`crate::EngineError::Cancelled`].
    fn run_stopped(&mut self) -> Flow {
        Flow::Cancel
    }
    /// Called with each warning about the request that does not stop it (an unknown embedding named in the
    /// prompt), once per generation, before the first step.
    fn warning(&mut self, _message: &str) {}
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
