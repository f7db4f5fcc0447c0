//! Everything the commands work on, managed by Tauri (`app.manage`) and passed to each command; no global state.
//! The logic lives here, in plain Rust the tests call directly; `commands.rs` only adds the Tauri parts (dialogs,
//! clipboard, channels, asset scope).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::api_server::{ApiServerSettings, RunningApiServer};
use crate::control_preview::ControlPreviews;
use crate::error::{AppError, Result};
use crate::gallery::GalleryService;
use crate::generation::{EngineBackend, GenerationJob};
use crate::library;
use crate::models::{AppInfo, GenerateParams, JobSummary, ModelEntry, ModelReport, ModelSource, invalid};
use crate::paths::{AppPaths, check_writable_folder, output_image};
use crate::queue::{EventSink, JobId, JobQueue, QueuedJob};
use crate::runtime_slot::RuntimeSlot;
use crate::settings::{self, Device, GpuMemory, Precision, Settings, Theme};

pub struct AppState {
    pub paths: AppPaths,
    settings: Mutex<Settings>,
    settings_notice: Option<String>,
    /// The device and precision ONNX Runtime was loaded with: a change takes effect at the next start (ONNX
    /// Runtime allows one environment per process).
    started_runtime: (Device, Precision, GpuMemory),
    pub runtime: Arc<RuntimeSlot>,
    queue: JobQueue<GenerationJob>,
    /// Folders the user picked in a native dialog this session: the only new paths a settings change may name.
    picked_folders: Mutex<Vec<PathBuf>>,
    /// The gallery index of the output folder; every saved image is indexed through it.
    pub gallery: GalleryService,
    /// The A1111-compatible API while the settings switch it on (`api_server::apply`).
    pub api_server: Mutex<Option<RunningApiServer>>,
    /// The control panel's previews while they run (progress, cancel).
    pub control_previews: ControlPreviews,
}

