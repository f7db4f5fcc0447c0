//! ControlNet and T2I-Adapter models, and the base model's UNet that takes their residuals (ARCHITECTURE.md,
//! "Model folders"). A ControlNet folder holds `model.onnx` (inputs `sample`, `timestep`, `encoder_hidden_states`,
//! `controlnet_cond`, optionally `conditioning_scale`; outputs `down_block_{i}_additional_residual` and
//! `mid_block_additional_residual`); an adapter folder `model.onnx` (input `image`, outputs `adapter_feature_{i}`);
//! the base model carries `unet_controlnet/` and `unet_adapter/`: its UNet with those residuals as extra inputs.
//! Names, ranks and dtypes are read from the sessions.

use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayD, ArrayViewD, IxDyn};

use super::folder::{files_in, folder_name};
use super::io::{self, TensorSpec};
use super::sessions::{ComponentSession, KeptInput, find_input};
use crate::error::{EngineError, Result};
use crate::model::LoadedModel;
use crate::runtime::{ModelFamily, Runtime};

const MID_RESIDUAL: &str = "mid_block_additional_residual";

/// The session of `model.onnx` in `folder`, made as the model's parts are (optimized-graph cache, fixed
/// dimensions, IO binding; turns once [`ComponentSession::share_device`] joins it to a low-VRAM model).
fn open_session(runtime: &Runtime, folder: &Path, component: &'static str) -> Result<ComponentSession> {
    if !folder.is_dir() {
        return Err(EngineError::ModelFolderNotFound { path: folder.to_path_buf() });
    }
    ComponentSession::load(runtime, component, &files_in(folder, folder, component)?)
}

/// The names `{prefix}{i}{suffix}` among `names`, ordered by `i`; `i` must run 0, 1, 2, ... without a gap.
fn numbered(names: impl Iterator<Item = String>, prefix: &str, suffix: &str) -> Vec<String> {
    let mut found: Vec<(usize, String)> = names
        .filter_map(|name| {
            let index = name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()?;
            Some((index, name))
        })
        .collect();
    found.sort();
    found.into_iter().enumerate().take_while(|(i, (index, _))| i == index).map(|(_, (_, name))| name).collect()
}

/// A float scalar input (rank 0, or rank 1 of size 1) in the input's float type.
fn scalar_input(component: &'static str, spec: &TensorSpec, value: f32) -> Result<ort::value::DynValue> {
    let shape: Vec<usize> = vec![1; spec.rank().min(1)];
    let array = ArrayD::from_elem(IxDyn(&shape), value);
    io::float_input(component, spec, array.view())
}

/// A ControlNet: the residuals it adds to the UNet for a control image.
pub struct ControlNetModel {
    name: String,
    root: PathBuf,
    session: ComponentSession,
    sample: TensorSpec,
    timestep: TensorSpec,
    encoder_hidden_states: TensorSpec,
    controlnet_cond: TensorSpec,
    /// Absent in exports that bake the scale in; Pigment scales the outputs itself then.
    conditioning_scale: Option<TensorSpec>,
    /// `down_block_{i}_additional_residual` in order, then `mid_block_additional_residual`.
    residuals: Vec<String>,
}

impl std::fmt::Debug for ControlNetModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlNetModel").field("root", &self.root).field("residuals", &self.residuals).finish()
    }
}

