//! The engine behind the job queue: keeps the last model's sessions loaded between jobs (reloading only when a job
//! names another model), runs text-to-image or the canvas's image to image, inpainting and outpainting (with their
//! ControlNets or adapters), saves each image as it is made and streams progress with previews.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pigment_engine::image::{
    PARAMETERS_KEY, latents_to_rgb, next_image_number, numbered_image_path, write_png_atomically,
};
use pigment_engine::model::LoadedModel;
use pigment_engine::pipeline::{
    Control, ControlModels, ControlRequest, ControlSpec, GenerateRequest, GeneratedImage, GenerationObserver, HiresFix,
    Img2ImgRequest, InpaintRequest, OutpaintRequest, Progress, Stage, img2img, inpaint, outpaint, txt2img,
    txt2img_hires,
};

use crate::error::{AppError, Result};
use crate::models::{ImageResult, JobEvent, ProgressReport};
use crate::paths::check_writable_folder;
use crate::preview::png_data_url;
use crate::queue::{Backend, CancelFlag, EventSink};
use crate::runtime_slot::RuntimeSlot;

/// Progress reports closer together than this are dropped (the last step and stage changes always go through),
/// so a fast model cannot flood the window with messages.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(40);

/// A validated engine request, one per canvas mode.
#[derive(Debug, Clone)]
pub enum JobRequest {
    Txt2Img(GenerateRequest),
    /// Text to image with the hires fix (the API's `enable_hr`); the upscaler is latent or Lanczos, not a model.
    Txt2ImgHires(GenerateRequest, HiresFix),
    Img2Img(Img2ImgRequest),
    Inpaint(InpaintRequest),
    Outpaint(OutpaintRequest),
}

impl JobRequest {
    /// Prompt, sampler, seed, steps and batch, whatever the mode.
    pub fn generate(&self) -> &GenerateRequest {
        match self {
            JobRequest::Txt2Img(request) | JobRequest::Txt2ImgHires(request, _) => request,
            JobRequest::Img2Img(request) => &request.generate,
            JobRequest::Inpaint(request) => &request.generate,
            JobRequest::Outpaint(request) => &request.generate,
        }
    }

    /// The same request with `control` (models loaded) in place of its own.
    fn with_control(&self, control: ControlRequest) -> JobRequest {
        let mut request = self.clone();
        let generate = match &mut request {
            JobRequest::Txt2Img(request) | JobRequest::Txt2ImgHires(request, _) => request,
            JobRequest::Img2Img(request) => &mut request.generate,
            JobRequest::Inpaint(request) => &mut request.generate,
            JobRequest::Outpaint(request) => &mut request.generate,
        };
        *generate.control = control;
        request
    }
}

pub struct GenerationJob {
    pub request: JobRequest,
    pub model: PathBuf,
    pub output_folder: PathBuf,
    /// ControlNets or adapters with their preprocessed pictures; their models load when the job runs.
    pub control: ControlSpec,
}

pub struct EngineBackend {
    runtime: Arc<RuntimeSlot>,
    loaded: Option<LoadedModel>,
    /// The ControlNets, adapters and residual UNet of the last job with control, kept for the next.
    control_models: ControlModels,
}

impl EngineBackend {
    pub fn new(runtime: Arc<RuntimeSlot>) -> EngineBackend {
        EngineBackend { runtime, loaded: None, control_models: ControlModels::default() }
    }

    /// The model for `folder`, loading it only when it is not the one already loaded.
    fn model_for(&mut self, folder: &Path, events: &dyn EventSink) -> Result<&mut LoadedModel> {
        let wanted = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
        let reuse = self
            .loaded
            .as_ref()
            .is_some_and(|m| std::fs::canonicalize(&m.folder.root).unwrap_or_else(|_| m.folder.root.clone()) == wanted);
        if !reuse {
            // Free the old sessions before loading the new ones: two large models may not fit together.
            self.loaded = None;
            let runtime = self.runtime.get()?;
            events.send(JobEvent::LoadingModel { model: folder.display().to_string() });
            self.loaded = Some(LoadedModel::open(&runtime, folder)?);
        }
        self.loaded.as_mut().ok_or(AppError::NoModel)
    }
}

impl Backend for EngineBackend {
    type Job = GenerationJob;

    fn run(&mut self, job: &GenerationJob, cancel: &CancelFlag, events: &dyn EventSink) -> Result<usize> {
        check_writable_folder(&job.output_folder)?;
        let mut observer = JobObserver::new(job.request.generate(), &job.output_folder, cancel, events);
        let first_number = observer.next_number;
        // Depth and openpose pictures go through their annotator here, not at submit: it is slow on big models.
        // A model still loaded from an earlier job shares the device with it (turns in low/medium VRAM modes).
        let mut control_spec = job.control.clone();
        if control_spec.needs_annotation() {
            control_spec
                .annotate(&self.runtime.get()?, self.loaded.as_ref(), Some(&cancel.signal()), &mut |progress| {
                    observer.progress(progress)
                })
                .map_err(crate::control::annotator_error)?;
        }
        // Stop stops a model run while it runs, not only between steps.
        self.model_for(&job.model, events)?.watch_cancel(Some(cancel.signal()))?;
        let control = self.control_models.request(&self.runtime.get()?, &job.model, &control_spec)?;
        let request = job.request.with_control(control);
        let model = self.loaded.as_mut().ok_or(AppError::NoModel)?;
        match &request {
            JobRequest::Txt2Img(request) => txt2img(model, request, &mut observer)?,
            JobRequest::Txt2ImgHires(request, hires) => txt2img_hires(model, request, hires, None, &mut observer)?,
            JobRequest::Img2Img(request) => img2img(model, request, &mut observer)?,
            JobRequest::Inpaint(request) => inpaint(model, request, &mut observer)?,
            JobRequest::Outpaint(request) => outpaint(model, request, &mut observer)?,
        };
        save_control_images(&control_spec, &job.output_folder, first_number)?;
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
    cancel: &'a CancelFlag,
    events: &'a dyn EventSink,
    folder: &'a Path,
    next_number: u64,
    saved: usize,
    preview_every: usize,
    preview: Option<String>,
    last_sent: Option<(Instant, Stage, usize)>,
}

impl<'a> JobObserver<'a> {
    fn new(request: &GenerateRequest, folder: &'a Path, cancel: &'a CancelFlag, events: &'a dyn EventSink) -> Self {
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
    fn progress(&mut self, progress: &Progress) -> Control {
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
        if self.cancel.is_set() { Control::Cancel } else { Control::Continue }
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
