//! The gallery's one error type: every variant names the file, image, board or input and what was wrong with it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("the gallery index {path} could not be used: {reason}")]
    Database { path: PathBuf, reason: String },

    #[error("could not read {path}: {reason}")]
    Read { path: PathBuf, reason: String },

    #[error("could not write {path}: {reason}")]
    Write { path: PathBuf, reason: String },

    #[error("{path} is not allowed here: {reason}")]
    PathNotAllowed { path: PathBuf, reason: String },

    #[error("no image {id} in the gallery")]
    UnknownImage { id: i64 },

    #[error("no board {id} in the gallery")]
    UnknownBoard { id: i64 },

    #[error("invalid {field}: {value:?} ({reason})")]
    InvalidInput { field: &'static str, value: String, reason: String },

    #[error("could not move {path} to the trash: {reason}")]
    Trash { path: PathBuf, reason: String },

    #[error("image {id} cannot be restored: {reason}")]
    CannotRestore { id: i64, reason: String },

    #[error("the gallery scan was cancelled")]
    Cancelled,
}

pub type Result<T, E = GalleryError> = std::result::Result<T, E>;

impl GalleryError {
    pub(crate) fn database(path: &std::path::Path, error: impl std::fmt::Display) -> GalleryError {
        GalleryError::Database { path: path.to_path_buf(), reason: error.to_string() }
    }

    pub(crate) fn invalid(field: &'static str, value: impl ToString, reason: impl ToString) -> GalleryError {
        GalleryError::InvalidInput { field, value: value.to_string(), reason: reason.to_string() }
    }
}
