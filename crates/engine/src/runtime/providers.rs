//! Execution providers: each is asked with error-on-failure, in the order CUDA -> DirectML -> CPU, and the report
//! says which one runs and why the others did not (ARCHITECTURE.md, "ONNX Runtime and execution providers").

use std::fmt;

use ort::ep::{self, ExecutionProviderDispatch};
use ort::session::builder::SessionBuilder;
use serde::Serialize;

use crate::error::{EngineError, Result};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cuda,
    DirectMl,
    Cpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = EngineError;
    fn from_str(value: &str) -> Result<Self> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cuda" => Ok(DeviceChoice::Cuda),
            "directml" | "dml" => Ok(DeviceChoice::DirectMl),
            "cpu" => Ok(DeviceChoice::Cpu),
            _ => Err(EngineError::parameter("device", value, "expected auto, cuda, directml or cpu")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionProvider {
    Cuda,
    DirectMl,
    Cpu,
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecutionProvider::Cuda => "CUDA",
            ExecutionProvider::DirectMl => "DirectML",
            ExecutionProvider::Cpu => "CPU",
        })
    }
}

/// Which provider runs, and why each one tried before it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderReport {
    pub active: ExecutionProvider,
    pub rejected: Vec<(ExecutionProvider, String)>,
}

impl fmt::Display for ProviderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.active)?;
        for (provider, reason) in &self.rejected {
            write!(f, "; {provider} unavailable: {reason}")?;
        }
        Ok(())
    }
}

/// How cuDNN picks a convolution algorithm (ONNX Runtime's `cudnn_conv_algo_search`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvAlgorithmSearch {
    /// Times every algorithm on the first run and keeps the fastest (`torch.backends.cudnn.benchmark`).
    #[default]
    Exhaustive,
    /// cuDNN's own ranking, nothing timed.
    Heuristic,
    /// Always implicit-precomputed GEMM.
    Default,
}

/// How a CUDA memory arena grows when it runs out (ONNX Runtime's `arena_extend_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArenaExtension {
    /// By what is asked: the arena stays near what the model needs.
    #[default]
    SameAsRequested,
    /// By doubling (ONNX Runtime's default): fewer allocations, up to twice the memory.
    NextPowerOfTwo,
}

/// The CUDA execution provider's memory and convolution settings (ignored by the other providers).
///
/// Defaults: the arena grows by what is asked (doubling can hold up to twice the peak the model needs); cuDNN times
/// every convolution algorithm once with as much workspace as the fastest wants (the speed the benchmarks were
/// measured at); arenas are neither shrunk nor shared. Each is a candidate for the VRAM gap with torch that
/// scripts/gpu measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CudaOptions {
    pub arena_extension: ArenaExtension,
    pub conv_algorithm_search: ConvAlgorithmSearch,
    /// Let cuDNN's algorithm search use as much workspace as it asks (`cudnn_conv_use_max_workspace`); off holds
    /// it to 32 MB.
    pub conv_max_workspace: bool,
    /// Give the memory that the parts run once per image (text encoder, VAE) took back to the driver after each
    /// run (`memory.enable_memory_arena_shrinkage`), so it is not held through the next denoising loop.
    pub shrink_after_single_runs: bool,
    /// One arena for all the sessions (text encoder, UNet, VAE, ControlNets) instead of one each, so the peaks of
    /// parts that never run together are not held side by side (see runtime/shared_arena.rs).
    pub shared_arena: bool,
}

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions {
            arena_extension: ArenaExtension::SameAsRequested,
            conv_algorithm_search: ConvAlgorithmSearch::Exhaustive,
            conv_max_workspace: true,
            shrink_after_single_runs: false,
            shared_arena: false,
        }
    }
}

impl CudaOptions {
    /// Low-VRAM mode: cuDNN picks by heuristics within a 32 MB workspace (the exhaustive search and its maximal
    /// workspace cost hundreds of MiB on a 512x512 UNet).
    pub(crate) fn lean(self) -> CudaOptions {
        CudaOptions { conv_algorithm_search: ConvAlgorithmSearch::Heuristic, conv_max_workspace: false, ..self }
    }
}

impl std::str::FromStr for ConvAlgorithmSearch {
    type Err = EngineError;
    fn from_str(value: &str) -> Result<Self> {
        match value.to_ascii_lowercase().as_str() {
            "exhaustive" => Ok(ConvAlgorithmSearch::Exhaustive),
            "heuristic" => Ok(ConvAlgorithmSearch::Heuristic),
            "default" => Ok(ConvAlgorithmSearch::Default),
            _ => {
                Err(EngineError::parameter("conv-algorithm-search", value, "expected exhaustive, heuristic or default"))
            }
        }
    }
}

