//! Choosing fp16 or fp32, and the memory mode, from the device and its memory, so the user need not
//! (ARCHITECTURE.md, "Memory modes and precision").
//!
//! The thresholds come from measured peaks (docs/benchmarks/h200-2026-11-26-b.log, SD 1.5 architecture, fp16,
//! 512x512, batch 1, the memory the driver reports for the whole process): Pigment with every part loaded 4.69 GiB
//! (diffusers + torch 3.86 GiB by the same measure), in low-VRAM mode 2.62 GiB. SD 2.x has the same UNet size.
//! fp32 doubles the weights (UNet 3.4 GB, text encoder 0.5 GB, VAE 0.3 GB). SDXL's fp16 weights alone are 6.9 GB.
//! A GPU needs headroom beyond the peak for the desktop and other programs, hence the margins below.

use serde::Serialize;

use super::ExecutionProvider;
use crate::error::EngineError;

const GIB: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    #[default]
    Auto,
    Fp16,
    Fp32,
}

impl std::str::FromStr for PrecisionChoice {
    type Err = EngineError;
    fn from_str(value: &str) -> Result<Self, EngineError> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Ok(PrecisionChoice::Auto),
            "fp16" | "float16" | "half" => Ok(PrecisionChoice::Fp16),
            "fp32" | "float32" | "full" => Ok(PrecisionChoice::Fp32),
            _ => Err(EngineError::parameter("precision", value, "expected auto, fp16 or fp32")),
        }
    }
}

/// Whether to run in low-VRAM mode: the text encoder released after use, the UNet and the VAE loaded in turn, the
/// VAE tiled and cuDNN held to small workspaces. `Auto` turns it on when the GPU has less memory than the model
/// family needs at once (A1111's `--lowvram`, decided from the hardware).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LowVramChoice {
    #[default]
    Auto,
    On,
    Off,
    /// The UNet stays loaded; the text encoder and the VAE take turns beside it. Only when chosen: what it saves
    /// against a full load has not been measured on a GPU yet.
    Medium,
}

impl std::str::FromStr for LowVramChoice {
    type Err = EngineError;
    fn from_str(value: &str) -> Result<Self, EngineError> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Ok(LowVramChoice::Auto),
            "on" | "yes" | "true" => Ok(LowVramChoice::On),
            "off" | "no" | "false" => Ok(LowVramChoice::Off),
            "medium" => Ok(LowVramChoice::Medium),
            _ => Err(EngineError::parameter("low-vram", value, "expected auto, on, medium or off")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp16,
    Fp32,
}

/// Model families by their UNet size, told apart by the text embedding width (768: SD 1.x, 1024: SD 2.x,
/// 2048: SDXL's two encoders concatenated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ModelFamily {
    Sd1,
    Sd2,
    Sdxl,
}

impl ModelFamily {
    pub fn from_context_width(width: usize) -> ModelFamily {
        match width {
            0..=768 => ModelFamily::Sd1,
            769..=1024 => ModelFamily::Sd2,
            _ => ModelFamily::Sdxl,
        }
    }

    /// GPU memory below which even fp16 does not fit with all parts loaded at once: the measured 4.69 GiB peak
    /// plus about 1.3 GiB of headroom for SD 1.x/2.x, SDXL's weights plus activations plus headroom.
    fn fp16_full_load(self) -> u64 {
        match self {
            ModelFamily::Sd1 | ModelFamily::Sd2 => 6 * GIB,
            ModelFamily::Sdxl => 10 * GIB,
        }
    }
}

/// How a model's parts share the device's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryMode {
    /// Every part loaded at once.
    Full,
    /// The UNet stays loaded; the text encoder and the VAE take turns beside it (only when chosen).
    Medium,
    /// Low-VRAM: the parts take turns, the VAE works in tiles, because the GPU cannot hold the model at once.
    Low,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrecisionDecision {
    pub precision: Precision,
    pub memory: MemoryMode,
    pub reason: String,
}

