//! Execution providers: each is asked with error-on-failure, in the order CUDA -> DirectML -> CPU, and the report
//! says which one runs and why the others did not (DESIGN.md, "Execution providers").

use std::fmt;

use ort::ep::{self, ExecutionProviderDispatch};
use ort::session::builder::SessionBuilder;

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

/// `lean_gpu_memory`: low-VRAM mode, where cuDNN picks convolution algorithms by heuristics within a 32 MB
/// workspace instead of benchmarking them all with as much memory as they ask.
fn dispatch(provider: ExecutionProvider, lean_gpu_memory: bool) -> ExecutionProviderDispatch {
    match provider {
        // Grow the memory arena by what is asked rather than doubling it: the peak stays near what the model needs.
        ExecutionProvider::Cuda => {
            let cuda = ep::CUDA::default().with_arena_extend_strategy(ep::ArenaExtendStrategy::SameAsRequested);
            let cuda = if lean_gpu_memory {
                cuda.with_conv_max_workspace(false).with_conv_algorithm_search(ep::cuda::ConvAlgorithmSearch::Heuristic)
            } else {
                cuda
            };
            cuda.build().error_on_failure()
        }
        // DirectML cannot run with memory patterns or parallel execution; `apply` sets both off for it.
        ExecutionProvider::DirectMl => ep::DirectML::default().build().error_on_failure(),
        ExecutionProvider::Cpu => ep::CPU::default().build().error_on_failure(),
    }
}

pub(crate) fn apply(
    builder: SessionBuilder,
    provider: ExecutionProvider,
    lean_gpu_memory: bool,
) -> Result<SessionBuilder> {
    let stage = "registering the execution provider";
    let mut builder = builder
        .with_execution_providers([dispatch(provider, lean_gpu_memory)])
        .map_err(|e| EngineError::inference(stage, e))?;
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
        match builder.with_execution_providers([dispatch(provider, false)]) {
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
}
