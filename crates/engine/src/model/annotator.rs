//! Annotator models: the ONNX networks behind the ControlNet preprocessors that need one (A1111's ControlNet
//! extension calls them annotators). Each is a folder, kept in the models folder as `annotators/<name>/`:
//!
//! - `model.onnx` (or `onnx/model.onnx`, the layout of Hugging Face's ONNX repositories, so a downloaded
//!   `onnx-community/depth-anything-v2-small` works as it is);
//! - depth: optionally `preprocessor_config.json` (transformers' `DPTImageProcessor` fields `size`,
//!   `ensure_multiple_of`, `keep_aspect_ratio`, `image_mean`, `image_std`) and `config.json` (`model_type`
//!   names the module: `depth_anything` or `dpt` = `depth_midas`). Without them: Depth Anything's 518, 14,
//!   aspect kept, ImageNet mean and std.
//!
//! Depth models take one image `[1, 3, h, w]` (normalised) and return the relative inverse depth `[1, h', w']`
//! (or `[1, 1, h', w']`); pose models (the CMU body model of OpenPose) take `[1, 3, h, w]` and return the part
//! affinity fields `[1, 38, h/8, w/8]` and the heatmaps `[1, 19, h/8, w/8]`, told apart by their channels. Names
//! and element types are read from the model.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, Array4, Axis};
use serde::Deserialize;

use super::folder::{files_in, folder_name};
use super::io::{self, TensorSpec};
use super::sessions::ComponentSession;
use crate::error::{EngineError, Result};
use crate::model::LoadedModel;
use crate::progress::CancelSignal;
use crate::runtime::Runtime;

/// The models folder's subfolder that holds the annotator folders.
pub const ANNOTATORS_FOLDER: &str = "annotators";
/// Depth Anything's input side (its `Resize(width=518, height=518, ...)`) and patch size.
pub const DEPTH_ANYTHING_SIZE: usize = 518;
const DEPTH_ANYTHING_MULTIPLE: usize = 14;
/// ImageNet's mean and standard deviation, which Depth Anything normalises with.
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// The body model's outputs: 19 heatmaps (18 parts and the background) and 38 PAF channels (19 limbs, x and y).
pub const POSE_HEATMAPS: usize = 19;
pub const POSE_PAFS: usize = 38;

/// The preprocessors that need a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotatorKind {
    Depth,
    Openpose,
}

impl AnnotatorKind {
    pub const NAMES: [&'static str; 2] = ["depth", "openpose"];

    /// `depth` (also A1111's `depth_anything`, `depth_anything_v2`, `depth_midas`) or `openpose`;
    /// case-insensitive. `None` for other names.
    pub fn parse(name: &str) -> Option<AnnotatorKind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "depth" | "depth_anything" | "depth_anything_v2" | "depth_midas" => Some(AnnotatorKind::Depth),
            "openpose" => Some(AnnotatorKind::Openpose),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AnnotatorKind::Depth => "depth",
            AnnotatorKind::Openpose => "openpose",
        }
    }

    /// The annotator folder for this kind in `models_folder`: `annotators/<name>/` where the name starts with the
    /// kind's name (`depth_anything_v2`, `depth-midas`, `openpose`, ...), the first by name that holds a model.
    pub fn find(self, models_folder: &Path) -> Result<PathBuf> {
        let folder = models_folder.join(ANNOTATORS_FOLDER);
        let mut candidates: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        let name = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
                        name.starts_with(self.name()) && model_file(p).is_some()
                    })
                    .collect()
            })
            .unwrap_or_default();
        candidates.sort();
        candidates.into_iter().next().ok_or_else(|| EngineError::MissingComponent {
            folder: folder.clone(),
            component: "annotator",
            expected: folder.join(format!("{}.../model.onnx", self.name())),
        })
    }
}

impl std::fmt::Display for AnnotatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `model.onnx`, else `onnx/model.onnx`, in `folder`.
fn model_file(folder: &Path) -> Option<PathBuf> {
    [folder.join("model.onnx"), folder.join("onnx").join("model.onnx")].into_iter().find(|p| p.is_file())
}

