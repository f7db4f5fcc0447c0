//! The check every path from the UI goes through: it must lie inside a folder the app owns, after resolving `..`
//! and symbolic links. The app's own path checks (`src-tauri/src/paths.rs`) call this one.

use std::path::{Path, PathBuf};

use crate::error::{GalleryError, Result};

/// `path`, resolved, if it lies inside `root` (also resolved); an error naming the path otherwise. Both must exist.
pub fn resolve_within(path: &Path, root: &Path) -> Result<PathBuf> {
    let resolved = std::fs::canonicalize(path)
        .map_err(|e| GalleryError::PathNotAllowed { path: path.to_path_buf(), reason: e.to_string() })?;
    let root = std::fs::canonicalize(root).map_err(|e| GalleryError::PathNotAllowed {
        path: path.to_path_buf(),
        reason: format!("{}: {e}", root.display()),
    })?;
    if resolved.starts_with(&root) {
        Ok(resolved)
    } else {
        Err(GalleryError::PathNotAllowed {
            path: path.to_path_buf(),
            reason: format!("it is outside {}", root.display()),
        })
    }
}

/// A gallery-relative name (`00001-42.png`, `imported/a.png`) as the UI sends it, resolved to an existing PNG file
/// inside `root`. Absolute names, `..` and links that lead out of `root` are refused.
pub fn resolve_gallery_file(name: &str, root: &Path) -> Result<PathBuf> {
    let relative = Path::new(name);
    let refuse = |reason: &str| GalleryError::PathNotAllowed { path: relative.to_path_buf(), reason: reason.into() };
    if name.is_empty() || relative.is_absolute() || relative.has_root() {
        return Err(refuse("only names inside the gallery folder are accepted"));
    }
    if relative.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(refuse("'..' and '.' are not accepted in gallery names"));
    }
    let resolved = resolve_within(&root.join(relative), root)?;
    let is_png = resolved.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png || !resolved.is_file() {
        return Err(refuse("it is not a PNG image"));
    }
    Ok(resolved)
}
