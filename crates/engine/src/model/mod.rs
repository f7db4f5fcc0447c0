//! Model folders in the diffusers/optimum ONNX layout, and the ONNX sessions made from them.
//!
//! Names, dtypes and ranks of every input and output are read from the sessions, never assumed (ARCHITECTURE.md,
//! "Model folders"): `input_ids` int32 or int64, `timestep` float32/float16/int64/double of rank 0 or 1, fp16 or
//! fp32 IO. External weight files (`model.onnx_data`, `weights.pb`) load because ONNX Runtime resolves them next to
//! the model file.

mod annotator;
mod controlnet;
mod folder;
pub mod fp16;
mod graph_cache;
mod io;
pub(crate) mod onnx_proto;
mod run_cancel;
mod sessions;
mod token_embedding;
mod upscaler;

pub use crate::progress::CancelSignal;
pub use annotator::{
    ANNOTATORS_FOLDER, AnnotatorKind, DEPTH_ANYTHING_SIZE, DepthConfig, DepthModel, POSE_HEATMAPS, POSE_PAFS, PoseModel,
};
pub use controlnet::{AdapterModel, ControlModelFolder, ControlNetModel, ResidualKind, ResidualUnet};
pub use folder::{Component, ComponentFiles, ModelFolder};
pub use io::{ElementType, TensorSpec};
pub use sessions::{LoadedModel, ModelInfo, TextEncoderSession, UnetSession, VaeDecoderSession, VaeEncoderSession};
pub use upscaler::UpscalerSession;

/// The demo model's folder name under `models/`.
pub const DEMO_MODEL_NAME: &str = "tiny-sd";

/// The bundled demo model: `models/tiny-sd` next to the executable (installed), else in the repository this
/// engine was built from (development).
pub fn find_demo_model() -> Option<std::path::PathBuf> {
    let beside_executable =
        std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("models").join(DEMO_MODEL_NAME)));
    let in_repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(DEMO_MODEL_NAME);
    [beside_executable, Some(in_repository)].into_iter().flatten().find(|dir| dir.join("model_index.json").is_file())
}