/// The session of the annotator in `folder`, made as the model's parts are (optimized-graph cache, fixed
/// dimensions, the runtime's memory settings; turns once [`ComponentSession::share_device`] joins it to a low-VRAM
/// model). Weights in files beside the graph (`model.onnx_data`) are found as for the model's parts.
fn open_session(runtime: &Runtime, folder: &Path, component: &'static str) -> Result<ComponentSession> {
    if !folder.is_dir() {
        return Err(EngineError::ModelFolderNotFound { path: folder.to_path_buf() });
    }
    let model = model_file(folder).ok_or_else(|| EngineError::MissingComponent {
        folder: folder.to_path_buf(),
        component,
        expected: folder.join("model.onnx"),
    })?;
    let graph_folder = model.parent().unwrap_or(folder);
    ComponentSession::load(runtime, component, &files_in(graph_folder, folder, component)?)
}

/// The annotator's one picture input; errors name the folder.
fn image_input(component: &'static str, folder: &Path, inputs: &[TensorSpec]) -> Result<TensorSpec> {
    io::single_rgb_image(component, inputs, "an annotator").map_err(|error| match error {
        EngineError::UnsupportedModelIo { component, name, detail } => {
            EngineError::UnsupportedModelIo { component, name, detail: format!("{detail} ({})", folder.display()) }
        }
        other => other,
    })
}

/// The outputs `names` of the annotator for `image`, checked finite.
fn run_outputs(
    session: &mut ComponentSession,
    component: &'static str,
    input: &TensorSpec,
    image: &Array4<f32>,
    names: &[String],
) -> Result<Vec<ndarray::ArrayD<f32>>> {
    let value = io::float_input(component, input, image.view().into_dyn())?;
    let outputs = session.run_once(vec![(input.name.clone(), value)], names)?;
    if outputs.iter().any(|array| array.iter().any(|v| !v.is_finite())) {
        return Err(EngineError::NonFinite { stage: component });
    }
    Ok(outputs)
}

/// How a depth model wants its input: what transformers' `DPTImageProcessor` config says.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthConfig {
    /// Height and width: the lower bound of each side when the aspect ratio is kept, else the size itself.
    pub size: (usize, usize),
    /// Each side is rounded to a multiple of this (the ViT patch size: 14 for Depth Anything's DINOv2).
    pub multiple_of: usize,
    pub keep_aspect_ratio: bool,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for DepthConfig {
    /// Depth Anything's transform (depth_anything/dpt.py and the ControlNet extension's annotator).
    fn default() -> Self {
        DepthConfig {
            size: (DEPTH_ANYTHING_SIZE, DEPTH_ANYTHING_SIZE),
            multiple_of: DEPTH_ANYTHING_MULTIPLE,
            keep_aspect_ratio: true,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeField {
    Square(usize),
    HeightWidth { height: usize, width: usize },
}

/// The fields of `preprocessor_config.json` that matter here; absent ones keep Depth Anything's values.
#[derive(Deserialize)]
struct PreprocessorConfigFile {
    size: Option<SizeField>,
    ensure_multiple_of: Option<usize>,
    keep_aspect_ratio: Option<bool>,
    do_normalize: Option<bool>,
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
}

impl DepthConfig {
    /// `preprocessor_config.json` in `folder`, or the defaults when there is none.
    pub fn read(folder: &Path) -> Result<DepthConfig> {
        let path = folder.join("preprocessor_config.json");
        let mut config = DepthConfig::default();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(config),
            Err(e) => return Err(EngineError::ReadFile { path, reason: e.to_string() }),
        };
        let invalid = |reason: String| EngineError::InvalidConfigFile { path: path.clone(), reason };
        let file: PreprocessorConfigFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if let Some(size) = file.size {
            config.size = match size {
                SizeField::Square(side) => (side, side),
                SizeField::HeightWidth { height, width } => (height, width),
            };
        }
        config.multiple_of = file.ensure_multiple_of.unwrap_or(config.multiple_of);
        config.keep_aspect_ratio = file.keep_aspect_ratio.unwrap_or(config.keep_aspect_ratio);
        if file.do_normalize == Some(false) {
            (config.mean, config.std) = ([0.0; 3], [1.0; 3]);
        } else {
            config.mean = file.image_mean.unwrap_or(config.mean);
            config.std = file.image_std.unwrap_or(config.std);
        }
        if config.size.0 == 0 || config.size.1 == 0 || config.multiple_of == 0 {
            return Err(invalid(format!(
                "size {}x{} and ensure_multiple_of {} must be positive",
                config.size.1, config.size.0, config.multiple_of
            )));
        }
        if let Some(std) = config.std.iter().find(|s| !s.is_normal() || **s < 0.0) {
            return Err(invalid(format!("image_std {std} must be positive")));
        }
        Ok(config)
    }
}

/// A depth estimation network (Depth Anything v1/v2, DPT/MiDaS) exported to ONNX.
pub struct DepthModel {
    session: ComponentSession,
    input: TensorSpec,
    output: String,
    config: DepthConfig,
    module: String,
    name: String,
    folder: PathBuf,
}

impl std::fmt::Debug for DepthModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepthModel").field("folder", &self.folder).field("config", &self.config).finish()
    }
}

