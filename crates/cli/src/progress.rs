//! The CLI's view of a running generation: a progress bar on stderr (drawn only when stderr is a terminal),
//! Ctrl+C as cancel between steps, and each finished image saved at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pigment_engine::Result;
use pigment_engine::image::{PARAMETERS_KEY, write_png_atomically};
use pigment_engine::pipeline::{Flow, GeneratedImage, GenerationObserver, Progress, Stage};

use crate::output::OutputPlan;

/// Set by Ctrl+C; the generation stops before its next step.
pub fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    // A second handler cannot be installed (tests call this more than once in one process): then Ctrl+C keeps
    // its default meaning, which is also a way to stop.
    let _ = ctrlc::set_handler(move || handler_flag.store(true, Ordering::SeqCst));
    flag
}

pub struct CliObserver {
    bar: ProgressBar,
    cancel: Arc<AtomicBool>,
    plan: Option<OutputPlan>,
    pub saved: Vec<PathBuf>,
}

impl CliObserver {
    /// `plan` None: images are not saved (benchmarks).
    pub fn new(plan: Option<OutputPlan>, cancel: Arc<AtomicBool>, show_progress: bool) -> CliObserver {
        let bar = ProgressBar::with_draw_target(
            Some(0),
            if show_progress { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
        );
        bar.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        CliObserver { bar, cancel, plan, saved: Vec::new() }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl GenerationObserver for CliObserver {
    fn progress(&mut self, progress: &Progress) -> Flow {
        let label = match progress.stage {
            Stage::EncodingPrompt => "prompt".to_string(),
            Stage::Denoising if progress.batches > 1 => format!("batch {}/{}", progress.batch + 1, progress.batches),
            Stage::Denoising => "sampling".to_string(),
            Stage::Decoding => "decoding".to_string(),
            Stage::EncodingImage => "encoding".to_string(),
            Stage::Upscaling => "upscaling".to_string(),
            Stage::Preprocessing => "preprocessing".to_string(),
        };
        self.bar.set_message(label);
        self.bar.set_length(progress.steps as u64);
        self.bar.set_position(progress.step as u64);
        if self.cancel.load(Ordering::SeqCst) { Flow::Cancel } else { Flow::Continue }
    }

    fn warning(&mut self, message: &str) {
        self.bar.suspend(|| eprintln!("warning: {message}"));
    }

    fn image(&mut self, image: GeneratedImage) -> Result<()> {
        let Some(plan) = &self.plan else { return Ok(()) };
        let path = plan.path_for(image.index, image.seed);
        let text = image.infotext.to_text();
        write_png_atomically(&path, &image.image, &[(PARAMETERS_KEY, text.as_str())])?;
        self.bar.suspend(|| eprintln!("saved {}", path.display()));
        self.saved.push(path);
        Ok(())
    }
}
