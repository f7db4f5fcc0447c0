//! The engine behind the job queue: keeps the last model's sessions loaded between jobs (reloading only when a job
//! names another model), runs each job's generation (with its ControlNets or adapters, kept open for the next job),
//! saves each image as it is made and streams progress with previews.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pigment_engine::image::{
    PARAMETERS_KEY, latents_to_rgb, next_image_number, numbered_image_path, write_png_atomically,
};
use pigment_engine::pipeline::{
    ControlModels, ControlSpec, Flow, GenerateRequest, GeneratedImage, Generation, GenerationObserver, Progress,
    Resources, Stage, generate,
};

use crate::error::Result;
use crate::models::{ImageResult, JobEvent, ProgressReport};
use crate::paths::check_writable_folder;
use crate::preview::png_data_url;
use crate::queue::{Backend, EventSink};
use crate::runtime_slot::RuntimeSlot;
use pigment_studio::ModelSlot;
use pigment_studio::StopFlags;

/// Progress reports closer together than this are dropped (the last step and stage changes always go through),
/// so a fast model cannot flood the window with messages.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(40);

pub struct GenerationJob {
    /// Checked; its control units' models load when the job runs, and depth/openpose pictures go through their
    /// annotator then.
    pub generation: Generation,
    pub model: PathBuf,
    pub output_folder: PathBuf,
}

pub struct EngineBackend {
    runtime: Arc<RuntimeSlot>,
    models: ModelSlot,
    /// The ControlNets, adapters and residual UNet of the last job with control, kept for the next.
    control_models: ControlModels,
}

impl EngineBackend {
    pub fn new(runtime: Arc<RuntimeSlot>) -> EngineBackend {
        EngineBackend { runtime, models: ModelSlot::default(), control_models: ControlModels::default() }
    }
}

impl Backend for EngineBackend {
    type Job = GenerationJob;

    fn run(&mut self, job: &GenerationJob, cancel: &StopFlags, events: &dyn EventSink) -> Result<usize> {
        check_writable_folder(&job.output_folder)?;
        let mut observer = JobObserver::new(&job.generation.params, &job.output_folder, cancel, events);
        let first_number = observer.next_number;
        // Depth and openpose pictures go through their annotator here, not at submit: it is slow on big models.
        // A model still loaded from an earlier job shares the device with it (turns in low/medium VRAM modes).
        let mut generation = job.generation.clone();
        if generation.control.needs_annotation() {
            generation
                .control
                .annotate(&self.runtime.get()?, self.models.loaded(), Some(&cancel.signal()), &mut |progress| {
                    observer.progress(progress)
                })
                .map_err(crate::control::annotator_error)?;
        }
        let runtime = self.runtime.get()?;
        let model = self.models.model(&runtime, &job.model, |folder| {
            events.send(JobEvent::LoadingModel { model: folder.display().to_string() })
        })?;
        // Stop stops a model run while it runs, not only between steps.
        model.watch_cancel(Some(cancel.signal()))?;
        let resources = Resources::new(model).with_control_models(&mut self.control_models);
        generate(resources, &generation, &mut observer)?;
        save_control_images(&generation.control, &job.output_folder, first_number)?;
        Ok(observer.saved)
    }
}

/// Each preprocessed control picture beside the job's first image, `NNNNN-control-I.png` as `pigment` names them;
/// pictures used as they are (`none`) are not copied.
fn save_control_images(control: &ControlSpec, folder: &Path, number: u64) -> Result<()> {
    for (index, unit) in control.units.iter().enumerate() {
        if unit.preprocessing.module != "none" {
            let path = numbered_image_path(folder, number, format!("control-{index}"));
            write_png_atomically(&path, &crate::control::visible(&unit.image), &[])?;
        }
    }
    Ok(())
}

struct JobObserver<'a> {
    cancel: &'a StopFlags,
    events: &'a dyn EventSink,
    folder: &'a Path,
    next_number: u64,
    saved: usize,
    preview_every: usize,
    preview: Option<String>,
    last_sent: Option<(Instant, Stage, usize)>,
}