impl ControlNetModel {
    pub fn open(runtime: &Runtime, folder: &Path) -> Result<ControlNetModel> {
        const COMPONENT: &str = "controlnet";
        let session = open_session(runtime, folder, COMPONENT)?;
        let (inputs, outputs) = (&session.inputs, &session.outputs);
        let sample = find_input(inputs, COMPONENT, "sample")?.clone();
        let timestep = find_input(inputs, COMPONENT, "timestep")?.clone();
        io::timestep_input(&timestep, 0.0, 1)?;
        let encoder_hidden_states = find_input(inputs, COMPONENT, "encoder_hidden_states")?.clone();
        let controlnet_cond = find_input(inputs, COMPONENT, "controlnet_cond")?.clone();
        let conditioning_scale = inputs.iter().find(|s| s.name == "conditioning_scale").cloned();
        let mut residuals = numbered(outputs.iter().map(|s| s.name.clone()), "down_block_", "_additional_residual");
        if residuals.is_empty() || !outputs.iter().any(|s| s.name == MID_RESIDUAL) {
            return Err(EngineError::UnsupportedModelIo {
                component: COMPONENT,
                name: MID_RESIDUAL.into(),
                detail: format!(
                    "a ControlNet gives down_block_{{i}}_additional_residual and {MID_RESIDUAL}; this model gives {}",
                    outputs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        residuals.push(MID_RESIDUAL.into());
        for spec in [&sample, &controlnet_cond] {
            if spec.rank() != 4 {
                return Err(EngineError::UnsupportedModelIo {
                    component: COMPONENT,
                    name: spec.name.clone(),
                    detail: format!("expected rank 4, the model declares {spec}"),
                });
            }
        }
        Ok(ControlNetModel {
            name: folder_name(folder),
            root: folder.to_path_buf(),
            session,
            sample,
            timestep,
            encoder_hidden_states,
            controlnet_cond,
            conditioning_scale,
            residuals,
        })
    }

    /// The folder's name, as the infotext's `Model:` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The width of the text embeddings it takes: the base model family it was trained for.
    pub fn context_width(&self) -> Option<usize> {
        self.encoder_hidden_states.fixed_dim(2)
    }

    /// Latent channels of its `sample` (4: an inpainting UNet's extra channels are not the ControlNet's).
    pub fn in_channels(&self) -> Option<usize> {
        self.sample.fixed_dim(1)
    }

    /// The residual names, down blocks in order then the mid block, as the UNet with residuals takes them.
    pub fn residual_names(&self) -> &[String] {
        &self.residuals
    }

    /// The residuals for scaled latents `sample` `[n, 4, h, w]`, `context` `[n, tokens, width]` and the control
    /// image `cond` `[n, 3, 8h, 8w]`, unscaled (conditioning scale 1).
    pub fn residuals(
        &mut self,
        sample: ArrayViewD<'_, f32>,
        timestep: f64,
        context: &Array3<f32>,
        cond: ArrayViewD<'_, f32>,
    ) -> Result<Vec<ArrayD<f32>>> {
        const COMPONENT: &str = "controlnet";
        let sample_shape = sample.shape().to_vec();
        let batch = sample_shape[0];
        let mut inputs = vec![
            (self.sample.name.clone(), io::float_input(COMPONENT, &self.sample, sample)?),
            (self.timestep.name.clone(), io::timestep_input(&self.timestep, timestep, batch)?),
            (self.controlnet_cond.name.clone(), io::float_input(COMPONENT, &self.controlnet_cond, cond)?),
        ];
        if let Some(spec) = &self.conditioning_scale {
            inputs.push((spec.name.clone(), scalar_input(COMPONENT, spec, 1.0)?));
        }
        let context = KeptInput { spec: &self.encoder_hidden_states, values: context.view().into_dyn() };
        let residuals = self.session.run_in_loop(inputs, &[context], &self.residuals)?;
        for (name, residual) in self.residuals.iter().zip(&residuals) {
            self.check_residual(name, residual.shape(), &sample_shape)?;
        }
        Ok(residuals)
    }

    /// A residual is `[rows, channels, h, w]` with the latents' rows and sides, or sides halved by the UNet's
    /// downsamplings ([`latent_halvings`]). Checked here, where the ControlNet that gave it can be named; the UNet
    /// would only fail to add it.
    fn check_residual(&self, name: &str, residual: &[usize], sample: &[usize]) -> Result<()> {
        let &[rows, _, height, width] = sample else { return Ok(()) };
        let fits = match residual {
            &[r, _, h, w] => r == rows && latent_halvings(height, width).any(|sides| sides == (h, w)),
            _ => false,
        };
        if fits {
            return Ok(());
        }
        let sides: Vec<String> = latent_halvings(height, width).map(|(h, w)| format!("{h}x{w}")).collect();
        Err(EngineError::IncompatibleComponents {
            folder: self.root.clone(),
            detail: format!(
                "ControlNet {} returned {name} {residual:?} for latents {sample:?}; a residual is [{rows}, channels, \
                 height, width] at the latents' size or a halving of it ({})",
                self.name,
                sides.join(", ")
            ),
        })
    }

    /// Shares the device with `model`'s parts (turns in low-VRAM mode); see [`LoadedModel::share_device`].
    pub(crate) fn share_device_with(&mut self, model: &LoadedModel) -> Result<()> {
        model.share_device(&mut self.session)
    }

    /// Whether its session is on the device now (not while another part has its turn in low-VRAM mode).
    pub fn is_loaded(&self) -> bool {
        self.session.is_loaded()
    }

    /// The free dimensions fixed in its session now (empty unless the runtime fixes dimensions).
    pub fn fixed_dimensions(&self) -> Vec<(String, i64)> {
        self.session.fixed_dimensions()
    }

    /// Refuses a ControlNet made for another base model family than a UNet taking `unet_width`-wide embeddings.
    pub fn check_family(&self, unet_width: Option<usize>, model_name: &str) -> Result<()> {
        if let (Some(ours), Some(unet)) = (self.context_width(), unet_width)
            && ours != unet
        {
            return Err(EngineError::IncompatibleComponents {
                folder: self.root.clone(),
                detail: format!(
                    "ControlNet {} is for {} models (encoder_hidden_states {ours} wide), but model {model_name} is {} \
                     (its UNet takes encoder_hidden_states {unet} wide)",
                    self.name,
                    family_name(ours),
                    family_name(unet)
                ),
            });
        }
        Ok(())
    }
}

/// The sides of latents `height` x `width` and of each halving by a UNet downsampling (a 3x3 convolution of stride
/// 2 and padding 1 gives `ceil(side / 2)`), until both are 1; a side of 1 stays 1 (a long, narrow picture).
fn latent_halvings(height: usize, width: usize) -> impl Iterator<Item = (usize, usize)> {
    std::iter::successors(Some((height, width)), |&(h, w)| (h > 1 || w > 1).then(|| (h.div_ceil(2), w.div_ceil(2))))
}

fn family_name(context_width: usize) -> &'static str {
    match ModelFamily::from_context_width(context_width) {
        ModelFamily::Sd1 => "SD 1.x",
        ModelFamily::Sd2 => "SD 2.x",
        ModelFamily::Sdxl => "SDXL",
    }
}

/// A ControlNet or T2I-Adapter folder recognised from its files alone (no session is made), for model lists:
/// `model.onnx` beside a diffusers `config.json` whose `_class_name` is `ControlNetModel` or `T2IAdapter`.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlModelFolder {
    pub kind: ResidualKind,
    pub name: String,
    pub root: PathBuf,
    /// The text-embedding width a ControlNet was trained with (`cross_attention_dim`).
    pub context_width: Option<usize>,
    /// The base model family it is for: "SD 1.x", "SD 2.x", "SDXL", or "SD 1.x/2.x" for a non-XL adapter.
    pub family: Option<&'static str>,
}

impl ControlModelFolder {
    /// `None` when `folder` is not a ControlNet or adapter folder (a base model, an unrelated folder, a config
    /// that cannot be read).
    pub fn detect(folder: &Path) -> Option<ControlModelFolder> {
        if !folder.join("model.onnx").is_file() {
            return None;
        }
        let text = std::fs::read_to_string(folder.join("config.json")).ok()?;
        let config: serde_json::Value = serde_json::from_str(&text).ok()?;
        let (kind, context_width, family) = match config["_class_name"].as_str()? {
            "ControlNetModel" => {
                let width = config["cross_attention_dim"].as_u64().map(|w| w as usize);
                (ResidualKind::ControlNet, width, width.map(family_name))
            }
            "T2IAdapter" => {
                let xl = config["adapter_type"].as_str().is_some_and(|t| t.ends_with("_xl"));
                (ResidualKind::Adapter, None, Some(if xl { "SDXL" } else { "SD 1.x/2.x" }))
            }
            _ => return None,
        };
        Some(ControlModelFolder { kind, name: folder_name(folder), root: folder.to_path_buf(), context_width, family })
    }
}

/// A T2I-Adapter: features for the UNet's down blocks from a control image.
pub struct AdapterModel {
    name: String,
    root: PathBuf,
    session: ComponentSession,
    image: TensorSpec,
    features: Vec<String>,
}

impl std::fmt::Debug for AdapterModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterModel").field("root", &self.root).field("features", &self.features).finish()
    }
}

