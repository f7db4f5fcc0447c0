//! The app's folders, and the check every path from the UI goes through: it must lie inside one of the folders
//! the app owns (the output folder, the models folders), after resolving `..` and symbolic links.

use std::path::{Path, PathBuf};

use crate::error::{AppError, Result};

/// The folders the app uses, resolved once at start (from Tauri's path API in the app, from a temporary folder in
/// tests).
#[derive(Debug, Clone)]
pub struct AppPaths {
    /// `<app data>/models`: every folder in it is listed as a model.
    pub models_folder: PathBuf,
    /// `<app config>/settings.json`.
    pub settings_file: PathBuf,
    /// Where images go unless the settings name another folder: `<Pictures>/Pigment`, else `<app data>/outputs`.
    pub default_output_folder: PathBuf,
    /// The demo model shipped with the app (the bundle's resources, else the repository's `models/tiny-sd`).
    pub demo_model: Option<PathBuf>,
    /// The ONNX Runtime library shipped with the app, if any (the engine searches further when `None`).
    pub onnxruntime_library: Option<PathBuf>,
}

impl AppPaths {
    /// `<app data>/gallery` (next to `models_folder`): the gallery indexes and their thumbnails.
    pub fn gallery_data_folder(&self) -> PathBuf {
        self.models_folder.with_file_name("gallery")
    }

    /// Creates the folders the app writes to.
    pub fn create_folders(&self) -> Result<()> {
        for folder in [&self.models_folder, &self.default_output_folder] {
            std::fs::create_dir_all(folder)
                .map_err(|e| AppError::Write { path: folder.clone(), reason: e.to_string() })?;
        }
        Ok(())
    }
}

/// Folders of the app's resources (Tauri's `resource_dir`) that may hold ONNX Runtime, best first: `onnxruntime-cuda`
/// (the CUDA build that the `pigment-cuda` package adds; it runs on the CPU too when CUDA is missing), `onnxruntime`
/// (the CPU build every Linux package carries), then the resource folder itself (on Windows the install folder, where
/// `onnxruntime.dll` sits next to the executable and `DirectML.dll`).
pub const ONNXRUNTIME_RESOURCE_FOLDERS: [&str; 3] = ["onnxruntime-cuda", "onnxruntime", ""];

/// The ONNX Runtime library shipped in the app's resources, in the order of [`ONNXRUNTIME_RESOURCE_FOLDERS`].
pub fn bundled_onnxruntime(resources: &Path) -> Option<PathBuf> {
    ONNXRUNTIME_RESOURCE_FOLDERS.iter().find_map(|folder| pigment_engine::runtime::library_in(&resources.join(folder)))
}

/// `path`, resolved, if it lies inside `root` (also resolved); an error naming the path otherwise. Both must exist.
/// The gallery's check, shared so the app and the gallery refuse the same paths.
pub fn resolve_within(path: &Path, root: &Path) -> Result<PathBuf> {
    Ok(pigment_gallery::resolve_within(path, root)?)
}

/// A generated image the UI names: an existing `.png` file inside the output folder.
pub fn output_image(path: &Path, output_folder: &Path) -> Result<PathBuf> {
    let resolved = resolve_within(path, output_folder)?;
    let is_png = resolved.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png || !resolved.is_file() {
        return Err(AppError::PathNotAllowed { path: path.to_path_buf(), reason: "it is not a PNG image".into() });
    }
    Ok(resolved)
}

/// A folder exists and a file can be created in it (permissions, read-only mounts and ACLs all show here).
pub fn check_writable_folder(folder: &Path) -> Result<()> {
    let write_error = |e: std::io::Error| AppError::Write { path: folder.to_path_buf(), reason: e.to_string() };
    std::fs::create_dir_all(folder).map_err(write_error)?;
    let probe = folder.join(format!(".pigment-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(write_error)?;
    std::fs::remove_file(&probe).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_the_root_pass_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outputs = dir.path().join("outputs");
        std::fs::create_dir_all(&outputs).unwrap();
        std::fs::write(outputs.join("00001-5.png"), b"png").unwrap();
        std::fs::write(dir.path().join("secret.png"), b"png").unwrap();
        assert!(output_image(&outputs.join("00001-5.png"), &outputs).is_ok());

        let escape = outputs.join("../secret.png");
        let error = output_image(&escape, &outputs).unwrap_err();
        assert!(matches!(error, AppError::PathNotAllowed { .. }), "{error}");
        assert!(error.to_string().contains("outside"), "{error}");
        assert!(output_image(&outputs.join("missing.png"), &outputs).is_err());
        assert!(output_image(Path::new("/etc/passwd"), &outputs).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_out_of_the_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outputs = dir.path().join("outputs");
        std::fs::create_dir_all(&outputs).unwrap();
        std::fs::write(dir.path().join("secret.png"), b"png").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.png"), outputs.join("link.png")).unwrap();
        assert!(output_image(&outputs.join("link.png"), &outputs).is_err());
    }

    #[test]
    fn the_cuda_build_of_onnxruntime_is_preferred_to_the_cpu_build() {
        let resources = tempfile::tempdir().unwrap();
        let name = pigment_engine::runtime::library_file_names()[0];
        assert_eq!(bundled_onnxruntime(resources.path()), None, "an empty resource folder has no library");

        let cpu = resources.path().join("onnxruntime");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(cpu.join("libonnxruntime_providers_shared.so"), b"").unwrap();
        std::fs::write(cpu.join(".version"), b"1.31.1").unwrap();
        assert_eq!(bundled_onnxruntime(resources.path()), None, "other files are not the library");
        std::fs::write(cpu.join(format!("{name}.1.31.1")), b"").unwrap();
        assert_eq!(bundled_onnxruntime(resources.path()), Some(cpu.join(format!("{name}.1.31.1"))));

        // A folder of that name is not a library.
        let cuda = resources.path().join("onnxruntime-cuda");
        std::fs::create_dir_all(cuda.join(name)).unwrap();
        assert_eq!(bundled_onnxruntime(resources.path()), Some(cpu.join(format!("{name}.1.31.1"))));
        std::fs::write(cuda.join(format!("{name}.1.31.1")), b"").unwrap();
        assert_eq!(bundled_onnxruntime(resources.path()), Some(cuda.join(format!("{name}.1.31.1"))));
    }

    #[test]
    fn a_library_at_the_root_of_the_resources_is_found_as_on_windows() {
        let resources = tempfile::tempdir().unwrap();
        let name = pigment_engine::runtime::library_file_names()[0];
        std::fs::write(resources.path().join(name), b"").unwrap();
        assert_eq!(bundled_onnxruntime(resources.path()), Some(resources.path().join(name)));
    }

    #[test]
    fn only_png_files_are_output_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        assert!(output_image(&dir.path().join("notes.txt"), dir.path()).is_err());
        assert!(output_image(dir.path(), dir.path()).is_err());
    }
}
