//! What the HTTP layer runs its work through. The server only builds [`Job`]s and reads state; a [`Backend`] owns
//! the model and the one GPU queue. `pigment serve` uses [`crate::LocalBackend`]; the desktop app implements this
//! trait over its own job queue, so API jobs and its own jobs take turns and API images reach its gallery.

use std::time::Instant;

use image::RgbImage;
use pigment_engine::pipeline::{GeneratedImage, Generation};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::error::ApiError;

/// One unit of work, run alone and in submission order.
#[derive(Debug)]
pub enum Job {
    Generate {
        /// The model to run on (an `sd_model_checkpoint` override); `None` keeps the loaded one.
        model: Option<String>,
        /// Boxed: a generation with its pictures is much larger than the other jobs.
        generation: Box<Generation>,
        /// The upscaler model of the hires fix, by its name in [`Backend::upscalers`], when the fix upscales with a
        /// model ([`pigment_engine::pipeline::HiresUpscaler::Model`]).
        hires_upscaler: Option<String>,
    },
    /// Extras: `image` brought to `width` x `height` by `upscaler` (a name from [`Backend::upscalers`]; `None`
    /// is Lanczos).
    Upscale { image: RgbImage, width: u32, height: u32, upscaler: Option<String> },
    /// Loads the model of this title or name from [`Backend::models`] (the `sd_model_checkpoint` option).
    SwitchModel { name: String },
}

#[derive(Debug)]
pub enum JobOutput {
    /// The images made, in order; `interrupted` when an interrupt stopped the job (the images finished before it
    /// are kept, as A1111 returns them).
    Images {
        images: Vec<GeneratedImage>,
        interrupted: bool,
    },
    Upscaled {
        image: RgbImage,
        upscaler: String,
    },
    ModelSwitched,
}

pub type JobResult = Result<JobOutput, ApiError>;

/// The state `/sdapi/v1/progress` reports (A1111's `shared.state`).
#[derive(Debug, Clone, Default)]
pub struct ProgressSnapshot {
    /// Batches of the running job (0 when idle); `job_no` is the current one, from 0.
    pub job_count: usize,
    pub job_no: usize,
    pub sampling_step: usize,
    pub sampling_steps: usize,
    pub interrupted: bool,
    pub skipped: bool,
    /// Jobs waiting behind the running one.
    pub queued: usize,
    /// What the running job does ("txt2img", "img2img", "extras", "load model").
    pub job: String,
    /// When the running job started, and its start as A1111's `%Y%m%d%H%M%S` stamp.
    pub started: Option<Instant>,
    pub job_timestamp: String,
    /// A cheap preview of the current image (latent resolution).
    pub current_image: Option<RgbImage>,
}

/// A model the client may choose with `sd_model_checkpoint`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEntry {
    /// A1111's `title`: what `sd_model_checkpoint` holds.
    pub title: String,
    pub model_name: String,
    pub hash: Option<String>,
    pub filename: String,
}

/// An upscaler the client may name in `upscaler_1` or `hr_upscaler`.
#[derive(Debug, Clone, Serialize)]
pub struct UpscalerEntry {
    pub name: String,
    pub model_path: Option<String>,
    pub scale: Option<f64>,
}

/// The queue behind the API. Every method but [`Backend::submit`]'s wait returns at once (they are called on the
/// server's async threads).
pub trait Backend: Send + Sync + 'static {
    /// Queues `job` after those already queued; the receiver gets its result when it has run. A job whose
    /// receiver was dropped (the client went away) may be skipped.
    fn submit(&self, job: Job) -> oneshot::Receiver<JobResult>;
    /// Stops the running job before its next step (A1111's interrupt); later jobs still run.
    fn interrupt(&self);
    /// Stops the running job's current batch and goes on with its next (A1111's skip).
    fn skip(&self);
    fn progress(&self) -> ProgressSnapshot;
    /// The models `sd_model_checkpoint` may name.
    fn models(&self) -> Vec<ModelEntry>;
    /// The loaded model (or the one the queue will load), as listed by [`Backend::models`].
    fn current_model(&self) -> Option<ModelEntry>;
    /// Upscaler models (besides "None" and "Lanczos", which the server lists itself).
    fn upscalers(&self) -> Vec<UpscalerEntry>;
}