/// The decision table:
///
/// | provider | memory known | choice | result |
/// | --- | --- | --- | --- |
/// | CPU | - | auto | fp32: ONNX Runtime's CPU kernels are fp32; fp16 would be cast back at every op, slower |
/// | GPU | >= family's fp16 need | auto | fp16, all parts loaded |
/// | GPU | < family's fp16 need | auto | fp16 + low-VRAM mode: fp32 needs twice the memory, so it can only fit worse |
/// | GPU | unknown | auto | fp16 (what every published GPU export uses), all parts loaded |
/// | any | - | fp16 / fp32 | as chosen; low-VRAM as the memory says |
///
/// Low-VRAM mode chosen `On` or `Off` overrides what the memory says (on the CPU it only tiles the VAE and loads
/// the parts in turn, which bounds RAM the same way).
pub fn choose_precision(
    choice: PrecisionChoice,
    low_vram: LowVramChoice,
    provider: ExecutionProvider,
    gpu_memory: Option<u64>,
    family: ModelFamily,
) -> PrecisionDecision {
    let need = family.fp16_full_load();
    let on_gpu = provider != ExecutionProvider::Cpu;
    let short_of_memory = on_gpu && gpu_memory.is_some_and(|memory| memory < need);
    let memory = match low_vram {
        LowVramChoice::Auto if short_of_memory => MemoryMode::Low,
        LowVramChoice::On => MemoryMode::Low,
        LowVramChoice::Medium => MemoryMode::Medium,
        LowVramChoice::Auto | LowVramChoice::Off => MemoryMode::Full,
    };
    let memory_text = match gpu_memory {
        Some(memory) => format!("{:.1} GiB", memory as f64 / GIB as f64),
        None => "unknown memory".into(),
    };
    let (precision, reason) = match (choice, on_gpu) {
        (PrecisionChoice::Fp16, _) => (Precision::Fp16, "fp16 chosen".to_string()),
        (PrecisionChoice::Fp32, _) => (Precision::Fp32, "fp32 chosen".to_string()),
        (PrecisionChoice::Auto, false) => (Precision::Fp32, "fp32 on the CPU (its kernels are fp32)".to_string()),
        (PrecisionChoice::Auto, true) if short_of_memory => (
            Precision::Fp16,
            format!(
                "fp16 with parts loaded in turn: {provider} GPU with {memory_text}, below the {} GiB a {family:?} model needs at once",
                need / GIB
            ),
        ),
        (PrecisionChoice::Auto, true) => (Precision::Fp16, format!("fp16 on the {provider} GPU ({memory_text})")),
    };
    let reason = match (memory, short_of_memory) {
        (MemoryMode::Medium, _) => {
            format!("{reason}; medium-VRAM mode chosen (UNet loaded, text encoder and VAE in turn)")
        }
        (MemoryMode::Low, false) => format!("{reason}; low-VRAM mode chosen"),
        (MemoryMode::Full, true) => format!("{reason}; low-VRAM mode turned off"),
        _ => reason,
    };
    PrecisionDecision { precision, memory, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionProvider::{Cpu, Cuda, DirectMl};

    #[test]
    fn the_decision_table() {
        let cases = [
            (PrecisionChoice::Auto, Cpu, None, ModelFamily::Sd1, Precision::Fp32, MemoryMode::Full),
            (PrecisionChoice::Auto, Cpu, Some(2 * GIB), ModelFamily::Sd1, Precision::Fp32, MemoryMode::Full),
            (PrecisionChoice::Auto, Cuda, Some(24 * GIB), ModelFamily::Sd1, Precision::Fp16, MemoryMode::Full),
            (PrecisionChoice::Auto, Cuda, Some(6 * GIB), ModelFamily::Sd2, Precision::Fp16, MemoryMode::Full),
            (PrecisionChoice::Auto, Cuda, Some(4 * GIB), ModelFamily::Sd2, Precision::Fp16, MemoryMode::Low),
            (PrecisionChoice::Auto, Cuda, Some(3 * GIB), ModelFamily::Sd1, Precision::Fp16, MemoryMode::Low),
            (PrecisionChoice::Auto, Cuda, Some(8 * GIB), ModelFamily::Sdxl, Precision::Fp16, MemoryMode::Low),
            (PrecisionChoice::Auto, Cuda, Some(12 * GIB), ModelFamily::Sdxl, Precision::Fp16, MemoryMode::Full),
            (PrecisionChoice::Auto, DirectMl, None, ModelFamily::Sd1, Precision::Fp16, MemoryMode::Full),
            (PrecisionChoice::Fp32, Cuda, Some(24 * GIB), ModelFamily::Sd1, Precision::Fp32, MemoryMode::Full),
            (PrecisionChoice::Fp16, Cpu, None, ModelFamily::Sd1, Precision::Fp16, MemoryMode::Full),
        ];
        for (choice, provider, memory, family, precision, mode) in cases {
            let decision = choose_precision(choice, LowVramChoice::Auto, provider, memory, family);
            assert_eq!(
                (decision.precision, decision.memory),
                (precision, mode),
                "{choice:?} {provider} {memory:?} {family:?}: {}",
                decision.reason
            );
            assert!(!decision.reason.is_empty());
        }
    }

    #[test]
    fn a_chosen_low_vram_mode_overrides_the_memory() {
        let forced = choose_precision(PrecisionChoice::Auto, LowVramChoice::On, Cuda, Some(80 * GIB), ModelFamily::Sd1);
        assert_eq!((forced.precision, forced.memory), (Precision::Fp16, MemoryMode::Low));
        assert!(forced.reason.contains("low-VRAM mode chosen"), "{}", forced.reason);
        let refused =
            choose_precision(PrecisionChoice::Auto, LowVramChoice::Off, Cuda, Some(2 * GIB), ModelFamily::Sd1);
        assert_eq!((refused.precision, refused.memory), (Precision::Fp16, MemoryMode::Full));
        assert!(refused.reason.contains("turned off"), "{}", refused.reason);
        let cpu = choose_precision(PrecisionChoice::Auto, LowVramChoice::On, Cpu, None, ModelFamily::Sd1);
        assert_eq!((cpu.precision, cpu.memory), (Precision::Fp32, MemoryMode::Low));
        // Medium mode only when chosen, whatever the memory.
        let medium =
            choose_precision(PrecisionChoice::Auto, LowVramChoice::Medium, Cuda, Some(2 * GIB), ModelFamily::Sd1);
        assert_eq!(medium.memory, MemoryMode::Medium);
        assert!(medium.reason.contains("medium-VRAM mode chosen"), "{}", medium.reason);
        let auto = choose_precision(PrecisionChoice::Auto, LowVramChoice::Auto, Cuda, Some(5 * GIB), ModelFamily::Sd1);
        assert_eq!(auto.memory, MemoryMode::Low);
    }

    #[test]
    fn low_vram_names_parse() {
        assert_eq!("ON".parse::<LowVramChoice>().unwrap(), LowVramChoice::On);
        assert_eq!("auto".parse::<LowVramChoice>().unwrap(), LowVramChoice::Auto);
        assert_eq!("Medium".parse::<LowVramChoice>().unwrap(), LowVramChoice::Medium);
        assert!("sometimes".parse::<LowVramChoice>().unwrap_err().to_string().contains("sometimes"));
    }

    #[test]
    fn families_follow_the_embedding_width() {
        assert_eq!(ModelFamily::from_context_width(32), ModelFamily::Sd1);
        assert_eq!(ModelFamily::from_context_width(768), ModelFamily::Sd1);
        assert_eq!(ModelFamily::from_context_width(1024), ModelFamily::Sd2);
        assert_eq!(ModelFamily::from_context_width(2048), ModelFamily::Sdxl);
    }

    #[test]
    fn precision_names_parse() {
        assert_eq!("FP16".parse::<PrecisionChoice>().unwrap(), PrecisionChoice::Fp16);
        assert!("fp8".parse::<PrecisionChoice>().unwrap_err().to_string().contains("fp8"));
    }
}
