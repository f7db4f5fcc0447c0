//! ControlNet and T2I-Adapter guidance inside the shared denoising loop, step for step as diffusers'
//! `StableDiffusionControlNetPipeline` and `StableDiffusionAdapterPipeline`:
//!
//! - every ControlNet sees the UNet's input (latent channels only) with the same text conditioning; unit `k` is
//!   active at evaluation `i` of `n` unless `i / n < start` or `(i + 1) / n > end` (`controlnet_keep`); its
//!   residuals are scaled by its weight and summed over the units (`MultiControlNetModel`) and go to the UNet
//!   exported with residual inputs (`unet_controlnet/`). A step where no unit is active runs the plain UNet, which
//!   is what zero residuals give.
//! - guess mode (with classifier-free guidance): the ControlNets see only the conditional rows, their residuals are
//!   scaled by `logspace(-1, 0, k + 1)` (shallow blocks weaker) and the unconditional rows get zeros.
//! - adapters: the features of each adapter's image, times its weight, summed, go to `unet_adapter/` as
//!   `down_intrablock_additional_residual_{i}` for the evaluations `i < int(steps * conditioning_factor)`
//!   (`adapter_conditioning_factor` of diffusers' SDXL adapter pipeline).

use std::sync::{Arc, Mutex, MutexGuard};

use ndarray::{Array3, Array4, ArrayD, Axis, Slice, concatenate};

use super::GenerateRequest;
use super::vae::LATENT_CHANNELS;
use crate::error::{EngineError, Result};
use crate::image::control::{ControlImage, Preprocessing};
use crate::model::{AdapterModel, ControlNetModel, LoadedModel, ResidualKind, ResidualUnet, UnetSession};

/// Largest weight a unit accepts (A1111's slider goes to 2; larger values are still meaningful for weak models).
pub const MAX_CONTROL_WEIGHT: f32 = 10.0;