impl DepthModel {
    pub fn open(runtime: &Runtime, folder: &Path) -> Result<DepthModel> {
        const COMPONENT: &str = "depth annotator";
        let session = open_session(runtime, folder, COMPONENT)?;
        let (input, outputs) = (image_input(COMPONENT, folder, &session.inputs)?, &session.outputs);
        let output = match outputs.as_slice() {
            [output] if output.rank() == 3 || output.rank() == 4 && output.shape[1] <= 1 => output.name.clone(),
            _ => {
                return Err(EngineError::UnsupportedModelIo {
                    component: COMPONENT,
                    name: outputs.first().map_or(String::new(), |s| s.name.clone()),
                    detail: format!(
                        "a depth model returns one depth map [batch, height, width], this model returns {} ({})",
                        io::describe_specs(outputs),
                        folder.display()
                    ),
                });
            }
        };
        let config = DepthConfig::read(folder)?;
        Ok(DepthModel {
            session,
            input,
            output,
            config,
            module: depth_module(folder)?,
            name: folder_name(folder),
            folder: folder.to_path_buf(),
        })
    }

    /// Shares the device with `model`'s parts (turns in low- and medium-VRAM modes); see
    /// [`LoadedModel::share_device_once_per_image`].
    pub(crate) fn share_device_with(&mut self, model: &LoadedModel) -> Result<()> {
        model.share_device_once_per_image(&mut self.session)
    }

    /// From now on its run stops while it runs once `signal` is set; see [`LoadedModel::watch_cancel`].
    pub fn watch_cancel(&mut self, signal: Option<&CancelSignal>) -> Result<()> {
        self.session.watch_cancel(signal)
    }

    pub fn config(&self) -> &DepthConfig {
        &self.config
    }

    /// A1111's module name: `depth_anything`, `depth_midas`, or `depth` for other models.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// The folder's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The input size the export fixes (height, width), if it fixes both.
    pub fn fixed_input_size(&self) -> Option<(usize, usize)> {
        Some((self.input.fixed_dim(2)?, self.input.fixed_dim(3)?))
    }

    /// The depth map `[h', w']` for a normalised image `[1, 3, h, w]`.
    pub fn predict(&mut self, image: &Array4<f32>) -> Result<Array2<f32>> {
        const COMPONENT: &str = "depth annotator";
        let output = self.output.clone();
        let depth = run_outputs(&mut self.session, COMPONENT, &self.input, image, std::slice::from_ref(&output))?
            .pop()
            .ok_or_else(|| EngineError::inference(COMPONENT, format!("the model returned no output {output}")))?;
        let shape = depth.shape().to_vec();
        let depth = match shape.as_slice() {
            [1, _, _] => depth.index_axis_move(Axis(0), 0),
            [1, 1, _, _] => depth.index_axis_move(Axis(0), 0).index_axis_move(Axis(0), 0),
            _ => {
                return Err(EngineError::UnsupportedModelIo {
                    component: COMPONENT,
                    name: output,
                    detail: format!(
                        "for an input of {:?} the model returned {shape:?}, not one depth map [1, height, width] ({})",
                        image.shape(),
                        self.folder.display()
                    ),
                });
            }
        };
        depth.into_dimensionality().map_err(|e| EngineError::inference(COMPONENT, e))
    }
}

