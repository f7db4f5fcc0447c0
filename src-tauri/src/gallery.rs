//! The gallery in the app: thin commands over `pigment-gallery`, the index of the current output folder (one index
//! and thumbnail cache per folder under `<app data>/gallery/`), indexing of each image a job saves, and the pictures
//! dropped on the window (sent over a channel, so the window needs no event permission; the window gives them to the
//! view shown: "PNG Info" or the canvas).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use image::RgbImage;
use pigment_gallery::{
    Board, FilterOptions, Gallery, GalleryError, HistoryEntry, ImageDetail, ImageMetadata, Recovery, ReuseParams,
    ScanProgress, ScanReport, SearchPage, SearchQuery, read_metadata,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};

use crate::error::{AppError, Result};
use crate::models::JobEvent;
use crate::queue::EventSink;
use crate::state::AppState;

impl From<GalleryError> for AppError {
    fn from(error: GalleryError) -> AppError {
        match error {
            GalleryError::PathNotAllowed { path, reason } => AppError::PathNotAllowed { path, reason },
            GalleryError::Read { path, reason } => AppError::Read { path, reason },
            GalleryError::Write { path, reason } => AppError::Write { path, reason },
            GalleryError::UnknownImage { .. } | GalleryError::CannotRestore { .. } => {
                AppError::InvalidInput { field: "image", reason: error.to_string() }
            }
            GalleryError::UnknownBoard { .. } => AppError::InvalidInput { field: "board", reason: error.to_string() },
            GalleryError::InvalidInput { field, .. } => AppError::InvalidInput { field, reason: error.to_string() },
            GalleryError::Database { .. } => AppError::platform("use the gallery index", error),
            GalleryError::Trash { .. } => AppError::platform("move the image to the trash", error),
            GalleryError::Cancelled => AppError::platform("finish the gallery scan", error),
        }
    }
}

/// The files a drop may bring: the formats the engine reads (`pigment_engine::image::load_image`).
const PICTURE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp"];

/// A picture dropped on the window, with what its metadata says ("PNG Info").
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedImage {
    pub path: PathBuf,
    pub file_name: String,
    pub metadata: Option<ImageMetadata>,
    pub reuse: Option<ReuseParams>,
    /// Why the file could not be read, when it could not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GalleryStatus {
    pub folder: PathBuf,
    pub thumbnails_folder: PathBuf,
    /// Set when the index was found damaged and rebuilt from the files.
    pub recovery: Option<Recovery>,
}