/// What the settings form may change (added model folders change only through "Add model folder...").
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsUpdate {
    pub output_folder: Option<PathBuf>,
    pub default_model: Option<String>,
    pub device: Device,
    pub precision: Precision,
    #[serde(default)]
    pub gpu_memory: GpuMemory,
    pub theme: Theme,
    #[serde(default)]
    pub api_server: ApiServerSettings,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsSaved {
    pub settings: Settings,
    /// Set when a change (device, precision, GPU memory) applies only after Pigment restarts.
    pub restart_needed: bool,
}

impl AppState {
    /// Loads the settings (falling back to defaults with a notice), creates the app's folders and starts the job
    /// thread. `runtime` may still be loading.
    pub fn new(paths: AppPaths, runtime: Arc<RuntimeSlot>) -> Result<AppState> {
        paths.create_folders()?;
        let loaded = settings::load(&paths.settings_file);
        let started_runtime = (loaded.settings.device, loaded.settings.precision, loaded.settings.gpu_memory);
        let queue = JobQueue::start(EngineBackend::new(runtime.clone()))?;
        let gallery = GalleryService::new(paths.gallery_data_folder());
        Ok(AppState {
            paths,
            settings: Mutex::new(loaded.settings),
            settings_notice: loaded.notice,
            started_runtime,
            runtime,
            queue,
            picked_folders: Mutex::new(Vec::new()),
            gallery,
            api_server: Mutex::new(None),
            control_previews: ControlPreviews::default(),
        })
    }

    fn lock_settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn settings(&self) -> Settings {
        self.lock_settings().clone()
    }

    pub fn output_folder(&self) -> PathBuf {
        self.lock_settings().output_folder.clone().unwrap_or_else(|| self.paths.default_output_folder.clone())
    }

    pub fn info(&self) -> AppInfo {
        let status = self.runtime.status();
        AppInfo {
            version: env!("CARGO_PKG_VERSION"),
            models_folder: self.paths.models_folder.clone(),
            output_folder: self.output_folder(),
            config_file: self.paths.settings_file.clone(),
            settings_notice: self.settings_notice.clone(),
            execution_provider: status.as_ref().and_then(|s| s.as_ref().ok().cloned()),
            runtime_error: status.and_then(|s| s.err()),
            api_server_address: self
                .api_server
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|server| server.address.to_string()),
        }
    }

    pub fn models(&self) -> Vec<ModelEntry> {
        library::list_models(&self.paths, &self.settings())
    }

    /// Remembers a folder the user picked in a native dialog, so a settings change may name it.
    pub fn remember_picked_folder(&self, folder: &Path) {
        self.picked_folders.lock().unwrap_or_else(|p| p.into_inner()).push(folder.to_path_buf());
    }

    pub fn save_settings(&self, update: SettingsUpdate) -> Result<SettingsSaved> {
        let current = self.settings();
        if let Some(folder) = &update.output_folder {
            let allowed = current.output_folder.as_ref() == Some(folder)
                || *folder == self.paths.default_output_folder
                || self.picked_folders.lock().unwrap_or_else(|p| p.into_inner()).contains(folder);
            if !allowed {
                return Err(AppError::PathNotAllowed {
                    path: folder.clone(),
                    reason: "choose the output folder with the Browse button".into(),
                });
            }
            check_writable_folder(folder)?;
        }
        if let Some(id) = &update.default_model
            && !self.models().iter().any(|m| &m.id == id)
        {
            return Err(invalid("default_model", format!("{id:?} is not in the model list")));
        }
        let settings = Settings {
            output_folder: update.output_folder,
            default_model: update.default_model,
            device: update.device,
            precision: update.precision,
            gpu_memory: update.gpu_memory,
            theme: update.theme,
            model_folders: current.model_folders,
            api_server: update.api_server,
        };
        settings::save(&self.paths.settings_file, &settings)?;
        *self.lock_settings() = settings.clone();
        let restart_needed = (settings.device, settings.precision, settings.gpu_memory) != self.started_runtime;
        Ok(SettingsSaved { restart_needed, settings })
    }

    /// Loads `folder` with the engine; when it works, adds it to the model list for good.
    pub fn add_model_folder(&self, folder: &Path) -> Result<ModelReport> {
        let runtime = self.runtime.get()?;
        let report = library::inspect(&runtime, folder, ModelSource::Added)?;
        let mut settings = self.settings();
        if !self.models().iter().any(|m| m.path == folder) {
            settings.model_folders.push(folder.to_path_buf());
            settings::save(&self.paths.settings_file, &settings)?;
            *self.lock_settings() = settings;
        }
        Ok(report)
    }

    pub fn inspect_model(&self, id: &str) -> Result<ModelReport> {
        let path = library::resolve(id, &self.paths, &self.settings())?;
        let source = self.models().into_iter().find(|m| m.id == id).map_or(ModelSource::Added, |m| m.source);
        library::inspect(&self.runtime.get()?, &path, source)
    }

    /// Checks the parameters (errors name their field) and queues the job.
    pub fn submit(&self, params: &GenerateParams, events: Box<dyn EventSink>) -> Result<JobId> {
        if params.prompt.len() > 100_000 {
            return Err(invalid("prompt", "longer than 100000 characters"));
        }
        let mut generation = params.to_generation()?;
        generation.control = crate::control::control_spec(params, &self.paths.models_folder)?;
        let generate = &generation.params;
        let settings = self.settings();
        let model = if params.model_id.is_empty() {
            library::default_model(&self.paths, &settings).ok_or(AppError::NoModel)?.path
        } else {
            library::resolve(&params.model_id, &self.paths, &settings)?
        };
        let images = generate.batch_size * generate.batch_count;
        let label = if generate.prompt.trim().is_empty() { "(no prompt)".to_string() } else { generate.prompt.clone() };
        let job = GenerationJob { generation, model, output_folder: self.output_folder() };
        self.submit_job(QueuedJob { job, label, images }, events)
    }

    /// Queues a checked job (the window's, or the API's); its images are indexed in the gallery as they are saved.
    pub fn submit_job(&self, job: QueuedJob<GenerationJob>, events: Box<dyn EventSink>) -> Result<JobId> {
        let events = self.gallery.indexing_sink(&job.job.output_folder, events);
        self.queue.submit(job, events)
    }

    pub fn cancel(&self, id: JobId) -> Result<()> {
        self.queue.cancel(id)
    }

    /// Skips the running job's current batch; its next batch runs.
    pub fn skip(&self, id: JobId) -> Result<()> {
        self.queue.skip(id)
    }

    pub fn move_job(&self, id: JobId, index: usize) -> Result<()> {
        self.queue.move_to(id, index)
    }

    pub fn jobs(&self) -> Vec<JobSummary> {
        self.queue.list()
    }

    /// A generated image named by the UI, checked to be a PNG inside the output folder.
    pub fn output_image(&self, path: &Path) -> Result<PathBuf> {
        output_image(path, &self.output_folder())
    }

    pub fn shutdown(&self) {
        self.gallery.shutdown();
        self.queue.shutdown();
    }
}
