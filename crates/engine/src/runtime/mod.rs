//! ONNX Runtime: finding and loading the library (load-dynamic), and choosing the execution provider.
//!
//! ONNX Runtime allows one environment per process, so a [`Runtime`] is made once (by the CLI's `main`, by the app
//! at start) and cloned wherever sessions are created.

mod devices;
mod library;
mod precision;
mod providers;

use std::path::{Path, PathBuf};

pub use devices::{DeviceReport, GpuInfo, PeakGpuMemoryWatch, peak_process_memory, probe_devices, process_gpu_memory};
pub use library::{find_onnxruntime_library, library_file_names, library_in};
pub use precision::{LowVramChoice, ModelFamily, Precision, PrecisionChoice, PrecisionDecision, choose_precision};
pub use providers::{DeviceChoice, ExecutionProvider, ProviderReport};

use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// An explicit library path; otherwise the search order of [`find_onnxruntime_library`] applies.
    pub library_path: Option<PathBuf>,
    pub device: DeviceChoice,
    /// Where derived files are kept between runs: ONNX Runtime's optimized graphs (`graphs/`) and fp16 conversions
    /// of fp32 models (`fp16/`). `None` optimizes at every load and never converts.
    pub cache_dir: Option<PathBuf>,
    /// fp16 or fp32, or chosen from the device and its memory (see [`choose_precision`]).
    pub precision: PrecisionChoice,
    /// Low-VRAM mode on, off, or chosen from the GPU's memory (see [`choose_precision`]).
    pub low_vram: LowVramChoice,
}

/// A loaded ONNX Runtime with its chosen execution provider. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    environment: ort::environment::Environment,
    library: PathBuf,
    providers: ProviderReport,
    cache_dir: Option<PathBuf>,
    precision: PrecisionChoice,
    low_vram: LowVramChoice,
    /// Sessions made from this runtime keep GPU workspaces small (low-VRAM mode; see [`Runtime::lean`]).
    lean_gpu_memory: bool,
    /// Sessions are made for the shapes they run (see [`Runtime::fixed_dimensions`]) even off DirectML.
    fixed_dimensions_chosen: bool,
    /// Free dimensions fixed by name in the sessions made from this runtime ("batch" = 2, ...).
    dimension_overrides: Vec<(String, i64)>,
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
        Ok(Runtime {
            environment,
            library,
            providers,
            cache_dir: options.cache_dir.clone(),
            precision: options.precision,
            low_vram: options.low_vram,
            lean_gpu_memory: false,
            fixed_dimensions_chosen: false,
            dimension_overrides: Vec::new(),
        })
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

    /// This runtime with another cache folder (or none); the environment and provider are shared.
    pub fn with_cache_dir(&self, cache_dir: Option<PathBuf>) -> Runtime {
        Runtime { cache_dir, ..self.clone() }
    }

    /// This runtime with another precision choice; the environment and provider are shared.
    pub fn with_precision(&self, precision: PrecisionChoice) -> Runtime {
        Runtime { precision, ..self.clone() }
    }

    /// This runtime with another low-VRAM choice; the environment and provider are shared.
    pub fn with_low_vram(&self, low_vram: LowVramChoice) -> Runtime {
        Runtime { low_vram, ..self.clone() }
    }

    /// This runtime for low-VRAM mode: its sessions hold cuDNN to small workspaces and heuristic algorithm choice
    /// (the exhaustive search and its maximal workspace cost hundreds of MiB on a 512x512 UNet).
    pub(crate) fn lean(&self) -> Runtime {
        Runtime { lean_gpu_memory: true, ..self.clone() }
    }

    /// Whether sessions are made for the exact shapes they run, their free dimensions (batch, height, width,
    /// sequence) fixed by name and the session made again when a shape changes. DirectML needs it (its kernels are
    /// compiled for fixed shapes); [`Runtime::with_fixed_dimensions`] turns it on elsewhere (tests on the CPU).
    pub fn fixed_dimensions(&self) -> bool {
        self.fixed_dimensions_chosen || self.providers.active == ExecutionProvider::DirectMl
    }

    /// This runtime with fixed dimensions on or off (DirectML has them on whatever this says).
    pub fn with_fixed_dimensions(&self, fixed: bool) -> Runtime {
        Runtime { fixed_dimensions_chosen: fixed, ..self.clone() }
    }

    /// This runtime making sessions with these free dimensions fixed, by name.
    pub(crate) fn with_dimension_overrides(&self, overrides: &[(String, i64)]) -> Runtime {
        Runtime { dimension_overrides: overrides.to_vec(), ..self.clone() }
    }

    pub(crate) fn dimension_overrides(&self) -> &[(String, i64)] {
        &self.dimension_overrides
    }

    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    pub fn precision(&self) -> PrecisionChoice {
        self.precision
    }

    pub fn low_vram(&self) -> LowVramChoice {
        self.low_vram
    }

    pub fn providers(&self) -> &ProviderReport {
        &self.providers
    }

    /// A session builder with the chosen execution provider registered.
    pub(crate) fn session_builder(&self) -> Result<ort::session::builder::SessionBuilder> {
        let builder = ort::session::Session::builder(&self.environment)
            .map_err(|e| EngineError::inference("creating a session", e))?;
        let mut builder = providers::apply(builder, self.providers.active, self.lean_gpu_memory)?;
        for (name, size) in &self.dimension_overrides {
            builder = builder
                .with_dimension_override(name, *size)
                .map_err(|e| EngineError::inference("fixing a free dimension", e))?;
        }
        Ok(builder)
    }
}