/// The gallery of the output folder, opened on first use and again when the output folder changes.
pub struct GalleryService {
    /// `<app data>/gallery`.
    data_root: PathBuf,
    open: Mutex<Option<Arc<Gallery>>>,
    /// One scan at a time (the startup reconcile, a rescan the user asked for).
    scanning: Mutex<()>,
    cancel_scan: AtomicBool,
    /// Where the pictures dropped on the window go.
    drops: Mutex<Option<Channel<DroppedImage>>>,
    /// Pictures the user dropped on the window this session: the only paths outside the gallery folder an import
    /// or the canvas may read.
    dropped: Mutex<HashSet<PathBuf>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl GalleryService {
    pub fn new(data_root: PathBuf) -> GalleryService {
        GalleryService {
            data_root,
            open: Mutex::new(None),
            scanning: Mutex::new(()),
            cancel_scan: AtomicBool::new(false),
            drops: Mutex::new(None),
            dropped: Mutex::new(HashSet::new()),
        }
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// The gallery of `folder`: the one already open, or a newly opened one.
    pub fn gallery(&self, folder: &Path) -> Result<Arc<Gallery>> {
        let mut open = lock(&self.open);
        let wanted = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
        if let Some(gallery) = open.as_ref().filter(|g| g.folder() == wanted) {
            return Ok(gallery.clone());
        }
        // One index per folder, so switching the output folder back and forth keeps favourites and boards.
        let digest = Sha256::digest(wanted.to_string_lossy().as_bytes());
        let key: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let gallery = Arc::new(Gallery::open(folder, &self.data_root.join(key))?);
        *open = Some(gallery.clone());
        Ok(gallery)
    }

    /// Makes the index of `folder` match its files, reporting progress; cancelled by [`GalleryService::cancel_scan`].
    pub fn rescan(&self, folder: &Path, progress: &mut dyn FnMut(ScanProgress)) -> Result<ScanReport> {
        let _one_at_a_time = lock(&self.scanning);
        self.cancel_scan.store(false, Ordering::SeqCst);
        let gallery = self.gallery(folder)?;
        Ok(gallery.reconcile(progress, &|| self.cancel_scan.load(Ordering::SeqCst))?)
    }

    pub fn cancel_scan(&self) {
        self.cancel_scan.store(true, Ordering::SeqCst);
    }

    /// Wraps a job's event sink so every image the job saves is indexed (after its file was renamed into place,
    /// which is when the job sends the image event) before the window hears of it.
    pub fn indexing_sink(&self, folder: &Path, events: Box<dyn EventSink>) -> Box<dyn EventSink> {
        match self.gallery(folder) {
            Ok(gallery) => Box::new(IndexingSink { gallery, events }),
            Err(error) => {
                // The images are saved all the same; the next rescan indexes them.
                eprintln!("Pigment: the gallery index is not available ({error}); images are saved but not indexed");
                events
            }
        }
    }

    pub fn watch_drops(&self, channel: Channel<DroppedImage>) {
        *lock(&self.drops) = Some(channel);
    }

    /// Files dropped on the window: each picture goes to the window with its "PNG Info".
    pub fn dropped(&self, paths: &[PathBuf]) {
        let channel = lock(&self.drops).clone();
        let is_picture = |path: &&PathBuf| {
            path.extension().is_some_and(|e| PICTURE_EXTENSIONS.iter().any(|known| e.eq_ignore_ascii_case(known)))
        };
        for path in paths.iter().filter(is_picture) {
            lock(&self.dropped).insert(path.clone());
            let info = png_info(path);
            if let Some(channel) = &channel {
                let _ = channel.send(info);
            }
        }
    }

    /// Copies PNGs the user dropped on the window into `<gallery>/imported/` and indexes them.
    pub fn import_dropped(&self, folder: &Path, paths: &[PathBuf]) -> Result<Vec<i64>> {
        let gallery = self.gallery(folder)?;
        let target_folder = gallery.folder().join("imported");
        std::fs::create_dir_all(&target_folder)
            .map_err(|e| AppError::Write { path: target_folder.clone(), reason: e.to_string() })?;
        let mut ids = Vec::new();
        for path in paths {
            self.check_dropped(path, "imported")?;
            read_metadata(path).map_err(AppError::from)?;
            let target = free_name(&target_folder, path);
            std::fs::copy(path, &target)
                .map_err(|e| AppError::Write { path: target.clone(), reason: e.to_string() })?;
            ids.push(gallery.index_file(&target)?.id);
        }
        Ok(ids)
    }

    /// Refuses `path` unless the user dropped it on the window this session (the window may name no other file).
    pub fn check_dropped(&self, path: &Path, action: &str) -> Result<()> {
        if lock(&self.dropped).contains(path) {
            return Ok(());
        }
        Err(AppError::PathNotAllowed {
            path: path.to_path_buf(),
            reason: format!("only pictures dropped on the window can be {action}"),
        })
    }

    pub fn shutdown(&self) {
        self.cancel_scan();
    }
}

/// `folder/<name of source>`, or `folder/<stem>-2.png` and so on when that exists.
fn free_name(folder: &Path, source: &Path) -> PathBuf {
    let stem = source.file_stem().map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
    let mut candidate = folder.join(format!("{stem}.png"));
    let mut n = 2;
    while candidate.exists() {
        candidate = folder.join(format!("{stem}-{n}.png"));
        n += 1;
    }
    candidate
}

/// "PNG Info" of any PNG file (other pictures carry none that Pigment reads).
pub fn png_info(path: &Path) -> DroppedImage {
    let file_name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        let error = format!("{file_name} is not a PNG: PNG Info reads the parameters PNG files carry");
        return DroppedImage { path: path.to_path_buf(), file_name, metadata: None, reuse: None, error: Some(error) };
    }
    match read_metadata(path) {
        Ok(metadata) => DroppedImage {
            path: path.to_path_buf(),
            file_name,
            reuse: Some(metadata.reuse()),
            metadata: Some(metadata),
            error: None,
        },
        Err(error) => DroppedImage {
            path: path.to_path_buf(),
            file_name,
            metadata: None,
            reuse: None,
            error: Some(error.to_string()),
        },
    }
}

struct IndexingSink {
    gallery: Arc<Gallery>,
    events: Box<dyn EventSink>,
}

impl EventSink for IndexingSink {
    fn send(&self, event: JobEvent) {
        self.events.send(event);
    }

