//! The canvas's files: "Export mask" through a native save dialog (WebKitGTK would save a download into the working
//! folder without asking), and pictures dropped on the window read for the canvas (Tauri's native drop handler takes
//! file drops before the page sees them, so the page gets their paths, not their bytes).

use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage};
use pigment_engine::image::{load_image, load_mask_bytes, png_bytes, write_png_atomically};
use tauri::ipc::Response;
use tauri::{AppHandle, Runtime};
use tauri_plugin_dialog::DialogExt;

use crate::commands::blocking;
use crate::error::{AppError, Result};
use crate::models::{decode_base64, image_error, invalid};

/// The eight bytes every PNG file starts with (PNG specification, 5.2).
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The mask the canvas exports (a base64 PNG, with or without its `data:` prefix), as the engine reads masks.
pub fn decode_mask_png(png_base64: &str) -> Result<GrayImage> {
    let bytes = decode_base64("mask", png_base64)?;
    if !bytes.starts_with(PNG_SIGNATURE) {
        let start: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Err(invalid("mask", format!("not a PNG image (its first bytes are {})", start.join(" "))));
    }
    load_mask_bytes("mask", &bytes).map_err(|e| image_error("mask", e))
}

/// Writes `mask` to `path` as a PNG whose three channels hold the mask (white repaints), atomically.
pub fn write_mask(path: &Path, mask: &GrayImage) -> Result<()> {
    let rgb = DynamicImage::ImageLuma8(mask.clone()).into_rgb8();
    Ok(write_png_atomically(path, &rgb, &[])?)
}

/// "Export mask": the mask is checked, then a native save dialog, then the file. `None` when the user cancels.
#[tauri::command]
pub async fn save_mask_as<R: Runtime>(app: AppHandle<R>, png_base64: String) -> Result<Option<PathBuf>> {
    let dialog_app = app.clone();
    blocking(&app, move |_| {
        let mask = decode_mask_png(&png_base64)?;
        let Some(target) = dialog_app
            .dialog()
            .file()
            .set_title("Save mask as")
            .set_file_name("mask.png")
            .add_filter("PNG image", &["png"])
            .blocking_save_file()
        else {
            return Ok(None);
        };
        let target = target.into_path().map_err(|e| AppError::platform("read the chosen file name", e))?;
        write_mask(&target, &mask)?;
        Ok(Some(target))
    })
    .await
}

/// A picture the user dropped on the window this session (no other path is read), read by the engine's rules
/// (PNG, JPEG, WebP or BMP; size checked; transparency dropped) and sent to the canvas as PNG bytes.
#[tauri::command]
pub async fn read_dropped_picture<R: Runtime>(app: AppHandle<R>, path: PathBuf) -> Result<Response> {
    blocking(&app, move |state| {
        state.gallery.check_dropped(&path, "opened on the canvas")?;
        let picture = load_image(&path)?;
        Ok(Response::new(png_bytes(&picture.image, &[])?))
    })
    .await
}