impl<'a> JobObserver<'a> {
    fn new(request: &GenerateRequest, folder: &'a Path, cancel: &'a StopFlags, events: &'a dyn EventSink) -> Self {
        JobObserver {
            cancel,
            events,
            folder,
            next_number: next_image_number(folder),
            saved: 0,
            // About ten previews per batch, at most one every step and at least one every ten.
            preview_every: (request.steps / 10).clamp(1, 10),
            preview: None,
            last_sent: None,
        }
    }
}

impl GenerationObserver for JobObserver<'_> {
    fn progress(&mut self, progress: &Progress) -> Flow {
        let now = Instant::now();
        let due = match self.last_sent {
            None => true,
            Some((at, stage, batch)) => {
                stage != progress.stage
                    || batch != progress.batch
                    || progress.step == progress.steps
                    || self.preview.is_some()
                    || now.duration_since(at) >= PROGRESS_INTERVAL
            }
        };
        if due {
            self.last_sent = Some((now, progress.stage, progress.batch));
            self.events.send(JobEvent::Progress(ProgressReport {
                stage: progress.stage,
                batch: progress.batch,
                batches: progress.batches,
                step: progress.step,
                steps: progress.steps,
                elapsed_ms: progress.elapsed.as_millis() as u64,
                eta_ms: eta(progress).map(|d| d.as_millis() as u64),
                preview: self.preview.take(),
            }));
        }
        self.cancel.flow()
    }

    fn run_stopped(&mut self) -> Flow {
        self.cancel.flow()
    }

    fn preview(&mut self, step: usize, steps: usize, latents: &ndarray::ArrayD<f32>) {
        if step.is_multiple_of(self.preview_every) || step == steps {
            self.preview = latents_to_rgb(latents, 0).as_ref().and_then(png_data_url);
        }
    }

    fn image(&mut self, image: GeneratedImage) -> pigment_engine::Result<()> {
        let path = numbered_image_path(self.folder, self.next_number, image.seed);
        let parameters = image.infotext.to_text();
        write_png_atomically(&path, &image.image, &[(PARAMETERS_KEY, parameters.as_str())])?;
        self.events.saved(&path, &image.image, &parameters);
        self.next_number += 1;
        self.saved += 1;
        self.events.send(JobEvent::Image(ImageResult {
            path,
            seed: image.seed,
            index: image.index,
            width: image.image.width(),
            height: image.image.height(),
            parameters,
        }));
        Ok(())
    }
}

/// Time left, from the pace so far over all the job's denoising steps (every batch has the same steps).
fn eta(progress: &Progress) -> Option<Duration> {
    let total = progress.batches * progress.steps;
    let done = match progress.stage {
        Stage::Denoising => progress.batch * progress.steps + progress.step,
        Stage::Decoding => (progress.batch + 1) * progress.steps,
        // Before the first step (encoding) nothing is timed yet.
        _ => return None,
    };
    if done == 0 || total == 0 {
        return None;
    }
    let per_step = progress.elapsed.as_secs_f64() / done as f64;
    Some(Duration::from_secs_f64(per_step * total.saturating_sub(done) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_scales_the_pace_so_far_over_the_steps_left() {
        let progress = |stage, batch, step| Progress {
            stage,
            batch,
            batches: 2,
            step,
            steps: 10,
            elapsed: Duration::from_secs(5),
        };
        assert_eq!(eta(&progress(Stage::EncodingPrompt, 0, 0)), None);
        assert_eq!(eta(&progress(Stage::Denoising, 0, 5)), Some(Duration::from_secs(15)));
        assert_eq!(eta(&progress(Stage::Denoising, 1, 5)), Some(Duration::from_secs_f64(5.0 / 15.0 * 5.0)));
        assert_eq!(eta(&progress(Stage::Decoding, 1, 10)), Some(Duration::ZERO));
    }
}
