//! What the samplers that step between integer training timesteps on alphas_cumprod share (DDIM, DDPM, PLMS, LCM):
//! diffusers' spacing of those timesteps, the check that they stay inside the training schedule, and the clean
//! sample predicted from the model's output at one of them.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use super::noise_schedule::{leading_timesteps, linspace_rounded_timesteps, trailing_timesteps};
use crate::error::{EngineError, Result};

/// `set_timesteps(steps)` of DDIM, DDPM and PNDM, whose default spacing is "leading": integers, largest first.
pub(super) fn spaced_timesteps(config: &SchedulerConfig, steps: usize) -> Vec<f64> {
    let num_train = config.num_train_timesteps;
    match config.spacing_or(TimestepSpacing::Leading) {
        TimestepSpacing::Linspace => linspace_rounded_timesteps((num_train - 1) as f64, steps),
        TimestepSpacing::Leading => leading_timesteps(num_train / steps, steps, config.steps_offset),
        TimestepSpacing::Trailing => trailing_timesteps(num_train, num_train, steps),
    }
}

/// An error naming `steps` when a timestep falls outside the model's training schedule: "leading" with
/// steps_offset 1 at 1000 steps reaches t = 1000, where diffusers fails with an IndexError.
pub(super) fn check_within_training(
    sampler: &str,
    config: &SchedulerConfig,
    steps: usize,
    timesteps: impl IntoIterator<Item = f64>,
) -> Result<()> {
    let num_train = config.num_train_timesteps;
    if timesteps.into_iter().any(|t| t < 0.0 || t >= num_train as f64) {
        return Err(EngineError::parameter(
            "steps",
            steps,
            format!("{sampler}'s timesteps would leave the model's {num_train} training timesteps; use fewer steps"),
        ));
    }
    Ok(())
}

/// alpha_cumprod after the last step: 1, or that of training step 0 (`set_alpha_to_one`).
pub(super) fn final_alpha_cumprod(config: &SchedulerConfig, alphas_cumprod: &[f32]) -> f32 {
    if config.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] }
}

/// The clean sample x0 predicted from `model_output` at a timestep of cumulative alpha `alpha_prod`, clamped to
/// `clip` when `clip_sample` is set (the "pred_original_sample" of DDIM, DDPM and LCM).
pub(super) fn alpha_predicted_original(
    prediction_type: PredictionType,
    model_output: &ArrayD<f32>,
    sample: &ArrayD<f32>,
    alpha_prod: f32,
    clip: Option<f32>,
) -> ArrayD<f32> {
    let (sqrt_alpha, sqrt_beta) = (alpha_prod.sqrt(), (1.0 - alpha_prod).sqrt());
    let mut original = match prediction_type {
        PredictionType::Epsilon => {
            Zip::from(sample).and(model_output).map_collect(|&x, &eps| (x - sqrt_beta * eps) / sqrt_alpha)
        }
        PredictionType::Sample => model_output.clone(),
        PredictionType::VPrediction => {
            Zip::from(sample).and(model_output).map_collect(|&x, &v| sqrt_alpha * x - sqrt_beta * v)
        }
    };
    if let Some(range) = clip {
        original.mapv_inplace(|x0| x0.clamp(-range, range));
    }
    original
}
