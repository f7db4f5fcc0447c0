//! The AUTOMATIC1111-compatible API (crates/server) inside the app. A switch in the settings serves it on
//! 127.0.0.1; its jobs go through the app's own job queue, so they never run on the GPU at the same time as the
//! window's, show in the queue panel, and their images are saved and indexed in the gallery like any other.
//!
//! Only loopback: listening on other interfaces needs credentials, which `pigment serve` takes on its command line;
//! the app has no place for them yet.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use base64::Engine as _;
use pigment_engine::image::InfoText;
use pigment_engine::pipeline::{Flow, GeneratedImage, Generation, UpscaleTiling, upscale};
use pigment_server::{
    ApiError, Backend, Job, JobOutput, JobResult, ModelEntry, ProgressSnapshot, ServerConfig, UpscalerEntry,
};
use pigment_studio::titles::title_matches;
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager, Runtime};
use tokio::sync::oneshot;

use crate::error::{AppError, Result};
use crate::generation::GenerationJob;
use crate::library;
use crate::models::{JobEvent, ModelEntry as AppModelEntry};
use crate::queue::{EventSink, JobId, QueuedJob};
use crate::state::AppState;

/// A1111's port, which its clients try first.
pub const DEFAULT_PORT: u16 = 7860;

/// The settings' switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiServerSettings {
    pub enabled: bool,
    pub port: u16,
}

impl Default for ApiServerSettings {
    fn default() -> Self {
        ApiServerSettings { enabled: false, port: DEFAULT_PORT }
    }
}

/// A running server; dropping it stops the server (requests in flight finish).
pub struct RunningApiServer {
    pub address: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// Starts, restarts or stops the server so that it matches `settings`; the address it listens on, if any.
pub fn apply<R: Runtime>(app: &AppHandle<R>, settings: ApiServerSettings) -> Result<Option<SocketAddr>> {
    let state = app.state::<AppState>();
    let mut running = state.api_server.lock().unwrap_or_else(|p| p.into_inner());
    let wanted = settings.enabled.then(|| SocketAddr::from((Ipv4Addr::LOCALHOST, settings.port)));
    if running.as_ref().map(|server| server.address) == wanted && wanted.is_some() {
        return Ok(wanted);
    }
    // Stop the old server first: the new one may want its port.
    *running = None;
    let Some(address) = wanted else { return Ok(None) };
    // Bound here, not in the task, so a port in use is an error the settings form shows.
    let listener = std::net::TcpListener::bind(address).map_err(|e| AppError::InvalidInput {
        field: "apiServer.port",
        reason: format!("cannot listen on {address}: {e}"),
    })?;
    listener.set_nonblocking(true).map_err(|e| AppError::platform("configure the API server's socket", e))?;
    let address = listener.local_addr().map_err(|e| AppError::platform("read the API server's address", e))?;
    let backend = Arc::new(QueueBackend { app: app.clone(), shared: Arc::new(Shared::default()) });
    let router = pigment_server::router(backend, ServerConfig::default());
    let (stop, stopped) = oneshot::channel::<()>();
    tauri::async_runtime::spawn(async move {
        let served = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                pigment_server::serve(listener, router, async {
                    let _ = stopped.await;
                })
                .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = served {
            eprintln!("Pigment: the API server on {address} stopped: {error}");
        }
    });
    *running = Some(RunningApiServer { address, _stop: stop });
    Ok(Some(address))
}

#[derive(Default)]
struct Shared {
    progress: Mutex<ProgressSnapshot>,
    /// The app's id of the API job that runs now: what interrupt and skip cancel (never the window's jobs).
    running: Mutex<Option<JobId>>,
    /// The model `sd_model_checkpoint` chose (an app model id); `None` is the app's default model.
    selected: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// [`Backend`] over the app's job queue.
struct QueueBackend<R: Runtime> {
    app: AppHandle<R>,
    shared: Arc<Shared>,
}

impl<R: Runtime> QueueBackend<R> {
    fn usable_models(&self) -> Vec<AppModelEntry> {
        self.app.state::<AppState>().models().into_iter().filter(|m| m.problem.is_none()).collect()
    }

    /// The app's model id for an A1111 title or name, or the id itself.
    fn model_id(&self, name: &str) -> std::result::Result<String, ApiError> {
        let models = self.usable_models();
        models.iter().find(|m| title_matches(&m.name, name) || m.id == name.trim()).map(|m| m.id.clone()).ok_or_else(
            || ApiError::NotFound {
                what: "model",
                name: name.into(),
                known: models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
            },
        )
    }

