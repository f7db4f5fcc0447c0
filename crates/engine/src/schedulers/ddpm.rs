//! DDPM (Ho et al. 2020, eq. 6 and 7): ancestral sampling of the training chain, diffusers' `DDPMScheduler` with
//! its default "fixed_small" variance.
//!
//! Each step takes the mean of the posterior q(x_prev | x_t, x0) at the predicted x0 and adds fresh noise of the
//! posterior's variance, from the image's own generator; the step to timestep 0 (or below) adds none.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig};
use super::noise_schedule::{NoiseSchedule, noised};
use super::training_timesteps::{alpha_predicted_original, check_within_training, spaced_timesteps};
use super::{BatchNoise, Scheduler};
use crate::error::Result;

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
        let timesteps = spaced_timesteps(config, steps);
        check_within_training("DDPM", config, steps, timesteps.iter().copied())?;
        Ok(Ddpm {
            timesteps,
            alphas_cumprod: NoiseSchedule::new(config).alphas_cumprod().to_vec(),
            prediction_type: config.prediction_type,
            clip: config.sample_clip(),
        })
    }
}

impl Scheduler for Ddpm {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
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
        let original = alpha_predicted_original(self.prediction_type, model_output, sample, alpha_prod, self.clip);
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
        noised(original, noise, alpha_prod.sqrt(), (1.0 - alpha_prod).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedulers::TimestepSpacing;

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