/// The module name from `config.json`'s `model_type`, when there is one.
fn depth_module(folder: &Path) -> Result<String> {
    let path = folder.join("config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok("depth".into());
    };
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EngineError::InvalidConfigFile { path, reason: e.to_string() })?;
    Ok(match config.get("model_type").and_then(|t| t.as_str()) {
        Some("depth_anything") => "depth_anything",
        Some("dpt") => "depth_midas",
        _ => "depth",
    }
    .into())
}

/// The CMU body model of OpenPose (`body_pose_model.pth` of lllyasviel/Annotators) exported to ONNX.
pub struct PoseModel {
    session: ComponentSession,
    input: TensorSpec,
    pafs: String,
    heatmaps: String,
    name: String,
    folder: PathBuf,
}

impl std::fmt::Debug for PoseModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoseModel").field("folder", &self.folder).finish()
    }
}

impl PoseModel {
    pub fn open(runtime: &Runtime, folder: &Path) -> Result<PoseModel> {
        const COMPONENT: &str = "openpose annotator";
        let session = open_session(runtime, folder, COMPONENT)?;
        let (input, outputs) = (image_input(COMPONENT, folder, &session.inputs)?, &session.outputs);
        let with_channels =
            |channels: i64| outputs.iter().find(|s| s.rank() == 4 && s.shape[1] == channels).map(|s| s.name.clone());
        let (Some(pafs), Some(heatmaps)) = (with_channels(POSE_PAFS as i64), with_channels(POSE_HEATMAPS as i64))
        else {
            return Err(EngineError::UnsupportedModelIo {
                component: COMPONENT,
                name: outputs.first().map_or(String::new(), |s| s.name.clone()),
                detail: format!(
                    "the body model returns part affinity fields [1, {POSE_PAFS}, h, w] and heatmaps [1, {POSE_HEATMAPS}, h, w], \
                     this model returns {} ({})",
                    io::describe_specs(outputs),
                    folder.display()
                ),
            });
        };
        Ok(PoseModel { session, input, pafs, heatmaps, name: folder_name(folder), folder: folder.to_path_buf() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Shares the device with `model`'s parts (turns in low- and medium-VRAM modes); see
    /// [`LoadedModel::share_device_once_per_image`].
    pub(crate) fn share_device_with(&mut self, model: &LoadedModel) -> Result<()> {
        model.share_device_once_per_image(&mut self.session)
    }

    /// From now on its run stops while it runs once `signal` is set; see [`LoadedModel::watch_cancel`].
    pub fn watch_cancel(&mut self, signal: Option<&CancelSignal>) -> Result<()> {
        self.session.watch_cancel(signal)
    }

    /// The part affinity fields `[38, h/8, w/8]` and heatmaps `[19, h/8, w/8]` for an image `[1, 3, h, w]`.
    pub fn predict(&mut self, image: &Array4<f32>) -> Result<(Array3<f32>, Array3<f32>)> {
        const COMPONENT: &str = "openpose annotator";
        let names = [self.pafs.clone(), self.heatmaps.clone()];
        let folder = self.folder.display();
        let mut outputs = run_outputs(&mut self.session, COMPONENT, &self.input, image, &names)?.into_iter();
        let mut take = |name: &str, channels: usize| -> Result<Array3<f32>> {
            let array = outputs
                .next()
                .ok_or_else(|| EngineError::inference(COMPONENT, format!("the model returned no output {name}")))?;
            let shape = array.shape().to_vec();
            if shape.len() != 4 || shape[0] != 1 || shape[1] != channels {
                return Err(EngineError::UnsupportedModelIo {
                    component: COMPONENT,
                    name: name.to_string(),
                    detail: format!("returned {shape:?}, not [1, {channels}, height, width] ({folder})"),
                });
            }
            array.index_axis_move(Axis(0), 0).into_dimensionality().map_err(|e| EngineError::inference(COMPONENT, e))
        };
        let pafs = take(&names[0], POSE_PAFS)?;
        let heatmaps = take(&names[1], POSE_HEATMAPS)?;
        if pafs.shape()[1..] != heatmaps.shape()[1..] {
            return Err(EngineError::UnsupportedModelIo {
                component: COMPONENT,
                name: names[1].clone(),
                detail: format!(
                    "heatmaps {:?} and part affinity fields {:?} differ in size ({folder})",
                    heatmaps.shape(),
                    pafs.shape()
                ),
            });
        }
        Ok((pafs, heatmaps))
    }
}