/// A loaded model that requests share: cloning shares the session; two handles are equal when they are the same
/// model.
pub struct Shared<T>(Arc<Mutex<T>>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        Shared(Arc::new(Mutex::new(value)))
    }

    /// The model, locked for as long as the guard lives (a generation that uses it waits).
    pub fn lock(&self) -> Result<MutexGuard<'_, T>> {
        self.0.lock().map_err(|_| EngineError::inference("control", "a model session was poisoned by a panic"))
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.try_lock() {
            Ok(value) => value.fmt(f),
            Err(_) => f.write_str("Shared(<in use>)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlNetUnit {
    pub model: Shared<ControlNetModel>,
    pub image: ControlImage,
    /// diffusers' `controlnet_conditioning_scale`.
    pub weight: f32,
    /// Fractions of the steps: active from `start` to `end` (diffusers' `control_guidance_start/end`).
    pub start: f64,
    pub end: f64,
    pub preprocessing: Preprocessing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdapterUnit {
    pub model: Shared<AdapterModel>,
    pub image: ControlImage,
    /// diffusers' `adapter_conditioning_scale`.
    pub weight: f32,
    /// The fraction of the steps that get the features, from the first (`adapter_conditioning_factor`).
    pub conditioning_factor: f64,
    pub preprocessing: Preprocessing,
}

/// The control part of a request: empty by default (plain generation).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ControlRequest {
    pub controlnets: Vec<ControlNetUnit>,
    pub adapters: Vec<AdapterUnit>,
    /// ControlNets see only the prompt, not the negative prompt, and shallow residuals are weaker (A1111's "ControlNet
    /// is more important"); only with CFG above 1, as in diffusers.
    pub guess_mode: bool,
    /// The base model's UNet with residual inputs: `unet_controlnet/` for ControlNets, `unet_adapter/` for
    /// adapters ([`ResidualUnet::open`]).
    pub unet: Option<Shared<ResidualUnet>>,
}

impl ControlRequest {
    pub fn is_empty(&self) -> bool {
        self.controlnets.is_empty() && self.adapters.is_empty()
    }

    /// The request with every control image cut to the region (`x`, `y`, `w`, `h`) of a `picture`-sized picture and
    /// brought to `width` x `height` ([`ControlImage::region`]): inpainting's "only masked" works on that region.
    pub(crate) fn for_region(
        &self,
        picture: (u32, u32),
        region: (u32, u32, u32, u32),
        width: u32,
        height: u32,
    ) -> Self {
        self.with_images(|image| image.region(picture, region, width, height))
    }

    /// The request with every control image stretched to `width` x `height` (the hires fix's second pass).
    pub(crate) fn resized(&self, width: u32, height: u32) -> Self {
        self.with_images(|image| image.resized(width, height))
    }

    fn with_images(&self, change: impl Fn(&ControlImage) -> ControlImage) -> Self {
        let mut changed = self.clone();
        for unit in &mut changed.controlnets {
            unit.image = change(&unit.image);
        }
        for unit in &mut changed.adapters {
            unit.image = change(&unit.image);
        }
        changed
    }

    pub fn validate(&self) -> Result<()> {
        check_one_kind(self.controlnets.len(), self.adapters.len())?;
        for unit in &self.controlnets {
            check_controlnet_values(unit.weight, unit.start, unit.end)?;
        }
        for unit in &self.adapters {
            check_adapter_values(unit.weight, unit.conditioning_factor)?;
        }
        Ok(())
    }

    /// `ControlNet 0: "Module: canny, Model: ..., Weight: 1, ..."` as A1111's ControlNet extension writes them
    /// (adapters are units there too, after the ControlNets; their conditioning factor is the guidance end).
    pub(crate) fn infotext_params(&self) -> Vec<(String, String)> {
        let control_mode = if self.guess_mode { "ControlNet is more important" } else { "Balanced" };
        let units = self
            .controlnets
            .iter()
            .map(|u| (model_name(&u.model, ControlNetModel::name), &u.preprocessing, u.weight, u.start, u.end))
            .chain(self.adapters.iter().map(|u| {
                (model_name(&u.model, AdapterModel::name), &u.preprocessing, u.weight, 0.0, u.conditioning_factor)
            }));
        units
            .enumerate()
            .map(|(i, (model, preprocessing, weight, start, end))| {
                let module = if preprocessing.module.is_empty() { "none" } else { &preprocessing.module };
                let mut fields = vec![
                    ("Module".to_string(), module.to_string()),
                    ("Model".into(), model),
                    ("Weight".into(), weight.to_string()),
                    ("Resize Mode".into(), "Just Resize".into()),
                ];
                fields.extend(preprocessing.params.iter().cloned());
                fields.push(("Guidance Start".into(), start.to_string()));
                fields.push(("Guidance End".into(), end.to_string()));
                fields.push(("Pixel Perfect".into(), "False".into()));
                fields.push(("Control Mode".into(), control_mode.into()));
                let text = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ");
                (format!("ControlNet {i}"), text)
            })
            .collect()
    }
}

fn model_name<T>(model: &Shared<T>, name: fn(&T) -> &str) -> String {
    model.lock().map(|m| name(&m).to_string()).unwrap_or_default()
}

/// ControlNets and adapters together are refused: they need different UNet exports.
pub(crate) fn check_one_kind(controlnets: usize, adapters: usize) -> Result<()> {
    if controlnets > 0 && adapters > 0 {
        return Err(EngineError::parameter(
            "adapter",
            format!("{adapters} adapters with {controlnets} ControlNets"),
            "ControlNets and T2I-Adapters need different UNet exports (unet_controlnet/, unet_adapter/): use one kind at a time",
        ));
    }
    Ok(())
}

/// A ControlNet unit's weight (0 to [`MAX_CONTROL_WEIGHT`]) and step fractions (0 <= start < end <= 1).
pub fn check_controlnet_values(weight: f32, start: f64, end: f64) -> Result<()> {
    check_weight("control weight", weight)?;
    for (name, value) in [("control start", start), ("control end", end)] {
        if !(0.0..=1.0).contains(&value) {
            return Err(EngineError::parameter(name, value, "must be a fraction of the steps, 0 to 1"));
        }
    }
    if start >= end {
        return Err(EngineError::parameter("control start", start, format!("must be below the end, {end}")));
    }
    Ok(())
}

/// An adapter unit's weight and conditioning factor (a fraction of the steps).
pub fn check_adapter_values(weight: f32, conditioning_factor: f64) -> Result<()> {
    check_weight("adapter weight", weight)?;
    if !(0.0..=1.0).contains(&conditioning_factor) {
        return Err(EngineError::parameter(
            "adapter conditioning factor",
            conditioning_factor,
            "must be a fraction of the steps, 0 to 1",
        ));
    }
    Ok(())
}

fn check_weight(name: &'static str, weight: f32) -> Result<()> {
    if !weight.is_finite() || !(0.0..=MAX_CONTROL_WEIGHT).contains(&weight) {
        return Err(EngineError::parameter(name, weight, format!("must be between 0 and {MAX_CONTROL_WEIGHT}")));
    }
    Ok(())
}

/// Whatever gives the noise prediction for a batch of UNet inputs: the plain UNet, or the UNet with control.
pub(crate) trait NoisePredictor {
    /// `uncond_rows`: how many leading rows of `sample` are the unconditional (negative prompt) pass.
    fn predict(
        &mut self,
        sample: &ArrayD<f32>,
        timestep: f64,
        context: &Array3<f32>,
        uncond_rows: usize,
    ) -> Result<ArrayD<f32>>;
}

impl NoisePredictor for UnetSession {
    fn predict(&mut self, sample: &ArrayD<f32>, timestep: f64, context: &Array3<f32>, _: usize) -> Result<ArrayD<f32>> {
        UnetSession::predict(self, sample, timestep, context)
    }
}

struct ActiveControlNet {
    model: Shared<ControlNetModel>,
    /// `[1, 3, height, width]`.
    cond: Array4<f32>,
    weight: f32,
    start: f64,
    end: f64,
    latent_channels: usize,
}

/// A request's control, ready for the denoising loop: control images as tensors, adapter features computed.
pub(crate) struct ControlState {
    unet: Shared<ResidualUnet>,
    controlnets: Vec<ActiveControlNet>,
    /// The adapters' weighted features summed, `[1, c, h, w]` each.
    adapter_features: Vec<ArrayD<f32>>,
    adapter_factor: f64,
    guess_mode: bool,
}

impl ControlState {
    /// `None` for a request without control. Checks that the models fit the base model, and warns about control
    /// images of another size than the request's.
    pub(crate) fn prepare(
        request: &GenerateRequest,
        control: &ControlRequest,
        model: &LoadedModel,
        warn: &mut dyn FnMut(&str),
    ) -> Result<Option<ControlState>> {
        if control.is_empty() {
            return Ok(None);
        }
        control.validate()?;
        let kind = if control.controlnets.is_empty() { ResidualKind::Adapter } else { ResidualKind::ControlNet };
        let unet = control.unet.clone().ok_or_else(|| EngineError::IncompatibleComponents {
            folder: model.folder.root.clone(),
            detail: format!(
                "the request has control units but no UNet with residual inputs: load {}/ of the model",
                kind.folder_name()
            ),
        })?;
        let unet_residuals: Vec<String> = {
            let mut unet = unet.lock()?;
            // Units opened apart from the model take turns with its parts in low-VRAM mode.
            unet.share_device_with(model)?;
            if unet.kind() != kind {
                return Err(EngineError::parameter(
                    "control",
                    format!("{:?} UNet", unet.kind()),
                    format!("{kind:?} units need the model's {}/", kind.folder_name()),
                ));
            }
            unet.residual_names().into_iter().map(String::from).collect()
        };
        let (width, height) = (request.width, request.height);
        let mut controlnets = Vec::with_capacity(control.controlnets.len());
        for (i, unit) in control.controlnets.iter().enumerate() {
            let mut net = unit.model.lock()?;
            net.share_device_with(model)?;
            net.check_family(model.unet.context_width(), &model.folder.name)?;
            if net.residual_names() != unet_residuals.as_slice() {
                return Err(EngineError::IncompatibleComponents {
                    folder: net.root().to_path_buf(),
                    detail: format!(
                        "ControlNet {} gives {} residuals but the model's unet_controlnet takes {} ({})",
                        net.name(),
                        net.residual_names().len(),
                        unet_residuals.len(),
                        unet_residuals.join(", ")
                    ),
                });
            }
            controlnets.push(ActiveControlNet {
                model: unit.model.clone(),
                cond: unit.image.tensor(width, height, &format!("ControlNet {i} ({})", net.name()), warn),
                weight: unit.weight,
                start: unit.start,
                end: unit.end,
                latent_channels: net.in_channels().unwrap_or(LATENT_CHANNELS),
            });
        }
        let mut adapter_features: Vec<ArrayD<f32>> = Vec::new();
        for (i, unit) in control.adapters.iter().enumerate() {
            let mut adapter = unit.model.lock()?;
            adapter.share_device_with(model)?;
            if adapter.feature_count() != unet_residuals.len() {
                return Err(EngineError::parameter(
                    "adapter",
                    adapter.name().to_string(),
                    format!(
                        "gives {} features but the model's unet_adapter takes {}",
                        adapter.feature_count(),
                        unet_residuals.len()
                    ),
                ));
            }
            let what = format!("adapter {i} ({})", adapter.name());
            let image = unit.image.tensor(width, height, &what, warn);
            let features = adapter.features(image.view().into_dyn())?;
            // MultiAdapter: sum_k weight_k * features_k.
            for (k, feature) in features.into_iter().enumerate() {
                let weighted = feature.mapv(|v| v * unit.weight);
                match adapter_features.get_mut(k) {
                    Some(sum) if sum.shape() == weighted.shape() => *sum += &weighted,
                    Some(sum) => {
                        return Err(EngineError::IncompatibleComponents {
                            folder: adapter.root().to_path_buf(),
                            detail: format!(
                                "adapter {}'s feature {k} {:?} does not match the other adapters' {:?}",
                                adapter.name(),
                                weighted.shape(),
                                sum.shape()
                            ),
                        });
                    }
                    None => adapter_features.push(weighted),
                }
            }
        }
        let adapter_factor = control.adapters.first().map_or(1.0, |u| u.conditioning_factor);
        Ok(Some(ControlState { unet, controlnets, adapter_features, adapter_factor, guess_mode: control.guess_mode }))
    }

    /// The predictor for evaluation `step` (0-based) of the `steps` this run makes; `sampling_steps` is the number of
    /// sampler steps they stand for (fewer for second-order samplers), which the adapter's factor counts in.
    pub(crate) fn predictor<'a>(
        &'a self,
        unet: &'a mut UnetSession,
        step: usize,
        steps: usize,
        sampling_steps: usize,
    ) -> ControlledUnet<'a> {
        ControlledUnet { state: self, unet, step, steps, sampling_steps }
    }
}

