//! A model's `scheduler/scheduler_config.json`: its training noise schedule and parameterisation.
//!
//! The keys are diffusers' (`SchedulerMixin.from_config`). A key missing from the file takes the value diffusers'
//! scheduler classes give it by default (`num_train_timesteps` 1000, `beta_schedule` "linear", `steps_offset` 0,
//! DDIM's `clip_sample` and `set_alpha_to_one` true, ...), exactly as `DDIMScheduler.from_config(file)` would; only
//! `timestep_spacing`, whose default differs per class, stays `None` for the sampler to decide. [`Default`] is
//! different: it is SD 1.x's file, for model folders that ship none.
//!
//! Keys that belong to a sampler rather than to the model (`algorithm_type`, `solver_order`, `use_karras_sigmas`,
//! `lambda_min_clipped`, ...) are ignored: the user's [`Sampler`](super::Sampler) and
//! [`SigmaSchedule`](super::SigmaSchedule) decide them. So are `thresholding` and its companions, which only
//! pixel-space models use.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{EngineError, Result};

/// How the training betas are laid out (`beta_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    Linear,
    ScaledLinear,
    SquaredcosCapV2,
}

/// Which timesteps of the training schedule `steps` inference steps use (`timestep_spacing`; Table 2 of
/// "Common Diffusion Noise Schedules and Sample Steps are Flawed").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    Leading,
    Trailing,
    Linspace,
}

/// What the UNet predicts (`prediction_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The noise.
    Epsilon,
    /// The velocity `alpha_t * noise - sigma_t * x0` (SD 2.x 768-v).
    VPrediction,
    /// The clean sample.
    Sample,
}

/// The parts of `scheduler_config.json` the samplers read. Serializes with diffusers' key and value names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct SchedulerConfig {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    /// Betas given outright; they replace `beta_start`, `beta_end` and `beta_schedule`.
    pub trained_betas: Option<Vec<f64>>,
    pub steps_offset: usize,
    /// `None` when the file has no `timestep_spacing` (SD 1.x): each sampler then uses its diffusers class's default.
    pub timestep_spacing: Option<TimestepSpacing>,
    pub prediction_type: PredictionType,
    /// DDIM: the final step lands on alpha_cumprod 1 instead of the first training step's.
    pub set_alpha_to_one: bool,
    /// DDIM: clamp the predicted clean sample to `[-clip_sample_range, clip_sample_range]`.
    pub clip_sample: bool,
    pub clip_sample_range: f64,
    pub rescale_betas_zero_snr: bool,
}

impl Default for SchedulerConfig {
    /// Stable Diffusion 1.x's `scheduler_config.json`.
    fn default() -> Self {
        SchedulerConfig {
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            trained_betas: None,
            steps_offset: 1,
            timestep_spacing: None,
            prediction_type: PredictionType::Epsilon,
            set_alpha_to_one: false,
            clip_sample: false,
            clip_sample_range: 1.0,
            rescale_betas_zero_snr: false,
        }
    }
}

impl SchedulerConfig {
    /// Reads a diffusers `scheduler_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| EngineError::ReadFile { path: path.to_path_buf(), reason: error.to_string() })?;
        // Python's json module writes -Infinity for diffusers' default lambda_min_clipped; serde_json rejects it.
        let text = null_non_finite_literals(&text);
        serde_json::from_str(&text)
            .map_err(|error| EngineError::InvalidConfigFile { path: path.to_path_buf(), reason: error.to_string() })
    }

    /// The spacing the file names, else `class_default` (each diffusers class has its own default).
    pub(crate) fn spacing_or(&self, class_default: TimestepSpacing) -> TimestepSpacing {
        self.timestep_spacing.unwrap_or(class_default)
    }

    /// `clip_sample_range` when `clip_sample` is set: the bound of the predicted clean sample.
    pub(crate) fn sample_clip(&self) -> Option<f32> {
        self.clip_sample.then_some(self.clip_sample_range as f32)
    }
}

impl BetaSchedule {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "linear" => Some(BetaSchedule::Linear),
            "scaled_linear" => Some(BetaSchedule::ScaledLinear),
            "squaredcos_cap_v2" => Some(BetaSchedule::SquaredcosCapV2),
            _ => None,
        }
    }
}

impl TimestepSpacing {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "leading" => Some(TimestepSpacing::Leading),
            "trailing" => Some(TimestepSpacing::Trailing),
            "linspace" => Some(TimestepSpacing::Linspace),
            _ => None,
        }
    }
}

impl PredictionType {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "epsilon" => Some(PredictionType::Epsilon),
            "v_prediction" => Some(PredictionType::VPrediction),
            "sample" => Some(PredictionType::Sample),
            _ => None,
        }
    }
}

/// The keys of a config object, with diffusers' `_use_default_values` applied: keys listed there hold the defaults
/// of the class that saved them, and `from_config` drops them so the loading class's defaults apply.
struct Keys {
    map: Map<String, Value>,
}