    /// The app's job for an API generation, and how many batches it has.
    fn prepare(
        &self,
        model: Option<String>,
        generation: Generation,
        hires_upscaler: Option<String>,
    ) -> std::result::Result<(QueuedJob<GenerationJob>, usize), ApiError> {
        if hires_upscaler.is_some() {
            return Err(ApiError::Unsupported(
                "upscaler models are not available through the app's API (Latent and Lanczos are); use \
                 `pigment serve --upscalers DIR`"
                    .into(),
            ));
        }
        let state = self.app.state::<AppState>();
        let id = model.map(|name| self.model_id(&name)).transpose()?.or_else(|| lock(&self.shared.selected).clone());
        let path = match id {
            Some(id) => library::resolve(&id, &state.paths, &state.settings()),
            None => library::default_model(&state.paths, &state.settings()).map(|m| m.path).ok_or(AppError::NoModel),
        }
        .map_err(api_error)?;
        let generate = &generation.params;
        let prompt = if generate.prompt.trim().is_empty() { "(no prompt)" } else { generate.prompt.as_str() };
        let label = format!("API: {prompt}");
        let batches = generate.batch_count;
        let images = generate.batch_size * generate.batch_count;
        let job = GenerationJob { generation, model: path, output_folder: state.output_folder() };
        Ok((QueuedJob { job, label, images }, batches))
    }

    /// Queues `job`; its events answer `done`.
    fn queue(&self, job: QueuedJob<GenerationJob>, batches: usize, done: oneshot::Sender<JobResult>) {
        let done = Arc::new(Mutex::new(Some(done)));
        let sink = ApiSink { shared: self.shared.clone(), batches, images: Mutex::new(Vec::new()), done: done.clone() };
        if let Err(error) = self.app.state::<AppState>().submit_job(job, Box::new(sink))
            && let Some(done) = lock(&done).take()
        {
            // Refused before it was queued: no event will come, so answer here.
            let _ = done.send(Err(api_error(error)));
        }
    }
}

/// An app error as the API reports it: a bad field as a 422 naming it, the rest by its message.
fn api_error(error: AppError) -> ApiError {
    match error {
        AppError::Engine(engine) => ApiError::Engine(engine),
        AppError::InvalidInput { field, reason } => ApiError::field(field, reason),
        AppError::QueueStopped => ApiError::QueueStopped,
        other => ApiError::Internal(other.to_string()),
    }
}

impl<R: Runtime> Backend for QueueBackend<R> {
    fn submit(&self, job: Job) -> oneshot::Receiver<JobResult> {
        let (done, result) = oneshot::channel();
        match job {
            Job::SwitchModel { name } => {
                let switched = self.model_id(&name).map(|id| {
                    *lock(&self.shared.selected) = Some(id);
                    JobOutput::ModelSwitched
                });
                let _ = done.send(switched);
            }
            Job::Generate { model, generation, hires_upscaler } => {
                match self.prepare(model, *generation, hires_upscaler) {
                    Ok((job, batches)) => self.queue(job, batches, done),
                    Err(error) => {
                        let _ = done.send(Err(error));
                    }
                }
            }
            // Lanczos runs on the CPU, beside the queue: it never competes for the GPU.
            Job::Upscale { upscaler: Some(name), .. } => {
                let _ = done.send(Err(ApiError::NotFound {
                    what: "upscaler",
                    name,
                    known: "None, Lanczos (upscaler models: `pigment serve --upscalers DIR`)".into(),
                }));
            }
            Job::Upscale { image, width, height, upscaler: None } => {
                tauri::async_runtime::spawn_blocking(move || {
                    let upscaled =
                        upscale(&image, width, height, None, UpscaleTiling::default(), &mut |_| Flow::Continue);
                    let _ = done.send(
                        upscaled
                            .map(|image| JobOutput::Upscaled { image, upscaler: "Lanczos".into() })
                            .map_err(Into::into),
                    );
                });
            }
        }
        result
    }

    fn interrupt(&self) {
        if let Some(id) = *lock(&self.shared.running) {
            lock(&self.shared.progress).interrupted = true;
            let _ = self.app.state::<AppState>().cancel(id);
        }
    }