pub(crate) struct ControlledUnet<'a> {
    state: &'a ControlState,
    unet: &'a mut UnetSession,
    step: usize,
    steps: usize,
    sampling_steps: usize,
}

impl ControlledUnet<'_> {
    /// diffusers' `controlnet_keep`.
    fn active(&self, start: f64, end: f64) -> bool {
        let (i, n) = (self.step as f64, self.steps as f64);
        !(i / n < start || (i + 1.0) / n > end)
    }

    fn controlnet_residuals(
        &self,
        sample: &ArrayD<f32>,
        timestep: f64,
        context: &Array3<f32>,
        uncond_rows: usize,
    ) -> Result<Option<Vec<ArrayD<f32>>>> {
        let rows = sample.shape()[0];
        let guess = self.state.guess_mode && uncond_rows > 0;
        let first_row = if guess { uncond_rows } else { 0 };
        let context = context.slice_axis(Axis(0), Slice::from(first_row..)).to_owned();
        let mut sum: Option<Vec<ArrayD<f32>>> = None;
        for net in self.state.controlnets.iter().filter(|net| self.active(net.start, net.end)) {
            let latents = sample
                .slice_axis(Axis(0), Slice::from(first_row..))
                .slice_axis_move(Axis(1), Slice::from(..net.latent_channels));
            let cond_shape = [rows - first_row, 3, net.cond.shape()[2], net.cond.shape()[3]];
            let cond = net
                .cond
                .broadcast(cond_shape)
                .ok_or_else(|| {
                    EngineError::inference(
                        "controlnet",
                        format!("a control image {:?} for {cond_shape:?}", net.cond.shape()),
                    )
                })?
                .into_dyn();
            let residuals = net.model.lock()?.residuals(latents, timestep, &context, cond)?;
            let count = residuals.len();
            let scaled = residuals.into_iter().enumerate().map(|(k, r)| {
                // Guess mode: torch.logspace(-1, 0, count) * conditioning_scale, in float32.
                let depth = if guess { 10f64.powf(-1.0 + k as f64 / (count - 1) as f64) as f32 } else { 1.0 };
                let scale = depth * net.weight;
                r.mapv(|v| v * scale)
            });
            match sum.as_mut() {
                None => sum = Some(scaled.collect()),
                Some(sum) => {
                    for (s, r) in sum.iter_mut().zip(scaled) {
                        // ndarray panics on adding arrays of other shapes: two ControlNets of one family agree, a
                        // mismatched export is an error.
                        if s.shape() != r.shape() {
                            return Err(EngineError::IncompatibleComponents {
                                folder: net.model.lock()?.root().to_path_buf(),
                                detail: format!(
                                    "its residual {:?} does not match the other ControlNets' {:?}",
                                    r.shape(),
                                    s.shape()
                                ),
                            });
                        }
                        *s += &r;
                    }
                }
            }
        }
        let Some(sum) = sum else { return Ok(None) };
        if !guess {
            return Ok(Some(sum));
        }
        // The unconditional rows get zeros.
        Ok(Some(
            sum.into_iter()
                .map(|r| {
                    let mut shape = r.shape().to_vec();
                    shape[0] = uncond_rows;
                    let zeros = ArrayD::zeros(shape);
                    concatenate(Axis(0), &[zeros.view(), r.view()]).map_err(|e| EngineError::inference("controlnet", e))
                })
                .collect::<Result<_>>()?,
        ))
    }
}

