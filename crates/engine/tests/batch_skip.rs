//! A1111's "skip": an observer answering [`Flow::Skip`] drops the current batch of a generation and the next one
//! runs, with the images and seeds it has alone; the same when the skip stopped a model run through the cancel
//! signal, and when it came before the first batch started. A skip never ends a generation with an error.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{load_demo_model, txt2img};
use pigment_engine::Result;
use pigment_engine::model::CancelSignal;
use pigment_engine::pipeline::{
    Flow, GenerateRequest, GeneratedImage, Generation, GenerationObserver, Progress, Resources, Stage, generate,
};

fn params(seed: u64, batch_count: usize) -> GenerateRequest {
    GenerateRequest {
        prompt: "a lighthouse".into(),
        seed: Some(seed),
        steps: 4,
        width: 64,
        height: 64,
        batch_size: 2,
        batch_count,
        ..GenerateRequest::default()
    }
}

/// How the observer asks for its skip.
#[derive(Clone, Copy, PartialEq)]
enum SkipBy {
    /// Answering `Skip` to the report of this (batch, denoising step).
    Answer(usize, usize),
    /// Setting the run signal at this (batch, denoising step) and answering `Skip` when the stopped run is told.
    Signal(usize, usize),
    /// Answering `Skip` to the prompt-encoding report, before any batch.
    BeforeTheFirstBatch,
}

struct Skipper {
    by: SkipBy,
    /// The flag behind the model's cancel signal, as the app and the API hold theirs.
    stop_run: Arc<AtomicBool>,
    images: Vec<GeneratedImage>,
    skips: usize,
}

impl GenerationObserver for Skipper {
    fn progress(&mut self, progress: &Progress) -> Flow {
        let here = (progress.stage, progress.batch, progress.step);
        let skip = match self.by {
            SkipBy::Answer(batch, step) => here == (Stage::Denoising, batch, step),
            SkipBy::BeforeTheFirstBatch => progress.stage == Stage::EncodingPrompt,
            SkipBy::Signal(batch, step) => {
                if here == (Stage::Denoising, batch, step) {
                    // Stops the next model run: the pipeline then calls `run_stopped`.
                    self.stop_run.store(true, Ordering::SeqCst);
                }
                false
            }
        };
        if skip {
            self.skips += 1;
            Flow::Skip
        } else {
            Flow::Continue
        }
    }

    fn run_stopped(&mut self) -> Flow {
        // Like the app and the API: the skip answered once, the signal cleared with it.
        if self.stop_run.swap(false, Ordering::SeqCst) {
            self.skips += 1;
            Flow::Skip
        } else {
            Flow::Cancel
        }
    }

    fn image(&mut self, image: GeneratedImage) -> Result<()> {
        self.images.push(image);
        Ok(())
    }
}

/// The images of a 3-batch generation (seed 40, 2 images a batch) skipped `by`.
fn skipped(by: SkipBy) -> Skipper {
    let mut model = load_demo_model();
    let stop_run = Arc::new(AtomicBool::new(false));
    model.watch_cancel(Some(CancelSignal::from(stop_run.clone()))).unwrap();
    let mut observer = Skipper { by, stop_run, images: Vec::new(), skips: 0 };
    let summary = generate(Resources::new(&mut model), &Generation::text(params(40, 3)), &mut observer).unwrap();
    assert_eq!(observer.skips, 1);
    assert_eq!(summary.seeds, observer.images.iter().map(|i| i.seed).collect::<Vec<_>>());
    observer
}

/// The images of batch `batch` made alone.
fn alone(batch: usize) -> Vec<image::RgbImage> {
    let mut collect = common::Collect::default();
    txt2img(&mut load_demo_model(), &params(40 + 2 * batch as u64, 1), &mut collect).unwrap();
    collect.images.into_iter().map(|generated| generated.image).collect()
}

fn assert_batches(observer: &Skipper, kept: &[usize]) {
    let seeds: Vec<u64> = observer.images.iter().map(|image| image.seed).collect();
    let indices: Vec<usize> = observer.images.iter().map(|image| image.index).collect();
    let expected_seeds: Vec<u64> = kept.iter().flat_map(|&b| [40 + 2 * b as u64, 41 + 2 * b as u64]).collect();
    let expected_indices: Vec<usize> = kept.iter().flat_map(|&b| [2 * b, 2 * b + 1]).collect();
    assert_eq!((seeds, indices), (expected_seeds, expected_indices));
    for (n, &batch) in kept.iter().enumerate() {
        let made: Vec<&image::RgbImage> = observer.images[2 * n..2 * n + 2].iter().map(|i| &i.image).collect();
        assert!(made == alone(batch).iter().collect::<Vec<_>>(), "batch {batch} differs from the batch made alone");
    }
}

#[test]
fn a_skip_answered_during_a_batch_drops_that_batch_only() {
    assert_batches(&skipped(SkipBy::Answer(1, 2)), &[0, 2]);
}

#[test]
fn a_skip_that_stopped_a_model_run_drops_that_batch_only() {
    assert_batches(&skipped(SkipBy::Signal(1, 2)), &[0, 2]);
}

#[test]
fn a_skip_before_the_first_batch_skips_the_first_batch() {
    assert_batches(&skipped(SkipBy::BeforeTheFirstBatch), &[1, 2]);
}
