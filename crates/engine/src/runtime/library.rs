//! Where the ONNX Runtime shared library is looked for (ARCHITECTURE.md, "ONNX Runtime and execution providers"):
//! `ORT_DYLIB_PATH`, next to the executable (the installed app), then the repository's setup folder `.ort/lib`
//! (development builds).

use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// File names of the library on this platform, most specific last.
pub fn library_file_names() -> &'static [&'static str] {
    if cfg!(target_os = "windows") {
        &["onnxruntime.dll"]
    } else if cfg!(target_os = "macos") {
        &["libonnxruntime.dylib"]
    } else {
        &["libonnxruntime.so"]
    }
}

pub fn find_onnxruntime_library() -> Result<PathBuf> {
    let mut searched = Vec::new();
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        // An explicit path that is wrong is an error of its own: falling back would hide the mistake.
        return Err(EngineError::RuntimeNotFound { searched: vec![path] });
    }
    let mut folders = Vec::new();
    if let Some(exe_dir) = std::env::current_exe().ok().as_deref().and_then(Path::parent) {
        folders.push(exe_dir.to_path_buf());
    }
    folders.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ort/lib"));
    for folder in folders {
        if let Some(found) = library_in(&folder) {
            return Ok(found);
        }
        searched.push(folder);
    }
    Err(EngineError::RuntimeNotFound { searched })
}

/// The library in `folder`: the plain name, or a versioned one (`libonnxruntime.so.1.31.1` as the wheel ships it).
/// Also how the app looks in its bundled resources.
pub fn library_in(folder: &Path) -> Option<PathBuf> {
    for name in library_file_names() {
        let plain = folder.join(name);
        if plain.is_file() {
            return Some(plain);
        }
        let mut versioned: Vec<PathBuf> = std::fs::read_dir(folder)
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_file())
            .filter(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}.")) && !n.ends_with(".part"))
            })
            .collect();
        versioned.sort();
        if let Some(last) = versioned.pop() {
            return Some(last);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_versioned_library_in_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(library_in(dir.path()), None);
        let name = format!("{}.1.31.1", library_file_names()[0]);
        std::fs::write(dir.path().join(&name), b"").unwrap();
        assert_eq!(library_in(dir.path()), Some(dir.path().join(name)));
    }
}
