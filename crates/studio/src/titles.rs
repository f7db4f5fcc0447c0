//! Model titles as AUTOMATIC1111 clients send them: `sd_model_checkpoint` holds a title another server listed
//! (`"name [0123abcdef]"`, `"name.safetensors"`), in any case. One matcher for every front end.

use std::path::{Path, PathBuf};

/// The part of a title that names the model: without a trailing ` [hash]`, a checkpoint extension, surrounding
/// spaces or case.
pub fn title_key(title: &str) -> String {
    let title = title.trim();
    let title = match title.rfind(" [") {
        Some(at) if title.ends_with(']') => &title[..at],
        _ => title,
    };
    let title = [".safetensors", ".ckpt"].iter().fold(title, |t, ext| t.strip_suffix(ext).unwrap_or(t));
    title.trim().to_lowercase()
}

/// Whether `wanted` (what a client sent) names the model titled `title`.
pub fn title_matches(title: &str, wanted: &str) -> bool {
    title_key(title) == title_key(wanted)
}

/// A model's name as lists show it: its folder's (or file's) name, links resolved.
pub fn model_name(path: &Path) -> String {
    canonical(path).file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
}

/// `path` with links resolved, as given when it cannot be (a folder that is gone still has a name).
pub(crate) fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_match_without_hash_extension_case_or_spaces() {
        assert_eq!(title_key("Tiny-SD [0123abcd]"), "tiny-sd");
        assert_eq!(title_key("tiny-sd.safetensors"), "tiny-sd");
        assert_eq!(title_key("tiny-sd.ckpt [0123abcd]"), "tiny-sd");
        assert_eq!(title_key(" tiny-sd "), "tiny-sd");
        assert!(title_matches("tiny-sd", "TINY-SD.safetensors [ffff]"));
        assert!(!title_matches("tiny-sd", "tiny-sd-2"));
        // Brackets inside a name stay: only a trailing " [...]" is a hash.
        assert_eq!(title_key("model [v2] final"), "model [v2] final");
    }

    #[test]
    fn a_model_is_named_by_its_folder() {
        let folder = tempfile::tempdir().unwrap();
        let model = folder.path().join("my-model");
        std::fs::create_dir(&model).unwrap();
        assert_eq!(model_name(&model), "my-model");
        assert_eq!(model_name(Path::new("/no/such/place/other")), "other");
    }
}