impl AdapterModel {
    pub fn open(runtime: &Runtime, folder: &Path) -> Result<AdapterModel> {
        const COMPONENT: &str = "adapter";
        let session = open_session(runtime, folder, COMPONENT)?;
        let image = find_input(&session.inputs, COMPONENT, "image")?.clone();
        let features = numbered(session.outputs.iter().map(|o| o.name.clone()), "adapter_feature_", "");
        if features.is_empty() {
            return Err(EngineError::UnsupportedModelIo {
                component: COMPONENT,
                name: "adapter_feature_0".into(),
                detail: "a T2I-Adapter gives adapter_feature_{i} outputs; this model gives none".into(),
            });
        }
        Ok(AdapterModel { name: folder_name(folder), root: folder.to_path_buf(), session, image, features })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn feature_count(&self) -> usize {
        self.features.len()
    }

    /// The features for `image` `[1, 3, height, width]` in [0, 1]: each `[1, channels, h, w]`.
    pub fn features(&mut self, image: ArrayViewD<'_, f32>) -> Result<Vec<ArrayD<f32>>> {
        let value = io::float_input("adapter", &self.image, image)?;
        let features = self.session.run_in_loop(vec![(self.image.name.clone(), value)], &[], &self.features)?;
        for (name, feature) in self.features.iter().zip(&features) {
            // One row for one image: the pipeline repeats it for the UNet's rows.
            if feature.ndim() != 4 || feature.shape()[0] != 1 {
                return Err(EngineError::IncompatibleComponents {
                    folder: self.root.clone(),
                    detail: format!(
                        "adapter {} returned {name} {:?} for one control image; a feature is [1, channels, height, \
                         width]",
                        self.name,
                        feature.shape()
                    ),
                });
            }
        }
        Ok(features)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Shares the device with `model`'s parts (turns in low-VRAM mode); see [`LoadedModel::share_device`].
    pub(crate) fn share_device_with(&mut self, model: &LoadedModel) -> Result<()> {
        model.share_device(&mut self.session)
    }
}

/// Which residuals a [`ResidualUnet`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidualKind {
    ControlNet,
    Adapter,
}

impl ResidualKind {
    pub fn folder_name(self) -> &'static str {
        match self {
            ResidualKind::ControlNet => "unet_controlnet",
            ResidualKind::Adapter => "unet_adapter",
        }
    }

