//! Control units as a front end describes them (the CLI's `--control`/`--adapter` flags, the app's control panel):
//! model folders and prepared control images, checked before any model loads, then turned into a
//! [`ControlRequest`] by [`ControlModels`], which keeps the sessions it opened for the next request. Pictures
//! whose preprocessor needs an annotator model (depth, openpose) wait for [`ControlSpec::annotate`], which front
//! ends run once the runtime is loaded (the model may take a while).

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::control::{
    AdapterUnit, ControlNetUnit, ControlRequest, Shared, check_adapter_values, check_controlnet_values, check_one_kind,
};
use crate::error::{EngineError, Result};
use crate::image::control::depth::depth_control;
use crate::image::control::openpose::openpose_control;
use crate::image::control::{ControlImage, Preprocessing};
use crate::model::{
    AdapterModel, AnnotatorKind, CancelSignal, ControlNetModel, DepthModel, LoadedModel, PoseModel, ResidualKind,
    ResidualUnet,
};
use crate::progress::{Flow, Progress};
use crate::runtime::Runtime;

/// One ControlNet or T2I-Adapter unit before its model is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlUnitSpec {
    pub kind: ResidualKind,
    /// The ControlNet or adapter folder.
    pub model: PathBuf,
    pub image: ControlImage,
    pub preprocessing: Preprocessing,
    pub weight: f32,
    /// Fractions of the steps (ControlNets only; adapters use [`ControlSpec::adapter_factor`]).
    pub start: f64,
    pub end: f64,
    /// The annotator `image` (the picture) still has to go through; `None` once done.
    pub annotation: Option<PendingAnnotation>,
}

/// An annotator model a unit's picture waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAnnotation {
    pub kind: AnnotatorKind,
    /// The annotator's folder (`AnnotatorKind::find`).
    pub folder: PathBuf,
    /// The generation size, which the picture is resized to first.
    pub width: u32,
    pub height: u32,
}

/// An open annotator model: the depth or the openpose preprocessor.
pub enum Annotator {
    Depth(DepthModel),
    Pose(PoseModel),
}

impl Annotator {
    pub fn open(runtime: &Runtime, kind: AnnotatorKind, folder: &Path) -> Result<Annotator> {
        Ok(match kind {
            AnnotatorKind::Depth => Annotator::Depth(DepthModel::open(runtime, folder)?),
            AnnotatorKind::Openpose => Annotator::Pose(PoseModel::open(runtime, folder)?),
        })
    }

    pub fn kind(&self) -> AnnotatorKind {
        match self {
            Annotator::Depth(_) => AnnotatorKind::Depth,
            Annotator::Pose(_) => AnnotatorKind::Openpose,
        }
    }

    pub fn folder(&self) -> &Path {
        match self {
            Annotator::Depth(model) => model.folder(),
            Annotator::Pose(model) => model.folder(),
        }
    }

    /// From now on the annotator shares the device with `model`'s parts: in low- and medium-VRAM modes it takes
    /// turns with the text encoder and the VAE, so it is never on the device beside them.
    pub fn share_device_with(&mut self, model: &LoadedModel) -> Result<()> {
        match self {
            Annotator::Depth(annotator) => annotator.share_device_with(model),
            Annotator::Pose(annotator) => annotator.share_device_with(model),
        }
    }

    /// From now on its model run stops while it runs once `signal` is set (the progress callback of
    /// [`Annotator::apply`] is asked only before and after it).
    pub fn watch_cancel(&mut self, signal: Option<&CancelSignal>) -> Result<()> {
        match self {
            Annotator::Depth(annotator) => annotator.watch_cancel(signal),
            Annotator::Pose(annotator) => annotator.watch_cancel(signal),
        }
    }

    /// The control image of `picture` at `width` x `height` and how it was made; `progress` sees the model run
    /// (stage `Preprocessing`) and may cancel it.
    pub fn apply(
        &mut self,
        picture: &RgbImage,
        width: u32,
        height: u32,
        progress: &mut dyn FnMut(&Progress) -> Flow,
    ) -> Result<(ControlImage, Preprocessing)> {
        match self {
            Annotator::Depth(model) => depth_control(model, picture, width, height, progress),
            Annotator::Pose(model) => openpose_control(model, picture, width, height, progress),
        }
    }
}

