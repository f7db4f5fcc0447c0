//! DDIM (Song et al. 2020, eq. 12 with eta 0): diffusers' `DDIMScheduler`.
//!
//! DDIM works on alphas_cumprod at integer timesteps, not on sigmas: the model input is not scaled and the initial
//! noise has standard deviation 1.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig};
use super::noise_schedule::{NoiseSchedule, noised};
use super::training_timesteps::{
    alpha_predicted_original, check_within_training, final_alpha_cumprod, spaced_timesteps,
};
use super::{BatchNoise, Scheduler};
use crate::error::Result;

pub(super) struct Ddim {
    /// Integer training timesteps, largest first.
    timesteps: Vec<f64>,
    alphas_cumprod: Vec<f32>,
    /// alpha_cumprod after the last step: 1, or that of training step 0 (`set_alpha_to_one`).
    final_alpha_cumprod: f32,
    /// `num_train_timesteps // steps`: diffusers steps from t to t - this, whatever the spacing.
    step_ratio: usize,
    prediction_type: PredictionType,
    /// `clip_sample_range` when `clip_sample` is set.
    clip: Option<f32>,
}

impl Ddim {
    /// `DDIMScheduler.set_timesteps(steps)`, whose default spacing is "leading".
    pub(super) fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        let timesteps = spaced_timesteps(config, steps);
        check_within_training("DDIM", config, steps, timesteps.iter().copied())?;
        let alphas_cumprod = NoiseSchedule::new(config).alphas_cumprod().to_vec();
        let final_alpha_cumprod = final_alpha_cumprod(config, &alphas_cumprod);
        Ok(Ddim {
            timesteps,
            alphas_cumprod,
            final_alpha_cumprod,
            step_ratio: config.num_train_timesteps / steps,
            prediction_type: config.prediction_type,
            clip: config.sample_clip(),
        })
    }

    fn timestep(&self, step_index: usize) -> usize {
        self.timesteps[step_index] as usize
    }
}

impl Scheduler for Ddim {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// `DDIMScheduler.step` with eta 0: x_prev = sqrt(a_prev) * x0 + sqrt(1 - a_prev) * eps.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        _noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let t = self.timestep(step_index);
        let alpha_prod_t = self.alphas_cumprod[t];
        let alpha_prod_prev = match t.checked_sub(self.step_ratio) {
            Some(prev) => self.alphas_cumprod[prev],
            None => self.final_alpha_cumprod,
        };
        let beta_prod_t = 1.0 - alpha_prod_t;
        let (sqrt_alpha, sqrt_beta) = (alpha_prod_t.sqrt(), beta_prod_t.sqrt());

        let original = alpha_predicted_original(self.prediction_type, model_output, sample, alpha_prod_t, self.clip);
        // The noise direction comes from the unclipped model output, as in diffusers.
        let epsilon = match self.prediction_type {
            PredictionType::Epsilon => model_output.clone(),
            PredictionType::Sample => {
                Zip::from(sample).and(model_output).map_collect(|&x, &x0| (x - sqrt_alpha * x0) / sqrt_beta)
            }
            PredictionType::VPrediction => {
                Zip::from(sample).and(model_output).map_collect(|&x, &v| sqrt_alpha * v + sqrt_beta * x)
            }
        };
        // eta = 0: no variance term, so the direction to x_t has the whole 1 - a_prev.
        let direction_scale = (1.0 - alpha_prod_prev).sqrt();
        let sqrt_alpha_prev = alpha_prod_prev.sqrt();
        Zip::from(&original).and(&epsilon).map_collect(|&x0, &eps| sqrt_alpha_prev * x0 + direction_scale * eps)
    }

    /// `sqrt(a_t) * original + sqrt(1 - a_t) * noise` (`DDIMScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let alpha_prod = self.alphas_cumprod[self.timestep(step_index)];
        noised(original, noise, alpha_prod.sqrt(), (1.0 - alpha_prod).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;
    use crate::schedulers::TimestepSpacing;

    fn config(spacing: Option<TimestepSpacing>) -> SchedulerConfig {
        SchedulerConfig { timestep_spacing: spacing, ..SchedulerConfig::default() }
    }

    #[test]
    fn spacings_match_diffusers() {
        // DDIMScheduler(SD 1.5 values).set_timesteps(...) in diffusers 0.42.1.
        let ddim = Ddim::new(&config(None), 10).unwrap();
        assert_eq!(ddim.timesteps, vec![901., 801., 701., 601., 501., 401., 301., 201., 101., 1.]);
        let ddim = Ddim::new(&config(Some(TimestepSpacing::Linspace)), 7).unwrap();
        assert_eq!(ddim.timesteps, vec![999., 832., 666., 500., 333., 166., 0.]);
        assert_eq!(ddim.init_noise_sigma(), 1.0);
    }

    #[test]
    fn leading_past_the_schedule_is_refused() {
        assert!(matches!(Ddim::new(&config(None), 1000), Err(EngineError::InvalidParameter { name: "steps", .. })));
        assert!(Ddim::new(&config(None), 500).is_ok());
    }

    #[test]
    fn exact_epsilon_recovers_the_clean_sample_at_the_end() {
        // x_t = sqrt(a) x0 + sqrt(1-a) eps with the true eps: each step lands on the same x0 at the next level,
        // and the last on sqrt(a_final) x0 + sqrt(1 - a_final) eps.
        let config = SchedulerConfig { set_alpha_to_one: true, ..config(None) };
        let mut ddim = Ddim::new(&config, 5).unwrap();
        let x0 = ArrayD::from_shape_vec(vec![3], vec![0.5f32, -0.25, 1.0]).unwrap();
        let eps = ArrayD::from_shape_vec(vec![3], vec![1.0f32, 0.3, -2.0]).unwrap();
        let mut x = ddim.add_noise(&x0, &eps, 0);
        let mut generators = [crate::rng::TorchGenerator::new(0)];
        for i in 0..5 {
            x = ddim.step(&eps, i, &x, &mut BatchNoise::new(&mut generators));
        }
        for (got, want) in x.iter().zip(x0.iter()) {
            assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        }
    }

    #[test]
    fn clip_sample_clamps_the_prediction() {
        let config = SchedulerConfig { clip_sample: true, set_alpha_to_one: true, ..config(None) };
        let mut ddim = Ddim::new(&config, 1).unwrap();
        // One step straight to alpha 1: the result is the clipped x0 prediction.
        let sample = ArrayD::from_elem(vec![1], 10.0f32);
        let mut generators = [crate::rng::TorchGenerator::new(0)];
        let out = ddim.step(&ArrayD::zeros(vec![1]), 0, &sample, &mut BatchNoise::new(&mut generators));
        assert_eq!(out[[0]], 1.0);
    }
}
