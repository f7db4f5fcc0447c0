//! DDPM (Ho et al. 2020, eq. 6 and 7): ancestral sampling of the training chain, diffusers' `DDPMScheduler` with
//! its default "fixed_small" variance.
//!
//! Each step takes the mean of the posterior q(x_prev | x_t, x0) at the predicted x0 and adds fresh noise of the
//! posterior's variance, from the image's own generator; the step to timestep 0 (or below) adds none.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use super::noise_schedule::{NoiseSchedule, leading_timesteps, linspace_rounded_timesteps, trailing_timesteps};
use super::{BatchNoise, Scheduler};
use crate::error::{EngineError, Result};

pub(super) struct Ddpm {
    /// Integer training timesteps, largest first.
    timesteps: Vec<f64>,
    alphas_cumprod: Vec<f32>,
    prediction_type: PredictionType,
    /// `clip_sample_range` when `clip_sample` is set.
    clip: Option<f32>,
}

impl Ddpm {
    /// `DDPMScheduler.set_timesteps(steps)`, whose default spacing is "leading".
    pub(super) fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        let num_train = config.num_train_timesteps;
        let timesteps = match config.spacing_or(TimestepSpacing::Leading) {
            TimestepSpacing::Linspace => linspace_rounded_timesteps((num_train - 1) as f64, steps),
            TimestepSpacing::Leading => leading_timesteps(num_train / steps, steps, config.steps_offset),
            TimestepSpacing::Trailing => trailing_timesteps(num_train, num_train, steps),
        };
        if timesteps.iter().any(|&t| t < 0.0 || t >= num_train as f64) {
            return Err(EngineError::parameter(
                "steps",
                steps,
                format!("DDPM's timesteps would leave the model's {num_train} training timesteps; use fewer steps"),
            ));
        }
        Ok(Ddpm {
            timesteps,
            alphas_cumprod: NoiseSchedule::new(config).alphas_cumprod().to_vec(),
            prediction_type: config.prediction_type,
            clip: config.clip_sample.then_some(config.clip_sample_range as f32),
        })
    }
}

impl Scheduler for Ddpm {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    fn scale_model_input(&self, sample: &ArrayD<f32>, _step_index: usize) -> ArrayD<f32> {
        sample.clone()
    }

    /// `DDPMScheduler.step`: the previous timestep is the next one listed (`previous_timestep`), alpha_cumprod 1
    /// after the last.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let t = self.timesteps[step_index] as usize;
        let alpha_prod = self.alphas_cumprod[t];
        let alpha_prod_prev =
            self.timesteps.get(step_index + 1).map_or(1.0, |&prev| self.alphas_cumprod[prev as usize]);
        let (beta_prod, beta_prod_prev) = (1.0 - alpha_prod, 1.0 - alpha_prod_prev);
        let current_alpha = alpha_prod / alpha_prod_prev;
        let current_beta = 1.0 - current_alpha;
        let (sqrt_alpha, sqrt_beta) = (alpha_prod.sqrt(), beta_prod.sqrt());

        let mut original = match self.prediction_type {
            PredictionType::Epsilon => {
                Zip::from(sample).and(model_output).map_collect(|&x, &eps| (x - sqrt_beta * eps) / sqrt_alpha)
            }
            PredictionType::Sample => model_output.clone(),
            PredictionType::VPrediction => {
                Zip::from(sample).and(model_output).map_collect(|&x, &v| sqrt_alpha * x - sqrt_beta * v)
            }
        };
        if let Some(range) = self.clip {
            original.mapv_inplace(|x0| x0.clamp(-range, range));
        }
        // The posterior mean's weights on x0 and x_t (eq. 7).
        let original_coeff = (alpha_prod_prev.sqrt() * current_beta) / beta_prod;
        let sample_coeff = current_alpha.sqrt() * beta_prod_prev / beta_prod;
        let mean = Zip::from(&original).and(sample).map_collect(|&x0, &x| original_coeff * x0 + sample_coeff * x);
        if t == 0 {
            return mean;
        }
        // "fixed_small": the posterior variance (1 - a_prev) / (1 - a_t) * beta_t, at least 1e-20 (`_get_variance`).
        let variance = ((1.0 - alpha_prod_prev) / (1.0 - alpha_prod) * current_beta).max(1e-20);
        let std = variance.sqrt();
        let fresh = noise.randn(model_output.shape());
        Zip::from(&mean).and(&fresh).map_collect(|&m, &n| m + std * n)
    }

    /// `sqrt(a_t) * original + sqrt(1 - a_t) * noise` (`DDPMScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let alpha_prod = self.alphas_cumprod[self.timesteps[step_index] as usize];
        let (signal, noise_scale) = (alpha_prod.sqrt(), (1.0 - alpha_prod).sqrt());
        Zip::from(original).and(noise).map_collect(|&x, &n| signal * x + noise_scale * n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_epsilon_without_noise_recovers_the_clean_sample() {
        // The posterior mean at the true x0 keeps x0; the last step (to alpha 1) returns it.
        let config =
            SchedulerConfig { timestep_spacing: Some(TimestepSpacing::Linspace), ..SchedulerConfig::default() };
        let mut ddpm = Ddpm::new(&config, 5).unwrap();
        assert_eq!(ddpm.timesteps, vec![999., 749., 500., 250., 0.]);
        let x0 = ArrayD::from_shape_vec(vec![2], vec![0.25f32, -0.5]).unwrap();
        let eps = ArrayD::from_shape_vec(vec![2], vec![-1.0f32, 0.7]).unwrap();
        let mut x = ddpm.add_noise(&x0, &eps, 4);
        let mut noise = BatchNoise::zero(2);
        x = ddpm.step(&eps, 4, &x, &mut noise);
        for (got, want) in x.iter().zip(x0.iter()) {
            assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        }
    }
}