impl ControlUnitSpec {
    /// The unit's values, as the engine checks them when it runs ([`ControlRequest::validate`]).
    pub fn validate(&self) -> Result<()> {
        match self.kind {
            ResidualKind::ControlNet => check_controlnet_values(self.weight, self.start, self.end),
            ResidualKind::Adapter => check_adapter_values(self.weight, 1.0),
        }
    }
}

/// The control part of a generation before its models are loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSpec {
    pub units: Vec<ControlUnitSpec>,
    /// ControlNets see only the prompt, shallow residuals weaker (A1111's "ControlNet is more important").
    pub guess_mode: bool,
    /// The fraction of the steps, from the first, that get the adapters' features.
    pub adapter_factor: f64,
}

impl Default for ControlSpec {
    fn default() -> Self {
        ControlSpec { units: Vec::new(), guess_mode: false, adapter_factor: 1.0 }
    }
}

impl ControlSpec {
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Every unit's values, the adapter factor, and one kind of unit only (the two need different UNet exports).
    pub fn validate(&self) -> Result<()> {
        check_adapter_values(1.0, self.adapter_factor)?;
        for unit in &self.units {
            unit.validate()?;
        }
        let adapters = self.units.iter().filter(|u| u.kind == ResidualKind::Adapter).count();
        check_one_kind(self.units.len() - adapters, adapters)
    }

    /// Whether a unit's picture still waits for its annotator.
    pub fn needs_annotation(&self) -> bool {
        self.units.iter().any(|u| u.annotation.is_some())
    }

    /// Runs each waiting unit's annotator on its picture at the generation size, opening each model once;
    /// `progress` sees every run (stage `Preprocessing`) and may cancel between them, `cancel` stops a run while it
    /// runs. With a model `loaded` on the device the annotators share it with the model's parts
    /// ([`Annotator::share_device_with`]).
    pub fn annotate(
        &mut self,
        runtime: &Runtime,
        loaded: Option<&LoadedModel>,
        cancel: Option<&CancelSignal>,
        progress: &mut dyn FnMut(&Progress) -> Flow,
    ) -> Result<()> {
        let mut open: Vec<Annotator> = Vec::new();
        for unit in &mut self.units {
            let Some(pending) = &unit.annotation else { continue };
            let index = match open.iter().position(|a| a.kind() == pending.kind && a.folder() == pending.folder) {
                Some(index) => index,
                None => {
                    let mut annotator = Annotator::open(runtime, pending.kind, &pending.folder)?;
                    if let Some(model) = loaded {
                        annotator.share_device_with(model)?;
                    }
                    annotator.watch_cancel(cancel)?;
                    open.push(annotator);
                    open.len() - 1
                }
            };
            let (width, height) = (pending.width, pending.height);
            (unit.image, unit.preprocessing) = open[index].apply(&unit.image.image, width, height, progress)?;
            unit.annotation = None;
        }
        Ok(())
    }
}

/// ControlNets, adapters and the base model's UNet with residual inputs, opened once and shared by the requests
/// that name them again; those a request no longer names are closed.
#[derive(Default)]
pub struct ControlModels {
    controlnets: Vec<(PathBuf, Shared<ControlNetModel>)>,
    adapters: Vec<(PathBuf, Shared<AdapterModel>)>,
    unet: Option<(PathBuf, ResidualKind, Shared<ResidualUnet>)>,
}

