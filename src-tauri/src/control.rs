//! The control panel's side of a job: ControlNet and T2I-Adapter units as the window sends them (model by its
//! folder name in the models folder, picture as base64 PNG, preprocessor and its settings), turned into the
//! engine's [`ControlSpec`] at submit, before any model loads, as `pigment --control` does; the preprocessed
//! picture on its own for the panel's preview; and the list of the ControlNets and adapters in the models folder.
//! Preprocessors with an annotator model (depth, openpose) run in the job, on the worker (slow on big models),
//! and in the preview on a blocking thread (reporting progress, cancellable: `control_preview`), both on the app's
//! one runtime.

use std::path::{Path, PathBuf};

use image::{GrayImage, Rgb, RgbImage};
use pigment_engine::EngineError;
use pigment_engine::image::control::{
    DEFAULT_CANNY_HIGH, DEFAULT_CANNY_LOW, Preprocessor, control_image, inpaint_condition,
};
use pigment_engine::image::{ResizeMode, resize_image};
use pigment_engine::model::{ANNOTATORS_FOLDER, AnnotatorKind, CancelSignal, ControlModelFolder, ResidualKind};
use pigment_engine::pipeline::{
    Annotator, ControlImage, ControlSpec, ControlUnitSpec, Flow, GenerateRequest, PendingAnnotation, Preprocessing,
    Progress,
};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Runtime, State};

use crate::commands::blocking;
use crate::control_preview::UnitId;
use crate::error::{AppError, Result};
use crate::models::{GenerateParams, JobMode, decode_any_mask, decode_picture, invalid};
use crate::preview::png_data_url;
use crate::runtime_slot::RuntimeSlot;
use crate::state::AppState;

/// A ControlNet or a T2I-Adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlKind {
    Controlnet,
    Adapter,
}

impl ControlKind {
    fn residual(self) -> ResidualKind {
        match self {
            ControlKind::Controlnet => ResidualKind::ControlNet,
            ControlKind::Adapter => ResidualKind::Adapter,
        }
    }

    fn from_residual(kind: ResidualKind) -> ControlKind {
        match kind {
            ResidualKind::ControlNet => ControlKind::Controlnet,
            ResidualKind::Adapter => ControlKind::Adapter,
        }
    }

    fn what(self) -> &'static str {
        match self {
            ControlKind::Controlnet => "ControlNet",
            ControlKind::Adapter => "T2I-Adapter",
        }
    }
}

/// One unit of the control panel.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlUnitParams {
    /// The panel's number for the unit, sent with its preview: a newer preview of the unit cancels the one still
    /// running, and `cancel_control_preview` names it. Jobs ignore it.
    #[serde(default)]
    pub id: Option<UnitId>,
    /// A disabled unit is kept in the panel and skipped by the job.
    #[serde(default = "enabled")]
    pub enabled: bool,
    pub kind: ControlKind,
    /// The ControlNet's or adapter's folder name in the models folder (`list_control_models`).
    pub model: String,
    /// The control picture, base64 PNG (a `data:image/png;base64,` prefix is allowed).
    pub image: String,
    /// `none` (the picture as it is), `canny`, `scribble`, `lineart`, `tile`, `inpaint`, or with an annotator model
    /// in the models folder's `annotators/`, `depth` or `openpose`.
    #[serde(default = "no_preprocessor")]
    pub preprocessor: String,
    #[serde(default = "default_canny_low")]
    pub canny_low: f32,
    #[serde(default = "default_canny_high")]
    pub canny_high: f32,
    /// `inpaint`'s mask (white: the area to fill), at the picture's size; the canvas's mask when absent.
    #[serde(default)]
    pub mask: Option<String>,
    #[serde(default = "default_weight")]
    pub weight: f32,
    #[serde(default)]
    pub start: f64,
    #[serde(default = "default_end")]
    pub end: f64,
}

