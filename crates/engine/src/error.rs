//! The engine's one error type. Every variant names what was wrong (parameter, file) and the bad value,
//! so the CLI can print it as one line and the app can show it next to the field that caused it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "ONNX Runtime library not found (looked in: {}). Run `npm run setup` in the repository, put the library next to the executable, or set ORT_DYLIB_PATH to libonnxruntime",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    RuntimeNotFound { searched: Vec<PathBuf> },

    #[error("could not load ONNX Runtime from {path}: {reason}")]
    RuntimeLoad { path: PathBuf, reason: String },

    #[error("model folder {path} does not exist or is not a folder")]
    ModelFolderNotFound { path: PathBuf },

    #[error("model folder {folder} has no {component}: expected {expected}")]
    MissingComponent { folder: PathBuf, component: &'static str, expected: PathBuf },

    #[error("{path} could not be loaded as an ONNX model: {reason}")]
    InvalidModelFile { path: PathBuf, reason: String },

    #[error("{path} is not valid: {reason}")]
    InvalidConfigFile { path: PathBuf, reason: String },

    #[error("model {folder} is inconsistent: {detail}")]
    IncompatibleComponents { folder: PathBuf, detail: String },

    #[error("{component} input or output {name:?} is unsupported: {detail}")]
    UnsupportedModelIo { component: &'static str, name: String, detail: String },

    #[error("invalid {name}: {value} ({reason})")]
    InvalidParameter { name: &'static str, value: String, reason: String },

    #[error("unknown sampler {name:?}; known samplers: {known}")]
    UnknownSampler { name: String, known: String },

    #[error("{stage} failed in ONNX Runtime: {reason}")]
    Inference { stage: &'static str, reason: String },

    #[error("{stage} produced non-finite values (NaN or infinity)")]
    NonFinite { stage: &'static str },

    #[error("generation cancelled")]
    Cancelled,
    /// A generation's current batch was skipped ([`crate::progress::Flow::Skip`]); `pipeline::generate` goes on
    /// with the next batch, so callers of it never see this.
    #[error("the batch was skipped")]
    Skipped,

    #[error("could not write {path}: {reason}")]
    WriteFile { path: PathBuf, reason: String },

    #[error("could not read {path}: {reason}")]
    ReadFile { path: PathBuf, reason: String },

    #[error("invalid generation parameters text: {reason}")]
    InvalidParametersText { reason: String },

    #[error("embedding {path} could not be read: {reason}")]
    InvalidEmbedding { path: PathBuf, reason: String },

    #[error("embedding {path} has vectors {width} wide, but this model's text encoder takes {expected}-wide vectors")]
    EmbeddingWidth { path: PathBuf, width: usize, expected: usize },

    #[error("cannot convert {path} to fp16: {problem}")]
    Fp16Conversion { path: PathBuf, problem: Fp16Problem },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub(crate) fn parameter(name: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        EngineError::InvalidParameter { name, value: value.to_string(), reason: reason.into() }
    }

    pub(crate) fn inference(stage: &'static str, error: impl std::fmt::Display) -> Self {
        EngineError::Inference { stage, reason: error.to_string() }
    }
}

/// What stops a conversion; carried by [`EngineError::Fp16Conversion`] with the file it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fp16Problem {
    #[error("not an ONNX model ({reason})")]
    NotOnnx { reason: String },
    #[error("its weights are already float16")]
    AlreadyFp16,
    #[error("it has no float32 weights to convert")]
    NoFloatWeights,
    #[error("node {node:?} ({op_type}) holds a subgraph; If, Loop and Scan bodies are not converted")]
    Subgraph { node: String, op_type: String },
    #[error("it defines local functions ({names}), which the converter does not handle")]
    LocalFunctions { names: String },
    #[error("it has sparse initializers ({names}), which the converter does not handle")]
    SparseInitializers { names: String },
    #[error("tensor {tensor:?}: {reason}")]
    InvalidTensor { tensor: String, reason: String },
    #[error("the weights of {tensor:?} in {file}: {reason}")]
    ExternalData { tensor: String, file: PathBuf, reason: String },
    #[error("the converted graph would be {bytes} bytes, over protobuf's 2 GiB limit")]
    TooLarge { bytes: u64 },
    #[error("{destination} already exists")]
    DestinationExists { destination: PathBuf },
}