impl ControlModels {
    /// The request for `spec` on the base model in `model_folder`: the models it names (opened now unless open
    /// already) and the base model's `unet_controlnet/` or `unet_adapter/`. An empty spec gives an empty request.
    pub(crate) fn request(
        &mut self,
        runtime: &Runtime,
        model_folder: &Path,
        spec: &ControlSpec,
    ) -> Result<ControlRequest> {
        spec.validate()?;
        if let Some(pending) = spec.units.iter().find_map(|u| u.annotation.as_ref()) {
            return Err(EngineError::InvalidParameter {
                name: "preprocessor",
                value: pending.kind.to_string(),
                reason: "the control picture has not been through its annotator yet (ControlSpec::annotate)".into(),
            });
        }
        let named = |kind: ResidualKind| spec.units.iter().filter(move |u| u.kind == kind);
        self.controlnets.retain(|(path, _)| named(ResidualKind::ControlNet).any(|u| &u.model == path));
        self.adapters.retain(|(path, _)| named(ResidualKind::Adapter).any(|u| &u.model == path));
        let Some(kind) = spec.units.first().map(|u| u.kind) else {
            self.unet = None;
            return Ok(ControlRequest::default());
        };
        let unet = match &self.unet {
            Some((folder, open_kind, unet)) if folder == model_folder && *open_kind == kind => unet.clone(),
            _ => {
                // The old export goes first: two UNets may not fit in memory together.
                self.unet = None;
                let unet = Shared::new(ResidualUnet::open(runtime, model_folder, kind)?);
                self.unet = Some((model_folder.to_path_buf(), kind, unet.clone()));
                unet
            }
        };
        let mut request = ControlRequest { guess_mode: spec.guess_mode, unet: Some(unet), ..ControlRequest::default() };
        for unit in &spec.units {
            match unit.kind {
                ResidualKind::ControlNet => {
                    let model = open_shared(&mut self.controlnets, &unit.model, |p| ControlNetModel::open(runtime, p))?;
                    request.controlnets.push(ControlNetUnit {
                        model,
                        image: unit.image.clone(),
                        weight: unit.weight,
                        start: unit.start,
                        end: unit.end,
                        preprocessing: unit.preprocessing.clone(),
                    });
                }
                ResidualKind::Adapter => {
                    let model = open_shared(&mut self.adapters, &unit.model, |p| AdapterModel::open(runtime, p))?;
                    request.adapters.push(AdapterUnit {
                        model,
                        image: unit.image.clone(),
                        weight: unit.weight,
                        conditioning_factor: spec.adapter_factor,
                        preprocessing: unit.preprocessing.clone(),
                    });
                }
            }
        }
        Ok(request)
    }

    /// A look at the ControlNet of `folder` kept open (whether its session is on the device, the dimensions it
    /// fixed); `None` when none is open for that folder.
    pub fn inspect_controlnet<T>(&self, folder: &Path, look: impl FnOnce(&ControlNetModel) -> T) -> Option<T> {
        let (_, model) = self.controlnets.iter().find(|(path, _)| path == folder)?;
        model.lock().ok().map(|model| look(&model))
    }
}

/// The model open for `path` in `open`, else `open_model(path)` added to it.
fn open_shared<T>(
    open: &mut Vec<(PathBuf, Shared<T>)>,
    path: &Path,
    open_model: impl FnOnce(&Path) -> Result<T>,
) -> Result<Shared<T>> {
    if let Some((_, model)) = open.iter().find(|(p, _)| p == path) {
        return Ok(model.clone());
    }
    let model = Shared::new(open_model(path)?);
    open.push((path.to_path_buf(), model.clone()));
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(kind: ResidualKind) -> ControlUnitSpec {
        ControlUnitSpec {
            kind,
            model: "m".into(),
            image: ControlImage::new(image::RgbImage::new(8, 8)),
            preprocessing: Preprocessing::default(),
            weight: 1.0,
            start: 0.0,
            end: 1.0,
            annotation: None,
        }
    }

    #[test]
    fn bad_values_and_mixed_kinds_are_refused_by_name() {
        let spec = ControlSpec {
            units: vec![ControlUnitSpec { weight: 11.0, ..unit(ResidualKind::ControlNet) }],
            ..ControlSpec::default()
        };
        assert!(spec.validate().unwrap_err().to_string().contains("control weight: 11"));
        let spec = ControlSpec { units: vec![unit(ResidualKind::ControlNet)], adapter_factor: 1.5, guess_mode: false };
        assert!(spec.validate().unwrap_err().to_string().contains("adapter conditioning factor: 1.5"));
        let spec = ControlSpec {
            units: vec![unit(ResidualKind::ControlNet), unit(ResidualKind::Adapter)],
            ..ControlSpec::default()
        };
        assert!(spec.validate().unwrap_err().to_string().contains("1 adapters with 1 ControlNets"));
        let spec = ControlSpec { units: vec![unit(ResidualKind::Adapter)], ..ControlSpec::default() };
        spec.validate().unwrap();
    }
}