fn enabled() -> bool {
    true
}
fn no_preprocessor() -> String {
    "none".into()
}
fn default_canny_low() -> f32 {
    DEFAULT_CANNY_LOW
}
fn default_canny_high() -> f32 {
    DEFAULT_CANNY_HIGH
}
fn default_weight() -> f32 {
    1.0
}
fn default_end() -> f64 {
    1.0
}
pub(crate) fn default_adapter_factor() -> f64 {
    1.0
}

/// A ControlNet or adapter of the models folder, as the panel's model picker lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlModelEntry {
    pub name: String,
    pub kind: ControlKind,
    pub path: PathBuf,
    /// The base model family it is made for ("SD 1.x", "SDXL", ...), from its config.
    pub family: Option<String>,
    /// The text-embedding width it takes (ControlNets): a base model of another width refuses it.
    pub context_width: Option<usize>,
}

/// A preprocessor that needs an annotator model, and whether one is installed.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnnotatorEntry {
    /// The preprocessor: `depth` or `openpose`.
    pub name: String,
    /// The annotator folder the preprocessor uses; absent when none is installed.
    pub folder: Option<PathBuf>,
    /// Where annotators are looked for: the models folder's `annotators/`.
    pub looked_in: PathBuf,
}

/// What the panel's pickers offer: the ControlNets and adapters, and the annotator preprocessors.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlModelList {
    pub models: Vec<ControlModelEntry>,
    pub annotators: Vec<AnnotatorEntry>,
}

/// `list_control_models`: the ControlNets, adapters and annotators in the app's models folder.
#[tauri::command]
pub async fn list_control_models(state: State<'_, AppState>) -> Result<ControlModelList> {
    let models_folder = &state.paths.models_folder;
    Ok(ControlModelList { models: control_models_in(models_folder), annotators: annotators_in(models_folder) })
}

/// `preprocess_control`: the unit's preprocessed picture at the generation size, for the panel's preview. With the
/// unit's `id` it is that unit's latest preview: it reports progress and can be cancelled (`control_preview`).
#[tauri::command]
pub async fn preprocess_control<R: Runtime>(
    app: AppHandle<R>,
    unit: ControlUnitParams,
    width: u32,
    height: u32,
    mask: Option<String>,
) -> Result<ControlPreview> {
    // The annotators take a while on big models: off the async runtime's threads.
    blocking(&app, move |state| {
        let models_folder = &state.paths.models_folder;
        state.control_previews.preview(&unit, width, height, mask.as_deref(), models_folder, &state.runtime)
    })
    .await
}

/// Each annotator preprocessor with the folder it would use in `models_folder`.
pub fn annotators_in(models_folder: &Path) -> Vec<AnnotatorEntry> {
    [AnnotatorKind::Depth, AnnotatorKind::Openpose]
        .into_iter()
        .map(|kind| AnnotatorEntry {
            name: kind.name().into(),
            folder: kind.find(models_folder).ok(),
            looked_in: models_folder.join(ANNOTATORS_FOLDER),
        })
        .collect()
}

