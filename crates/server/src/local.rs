//! `pigment serve`'s backend: one worker thread owns the loaded model and runs jobs one at a time, in the order
//! they came (a FIFO channel); the HTTP handlers wait on each job's reply. Interrupt and skip are the running job's
//! `StopFlags`: the generation reads them at every step, and they stop a model run while it runs.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use pigment_engine::EngineError;
use pigment_engine::image::latents_to_rgb;
use pigment_engine::model::{LoadedModel, UpscalerSession};
use pigment_engine::pipeline::{
    Flow, GeneratedImage, Generation, GenerationObserver, Progress, Resources, Source, Stage, UpscaleTiling, generate,
    upscale,
};
use pigment_engine::runtime::Runtime;
use pigment_studio::catalog::subfolders_with;
use pigment_studio::titles::model_name;
use pigment_studio::{ModelCatalog, ModelSlot, StopFlags};
use tokio::sync::oneshot;

use crate::backend::{Backend, Job, JobOutput, JobResult, ModelEntry, ProgressSnapshot, UpscalerEntry};
use crate::error::ApiError;

pub struct LocalBackendOptions {
    pub runtime: Runtime,
    /// The model loaded at start.
    pub model: PathBuf,
    /// A folder whose model folders (diffusers ONNX layout) `sd_model_checkpoint` may name.
    pub models_folder: Option<PathBuf>,
    /// A folder of upscaler models (each a folder with `model.onnx`).
    pub upscalers_folder: Option<PathBuf>,
}

