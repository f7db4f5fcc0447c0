//! The values that cross the IPC boundary, in the UI's camelCase. Conversions to engine types live here so the
//! commands stay thin.

use std::path::PathBuf;

use pigment_engine::pipeline::{GenerateRequest, Stage};
use pigment_engine::schedulers::{Sampler, SigmaSchedule, parse_sampler};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, Result};

/// What the generate form sends.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerateParams {
    /// A model id from `list_models`.
    pub model_id: String,
    pub prompt: String,
    #[serde(default)]
    pub negative_prompt: String,
    /// A sampler id (`euler_a`) or AUTOMATIC1111 name ("Euler a").
    pub sampler: String,
    /// `automatic` or `karras`.
    pub schedule: String,
    pub steps: usize,
    pub cfg_scale: f32,
    /// `None` draws a random seed; the one used comes back with each image.
    pub seed: Option<u64>,
    pub width: u32,
    pub height: u32,
    pub batch_size: usize,
    pub batch_count: usize,
}

impl GenerateParams {
    /// The engine request, validated by the engine so every error names its parameter.
    pub fn to_request(&self) -> Result<GenerateRequest> {
        let (sampler, named_schedule) = parse_sampler(&self.sampler)?;
        let chosen: SigmaSchedule = self.schedule.parse()?;
        let schedule = if named_schedule == SigmaSchedule::Automatic { chosen } else { named_schedule };
        let request = GenerateRequest {
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            seed: self.seed,
            steps: self.steps,
            cfg_scale: self.cfg_scale,
            sampler,
            schedule,
            width: self.width,
            height: self.height,
            batch_size: self.batch_size,
            batch_count: self.batch_count,
        };
        request.validate()?;
        Ok(request)
    }
}

/// One sampler as the picker shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SamplerOption {
    pub id: &'static str,
    pub name: &'static str,
    /// Schedule ids this sampler takes (`automatic` always).
    pub schedules: Vec<&'static str>,
}

pub fn sampler_options() -> Vec<SamplerOption> {
    Sampler::ALL
        .iter()
        .map(|&sampler| SamplerOption {
            id: sampler.id(),
            name: sampler.display_name(),
            schedules: SigmaSchedule::ALL.iter().filter(|&&s| sampler.supports(s)).map(|s| s.id()).collect(),
        })
        .collect()
}

/// Where a model in the list comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// The demo model shipped with the app.
    Bundled,
    /// A folder inside the app's models folder.
    ModelsFolder,
    /// A folder the user added with "Add model folder...".
    Added,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelEntry {
    /// Stable id: the folder's path.
    pub id: String,
    pub name: String,
    pub path: PathBuf,
    pub source: ModelSource,
    /// Why the folder cannot be used, when the quick check (files present) fails.
    pub problem: Option<String>,
}

/// What "Add model folder..." found: the engine's inspection, summarised for the dialog.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelReport {
    pub entry: ModelEntry,
    pub inpainting: bool,
    pub unet_in_channels: Option<usize>,
    pub context_width: Option<usize>,
    pub has_vae_encoder: bool,
    pub size_bytes: u64,
    pub execution_provider: String,
    /// One line per component: `unet: sample float32 [batch, 4, h, w], ...`.
    pub components: Vec<String>,
}

/// What a job's channel receives, in order: `queued`, `started`, then `loadingModel`, `progress` and `image`
/// any number of times, and exactly one of `finished`, `cancelled` or `failed`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum JobEvent {
    Queued { job_id: u64, position: usize },
    Started { job_id: u64 },
    LoadingModel { model: String },
    Progress(ProgressReport),
    Image(ImageResult),
    Finished { images: usize, elapsed_ms: u64 },
    Cancelled { images: usize },
    Failed { error: ErrorReport },
}

/// An [`AppError`] as data (events are cloned and compared; the error itself is neither).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorReport {
    pub kind: String,
    pub message: String,
    pub field: Option<String>,
}

impl From<&AppError> for ErrorReport {
    fn from(error: &AppError) -> Self {
        ErrorReport { kind: error.kind().into(), message: error.to_string(), field: error.field() }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProgressReport {
    pub stage: Stage,
    /// 0-based batch, and the number of batches.
    pub batch: usize,
    pub batches: usize,
    pub step: usize,
    pub steps: usize,
    pub elapsed_ms: u64,
    /// Estimated time left for the whole job, once a step has been timed.
    pub eta_ms: Option<u64>,
    /// A small PNG of the first image of the batch (`data:` URL), every few steps.
    pub preview: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageResult {
    pub path: PathBuf,
    pub seed: u64,
    pub index: usize,
    pub width: u32,
    pub height: u32,
    /// AUTOMATIC1111's parameters text, as written into the PNG.
    pub parameters: String,
}

/// A job as the queue panel lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub id: u64,
    pub running: bool,
    pub label: String,
    pub images: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub version: &'static str,
    pub models_folder: PathBuf,
    pub output_folder: PathBuf,
    pub config_file: PathBuf,
    /// Set when the settings file was unreadable and defaults are in use.
    pub settings_notice: Option<String>,
    /// "CPU", "CUDA; ..." once ONNX Runtime has loaded; the error text when it failed.
    pub execution_provider: Option<String>,
    pub runtime_error: Option<String>,
}

/// Where a text field of the form failed, for [`AppError::InvalidInput`].
pub fn invalid(field: &'static str, reason: impl Into<String>) -> AppError {
    AppError::InvalidInput { field, reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn params() -> GenerateParams {
        GenerateParams {
            model_id: "m".into(),
            prompt: "a cat".into(),
            negative_prompt: String::new(),
            sampler: "euler_a".into(),
            schedule: "automatic".into(),
            steps: 4,
            cfg_scale: 7.0,
            seed: Some(1),
            width: 64,
            height: 64,
            batch_size: 1,
            batch_count: 1,
        }
    }

    #[test]
    fn params_become_a_request_with_the_sampler_and_schedule() {
        let request =
            GenerateParams { sampler: "dpmpp_2m".into(), schedule: "karras".into(), ..params() }.to_request().unwrap();
        assert_eq!((request.sampler, request.schedule), (Sampler::DpmPp2M, SigmaSchedule::Karras));
        let named = GenerateParams { sampler: "DPM++ 2M Karras".into(), ..params() }.to_request().unwrap();
        assert_eq!(named.schedule, SigmaSchedule::Karras);
    }

    #[test]
    fn bad_params_fail_on_their_field() {
        let error = GenerateParams { width: 100, ..params() }.to_request().unwrap_err();
        assert_eq!(error.field().as_deref(), Some("width"));
        assert!(error.to_string().contains("width: 100"), "{error}");
        let error = GenerateParams { sampler: "nope".into(), ..params() }.to_request().unwrap_err();
        assert_eq!(error.field().as_deref(), Some("sampler"));
        let error = GenerateParams { schedule: "linear".into(), ..params() }.to_request().unwrap_err();
        assert_eq!(error.field().as_deref(), Some("schedule"));
    }

    #[test]
    fn events_serialize_with_a_kind_tag_and_camel_case_fields() {
        let json = serde_json::to_value(JobEvent::Queued { job_id: 3, position: 1 }).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "queued", "jobId": 3, "position": 1}));
        let json = serde_json::to_value(JobEvent::Finished { images: 2, elapsed_ms: 5 }).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "finished", "images": 2, "elapsedMs": 5}));
    }
}
