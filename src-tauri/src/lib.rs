//! Pigment's desktop app: the Tauri shell over `pigment-engine`.
//!
//! Layout after Tauri's plugins-workspace: `commands.rs` (thin IPC commands), `error.rs` (the serializable error),
//! `models.rs` (what crosses the IPC), `state.rs` (the state the commands share, injected with `manage`), and the
//! parts behind it: the job queue on its own thread (`queue.rs`), the engine backend (`generation.rs`), the model
//! list (`library.rs`), settings (`settings.rs`) and path checks (`paths.rs`).

pub mod command_names;
pub mod commands;
pub mod error;
pub mod generation;
pub mod library;
pub mod models;
pub mod paths;
pub mod preview;
pub mod queue;
pub mod runtime_slot;
pub mod settings;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pigment_engine::runtime::{Runtime as OnnxRuntime, RuntimeOptions, library_file_names};
use tauri::{Manager, Runtime};

use crate::error::{AppError, Result};
use crate::paths::AppPaths;
use crate::runtime_slot::RuntimeSlot;
use crate::state::AppState;

/// Adds to `builder` the plugins (used from Rust only: no plugin permission is granted to the window) and the
/// command handler. The app adds its state in `setup`; tests start from `tauri::test::mock_builder()` and `manage`
/// their own.
pub fn configure<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.plugin(tauri_plugin_dialog::init()).plugin(tauri_plugin_clipboard_manager::init()).invoke_handler(
        tauri::generate_handler![
            commands::app_info,
            commands::list_models,
            commands::add_model_folder,
            commands::inspect_model,
            commands::list_samplers,
            commands::get_settings,
            commands::save_settings,
            commands::pick_output_folder,
            commands::submit_job,
            commands::cancel_job,
            commands::move_job,
            commands::list_jobs,
            commands::save_image_as,
            commands::copy_image,
        ],
    )
}

pub fn run() {
    let app = configure(tauri::Builder::<tauri::Wry>::default())
        .setup(|app| {
            let state = start(app.handle())?;
            app.manage(state);
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(error) => {
            eprintln!("Pigment could not start: {error}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        if let tauri::RunEvent::Exit = event
            && let Some(state) = handle.try_state::<AppState>()
        {
            // Stop the running job between steps so the process exits promptly; saved images stay.
            state.shutdown();
        }
    });
}

/// The app's folders, settings, job thread and ONNX Runtime (loaded in the background).
fn start<R: Runtime>(app: &tauri::AppHandle<R>) -> Result<AppState> {
    let path = app.path();
    let folder = |found: tauri::Result<PathBuf>, what: &'static str| found.map_err(|e| AppError::platform(what, e));
    let data = folder(path.app_data_dir(), "find its data folder")?;
    let config = folder(path.app_config_dir(), "find its config folder")?;
    let resources = path.resource_dir().ok();
    let demo_model = resources
        .as_ref()
        .map(|r| r.join("models").join(pigment_engine::model::DEMO_MODEL_NAME))
        .filter(|dir| dir.join("model_index.json").is_file())
        .or_else(pigment_engine::model::find_demo_model);
    // ORT_DYLIB_PATH wins (the engine reads it); else the library shipped in the bundle; else the engine's search.
    let onnxruntime_library = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(_) => None,
        None => resources.as_ref().and_then(|r| bundled_library(&r.join("onnxruntime"))),
    };
    let paths = AppPaths {
        models_folder: data.join("models"),
        settings_file: config.join("settings.json"),
        default_output_folder: path.picture_dir().map(|p| p.join("Pigment")).unwrap_or_else(|_| data.join("outputs")),
        demo_model,
        onnxruntime_library: onnxruntime_library.clone(),
    };
    let slot = Arc::new(RuntimeSlot::empty());
    let state = AppState::new(paths, slot.clone())?;
    let options = RuntimeOptions {
        library_path: onnxruntime_library,
        device: state.settings().device.choice(),
        // Optimized graphs and fp16 conversions are kept between starts so a model loads faster the second time.
        cache_dir: path.app_cache_dir().ok(),
        precision: state.settings().precision.choice(),
    };
    std::thread::Builder::new()
        .name("pigment-runtime".into())
        .spawn(move || slot.fill(OnnxRuntime::load(&options)))
        .map_err(|e| AppError::platform("start loading ONNX Runtime", e))?;
    commands::allow_asset_folder(app, &state.output_folder())?;
    commands::allow_asset_folder(app, &state.paths.models_folder)?;
    Ok(state)
}

/// `libonnxruntime.so` or a versioned `libonnxruntime.so.1.31.1` in `folder`.
fn bundled_library(folder: &Path) -> Option<PathBuf> {
    let name = library_file_names().first()?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n == *name || n.starts_with(&format!("{name}.")))
        })
        .collect();
    found.sort();
    found.pop()
}