impl Keys {
    fn new(mut map: Map<String, Value>) -> Self {
        if let Some(Value::Array(defaulted)) = map.remove("_use_default_values") {
            for key in defaulted.iter().filter_map(Value::as_str) {
                map.remove(key);
            }
        }
        Keys { map }
    }

    /// The value of `key`; JSON null counts as absent.
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize, String> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| expected(key, value, "a whole number")),
        }
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value.as_f64().ok_or_else(|| expected(key, value, "a number")),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value.as_bool().ok_or_else(|| expected(key, value, "true or false")),
        }
    }

    /// A string-valued key parsed by `parse`, whose accepted names are `known`.
    fn name<T>(&self, key: &str, known: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value.as_str().and_then(parse).map(Some).ok_or_else(|| expected(key, value, known)),
        }
    }

    fn f64_list(&self, key: &str) -> Result<Option<Vec<f64>>, String> {
        let Some(value) = self.get(key) else { return Ok(None) };
        let list = value.as_array().ok_or_else(|| expected(key, value, "a list of numbers"))?;
        list.iter()
            .map(|item| item.as_f64().ok_or_else(|| expected(key, value, "a list of numbers")))
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

fn expected(key: &str, value: &Value, what: &str) -> String {
    format!("{key} is {value}, expected {what}")
}

impl TryFrom<Map<String, Value>> for SchedulerConfig {
    type Error = String;

    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let keys = Keys::new(map);
        let config = SchedulerConfig {
            // The defaults of diffusers' EulerDiscrete, EulerAncestralDiscrete, DDIM and DPMSolverMultistep __init__.
            num_train_timesteps: keys.usize("num_train_timesteps", 1000)?,
            beta_start: keys.f64("beta_start", 0.0001)?,
            beta_end: keys.f64("beta_end", 0.02)?,
            beta_schedule: keys
                .name("beta_schedule", "linear, scaled_linear or squaredcos_cap_v2", BetaSchedule::parse)?
                .unwrap_or(BetaSchedule::Linear),
            trained_betas: keys.f64_list("trained_betas")?,
            steps_offset: keys.usize("steps_offset", 0)?,
            timestep_spacing: keys.name("timestep_spacing", "leading, trailing or linspace", TimestepSpacing::parse)?,
            prediction_type: keys
                .name("prediction_type", "epsilon, v_prediction or sample", PredictionType::parse)?
                .unwrap_or(PredictionType::Epsilon),
            set_alpha_to_one: keys.bool("set_alpha_to_one", true)?,
            clip_sample: keys.bool("clip_sample", true)?,
            clip_sample_range: keys.f64("clip_sample_range", 1.0)?,
            rescale_betas_zero_snr: keys.bool("rescale_betas_zero_snr", false)?,
        };
        config.validate()?;
        Ok(config)
    }
}

impl SchedulerConfig {
    /// Values that would give non-finite sigmas or an empty schedule.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.num_train_timesteps < 2 {
            return Err(format!("num_train_timesteps is {}, expected at least 2", self.num_train_timesteps));
        }
        let is_beta = |beta: f64| beta > 0.0 && beta < 1.0;
        match &self.trained_betas {
            Some(betas) => {
                if betas.len() != self.num_train_timesteps {
                    return Err(format!(
                        "trained_betas has {} values, expected num_train_timesteps = {}",
                        betas.len(),
                        self.num_train_timesteps
                    ));
                }
                if let Some(bad) = betas.iter().find(|beta| !is_beta(**beta)) {
                    return Err(format!("trained_betas holds {bad}, expected every beta between 0 and 1"));
                }
            }
            None => {
                for (key, beta) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
                    if !is_beta(beta) {
                        return Err(format!("{key} is {beta}, expected a number between 0 and 1"));
                    }
                }
            }
        }
        if !(self.clip_sample_range.is_finite() && self.clip_sample_range > 0.0) {
            return Err(format!("clip_sample_range is {}, expected a positive number", self.clip_sample_range));
        }
        Ok(())
    }
}