/// What the queue and the HTTP threads share.
struct Shared {
    state: Mutex<ProgressSnapshot>,
    /// Interrupt (cancel) and skip of the running job; either stops the model run in progress.
    stop: StopFlags,
    /// Set at shutdown: queued jobs are answered "stopped" instead of run.
    closed: AtomicBool,
    /// The loaded model's folder.
    current: Mutex<PathBuf>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, ProgressSnapshot> {
        // Every change to the snapshot is a plain assignment: a panic elsewhere cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Queued {
    job: Job,
    reply: oneshot::Sender<JobResult>,
}

pub struct LocalBackend {
    sender: Mutex<Option<mpsc::Sender<Queued>>>,
    shared: Arc<Shared>,
    catalog: Catalog,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl LocalBackend {
    /// Starts the worker and loads the model on it; returns once the model is loaded (or failed to load).
    pub fn start(options: LocalBackendOptions) -> Result<LocalBackend, ApiError> {
        let models = ModelCatalog {
            bundled: Some(options.model.clone()),
            models_folder: options.models_folder,
            added: Vec::new(),
        };
        let catalog = Catalog { models, upscalers_folder: options.upscalers_folder };
        let shared = Arc::new(Shared {
            state: Mutex::new(ProgressSnapshot::default()),
            stop: StopFlags::default(),
            closed: AtomicBool::new(false),
            current: Mutex::new(options.model.clone()),
        });
        let (sender, receiver) = mpsc::channel::<Queued>();
        let (loaded_sender, loaded) = mpsc::channel::<Result<(), ApiError>>();
        let worker_shared = shared.clone();
        let worker_catalog = catalog.clone();
        let worker = std::thread::Builder::new()
            .name("pigment-api-jobs".into())
            .spawn(move || {
                let model = match LoadedModel::open(&options.runtime, &options.model) {
                    Ok(model) => model,
                    Err(error) => {
                        let _ = loaded_sender.send(Err(error.into()));
                        return;
                    }
                };
                let _ = loaded_sender.send(Ok(()));
                let mut worker = Worker {
                    runtime: options.runtime,
                    catalog: worker_catalog,
                    shared: worker_shared,
                    model: ModelSlot::with(model),
                    upscaler: None,
                };
                worker.serve(receiver);
            })
            .map_err(|e| ApiError::Internal(format!("could not start the job thread: {e}")))?;
        let outcome = loaded.recv().unwrap_or_else(|_| Err(ApiError::Internal("the job thread ended early".into())));
        let backend =
            LocalBackend { sender: Mutex::new(Some(sender)), shared, catalog, worker: Mutex::new(Some(worker)) };
        outcome.map(|()| backend)
    }

    /// Stops taking jobs, interrupts the running one, lets the queued ones go (their clients get "stopped") and
    /// waits for the worker.
    pub fn shutdown(&self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.stop.cancel();
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(worker) = worker {
            // A worker that panicked outside a job has nothing left to report.
            let _ = worker.join();
        }
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Backend for LocalBackend {
    fn submit(&self, job: Job) -> oneshot::Receiver<JobResult> {
        let (reply, receiver) = oneshot::channel();
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        match sender.as_ref() {
            Some(sender) => {
                self.shared.state().queued += 1;
                if let Err(mpsc::SendError(queued)) = sender.send(Queued { job, reply }) {
                    self.shared.state().queued -= 1;
                    let _ = queued.reply.send(Err(ApiError::QueueStopped));
                }
            }
            None => {
                let _ = reply.send(Err(ApiError::QueueStopped));
            }
        }
        receiver
    }

    fn interrupt(&self) {
        self.shared.stop.cancel();
        let mut state = self.shared.state();
        if state.started.is_some() {
            state.interrupted = true;
        }
    }

    fn skip(&self) {
        self.shared.stop.skip();
        let mut state = self.shared.state();
        if state.started.is_some() {
            state.skipped = true;
        }
    }

    fn progress(&self) -> ProgressSnapshot {
        self.shared.state().clone()
    }

    fn models(&self) -> Vec<ModelEntry> {
        self.catalog.models().into_iter().map(|(entry, _)| entry).collect()
    }

    fn current_model(&self) -> Option<ModelEntry> {
        let current = self.shared.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let wanted = self.catalog.models.entry_for(&current)?;
        self.catalog.models().into_iter().find(|(_, path)| *path == wanted.path).map(|(entry, _)| entry)
    }

    fn upscalers(&self) -> Vec<UpscalerEntry> {
        self.catalog.upscalers().into_iter().map(|(entry, _)| entry).collect()
    }
}

/// The models and upscalers on disk, read again at every listing (a model copied in shows up without a restart).
#[derive(Clone)]
struct Catalog {
    /// The start model first, then the models folder's model folders by name; those that can be used.
    models: ModelCatalog,
    upscalers_folder: Option<PathBuf>,
}

impl Catalog {
    fn models(&self) -> Vec<(ModelEntry, PathBuf)> {
        let entry = |name: String, path: &Path| ModelEntry {
            title: name.clone(),
            model_name: name,
            hash: None,
            filename: path.display().to_string(),
        };
        self.models.usable_models().into_iter().map(|model| (entry(model.name, &model.path), model.path)).collect()
    }

    /// A model by the title a client sends ([`pigment_studio::titles`]).
    fn find_model(&self, name: &str) -> Result<PathBuf, ApiError> {
        self.models.find(name).map(|model| model.path).map_err(|known| ApiError::NotFound {
            what: "model",
            name: name.into(),
            known: known.join(", "),
        })
    }

    fn upscalers(&self) -> Vec<(UpscalerEntry, PathBuf)> {
        subfolders_with(self.upscalers_folder.as_deref(), "model.onnx")
            .into_iter()
            .map(|path| {
                let entry = UpscalerEntry {
                    name: model_name(&path),
                    model_path: Some(path.join("model.onnx").display().to_string()),
                    // Measured when the model loads (engine's probe), not known from the listing.
                    scale: None,
                };
                (entry, path)
            })
            .collect()
    }

    fn find_upscaler(&self, name: &str) -> Result<PathBuf, ApiError> {
        let upscalers = self.upscalers();
        upscalers
            .iter()
            .find(|(entry, _)| entry.name.eq_ignore_ascii_case(name.trim()))
            .map(|(_, p)| p.clone())
            .ok_or_else(|| ApiError::NotFound {
                what: "upscaler",
                name: name.into(),
                known: ["None", "Lanczos"]
                    .into_iter()
                    .chain(upscalers.iter().map(|(e, _)| e.name.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The worker thread's side: the model, the last upscaler used, and the runtime to load others.
struct Worker {
    runtime: Runtime,
    catalog: Catalog,
    shared: Arc<Shared>,
    model: ModelSlot,
    upscaler: Option<(PathBuf, UpscalerSession)>,
}

impl Worker {
    fn serve(&mut self, receiver: mpsc::Receiver<Queued>) {
        while let Ok(Queued { job, reply }) = receiver.recv() {
            self.shared.state().queued -= 1;
            if reply.is_closed() {
                continue; // the client went away before its turn
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                let _ = reply.send(Err(ApiError::QueueStopped));
                continue;
            }
            self.begin(&job);
            // A bug in a pipeline must cost one request, not the server.
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.run(job)))
                .unwrap_or_else(|_| Err(ApiError::Internal("the job failed unexpectedly (a bug; see the log)".into())));
            self.end();
            let _ = reply.send(result);
        }
    }

    fn begin(&self, job: &Job) {
        self.shared.stop.clear();
        let (label, batches) = match job {
            Job::Generate { generation, .. } if generation.source == Source::Text => ("txt2img", job_batches(job)),
            Job::Generate { .. } => ("img2img", job_batches(job)),
            Job::Upscale { .. } => ("extras", 1),
            Job::SwitchModel { .. } => ("load model", 1),
        };
        let mut state = self.shared.state();
        *state = ProgressSnapshot {
            job_count: batches,
            job: label.into(),
            started: Some(Instant::now()),
            job_timestamp: timestamp(),
            queued: state.queued,
            ..ProgressSnapshot::default()
        };
    }

    fn end(&self) {
        let mut state = self.shared.state();
        *state = ProgressSnapshot { queued: state.queued, ..ProgressSnapshot::default() };
    }

    fn run(&mut self, job: Job) -> JobResult {
        match job {
            Job::SwitchModel { name } => {
                self.switch_model(&name)?;
                Ok(JobOutput::ModelSwitched)
            }
            Job::Generate { model, generation, hires_upscaler } => {
                if let Some(name) = model {
                    self.switch_model(&name)?;
                }
                self.generate(&generation, hires_upscaler.as_deref())
            }
            Job::Upscale { image, width, height, upscaler } => {
                if let Some(name) = &upscaler {
                    self.load_upscaler(name)?;
                }
                let session = match upscaler {
                    Some(_) => self.upscaler.as_mut().map(|(_, session)| session),
                    None => None,
                };
                let name = session.as_ref().map_or_else(|| "Lanczos".to_string(), |s| s.name().to_string());
                let shared = &self.shared;
                let result = upscale(&image, width, height, session, UpscaleTiling::default(), &mut |progress| {
                    let mut state = shared.state();
                    state.sampling_step = progress.step;
                    state.sampling_steps = progress.steps;
                    drop(state);
                    // A skip has no batch to drop here: it stops the upscale as an interrupt does.
                    shared.stop.flow()
                });
                Ok(JobOutput::Upscaled { image: result?, upscaler: name })
            }
        }
    }

    /// Loads the model `name` names unless it is the loaded one ([`ModelSlot`]'s rule: on a failed load the old
    /// model is back).
    fn switch_model(&mut self, name: &str) -> Result<(), ApiError> {
        let path = self.catalog.find_model(name)?;
        self.model.model(&self.runtime, &path, |_| {})?;
        *self.shared.current.lock().unwrap_or_else(|p| p.into_inner()) = path;
        Ok(())
    }

    fn load_upscaler(&mut self, name: &str) -> Result<(), ApiError> {
        let path = self.catalog.find_upscaler(name)?;
        if self.upscaler.as_ref().is_some_and(|(loaded, _)| *loaded == path) {
            return Ok(());
        }
        self.upscaler = None;
        let session = UpscalerSession::open(&self.runtime, &path)?;
        self.upscaler = Some((path, session));
        Ok(())
    }

    /// Runs `generation`; a skip drops the current batch and the generation goes on with the next
    /// ([`Flow::Skip`]), an interrupt ends it keeping the images made.
    fn generate(&mut self, generation: &Generation, hires_upscaler: Option<&str>) -> JobResult {
        if let Some(name) = hires_upscaler {
            self.load_upscaler(name)?;
        }
        let model = self.model.loaded_mut().ok_or_else(|| {
            ApiError::Internal("no model is loaded (the last model switch failed); choose a model".into())
        })?;
        model.watch_cancel(Some(self.shared.stop.signal()))?;
        let upscaler = match hires_upscaler {
            Some(_) => self.upscaler.as_mut().map(|(_, session)| session),
            None => None,
        };
        let mut images = Vec::new();
        let mut observer = ApiObserver { shared: &self.shared, images: &mut images };
        match generate(Resources::new(model).with_upscaler(upscaler), generation, &mut observer) {
            Ok(_) => Ok(JobOutput::Images { images, interrupted: false }),
            Err(EngineError::Cancelled) => Ok(JobOutput::Images { images, interrupted: true }),
            Err(other) => Err(other.into()),
        }
    }
}

fn job_batches(job: &Job) -> usize {
    match job {
        Job::Generate { generation, .. } => generation.params.batch_count,
        _ => 1,
    }
}

/// A1111's `job_timestamp`: local time as `%Y%m%d%H%M%S`; UTC here (no time zone database in the engine).
fn timestamp() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    // Howard Hinnant's days-from-civil, inverted: the proleptic Gregorian date of a day count since 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Collects a job's images and keeps the shared progress (step, preview) current.
struct ApiObserver<'a> {
    shared: &'a Shared,
    images: &'a mut Vec<GeneratedImage>,
}

impl GenerationObserver for ApiObserver<'_> {
    fn progress(&mut self, progress: &Progress) -> Flow {
        if progress.stage == Stage::Denoising {
            let mut state = self.shared.state();
            state.job_no = progress.batch;
            state.sampling_step = progress.step;
            state.sampling_steps = progress.steps;
        }
        self.shared.stop.flow()
    }

    fn run_stopped(&mut self) -> Flow {
        self.shared.stop.flow()
    }

    fn preview(&mut self, _step: usize, _steps: usize, latents: &ndarray::ArrayD<f32>) {
        let preview = latents_to_rgb(latents, 0);
        self.shared.state().current_image = preview;
    }

    fn image(&mut self, image: GeneratedImage) -> pigment_engine::Result<()> {
        self.images.push(image);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timestamp_is_a1111s_format() {
        let stamp = timestamp();
        assert_eq!(stamp.len(), 14, "{stamp}");
        assert!(stamp.starts_with("20"), "{stamp}");
        assert!(stamp.chars().all(|c| c.is_ascii_digit()), "{stamp}");
    }
}