    fn saved(&self, path: &Path, picture: &RgbImage, parameters: &str) {
        if let Err(error) = self.gallery.add_generated(path, picture, parameters) {
            eprintln!("Pigment: {} was saved but not indexed: {error}", path.display());
        }
        self.events.saved(path, picture, parameters);
    }
}

/// Tauri's window events: files dropped on the window.
pub fn on_window_event<R: Runtime>(window: &tauri::Window<R>, event: &tauri::WindowEvent) {
    if let tauri::WindowEvent::DragDrop(tauri::DragDropEvent::Drop { paths, .. }) = event
        && let Some(state) = window.try_state::<AppState>()
    {
        state.gallery.dropped(paths);
    }
}

/// Runs `work` with the gallery of the current output folder on a blocking thread (SQLite and file work).
async fn with_gallery<R: Runtime, T: Send + 'static>(
    app: &AppHandle<R>,
    work: impl FnOnce(&Gallery) -> pigment_gallery::Result<T> + Send + 'static,
) -> Result<T> {
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let state = app.state::<AppState>();
        let gallery = state.gallery.gallery(&state.output_folder())?;
        work(&gallery).map_err(AppError::from)
    })
    .await
    .map_err(|e| AppError::platform("finish a background task", e))?
}

#[tauri::command]
pub async fn gallery_status<R: Runtime>(app: AppHandle<R>) -> Result<GalleryStatus> {
    with_gallery(&app, |g| {
        Ok(GalleryStatus {
            folder: g.folder().to_path_buf(),
            thumbnails_folder: g.thumbnails_folder().to_path_buf(),
            recovery: g.recovery().cloned(),
        })
    })
    .await
}

#[tauri::command]
pub async fn gallery_search<R: Runtime>(app: AppHandle<R>, query: SearchQuery) -> Result<SearchPage> {
    with_gallery(&app, move |g| g.search(&query)).await
}

#[tauri::command]
pub async fn gallery_image<R: Runtime>(app: AppHandle<R>, id: i64) -> Result<ImageDetail> {
    with_gallery(&app, move |g| g.image(id)).await
}

#[tauri::command]
pub async fn gallery_filters<R: Runtime>(app: AppHandle<R>) -> Result<FilterOptions> {
    with_gallery(&app, |g| g.filter_options()).await
}

#[tauri::command]
pub async fn gallery_set_favourite<R: Runtime>(app: AppHandle<R>, id: i64, favourite: bool) -> Result<()> {
    with_gallery(&app, move |g| g.set_favourite(id, favourite)).await
}

#[tauri::command]
pub async fn gallery_boards<R: Runtime>(app: AppHandle<R>) -> Result<Vec<Board>> {
    with_gallery(&app, |g| g.boards()).await
}

