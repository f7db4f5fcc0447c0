//! The app's one error type. It crosses the IPC boundary as `{ kind, message, field }`: `message` is the text the
//! user sees (the engine's own wording for engine errors), `field` names the form input that caused it so the UI
//! can show the message next to it.

use std::path::PathBuf;

use pigment_engine::EngineError;
use serde::ser::SerializeStruct;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error("{path} is not allowed here: {reason}")]
    PathNotAllowed { path: PathBuf, reason: String },

    #[error("could not read {path}: {reason}")]
    Read { path: PathBuf, reason: String },

    #[error("could not write {path}: {reason}")]
    Write { path: PathBuf, reason: String },

    #[error("unknown model {id:?}: it is not in the model list (was its folder moved or removed?)")]
    UnknownModel { id: String },

    #[error("no model is available: the demo model was not found and no model folder has been added")]
    NoModel,

    #[error("no job {id} in the queue")]
    UnknownJob { id: u64 },

    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },

    #[error("ONNX Runtime is not available: {reason}")]
    RuntimeUnavailable { reason: String },

    #[error("the job queue has stopped")]
    QueueStopped,

    #[error("the app could not {action}: {reason}")]
    Platform { action: &'static str, reason: String },
}

impl AppError {
    /// A short machine name for the UI (`engine`, `path_not_allowed`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            AppError::Engine(EngineError::Cancelled) => "cancelled",
            AppError::Engine(_) => "engine",
            AppError::PathNotAllowed { .. } => "path_not_allowed",
            AppError::Read { .. } => "read",
            AppError::Write { .. } => "write",
            AppError::UnknownModel { .. } | AppError::NoModel => "model",
            AppError::UnknownJob { .. } => "unknown_job",
            AppError::InvalidInput { .. } => "invalid_input",
            AppError::RuntimeUnavailable { .. } => "runtime",
            AppError::QueueStopped => "queue_stopped",
            AppError::Platform { .. } => "platform",
        }
    }

    /// The generate form's input this error is about, in the UI's names (`width`, `cfg_scale`, `model`, ...).
    pub fn field(&self) -> Option<String> {
        match self {
            AppError::Engine(error) => engine_field(error),
            AppError::UnknownModel { .. } | AppError::NoModel => Some("model".into()),
            AppError::InvalidInput { field, .. } => Some((*field).into()),
            AppError::RuntimeUnavailable { .. } => Some("device".into()),
            _ => None,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        matches!(self, AppError::Engine(EngineError::Cancelled))
    }

    pub fn platform(action: &'static str, error: impl std::fmt::Display) -> AppError {
        AppError::Platform { action, reason: error.to_string() }
    }
}

/// Engine parameters are named in words ("cfg scale", "batch size"); the form's inputs in snake case.
fn engine_field(error: &EngineError) -> Option<String> {
    match error {
        EngineError::InvalidParameter { name, .. } => Some(name.replace(' ', "_")),
        EngineError::UnknownSampler { .. } => Some("sampler".into()),
        EngineError::ModelFolderNotFound { .. }
        | EngineError::MissingComponent { .. }
        | EngineError::InvalidModelFile { .. }
        | EngineError::InvalidConfigFile { .. }
        | EngineError::IncompatibleComponents { .. }
        | EngineError::UnsupportedModelIo { .. } => Some("model".into()),
        EngineError::RuntimeNotFound { .. } | EngineError::RuntimeLoad { .. } => Some("device".into()),
        _ => None,
    }
}

impl serde::Serialize for AppError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("AppError", 3)?;
        state.serialize_field("kind", self.kind())?;
        state.serialize_field("message", &self.to_string())?;
        state.serialize_field("field", &self.field())?;
        state.end()
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use pigment_engine::pipeline::GenerateRequest;

    #[test]
    fn engine_parameter_errors_name_the_form_field_and_keep_the_engine_message() {
        let request = GenerateRequest { cfg_scale: -2.0, ..GenerateRequest::default() };
        let error = AppError::from(request.validate().unwrap_err());
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["kind"], "engine");
        assert_eq!(json["field"], "cfg_scale");
        assert_eq!(json["message"], "invalid cfg scale: -2 (must be a number of 0 or more)");
    }

    #[test]
    fn errors_without_a_field_serialize_a_null_field() {
        let json = serde_json::to_value(AppError::UnknownJob { id: 7 }).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "unknown_job", "message": "no job 7 in the queue", "field": null}));
        assert!(AppError::Engine(EngineError::Cancelled).is_cancelled());
    }
}
