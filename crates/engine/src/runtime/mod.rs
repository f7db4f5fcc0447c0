//! ONNX Runtime: finding and loading the library (load-dynamic), and choosing the execution provider.
//!
//! ONNX Runtime allows one environment per process, so a [`Runtime`] is made once (by the CLI's `main`, by the app
//! at start) and cloned wherever sessions are created.

mod library;
mod providers;

use std::path::{Path, PathBuf};

pub use library::{find_onnxruntime_library, library_file_names};
pub use providers::{DeviceChoice, ExecutionProvider, ProviderReport};

use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// An explicit library path; otherwise the search order of [`find_onnxruntime_library`] applies.
    pub library_path: Option<PathBuf>,
    pub device: DeviceChoice,
}

/// A loaded ONNX Runtime with its chosen execution provider. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    environment: ort::environment::Environment,
    library: PathBuf,
    providers: ProviderReport,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("library", &self.library).field("providers", &self.providers).finish()
    }
}

impl Runtime {
    pub fn load(options: &RuntimeOptions) -> Result<Runtime> {
        let library = match &options.library_path {
            Some(path) if path.is_file() => path.clone(),
            Some(path) => return Err(EngineError::RuntimeNotFound { searched: vec![path.clone()] }),
            None => find_onnxruntime_library()?,
        };
        let load_error = |reason: String| EngineError::RuntimeLoad { path: library.clone(), reason };
        let environment = ort::init_from(&library)
            .map_err(|e| load_error(e.to_string()))?
            .with_name("pigment")
            .with_telemetry(false)
            .build()
            .map_err(|e| load_error(e.to_string()))?;
        let providers = providers::select(&environment, options.device)?;
        Ok(Runtime { environment, library, providers })
    }

    pub fn library(&self) -> &Path {
        &self.library
    }

    /// ONNX Runtime's version as the library reports it (for example "1.31.1").
    pub fn version(&self) -> String {
        let info = ort::info();
        info.split(|c: char| c == ',' || c.is_whitespace())
            .find_map(|part| part.strip_prefix("git-branch=rel-"))
            .unwrap_or("unknown")
            .to_string()
    }

    pub fn providers(&self) -> &ProviderReport {
        &self.providers
    }

    /// A session builder with the chosen execution provider registered.
    pub(crate) fn session_builder(&self) -> Result<ort::session::builder::SessionBuilder> {
        let builder = ort::session::Session::builder(&self.environment)
            .map_err(|e| EngineError::inference("creating a session", e))?;
        providers::apply(builder, self.providers.active)
    }
}