impl NoisePredictor for ControlledUnet<'_> {
    fn predict(
        &mut self,
        sample: &ArrayD<f32>,
        timestep: f64,
        context: &Array3<f32>,
        uncond_rows: usize,
    ) -> Result<ArrayD<f32>> {
        let residuals = if !self.state.controlnets.is_empty() {
            self.controlnet_residuals(sample, timestep, context, uncond_rows)?
        } else if (self.step as f64) < (self.sampling_steps as f64 * self.state.adapter_factor).trunc() {
            let rows = sample.shape()[0];
            Some(
                self.state
                    .adapter_features
                    .iter()
                    .map(|f| {
                        let mut shape = f.shape().to_vec();
                        shape[0] = rows;
                        // The adapter ran on one control image: a feature of more rows is the export's mistake.
                        f.broadcast(shape.as_slice()).map(|b| b.to_owned()).ok_or_else(|| {
                            EngineError::inference("adapter", format!("a feature {:?} for {rows} rows", f.shape()))
                        })
                    })
                    .collect::<Result<_>>()?,
            )
        } else {
            None
        };
        match residuals {
            Some(residuals) => self.state.unet.lock()?.predict(sample, timestep, context, &residuals),
            None => self.unet.predict(sample, timestep, context),
        }
    }
}