/// `text` with the bare `NaN`, `Infinity` and `-Infinity` tokens that Python's json module writes (outside strings)
/// replaced by `null`.
fn null_non_finite_literals(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if c == '\\' {
                let escaped: String = rest.chars().take(2).collect();
                out.push_str(&escaped);
                rest = &rest[escaped.len()..];
                continue;
            }
            in_string = c != '"';
        } else if c == '"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "NaN"].into_iter().find(|token| rest.starts_with(token)) {
            out.push_str("null");
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<SchedulerConfig, String> {
        serde_json::from_str(json).map_err(|error| error.to_string())
    }

    /// runwayml/stable-diffusion-v1-5's scheduler/scheduler_config.json, verbatim.
    const SD15: &str = r#"{
      "_class_name": "PNDMScheduler",
      "_diffusers_version": "0.6.0",
      "beta_end": 0.012,
      "beta_schedule": "scaled_linear",
      "beta_start": 0.00085,
      "num_train_timesteps": 1000,
      "set_alpha_to_one": false,
      "skip_prk_steps": true,
      "steps_offset": 1,
      "trained_betas": null,
      "clip_sample": false
    }"#;

    #[test]
    fn sd15_file_equals_the_default() {
        assert_eq!(parse(SD15).unwrap(), SchedulerConfig::default());
    }

    #[test]
    fn serializes_with_diffusers_names_and_round_trips() {
        let config = SchedulerConfig {
            prediction_type: PredictionType::VPrediction,
            timestep_spacing: Some(TimestepSpacing::Trailing),
            beta_schedule: BetaSchedule::SquaredcosCapV2,
            ..SchedulerConfig::default()
        };
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["prediction_type"], "v_prediction");
        assert_eq!(json["timestep_spacing"], "trailing");
        assert_eq!(json["beta_schedule"], "squaredcos_cap_v2");
        assert_eq!(serde_json::from_value::<SchedulerConfig>(json).unwrap(), config);
        let default = serde_json::to_value(SchedulerConfig::default()).unwrap();
        assert_eq!(serde_json::from_value::<SchedulerConfig>(default).unwrap(), SchedulerConfig::default());
    }

    #[test]
    fn missing_keys_take_diffusers_class_defaults() {
        let config = parse("{}").unwrap();
        assert_eq!(config.num_train_timesteps, 1000);
        assert_eq!((config.beta_start, config.beta_end), (0.0001, 0.02));
        assert_eq!(config.beta_schedule, BetaSchedule::Linear);
        assert_eq!(config.steps_offset, 0);
        assert_eq!(config.timestep_spacing, None);
        assert_eq!(config.prediction_type, PredictionType::Epsilon);
        assert!(config.set_alpha_to_one && config.clip_sample);
    }

    #[test]
    fn reads_spacing_prediction_and_sd2_keys() {
        let config = parse(
            r#"{"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                "beta_end": 0.012, "prediction_type": "v_prediction", "timestep_spacing": "trailing",
                "rescale_betas_zero_snr": true, "clip_sample": false, "unknown_key": [1, 2]}"#,
        )
        .unwrap();
        assert_eq!(config.prediction_type, PredictionType::VPrediction);
        assert_eq!(config.timestep_spacing, Some(TimestepSpacing::Trailing));
        assert!(config.rescale_betas_zero_snr && !config.clip_sample);
    }

    #[test]
    fn use_default_values_keys_are_dropped() {
        // Saved by DPMSolverMultistep, whose default spacing is linspace: loading as DDIM must use DDIM's default.
        let config = parse(r#"{"timestep_spacing": "linspace", "_use_default_values": ["timestep_spacing"]}"#).unwrap();
        assert_eq!(config.timestep_spacing, None);
    }

    #[test]
    fn unsupported_values_name_key_and_value() {
        let error = parse(r#"{"beta_schedule": "sigmoid"}"#).unwrap_err();
        assert!(error.contains("beta_schedule") && error.contains("sigmoid"), "{error}");
        let error = parse(r#"{"prediction_type": "flow_prediction"}"#).unwrap_err();
        assert!(error.contains("prediction_type") && error.contains("flow_prediction"), "{error}");
        let error = parse(r#"{"timestep_spacing": "uniform"}"#).unwrap_err();
        assert!(error.contains("timestep_spacing") && error.contains("uniform"), "{error}");
        let error = parse(r#"{"num_train_timesteps": "1000"}"#).unwrap_err();
        assert!(error.contains("num_train_timesteps"), "{error}");
        let error = parse(r#"{"beta_end": 1.5}"#).unwrap_err();
        assert!(error.contains("beta_end") && error.contains("1.5"), "{error}");
        let error = parse(r#"{"num_train_timesteps": 3, "trained_betas": [0.1, 0.2]}"#).unwrap_err();
        assert!(error.contains("trained_betas"), "{error}");
    }

    #[test]
    fn from_file_reads_python_infinity_and_reports_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scheduler_config.json");
        std::fs::write(&path, r#"{"lambda_min_clipped": -Infinity, "note": "NaN -Infinity \"x\"", "steps_offset": 1}"#)
            .unwrap();
        assert_eq!(SchedulerConfig::from_file(&path).unwrap().steps_offset, 1);

        std::fs::write(&path, r#"{"prediction_type": "flow_prediction"}"#).unwrap();
        match SchedulerConfig::from_file(&path) {
            Err(EngineError::InvalidConfigFile { path: reported, reason }) => {
                assert_eq!(reported, path);
                assert!(reason.contains("prediction_type"), "{reason}");
            }
            other => panic!("expected InvalidConfigFile, got {other:?}"),
        }
        let missing = dir.path().join("missing.json");
        assert!(matches!(SchedulerConfig::from_file(&missing), Err(EngineError::ReadFile { .. })));
    }

    #[test]
    fn non_finite_literals_outside_strings_become_null() {
        assert_eq!(
            null_non_finite_literals(r#"{"a": -Infinity, "b": [NaN, Infinity], "c": "NaN \" -Infinity"}"#),
            r#"{"a": null, "b": [null, null], "c": "NaN \" -Infinity"}"#
        );
    }
}