impl std::str::FromStr for ArenaExtension {
    type Err = EngineError;
    fn from_str(value: &str) -> Result<Self> {
        match value.to_ascii_lowercase().as_str() {
            "same-as-requested" => Ok(ArenaExtension::SameAsRequested),
            "next-power-of-two" => Ok(ArenaExtension::NextPowerOfTwo),
            _ => {
                Err(EngineError::parameter("arena-extension", value, "expected same-as-requested or next-power-of-two"))
            }
        }
    }
}

fn dispatch(provider: ExecutionProvider, cuda: CudaOptions) -> ExecutionProviderDispatch {
    match provider {
        ExecutionProvider::Cuda => ep::CUDA::default()
            .with_arena_extend_strategy(match cuda.arena_extension {
                ArenaExtension::SameAsRequested => ep::ArenaExtendStrategy::SameAsRequested,
                ArenaExtension::NextPowerOfTwo => ep::ArenaExtendStrategy::NextPowerOfTwo,
            })
            .with_conv_algorithm_search(match cuda.conv_algorithm_search {
                ConvAlgorithmSearch::Exhaustive => ep::cuda::ConvAlgorithmSearch::Exhaustive,
                ConvAlgorithmSearch::Heuristic => ep::cuda::ConvAlgorithmSearch::Heuristic,
                ConvAlgorithmSearch::Default => ep::cuda::ConvAlgorithmSearch::Default,
            })
            .with_conv_max_workspace(cuda.conv_max_workspace)
            .build()
            .error_on_failure(),
        // DirectML cannot run with memory patterns or parallel execution; `apply` sets both off for it.
        ExecutionProvider::DirectMl => ep::DirectML::default().build().error_on_failure(),
        ExecutionProvider::Cpu => ep::CPU::default().build().error_on_failure(),
    }
}

pub(crate) fn apply(builder: SessionBuilder, provider: ExecutionProvider, cuda: CudaOptions) -> Result<SessionBuilder> {
    let stage = "registering the execution provider";
    let mut builder =
        builder.with_execution_providers([dispatch(provider, cuda)]).map_err(|e| EngineError::inference(stage, e))?;
    if provider == ExecutionProvider::DirectMl {
        builder = builder.with_memory_pattern(false).map_err(|e| EngineError::inference(stage, e))?;
        builder = builder.with_parallel_execution(false).map_err(|e| EngineError::inference(stage, e))?;
    }
    Ok(builder)
}

pub(crate) fn select(environment: &ort::environment::Environment, choice: DeviceChoice) -> Result<ProviderReport> {
    let candidates: &[ExecutionProvider] = match choice {
        DeviceChoice::Auto => &[ExecutionProvider::Cuda, ExecutionProvider::DirectMl, ExecutionProvider::Cpu],
        DeviceChoice::Cuda => &[ExecutionProvider::Cuda, ExecutionProvider::Cpu],
        DeviceChoice::DirectMl => &[ExecutionProvider::DirectMl, ExecutionProvider::Cpu],
        DeviceChoice::Cpu => &[ExecutionProvider::Cpu],
    };
    let mut rejected = Vec::new();
    for &provider in candidates {
        let builder =
            ort::session::Session::builder(environment).map_err(|e| EngineError::inference("creating a session", e))?;
        match builder.with_execution_providers([dispatch(provider, CudaOptions::default())]) {
            Ok(_) => return Ok(ProviderReport { active: provider, rejected }),
            Err(error) => rejected.push((provider, error.to_string())),
        }
    }
    Err(EngineError::inference(
        "choosing an execution provider",
        rejected.iter().map(|(p, r)| format!("{p}: {r}")).collect::<Vec<_>>().join("; "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choice_parses_case_insensitively_and_names_bad_values() {
        assert_eq!("CUDA".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda);
        assert_eq!("dml".parse::<DeviceChoice>().unwrap(), DeviceChoice::DirectMl);
        let error = "tpu".parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(error.contains("device") && error.contains("tpu"), "{error}");
    }

    #[test]
    fn cuda_settings_parse_and_name_bad_values() {
        assert_eq!("Heuristic".parse::<ConvAlgorithmSearch>().unwrap(), ConvAlgorithmSearch::Heuristic);
        assert_eq!("next-power-of-two".parse::<ArenaExtension>().unwrap(), ArenaExtension::NextPowerOfTwo);
        let error = "fastest".parse::<ConvAlgorithmSearch>().unwrap_err().to_string();
        assert!(error.contains("conv-algorithm-search") && error.contains("fastest"), "{error}");
        let error = "double".parse::<ArenaExtension>().unwrap_err().to_string();
        assert!(error.contains("arena-extension") && error.contains("double"), "{error}");
        let lean = CudaOptions::default().lean();
        assert_eq!((lean.conv_algorithm_search, lean.conv_max_workspace), (ConvAlgorithmSearch::Heuristic, false));
        assert_eq!(lean.arena_extension, ArenaExtension::SameAsRequested);
    }
}
