//! LCM (Luo et al. 2023, "Latent Consistency Models", Algorithm 1): diffusers' `LCMScheduler`, for models distilled
//! into a consistency function.
//!
//! Each step maps the sample straight to a clean estimate with the consistency boundary condition
//! (`c_skip * x + c_out * x0`), then, but for the last step, noises that estimate afresh to the next timestep with
//! the image's own generator. The timesteps are picked from the distillation schedule of 50 steps, whatever the
//! model's spacing.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig};
use super::noise_schedule::{NoiseSchedule, noised};
use super::training_timesteps::alpha_predicted_original;
use super::{BatchNoise, Scheduler};
use crate::error::{EngineError, Result};

/// The distillation schedule's length (`original_inference_steps`, 50 in diffusers and in LCM-distilled models).
const ORIGINAL_STEPS: usize = 50;
/// `timestep_scaling` and `sigma_data` of the boundary condition (diffusers' defaults; LCM models keep them).
const TIMESTEP_SCALING: f32 = 10.0;
const SIGMA_DATA: f32 = 0.5;

pub(super) struct Lcm {
    /// Integer training timesteps, largest first.
    timesteps: Vec<f64>,
    alphas_cumprod: Vec<f32>,
    prediction_type: PredictionType,
    /// `clip_sample_range` when `clip_sample` is set.
    clip: Option<f32>,
}

impl Lcm {
    /// `LCMScheduler.set_timesteps(steps)` with strength 1: `steps` timesteps spread over the distillation schedule
    /// `k - 1, 2k - 1, ..., 50k - 1` (k = num_train // 50), largest first.
    pub(super) fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        let num_train = config.num_train_timesteps;
        if steps > ORIGINAL_STEPS || num_train < ORIGINAL_STEPS {
            return Err(EngineError::parameter(
                "steps",
                steps,
                format!("LCM takes at most its distillation schedule's {ORIGINAL_STEPS} steps"),
            ));
        }
        let k = num_train / ORIGINAL_STEPS;
        // np.floor(np.linspace(0, 50, steps, endpoint=False)) indexes the schedule reversed.
        let step = ORIGINAL_STEPS as f64 / steps as f64;
        let timesteps = (0..steps)
            .map(|i| {
                let index = (i as f64 * step).floor() as usize;
                ((ORIGINAL_STEPS - index) * k - 1) as f64
            })
            .collect();
        Ok(Lcm {
            timesteps,
            alphas_cumprod: NoiseSchedule::new(config).alphas_cumprod().to_vec(),
            prediction_type: config.prediction_type,
            clip: config.sample_clip(),
        })
    }
}

impl Scheduler for Lcm {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let t = self.timesteps[step_index] as usize;
        let prev = self.timesteps.get(step_index + 1).map_or(t, |&prev| prev as usize);
        let alpha_prod = self.alphas_cumprod[t];
        let alpha_prod_prev = self.alphas_cumprod[prev];

        // get_scalings_for_boundary_condition_discrete, in float32 as torch computes it from the int64 timestep.
        let scaled = t as f32 * TIMESTEP_SCALING;
        let sigma_data2 = SIGMA_DATA * SIGMA_DATA;
        let c_skip = sigma_data2 / (scaled * scaled + sigma_data2);
        let c_out = scaled / (scaled * scaled + sigma_data2).sqrt();

        let original = alpha_predicted_original(self.prediction_type, model_output, sample, alpha_prod, self.clip);
        let denoised = Zip::from(&original).and(sample).map_collect(|&x0, &x| c_out * x0 + c_skip * x);
        if step_index + 1 == self.timesteps.len() {
            return denoised;
        }
        let fresh = noise.randn(model_output.shape());
        noised(&denoised, &fresh, alpha_prod_prev.sqrt(), (1.0 - alpha_prod_prev).sqrt())
    }

    /// `sqrt(a_t) * original + sqrt(1 - a_t) * noise` (`LCMScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let alpha_prod = self.alphas_cumprod[self.timesteps[step_index] as usize];
        noised(original, noise, alpha_prod.sqrt(), (1.0 - alpha_prod).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timesteps_come_from_the_distillation_schedule() {
        // LCMScheduler(SD 1.5 values).set_timesteps(n) in diffusers 0.42.1.
        let config = SchedulerConfig::default();
        assert_eq!(
            Lcm::new(&config, 10).unwrap().timesteps,
            vec![999., 899., 799., 699., 599., 499., 399., 299., 199., 99.]
        );
        assert_eq!(Lcm::new(&config, 4).unwrap().timesteps, vec![999., 759., 499., 259.]);
        assert_eq!(Lcm::new(&config, 1).unwrap().timesteps, vec![999.]);
        assert!(matches!(Lcm::new(&config, 51), Err(EngineError::InvalidParameter { name: "steps", .. })));
    }
}