#[tauri::command]
pub async fn gallery_create_board<R: Runtime>(app: AppHandle<R>, name: String) -> Result<Board> {
    with_gallery(&app, move |g| g.create_board(&name)).await
}

#[tauri::command]
pub async fn gallery_rename_board<R: Runtime>(app: AppHandle<R>, id: i64, name: String) -> Result<()> {
    with_gallery(&app, move |g| g.rename_board(id, &name)).await
}

#[tauri::command]
pub async fn gallery_delete_board<R: Runtime>(app: AppHandle<R>, id: i64) -> Result<()> {
    with_gallery(&app, move |g| g.delete_board(id)).await
}

/// Puts images on a board (`add`) or takes them off.
#[tauri::command]
pub async fn gallery_board_images<R: Runtime>(
    app: AppHandle<R>,
    board: i64,
    images: Vec<i64>,
    add: bool,
) -> Result<()> {
    with_gallery(&app, move |g| g.set_board_membership(board, &images, add)).await
}

/// Moves images to the OS trash; `gallery_undo_delete` brings them back until the app restarts.
#[tauri::command]
pub async fn gallery_delete<R: Runtime>(app: AppHandle<R>, ids: Vec<i64>) -> Result<()> {
    with_gallery(&app, move |g| g.delete(&ids)).await
}

#[tauri::command]
pub async fn gallery_undo_delete<R: Runtime>(app: AppHandle<R>, ids: Vec<i64>) -> Result<()> {
    with_gallery(&app, move |g| g.undo_delete(&ids)).await
}

#[tauri::command]
pub async fn gallery_history<R: Runtime>(app: AppHandle<R>, offset: u32, limit: u32) -> Result<Vec<HistoryEntry>> {
    with_gallery(&app, move |g| g.history(offset, limit)).await
}

/// Re-reads the folder: copied-in images appear, removed ones disappear. Progress goes to `on_progress`.
#[tauri::command]
pub async fn gallery_rescan<R: Runtime>(app: AppHandle<R>, on_progress: Channel<ScanProgress>) -> Result<ScanReport> {
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let state = app.state::<AppState>();
        let mut last_sent = std::time::Instant::now();
        state.gallery.rescan(&state.output_folder(), &mut |progress| {
            if progress.done == progress.total || last_sent.elapsed().as_millis() >= 50 {
                last_sent = std::time::Instant::now();
                let _ = on_progress.send(progress);
            }
        })
    })
    .await
    .map_err(|e| AppError::platform("finish a background task", e))?
}

#[tauri::command]
pub async fn gallery_cancel_scan(state: State<'_, AppState>) -> Result<()> {
    state.gallery.cancel_scan();
    Ok(())
}

/// Shows the image's file in the system's file manager.
#[tauri::command]
pub async fn gallery_reveal<R: Runtime>(app: AppHandle<R>, file_name: String) -> Result<()> {
    let path = with_gallery(&app, move |g| g.resolve(&file_name)).await?;
    tauri_plugin_opener::reveal_item_in_dir(&path).map_err(|e| AppError::platform("open the containing folder", e))
}

/// Registers the channel that receives the pictures dropped on the window.
#[tauri::command]
pub async fn watch_dropped_files(state: State<'_, AppState>, on_drop: Channel<DroppedImage>) -> Result<()> {
    state.gallery.watch_drops(on_drop);
    Ok(())
}

/// Copies dropped PNGs into the gallery (`imported/`); returns their new ids.
#[tauri::command]
pub async fn gallery_import_dropped<R: Runtime>(app: AppHandle<R>, paths: Vec<PathBuf>) -> Result<Vec<i64>> {
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let state = app.state::<AppState>();
        state.gallery.import_dropped(&state.output_folder(), &paths)
    })
    .await
    .map_err(|e| AppError::platform("finish a background task", e))?
}
