//! The vocabulary of progress and cancel that every long operation speaks (generation, annotators, upscaling,
//! the fp16 conversion): where it is ([`Progress`], [`Stage`]), what the caller answers ([`Flow`]), and the signal
//! another thread sets to stop a model run while it runs ([`CancelSignal`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    EncodingPrompt,
    /// The VAE encoding the input picture (img2img, inpainting, hires fix); `step` counts tiles when tiled.
    EncodingImage,
    Denoising,
    /// `step` counts tiles when the VAE decodes in tiles.
    Decoding,
    /// An upscaler model's tiles (`step` of `steps`, all passes together).
    Upscaling,
    /// An annotator model (depth, pose) making a control image.
    Preprocessing,
}

/// Where a long operation is. `step` counts model evaluations of the current batch, 1-based.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub stage: Stage,
    pub batch: usize,
    pub batches: usize,
    pub step: usize,
    pub steps: usize,
    pub elapsed: Duration,
}

/// What the caller answers to a progress report: go on, stop before the next model run, or (A1111's "skip") drop
/// the current batch of a generation and go on with the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Cancel,
    /// In a generation's batch: that batch ends without its remaining images and the next one starts. Elsewhere
    /// (an annotator, an upscale, a conversion) it is [`Flow::Cancel`]. A caller that set a [`CancelSignal`] to stop
    /// the model run in progress clears it when it answers `Skip`, so the next batch runs.
    Skip,
}

/// A cancel request that another thread makes while the engine works (the app's Stop button, Ctrl+C): the same flag
/// as the caller's own, shared. Model parts given it stop their run while it runs (`model::run_cancel`).
#[derive(Debug, Clone, Default)]
pub struct CancelSignal(Arc<AtomicBool>);

impl CancelSignal {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Whether both are the same flag.
    pub fn same_as(&self, other: &CancelSignal) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<Arc<AtomicBool>> for CancelSignal {
    fn from(flag: Arc<AtomicBool>) -> CancelSignal {
        CancelSignal(flag)
    }
}
