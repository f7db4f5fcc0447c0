//! ONNX Runtime: finding and loading the library (load-dynamic), and choosing the execution provider.
//!
//! ONNX Runtime allows one environment per process, so a [`Runtime`] is made once (by the CLI's `main`, by the app
//! at start) and cloned wherever sessions are created.

mod devices;
mod library;
mod precision;
mod providers;
mod shared_arena;

use std::path::{Path, PathBuf};

pub use devices::{DeviceReport, GpuInfo, PeakGpuMemoryWatch, peak_process_memory, probe_devices, process_gpu_memory};
pub use library::{find_onnxruntime_library, library_file_names, library_in};
pub use precision::{
    LowVramChoice, MemoryMode, ModelFamily, Precision, PrecisionChoice, PrecisionDecision, choose_precision,
};
pub use providers::{
    ArenaExtension, ConvAlgorithmSearch, CudaOptions, DeviceChoice, ExecutionProvider, ProviderReport,
};

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
    /// Whether the UNet's inputs and outputs are bound to the device (see [`Runtime::io_binding`]).
    pub io_binding: IoBindingChoice,
    pub cuda: CudaOptions,
}

/// IO binding for the parts that run at every step (UNet, ControlNets): the text embeddings are copied to the
/// device once per generation instead of at every step, and the outputs are written straight into host memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoBindingChoice {
    /// On for CUDA, off elsewhere: see [`Runtime::io_binding`].
    #[default]
    Auto,
    On,
    Off,
}

impl std::str::FromStr for IoBindingChoice {
    type Err = EngineError;
    fn from_str(value: &str) -> Result<Self> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Ok(IoBindingChoice::Auto),
            "on" | "yes" | "true" => Ok(IoBindingChoice::On),
            "off" | "no" | "false" => Ok(IoBindingChoice::Off),
            _ => Err(EngineError::parameter("io-binding", value, "expected auto, on or off")),
        }
    }
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
    io_binding: IoBindingChoice,
    /// The CUDA provider's settings for the sessions made from this runtime (lean ones in low-VRAM mode).
    cuda: CudaOptions,
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
        if providers.active == ExecutionProvider::Cuda && options.cuda.shared_arena {
            shared_arena::register_shared_cuda_arena(&environment, options.cuda.arena_extension)?;
        }
        Ok(Runtime {
            environment,
            library,
            providers,
            cache_dir: options.cache_dir.clone(),
            precision: options.precision,
            low_vram: options.low_vram,
            io_binding: options.io_binding,
            cuda: options.cuda,
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
    /// ([`CudaOptions::lean`]).
    pub(crate) fn lean(&self) -> Runtime {
        Runtime { cuda: self.cuda.lean(), ..self.clone() }
    }

    /// This runtime with another IO binding choice; the environment and provider are shared.
    pub fn with_io_binding(&self, io_binding: IoBindingChoice) -> Runtime {
        Runtime { io_binding, ..self.clone() }
    }

    /// Whether sessions that run at every step bind their IO to the device (saving the per-step copy of the text
    /// embeddings to the GPU). `auto` does not bind yet: the bound path has run on the CPU only, where ONNX Runtime
    /// reads host tensors in place and there is no copy to save; it becomes CUDA's default once
    /// scripts/gpu/run_benchmark.sh has shown it working and faster there (`--io-binding on` tries it).
    pub fn io_binding(&self) -> bool {
        match self.io_binding {
            IoBindingChoice::Auto => false,
            IoBindingChoice::On => true,
            IoBindingChoice::Off => false,
        }
    }

    pub fn cuda_options(&self) -> CudaOptions {
        self.cuda
    }

    /// The run options for a part that runs once per image (text encoder, VAE): on CUDA with
    /// [`CudaOptions::shrink_after_single_runs`], its arena gives back what the run took. `None`: plain runs.
    pub(crate) fn single_run_options(&self) -> Result<Option<ort::session::RunOptions>> {
        if self.providers.active != ExecutionProvider::Cuda || !self.cuda.shrink_after_single_runs {
            return Ok(None);
        }
        let stage = "configuring a run";
        let mut options = ort::session::RunOptions::new().map_err(|e| EngineError::inference(stage, e))?;
        options.set("memory.enable_memory_arena_shrinkage", "gpu:0").map_err(|e| EngineError::inference(stage, e))?;
        Ok(Some(options))
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
        let mut builder = providers::apply(builder, self.providers.active, self.cuda)?;
        if self.providers.active == ExecutionProvider::Cuda && self.cuda.shared_arena {
            builder = builder.with_env_allocators().map_err(|e| EngineError::inference("sharing the arena", e))?;
        }
        for (name, size) in &self.dimension_overrides {
            builder = builder
                .with_dimension_override(name, *size)
                .map_err(|e| EngineError::inference("fixing a free dimension", e))?;
        }
        Ok(builder)
    }
}