    /// Skips the running API job's current batch; its next batch runs, as in `pigment serve`.
    fn skip(&self) {
        if let Some(id) = *lock(&self.shared.running) {
            lock(&self.shared.progress).skipped = true;
            let _ = self.app.state::<AppState>().skip(id);
        }
    }

    fn progress(&self) -> ProgressSnapshot {
        let queued = self.app.state::<AppState>().jobs().iter().filter(|job| !job.running).count();
        ProgressSnapshot { queued, ..lock(&self.shared.progress).clone() }
    }

    fn models(&self) -> Vec<ModelEntry> {
        self.usable_models().iter().map(model_entry).collect()
    }

    fn current_model(&self) -> Option<ModelEntry> {
        let models = self.usable_models();
        let selected = lock(&self.shared.selected).clone();
        let state = self.app.state::<AppState>();
        let default = library::default_model(&state.paths, &state.settings()).map(|m| m.id);
        let id = selected.or(default)?;
        models.iter().find(|m| m.id == id).map(model_entry)
    }

    fn upscalers(&self) -> Vec<UpscalerEntry> {
        Vec::new()
    }
}

fn model_entry(model: &AppModelEntry) -> ModelEntry {
    ModelEntry {
        title: model.name.clone(),
        model_name: model.name.clone(),
        hash: None,
        filename: model.path.display().to_string(),
    }
}

/// One API job's events: keeps /progress current, collects the saved images, answers the request at the end.
struct ApiSink {
    shared: Arc<Shared>,
    batches: usize,
    images: Mutex<Vec<GeneratedImage>>,
    /// Shared with the submitter, which answers a job refused before it was queued.
    done: Arc<Mutex<Option<oneshot::Sender<JobResult>>>>,
}

impl ApiSink {
    fn finish(&self, result: JobResult) {
        *lock(&self.shared.running) = None;
        *lock(&self.shared.progress) = ProgressSnapshot::default();
        if let Some(done) = lock(&self.done).take() {
            let _ = done.send(result);
        }
    }
}

impl EventSink for ApiSink {
    fn send(&self, event: JobEvent) {
        match event {
            JobEvent::Queued { .. } | JobEvent::LoadingModel { .. } => {}
            JobEvent::Started { job_id } => {
                *lock(&self.shared.running) = Some(job_id);
                *lock(&self.shared.progress) = ProgressSnapshot {
                    job_count: self.batches,
                    job: "txt2img".into(),
                    started: Some(Instant::now()),
                    ..ProgressSnapshot::default()
                };
            }
            JobEvent::Progress(report) => {
                let mut progress = lock(&self.shared.progress);
                progress.job_no = report.batch;
                progress.sampling_step = report.step;
                progress.sampling_steps = report.steps;
                if let Some(preview) = report.preview.as_deref().and_then(decode_data_url) {
                    progress.current_image = Some(preview);
                }
            }
            JobEvent::Image(saved) => {
                // The file just written is the image the client gets: what it sees is what the gallery keeps.
                let image = image::open(&saved.path).map(|picture| picture.to_rgb8());
                let infotext = InfoText::parse(&saved.parameters);
                match (image, infotext) {
                    (Ok(image), Ok(infotext)) => lock(&self.images).push(GeneratedImage {
                        image,
                        seed: saved.seed,
                        index: saved.index,
                        infotext,
                    }),
                    (Err(error), _) => eprintln!("Pigment: cannot read back {}: {error}", saved.path.display()),
                    (_, Err(error)) => {
                        eprintln!("Pigment: cannot read back {}'s parameters: {error}", saved.path.display())
                    }
                }
            }
            JobEvent::Finished { .. } => {
                let images = std::mem::take(&mut *lock(&self.images));
                self.finish(Ok(JobOutput::Images { images, interrupted: false }));
            }
            JobEvent::Cancelled { .. } => {
                let images = std::mem::take(&mut *lock(&self.images));
                self.finish(Ok(JobOutput::Images { images, interrupted: true }));
            }
            JobEvent::Failed { error } => self.finish(Err(match error.field {
                Some(field) => ApiError::field(field, error.message),
                None => ApiError::Internal(error.message),
            })),
        }
    }
}

/// The window's preview (a PNG data URL) as a picture for /progress.
fn decode_data_url(url: &str) -> Option<image::RgbImage> {
    let encoded = url.strip_prefix("data:image/png;base64,")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    image::load_from_memory(&bytes).ok().map(|picture| picture.to_rgb8())
}
