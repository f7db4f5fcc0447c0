//! Pigment's desktop app: the Tauri shell over `pigment-engine`.
//!
//! Layout after Tauri's plugins-workspace: `commands.rs` (thin IPC commands), `error.rs` (the serializable error),
//! `models.rs` (what crosses the IPC), `state.rs` (the state the commands share, injected with `manage`), and the
//! parts behind it: the job queue on its own thread (`queue.rs`), the engine backend (`generation.rs`), the model
//! list (`library.rs`), settings (`settings.rs`) and path checks (`paths.rs`).

pub mod api_server;
pub mod canvas;
pub mod command_names;
pub mod commands;
pub mod control;
pub mod control_preview;
pub mod error;
pub mod gallery;
pub mod generation;
pub mod library;
pub mod models;
pub mod paths;
pub mod preview;
pub mod queue;
pub mod runtime_slot;
pub mod settings;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;

use pigment_engine::runtime::{Runtime as OnnxRuntime, RuntimeOptions};
use tauri::{Manager, Runtime};

use crate::error::{AppError, Result};
use crate::paths::AppPaths;
use crate::runtime_slot::RuntimeSlot;
use crate::state::AppState;

/// Adds to `builder` the plugins (used from Rust only: no plugin permission is granted to the window) and the
/// command handler. The app adds its state in `setup`; tests start from `tauri::test::mock_builder()` and `manage`
/// their own.
pub fn configure<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .on_window_event(gallery::on_window_event)
        .invoke_handler(tauri::generate_handler![
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
            commands::read_output_image,
            gallery::gallery_status,
            gallery::gallery_search,
            gallery::gallery_image,
            gallery::gallery_filters,
            gallery::gallery_set_favourite,
            gallery::gallery_boards,
            gallery::gallery_create_board,
            gallery::gallery_rename_board,
            gallery::gallery_delete_board,
            gallery::gallery_board_images,
            gallery::gallery_delete,
            gallery::gallery_undo_delete,
            gallery::gallery_history,
            gallery::gallery_rescan,
            gallery::gallery_cancel_scan,
            gallery::gallery_reveal,
            gallery::watch_dropped_files,
            gallery::gallery_import_dropped,
            control::list_control_models,
            control::preprocess_control,
            control_preview::watch_control_previews,
            control_preview::cancel_control_preview,
            canvas::save_mask_as,
            canvas::read_dropped_picture,
        ])
}

pub fn run() {
    let app = configure(tauri::Builder::<tauri::Wry>::default())
        .setup(|app| {
            let state = start(app.handle())?;
            let api = state.settings().api_server;
            app.manage(state);
            // A port taken since the switch was set must not stop the app: the settings view shows the server off.
            if let Err(error) = api_server::apply(app.handle(), api) {
                eprintln!("Pigment: the API server did not start: {error}");
            }
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
        None => resources.as_deref().and_then(paths::bundled_onnxruntime),
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
        low_vram: state.settings().gpu_memory.choice(),
        ..RuntimeOptions::default()
    };
    std::thread::Builder::new()
        .name("pigment-runtime".into())
        .spawn(move || slot.fill(OnnxRuntime::load(&options)))
        .map_err(|e| AppError::platform("start loading ONNX Runtime", e))?;
    commands::allow_asset_folder(app, &state.output_folder())?;
    commands::allow_asset_folder(app, &state.paths.models_folder)?;
    // Thumbnails; then the startup reconcile: the index catches up with files added or removed while Pigment was
    // closed (or saved just before it was killed).
    commands::allow_asset_folder(app, state.gallery.data_root())?;
    let reconcile_app = app.clone();
    std::thread::Builder::new()
        .name("pigment-gallery".into())
        .spawn(move || {
            let state = reconcile_app.state::<AppState>();
            if let Err(error) = state.gallery.rescan(&state.output_folder(), &mut |_| {}) {
                eprintln!("Pigment: the gallery scan at start failed: {error}");
            }
        })
        .map_err(|e| AppError::platform("start the gallery scan", e))?;
    Ok(state)
}