    fn inputs_described(self) -> &'static str {
        match self {
            ResidualKind::ControlNet => {
                "down_block_{i}_additional_residual and mid_block_additional_residual (what a ControlNet gives)"
            }
            ResidualKind::Adapter => "down_intrablock_additional_residual_{i} (what a T2I-Adapter gives)",
        }
    }

    fn what(self) -> &'static str {
        match self {
            ResidualKind::ControlNet => "ControlNets",
            ResidualKind::Adapter => "T2I-Adapters",
        }
    }
}

/// The base model's UNet exported with extra residual inputs (`unet_controlnet/` or `unet_adapter/`).
pub struct ResidualUnet {
    kind: ResidualKind,
    session: ComponentSession,
    sample: TensorSpec,
    timestep: TensorSpec,
    encoder_hidden_states: TensorSpec,
    residuals: Vec<TensorSpec>,
    output: String,
}

impl std::fmt::Debug for ResidualUnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidualUnet").field("kind", &self.kind).field("residuals", &self.residual_names()).finish()
    }
}

impl ResidualUnet {
    /// `model_root/unet_controlnet` or `model_root/unet_adapter`; a missing export or one without the residual
    /// inputs is refused with what it should be.
    pub fn open(runtime: &Runtime, model_root: &Path, kind: ResidualKind) -> Result<ResidualUnet> {
        const COMPONENT: &str = "unet";
        let folder = model_root.join(kind.folder_name());
        let needed = |found: String| EngineError::IncompatibleComponents {
            folder: model_root.to_path_buf(),
            detail: format!(
                "{} need the model's UNet exported with the residuals as extra inputs, {}, in {}/model.onnx; {found}",
                kind.what(),
                kind.inputs_described(),
                kind.folder_name()
            ),
        };
        if !folder.join("model.onnx").is_file() {
            return Err(needed(format!("{} does not exist", folder.join("model.onnx").display())));
        }
        let session = open_session(runtime, &folder, kind.folder_name())?;
        let inputs = &session.inputs;
        let names = || inputs.iter().map(|s| s.name.clone());
        let mut residual_names = match kind {
            ResidualKind::ControlNet => numbered(names(), "down_block_", "_additional_residual"),
            ResidualKind::Adapter => numbered(names(), "down_intrablock_additional_residual_", ""),
        };
        if kind == ResidualKind::ControlNet && inputs.iter().any(|s| s.name == MID_RESIDUAL) {
            residual_names.push(MID_RESIDUAL.into());
        } else if kind == ResidualKind::ControlNet {
            residual_names.clear();
        }
        if residual_names.is_empty() {
            return Err(needed(format!(
                "its inputs are {}",
                inputs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let residuals = residual_names
            .iter()
            .map(|name| find_input(inputs, COMPONENT, name).cloned())
            .collect::<Result<Vec<_>>>()?;
        let sample = find_input(inputs, COMPONENT, "sample")?.clone();
        let timestep = find_input(inputs, COMPONENT, "timestep")?.clone();
        io::timestep_input(&timestep, 0.0, 1)?;
        let encoder_hidden_states = find_input(inputs, COMPONENT, "encoder_hidden_states")?.clone();
        let output =
            session.outputs.first().map(|o| o.name.clone()).ok_or_else(|| needed("it has no outputs".into()))?;
        Ok(ResidualUnet { kind, session, sample, timestep, encoder_hidden_states, residuals, output })
    }

    pub fn kind(&self) -> ResidualKind {
        self.kind
    }

    pub fn residual_names(&self) -> Vec<&str> {
        self.residuals.iter().map(|s| s.name.as_str()).collect()
    }

    /// The noise prediction with `residuals` (in the order of [`ResidualUnet::residual_names`]) added.
    pub fn predict(
        &mut self,
        sample: &ArrayD<f32>,
        timestep: f64,
        context: &Array3<f32>,
        residuals: &[ArrayD<f32>],
    ) -> Result<ArrayD<f32>> {
        const COMPONENT: &str = "unet";
        if residuals.len() != self.residuals.len() {
            return Err(EngineError::inference(
                COMPONENT,
                format!("{} residuals given, the UNet takes {}", residuals.len(), self.residuals.len()),
            ));
        }
        let batch = sample.shape()[0];
        let mut inputs = vec![
            (self.sample.name.clone(), io::float_input(COMPONENT, &self.sample, sample.view())?),
            (self.timestep.name.clone(), io::timestep_input(&self.timestep, timestep, batch)?),
        ];
        for (spec, value) in self.residuals.iter().zip(residuals) {
            inputs.push((spec.name.clone(), io::float_input(COMPONENT, spec, value.view())?));
        }
        let context = KeptInput { spec: &self.encoder_hidden_states, values: context.view().into_dyn() };
        Ok(self.session.run_in_loop(inputs, &[context], std::slice::from_ref(&self.output))?.remove(0))
    }

    /// Shares the device with `model`'s parts (turns in low-VRAM mode); see [`LoadedModel::share_device`].
    pub(crate) fn share_device_with(&mut self, model: &LoadedModel) -> Result<()> {
        model.share_device(&mut self.session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_sides_are_the_latents_halved_until_both_are_one() {
        let sides: Vec<_> = latent_halvings(8, 8).collect();
        assert_eq!(sides, [(8, 8), (4, 4), (2, 2), (1, 1)]);
        // 64x2048 pixels: the short side reaches 1 first and stays there while the long one halves on.
        let sides: Vec<_> = latent_halvings(8, 256).collect();
        assert_eq!(sides[..4], [(8, 256), (4, 128), (2, 64), (1, 32)]);
        assert_eq!(sides.last(), Some(&(1, 1)));
        // Odd sides round up, as the downsampling convolution does (a 65-row latent gives 33, 17, 9, ...).
        assert_eq!(latent_halvings(65, 9).nth(1), Some((33, 5)));
    }

    fn fixture(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(path)
    }

    #[test]
    fn control_folders_are_recognised_from_their_config() {
        let canny = ControlModelFolder::detect(&fixture("controlnet/tiny-canny")).unwrap();
        assert_eq!(
            (canny.kind, canny.name.as_str(), canny.context_width),
            (ResidualKind::ControlNet, "tiny-canny", Some(32))
        );
        assert_eq!(canny.family, Some("SD 1.x"));
        let adapter = ControlModelFolder::detect(&fixture("adapter/tiny-adapter")).unwrap();
        assert_eq!((adapter.kind, adapter.family), (ResidualKind::Adapter, Some("SD 1.x/2.x")));
        assert_eq!(ControlModelFolder::detect(&fixture("models/tiny-sd-control")), None, "a base model");
        assert_eq!(ControlModelFolder::detect(&fixture("controlnet/none")), None);
    }
}
