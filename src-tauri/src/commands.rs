//! The commands the window may call (and, through `capabilities/main-window.json`, the only ones). Each is thin:
//! it takes the state, calls into it and adds what needs Tauri (channels, native dialogs, clipboard, asset scope).
//! All are `async` so none runs on the main (UI) thread; the slow ones move to a blocking thread.

use std::path::PathBuf;

use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};
use tauri_plugin_clipboard_manager::ClipboardExt;
use tauri_plugin_dialog::DialogExt;

use crate::error::{AppError, Result};
use crate::models::{AppInfo, GenerateParams, JobEvent, JobSummary, ModelEntry, ModelReport, SamplerOption};
use crate::queue::EventSink;
use crate::settings::Settings;
use crate::state::{AppState, SettingsSaved, SettingsUpdate};

/// A job's events go to the channel the window passed with it.
struct ChannelSink(Channel<JobEvent>);

impl EventSink for ChannelSink {
    fn send(&self, event: JobEvent) {
        // The window may have been closed or reloaded; the job goes on and its images are saved all the same.
        let _ = self.0.send(event);
    }
}

/// Runs `work` on a blocking thread with the state (model loading, inspection, dialogs).
pub(crate) async fn blocking<R: Runtime, T: Send + 'static>(
    app: &AppHandle<R>,
    work: impl FnOnce(&AppState) -> Result<T> + Send + 'static,
) -> Result<T> {
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || work(&app.state::<AppState>()))
        .await
        .map_err(|e| AppError::platform("finish a background task", e))?
}

#[tauri::command]
pub async fn app_info(state: State<'_, AppState>) -> Result<AppInfo> {
    Ok(state.info())
}

#[tauri::command]
pub async fn list_models(state: State<'_, AppState>) -> Result<Vec<ModelEntry>> {
    Ok(state.models())
}

/// "Add model folder...": a native folder dialog, then the engine loads the folder. `None` when the user cancels.
#[tauri::command]
pub async fn add_model_folder<R: Runtime>(app: AppHandle<R>) -> Result<Option<ModelReport>> {
    let dialog_app = app.clone();
    blocking(&app, move |state| {
        let Some(picked) = dialog_app.dialog().file().set_title("Add a model folder").blocking_pick_folder() else {
            return Ok(None);
        };
        let folder = picked.into_path().map_err(|e| AppError::platform("read the chosen folder", e))?;
        state.add_model_folder(&folder).map(Some)
    })
    .await
}

#[tauri::command]
pub async fn inspect_model<R: Runtime>(app: AppHandle<R>, id: String) -> Result<ModelReport> {
    blocking(&app, move |state| state.inspect_model(&id)).await
}

#[tauri::command]
pub async fn list_samplers() -> Result<Vec<SamplerOption>> {
    Ok(crate::models::sampler_options())
}

#[tauri::command]
pub async fn get_settings(state: State<'_, AppState>) -> Result<Settings> {
    Ok(state.settings())
}

#[tauri::command]
pub async fn save_settings<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    update: SettingsUpdate,
) -> Result<SettingsSaved> {
    // First, so that a port in use refuses the change instead of saving a switch that does not work.
    crate::api_server::apply(&app, update.api_server)?;
    let saved = state.save_settings(update)?;
    allow_asset_folder(&app, &state.output_folder())?;
    Ok(saved)
}

/// A native folder dialog for the output folder; the folder then becomes one the settings may name.
#[tauri::command]
pub async fn pick_output_folder<R: Runtime>(app: AppHandle<R>) -> Result<Option<PathBuf>> {
    let dialog_app = app.clone();
    blocking(&app, move |state| {
        let Some(picked) = dialog_app.dialog().file().set_title("Choose the output folder").blocking_pick_folder()
        else {
            return Ok(None);
        };
        let folder = picked.into_path().map_err(|e| AppError::platform("read the chosen folder", e))?;
        state.remember_picked_folder(&folder);
        Ok(Some(folder))
    })
    .await
}

#[tauri::command]
pub async fn submit_job(
    state: State<'_, AppState>,
    params: GenerateParams,
    on_event: Channel<JobEvent>,
) -> Result<u64> {
    state.submit(&params, Box::new(ChannelSink(on_event)))
}

#[tauri::command]
pub async fn cancel_job(state: State<'_, AppState>, id: u64) -> Result<()> {
    state.cancel(id)
}

#[tauri::command]
pub async fn move_job(state: State<'_, AppState>, id: u64, index: usize) -> Result<()> {
    state.move_job(id, index)
}

#[tauri::command]
pub async fn list_jobs(state: State<'_, AppState>) -> Result<Vec<JobSummary>> {
    Ok(state.jobs())
}

/// "Save as": a native save dialog, then a copy of the generated image. `None` when the user cancels.
#[tauri::command]
pub async fn save_image_as<R: Runtime>(app: AppHandle<R>, path: PathBuf) -> Result<Option<PathBuf>> {
    let dialog_app = app.clone();
    blocking(&app, move |state| {
        let source = state.output_image(&path)?;
        let file_name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(target) = dialog_app
            .dialog()
            .file()
            .set_title("Save image as")
            .set_file_name(file_name)
            .add_filter("PNG image", &["png"])
            .blocking_save_file()
        else {
            return Ok(None);
        };
        let target = target.into_path().map_err(|e| AppError::platform("read the chosen file name", e))?;
        std::fs::copy(&source, &target).map_err(|e| AppError::Write { path: target.clone(), reason: e.to_string() })?;
        Ok(Some(target))
    })
    .await
}

/// Puts a generated image on the clipboard.
#[tauri::command]
pub async fn copy_image<R: Runtime>(app: AppHandle<R>, path: PathBuf) -> Result<()> {
    let clipboard_app = app.clone();
    blocking(&app, move |state| {
        let source = state.output_image(&path)?;
        let image = image::open(&source)
            .map_err(|e| AppError::Read { path: source.clone(), reason: e.to_string() })?
            .to_rgba8();
        let (width, height) = image.dimensions();
        clipboard_app
            .clipboard()
            .write_image(&tauri::image::Image::new(image.as_raw(), width, height))
            .map_err(|e| AppError::platform("copy the image to the clipboard", e))
    })
    .await
}

/// A generated image's PNG bytes, for the canvas: WebKitGTK gives custom schemes no CORS, so a canvas that drew
/// an asset-protocol image could not read its pixels back; the bytes come over IPC instead.
#[tauri::command]
pub async fn read_output_image<R: Runtime>(app: AppHandle<R>, path: PathBuf) -> Result<tauri::ipc::Response> {
    blocking(&app, move |state| {
        let source = state.output_image(&path)?;
        std::fs::read(&source)
            .map(tauri::ipc::Response::new)
            .map_err(|e| AppError::Read { path: source.clone(), reason: e.to_string() })
    })
    .await
}

/// Lets the window show images from `folder` through the asset protocol (the scope starts empty).
pub fn allow_asset_folder<R: Runtime>(app: &AppHandle<R>, folder: &std::path::Path) -> Result<()> {
    app.asset_protocol_scope()
        .allow_directory(folder, true)
        .map_err(|e| AppError::platform("allow the window to show images from that folder", e))
}
