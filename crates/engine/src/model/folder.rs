//! Finding and checking the parts of a model folder before any session is made, so that a missing or broken
//! file is reported by its path.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{EngineError, Result};

/// SD 1.x/2.x latents are scaled by this when the VAE's config does not say otherwise.
const DEFAULT_VAE_SCALING_FACTOR: f32 = 0.18215;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    TextEncoder,
    Unet,
    VaeDecoder,
    VaeEncoder,
    /// An fp32 VAE decoder beside an fp16 model's, used when the fp16 one overflows (NaN or infinity).
    VaeDecoderFp32,
}

impl Component {
    pub fn folder_name(self) -> &'static str {
        match self {
            Component::TextEncoder => "text_encoder",
            Component::Unet => "unet",
            Component::VaeDecoder => "vae_decoder",
            Component::VaeEncoder => "vae_encoder",
            Component::VaeDecoderFp32 => "vae_decoder_fp32",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.folder_name())
    }
}

/// The files of one ONNX component: the graph and any external weight files beside it.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentFiles {
    pub model: PathBuf,
    pub external_data: Vec<PathBuf>,
    /// Bytes on disk, graph and weights together.
    pub size: u64,
}

/// A model folder whose required files exist and look like what they should be.
#[derive(Debug, Clone, Serialize)]
pub struct ModelFolder {
    pub root: PathBuf,
    pub name: String,
    pub text_encoder: ComponentFiles,
    pub unet: ComponentFiles,
    pub vae_decoder: ComponentFiles,
    pub vae_encoder: Option<ComponentFiles>,
    pub vae_decoder_fp32: Option<ComponentFiles>,
    pub tokenizer: PathBuf,
    pub scheduler_config: Option<PathBuf>,
    pub vae_scaling_factor: f32,
}

impl ModelFolder {
    pub fn open(root: impl AsRef<Path>) -> Result<ModelFolder> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(EngineError::ModelFolderNotFound { path: root });
        }
        let name = folder_name(&root);
        let tokenizer = root.join("tokenizer");
        let has_tokenizer = tokenizer.join("tokenizer.json").is_file()
            || (tokenizer.join("vocab.json").is_file() && tokenizer.join("merges.txt").is_file());
        if !has_tokenizer {
            return Err(EngineError::MissingComponent {
                folder: root.clone(),
                component: "tokenizer",
                expected: tokenizer.join("tokenizer.json (or vocab.json and merges.txt)"),
            });
        }
        let scheduler_config = Some(root.join("scheduler/scheduler_config.json")).filter(|p| p.is_file());
        let vae_scaling_factor = read_vae_scaling_factor(&root)?;
        Ok(ModelFolder {
            text_encoder: component_files(&root, Component::TextEncoder)?,
            unet: component_files(&root, Component::Unet)?,
            vae_decoder: component_files(&root, Component::VaeDecoder)?,
            vae_encoder: optional_component(&root, Component::VaeEncoder)?,
            vae_decoder_fp32: optional_component(&root, Component::VaeDecoderFp32)?,
            root,
            name,
            tokenizer,
            scheduler_config,
            vae_scaling_factor,
        })
    }
}

fn optional_component(root: &Path, component: Component) -> Result<Option<ComponentFiles>> {
    match component_files(root, component) {
        Ok(files) => Ok(Some(files)),
        Err(EngineError::MissingComponent { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

fn component_files(root: &Path, component: Component) -> Result<ComponentFiles> {
    files_in(&root.join(component.folder_name()), root, component.folder_name())
}

/// `model.onnx` in `folder` and the weight files beside it; a missing graph is reported as `component` of `owner`
/// (the model folder, or the folder itself for ControlNets and adapters).
/// The name of `folder` as the metadata shows a model (its last component, after `..` and links are resolved), or
/// the path as given when it cannot be resolved.
pub(crate) fn folder_name(folder: &Path) -> String {
    std::fs::canonicalize(folder)
        .ok()
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| folder.display().to_string())
}

pub(crate) fn files_in(folder: &Path, owner: &Path, component: &'static str) -> Result<ComponentFiles> {
    let model = folder.join("model.onnx");
    if !model.is_file() {
        return Err(EngineError::MissingComponent { folder: owner.to_path_buf(), component, expected: model });
    }
    check_onnx_header(&model)?;
    let mut size = file_size(&model)?;
    let mut external_data = Vec::new();
    let entries = std::fs::read_dir(folder).map_err(|e| read_error(folder, e))?;
    for entry in entries {
        let path = entry.map_err(|e| read_error(folder, e))?.path();
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // Exporters name the weights file model.onnx_data (torch, optimum), weights.pb (Olive) or *.data.
        let is_weights = file_name.ends_with(".onnx_data") || file_name == "weights.pb" || file_name.ends_with(".data");
        if is_weights && path.is_file() {
            size += file_size(&path)?;
            external_data.push(path);
        }
    }
    external_data.sort();
    Ok(ComponentFiles { model, external_data, size })
}

/// An ONNX file is a protobuf `ModelProto` whose first field is `ir_version` (tag byte 0x08). Checking that byte
/// catches empty files and files of another kind with a clear message before ONNX Runtime sees them.
fn check_onnx_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut first = [0u8; 1];
    let mut file = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
    let read = file.read(&mut first).map_err(|e| read_error(path, e))?;
    let reason = if read == 0 {
        "the file is empty"
    } else if first[0] != 0x08 {
        "the file does not start like an ONNX model (a protobuf ModelProto)"
    } else {
        return Ok(());
    };
    Err(EngineError::InvalidModelFile { path: path.to_path_buf(), reason: reason.into() })
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path).map_err(|e| read_error(path, e))?.len())
}

fn read_error(path: &Path, error: std::io::Error) -> EngineError {
    EngineError::ReadFile { path: path.to_path_buf(), reason: error.to_string() }
}

/// optimum copies the VAE's diffusers config next to the decoder; SD 1.x/2.x use 0.18215, SDXL 0.13025.
fn read_vae_scaling_factor(root: &Path) -> Result<f32> {
    for candidate in ["vae_decoder/config.json", "vae/config.json"] {
        let path = root.join(candidate);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
        let config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::InvalidConfigFile { path: path.clone(), reason: e.to_string() })?;
        return match config.get("scaling_factor") {
            None => Ok(DEFAULT_VAE_SCALING_FACTOR),
            Some(value) => value.as_f64().filter(|v| v.is_finite() && *v > 0.0).map(|v| v as f32).ok_or_else(|| {
                EngineError::InvalidConfigFile {
                    path: path.clone(),
                    reason: format!("scaling_factor must be a positive number, found {value}"),
                }
            }),
        };
    }
    Ok(DEFAULT_VAE_SCALING_FACTOR)
}
