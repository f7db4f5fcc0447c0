//! ControlNet and T2I-Adapter models, and the base model's UNet that takes their residuals (DESIGN.md, "Model
//! folders"). A ControlNet folder holds `model.onnx` (inputs `sample`, `timestep`, `encoder_hidden_states`,
//! `controlnet_cond`, optionally `conditioning_scale`; outputs `down_block_{i}_additional_residual` and
//! `mid_block_additional_residual`); an adapter folder `model.onnx` (input `image`, outputs `adapter_feature_{i}`);
//! the base model carries `unet_controlnet/` and `unet_adapter/`: its UNet with those residuals as extra inputs.
//! Names, ranks and dtypes are read from the sessions.

use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayD, ArrayViewD, IxDyn};
use ort::session::Session;

use super::io::{self, TensorSpec};
use crate::error::{EngineError, Result};
use crate::runtime::{ModelFamily, Runtime};

const MID_RESIDUAL: &str = "mid_block_additional_residual";

/// A session made straight from `model.onnx` in `folder` (these models are small next to the UNet: no graph cache).
fn open_session(runtime: &Runtime, folder: &Path, component: &'static str) -> Result<(Session, PathBuf)> {
    if !folder.is_dir() {
        return Err(EngineError::ModelFolderNotFound { path: folder.to_path_buf() });
    }
    let model = folder.join("model.onnx");
    if !model.is_file() {
        return Err(EngineError::MissingComponent { folder: folder.to_path_buf(), component, expected: model });
    }
    let session = runtime
        .session_builder()?
        .commit_from_file(&model)
        .map_err(|e| EngineError::InvalidModelFile { path: model.clone(), reason: e.to_string() })?;
    Ok((session, model))
}

fn folder_name(folder: &Path) -> String {
    std::fs::canonicalize(folder)
        .ok()
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| folder.display().to_string())
}

fn find<'s>(specs: &'s [TensorSpec], component: &'static str, name: &str) -> Result<&'s TensorSpec> {
    specs.iter().find(|spec| spec.name == name).ok_or_else(|| EngineError::UnsupportedModelIo {
        component,
        name: name.to_string(),
        detail: format!(
            "the model has no such input (its inputs: {})",
            specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    })
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

fn run_outputs(
    session: &mut Session,
    component: &'static str,
    inputs: Vec<(String, ort::value::DynValue)>,
    names: &[String],
) -> Result<Vec<ArrayD<f32>>> {
    let outputs = session.run(inputs).map_err(|e| EngineError::inference(component, e))?;
    names
        .iter()
        .map(|name| {
            let value = outputs
                .get(name.as_str())
                .ok_or_else(|| EngineError::inference(component, format!("the model returned no output {name}")))?;
            io::float_output(component, value, name)
        })
        .collect()
}

/// A float scalar input (rank 0, or rank 1 of size 1) in the input's float type.
fn scalar_input(component: &'static str, spec: &TensorSpec, value: f32) -> Result<ort::value::DynValue> {
    let shape: Vec<usize> = vec![1; spec.rank().min(1)];
    let array = ArrayD::from_shape_vec(IxDyn(&shape), vec![value]).expect("one value");
    io::float_input(component, spec, array.view())
}

/// A ControlNet: the residuals it adds to the UNet for a control image.
pub struct ControlNetModel {
    name: String,
    root: PathBuf,
    session: Session,
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
        let (session, _) = open_session(runtime, folder, COMPONENT)?;
        let inputs: Vec<TensorSpec> = session.inputs().iter().map(TensorSpec::from_outlet).collect();
        let outputs: Vec<TensorSpec> = session.outputs().iter().map(TensorSpec::from_outlet).collect();
        let sample = find(&inputs, COMPONENT, "sample")?.clone();
        let timestep = find(&inputs, COMPONENT, "timestep")?.clone();
        io::timestep_input(&timestep, 0.0, 1)?;
        let encoder_hidden_states = find(&inputs, COMPONENT, "encoder_hidden_states")?.clone();
        let controlnet_cond = find(&inputs, COMPONENT, "controlnet_cond")?.clone();
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
        let batch = sample.shape()[0];
        let mut inputs = vec![
            (self.sample.name.clone(), io::float_input(COMPONENT, &self.sample, sample)?),
            (self.timestep.name.clone(), io::timestep_input(&self.timestep, timestep, batch)?),
            (
                self.encoder_hidden_states.name.clone(),
                io::float_input(COMPONENT, &self.encoder_hidden_states, context.view().into_dyn())?,
            ),
            (self.controlnet_cond.name.clone(), io::float_input(COMPONENT, &self.controlnet_cond, cond)?),
        ];
        if let Some(spec) = &self.conditioning_scale {
            inputs.push((spec.name.clone(), scalar_input(COMPONENT, spec, 1.0)?));
        }
        run_outputs(&mut self.session, COMPONENT, inputs, &self.residuals)
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

fn family_name(context_width: usize) -> &'static str {
    match ModelFamily::from_context_width(context_width) {
        ModelFamily::Sd1 => "SD 1.x",
        ModelFamily::Sd2 => "SD 2.x",
        ModelFamily::Sdxl => "SDXL",
    }
}

/// A T2I-Adapter: features for the UNet's down blocks from a control image.
pub struct AdapterModel {
    name: String,
    root: PathBuf,
    session: Session,
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
        let (session, _) = open_session(runtime, folder, COMPONENT)?;
        let inputs: Vec<TensorSpec> = session.inputs().iter().map(TensorSpec::from_outlet).collect();
        let image = find(&inputs, COMPONENT, "image")?.clone();
        let features = numbered(session.outputs().iter().map(|o| o.name().to_string()), "adapter_feature_", "");
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

    /// The features for `image` `[1, 3, height, width]` in [0, 1].
    pub fn features(&mut self, image: ArrayViewD<'_, f32>) -> Result<Vec<ArrayD<f32>>> {
        let value = io::float_input("adapter", &self.image, image)?;
        run_outputs(&mut self.session, "adapter", vec![(self.image.name.clone(), value)], &self.features)
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
    session: Session,
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
        let (session, _) = open_session(runtime, &folder, kind.folder_name())?;
        let inputs: Vec<TensorSpec> = session.inputs().iter().map(TensorSpec::from_outlet).collect();
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
        let residuals =
            residual_names.iter().map(|name| find(&inputs, COMPONENT, name).cloned()).collect::<Result<Vec<_>>>()?;
        let sample = find(&inputs, COMPONENT, "sample")?.clone();
        let timestep = find(&inputs, COMPONENT, "timestep")?.clone();
        io::timestep_input(&timestep, 0.0, 1)?;
        let encoder_hidden_states = find(&inputs, COMPONENT, "encoder_hidden_states")?.clone();
        let output = session
            .outputs()
            .first()
            .map(|o| o.name().to_string())
            .ok_or_else(|| needed("it has no outputs".into()))?;
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
            (
                self.encoder_hidden_states.name.clone(),
                io::float_input(COMPONENT, &self.encoder_hidden_states, context.view().into_dyn())?,
            ),
        ];
        for (spec, value) in self.residuals.iter().zip(residuals) {
            inputs.push((spec.name.clone(), io::float_input(COMPONENT, spec, value.view())?));
        }
        let output = [self.output.clone()];
        Ok(run_outputs(&mut self.session, COMPONENT, inputs, &output)?.remove(0))
    }
}