/// The ControlNets and adapters among the folders of `models_folder`, by name.
pub fn control_models_in(models_folder: &Path) -> Vec<ControlModelEntry> {
    let Ok(entries) = std::fs::read_dir(models_folder) else { return Vec::new() };
    let mut found: Vec<ControlModelEntry> = entries
        .filter_map(|entry| ControlModelFolder::detect(&entry.ok()?.path()))
        .map(|folder| ControlModelEntry {
            name: folder.name,
            kind: ControlKind::from_residual(folder.kind),
            path: folder.root,
            family: folder.family.map(String::from),
            context_width: folder.context_width,
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// The preprocessed control picture the panel shows before generating.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlPreview {
    /// A PNG `data:` URL (masked pixels of `inpaint` drawn black).
    pub image: String,
    pub width: u32,
    pub height: u32,
    /// A1111's module name and its parameters, as the PNG metadata will record them.
    pub module: String,
    pub params: Vec<(String, String)>,
}

/// What a preview's annotator answers to: `progress` sees its run (stage `Preprocessing`) and may cancel before and
/// after it; `cancel` stops the model run while it runs. Both end the preview with the engine's cancelled error.
pub struct PreviewWatch<'a> {
    pub progress: &'a mut dyn FnMut(&Progress) -> Flow,
    pub cancel: Option<CancelSignal>,
}

/// `unit`'s picture preprocessed at the generation size `width` x `height`, as a job would make it (annotators
/// found in `models_folder`, run on `runtime`, answering to `watch`).
pub fn preview(
    unit: &ControlUnitParams,
    width: u32,
    height: u32,
    canvas_mask: Option<&str>,
    models_folder: &Path,
    runtime: &RuntimeSlot,
    watch: PreviewWatch<'_>,
) -> Result<ControlPreview> {
    // The size is checked as a job's is (the preprocessors resize to it).
    GenerateRequest { width, height, ..GenerateRequest::default() }.validate()?;
    let (mut image, mut preprocessing, annotation) = unit_image(unit, width, height, canvas_mask, models_folder)?;
    if let Some(pending) = annotation {
        let runtime = runtime.get()?;
        let mut annotator = Annotator::open(&runtime, pending.kind, &pending.folder).map_err(annotator_error)?;
        annotator.watch_cancel(watch.cancel.as_ref())?;
        (image, preprocessing) =
            annotator.apply(&image.image, pending.width, pending.height, watch.progress).map_err(annotator_error)?;
    }
    let shown = visible(&image);
    Ok(ControlPreview {
        image: png_data_url(&shown).ok_or_else(|| AppError::platform("encode the preview", "PNG encoding failed"))?,
        width: shown.width(),
        height: shown.height(),
        module: preprocessing.module,
        params: preprocessing.params,
    })
}

/// The control picture as a PNG can hold it: masked pixels (-1 for the model) black.
pub(crate) fn visible(image: &ControlImage) -> RgbImage {
    let mut shown = image.image.clone();
    if let Some(mask) = &image.masked {
        for (x, y, pixel) in shown.enumerate_pixels_mut() {
            if mask.get_pixel(x, y).0[0] > 127 {
                *pixel = Rgb([0, 0, 0]);
            }
        }
    }
    shown
}

/// The engine's control for a job: the enabled units, their models found in `models_folder`, their pictures
/// read and preprocessed at the job's size (those for an annotator wait for the job: `ControlSpec::annotate`).
/// Every error names the field and the unit (numbered from 1).
pub fn control_spec(params: &GenerateParams, models_folder: &Path) -> Result<ControlSpec> {
    let canvas_mask = match &params.mode {
        JobMode::Inpaint { mask, .. } => Some(mask.as_str()),
        _ => None,
    };
    let mut spec = ControlSpec { guess_mode: params.guess_mode, adapter_factor: params.adapter_factor, units: vec![] };
    let models = control_models_in(models_folder);
    for (index, unit) in params.controls.iter().enumerate().filter(|(_, u)| u.enabled) {
        let in_unit = |error: AppError| unit_error(index, error);
        let model = find_model(&models, unit, models_folder).map_err(in_unit)?;
        let (image, preprocessing, annotation) =
            unit_image(unit, params.width, params.height, canvas_mask, models_folder).map_err(in_unit)?;
        let unit = ControlUnitSpec {
            kind: unit.kind.residual(),
            model,
            image,
            preprocessing,
            weight: unit.weight,
            start: unit.start,
            end: unit.end,
            annotation,
        };
        unit.validate().map_err(|e| in_unit(e.into()))?;
        spec.units.push(unit);
    }
    spec.validate()?;
    Ok(spec)
}

/// `error` with the unit's number added to its reason, keeping its field.
fn unit_error(index: usize, error: AppError) -> AppError {
    let unit = index + 1;
    match error {
        AppError::Engine(pigment_engine::EngineError::InvalidParameter { name, value, reason }) => {
            AppError::Engine(pigment_engine::EngineError::InvalidParameter {
                name,
                value,
                reason: format!("{reason}; control unit {unit}"),
            })
        }
        AppError::InvalidInput { field, reason } => {
            AppError::InvalidInput { field, reason: format!("control unit {unit}: {reason}") }
        }
        other => other,
    }
}

fn find_model(models: &[ControlModelEntry], unit: &ControlUnitParams, models_folder: &Path) -> Result<PathBuf> {
    let what = unit.kind.what();
    if let Some(found) = models.iter().find(|m| m.name == unit.model && m.kind == unit.kind) {
        return Ok(found.path.clone());
    }
    let same_kind: Vec<&str> = models.iter().filter(|m| m.kind == unit.kind).map(|m| m.name.as_str()).collect();
    let known = if same_kind.is_empty() { "none".to_string() } else { same_kind.join(", ") };
    Err(invalid(
        "control_model",
        format!(
            "{:?} is not a {what} in the models folder {} (its {what}s: {known})",
            unit.model,
            models_folder.display()
        ),
    ))
}

/// An annotator's failure as the panel shows it: on the preprocessor field (the engine's message names the
/// annotator and its folder); a cancel stays a cancel.
pub(crate) fn annotator_error(error: EngineError) -> AppError {
    match error {
        EngineError::Cancelled => AppError::Engine(error),
        other => invalid("preprocessor", format!("the annotator failed: {other}")),
    }
}

/// The unit's picture, preprocessed as its preprocessor says (the engine's preprocessors; `inpaint` marks the
/// unit's mask, else the canvas's, scaled to the picture at the generation size). For `depth` and `openpose`, the
/// picture as it is and the annotator (found in `models_folder`) it waits for.
fn unit_image(
    unit: &ControlUnitParams,
    width: u32,
    height: u32,
    canvas_mask: Option<&str>,
    models_folder: &Path,
) -> Result<(ControlImage, Preprocessing, Option<PendingAnnotation>)> {
    let picture = decode_picture("control_image", &unit.image)?;
    let name = unit.preprocessor.trim().to_ascii_lowercase();
    if let Some(kind) = AnnotatorKind::parse(&name) {
        let folder = kind.find(models_folder).map_err(|_| {
            let looked_in = models_folder.join(ANNOTATORS_FOLDER);
            invalid(
                "preprocessor",
                format!(
                    "{kind} needs an annotator model: none in {} (install a {kind} model in {}: a folder whose \
                     name starts with {kind}, holding model.onnx)",
                    looked_in.display(),
                    looked_in.join(format!("{kind}...")).display(),
                ),
            )
        })?;
        let (image, _) = control_image(picture, None, width, height)?;
        let waiting = Preprocessing { module: kind.name().into(), params: Vec::new() };
        return Ok((image, waiting, Some(PendingAnnotation { kind, folder, width, height })));
    }
    let (image, preprocessing) = match name.as_str() {
        "none" | "" => control_image(picture, None, width, height)?,
        "inpaint" => {
            let mask_text = unit.mask.as_deref().or(canvas_mask).ok_or_else(|| {
                invalid("control_mask", "the inpaint preprocessor needs a mask: paint one on the canvas (Inpaint)")
            })?;
            let mask: GrayImage = decode_any_mask("control_mask", mask_text)?;
            let picture = resize_image(&picture, width, height, ResizeMode::Just);
            inpaint_condition(&picture, &mask)
        }
        name => {
            let preprocessor = match Preprocessor::parse(name)? {
                Preprocessor::Canny { .. } => Preprocessor::Canny { low: unit.canny_low, high: unit.canny_high },
                other => other,
            };
            control_image(picture, Some(preprocessor), width, height)?
        }
    };
    Ok((image, preprocessing, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_shows_masked_pixels_black() {
        let image = RgbImage::from_pixel(4, 4, Rgb([200, 100, 50]));
        let mask = GrayImage::from_fn(4, 4, |x, _| image::Luma([if x < 2 { 255 } else { 0 }]));
        let shown = visible(&ControlImage { image, masked: Some(mask) });
        assert_eq!((shown.get_pixel(0, 0).0, shown.get_pixel(3, 0).0), ([0, 0, 0], [200, 100, 50]));
    }
}
