//! Heun (Karras et al. 2022, Algorithm 1 without churn): diffusers' `HeunDiscreteScheduler`.
//!
//! Each step evaluates the model twice: an Euler step from sigma to the next sigma, then, at that next sigma, a
//! second slope; the step is redone from the start with the mean of the two slopes. The last step is Euler alone
//! (its next sigma is 0), so n steps take 2n - 1 evaluations and the timesteps after the first appear twice.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig};
use super::euler::{EulerSigmas, predicted_original};
use super::{BatchNoise, Scheduler, SigmaSchedule};

pub(super) struct HeunDiscrete {
    /// Interleaved as diffusers does: timesteps `[t0, t1, t1, ..., t(n-1), t(n-1)]`, sigmas
    /// `[s0, s1, s1, ..., s(n-1), s(n-1), 0]`, so that entry i is what evaluation i sees.
    sigmas: EulerSigmas,
    prediction_type: PredictionType,
    /// `clip_sample_range` when `clip_sample` is set.
    clip: Option<f32>,
    /// Between a step's two evaluations: the first slope, the step size and the sample the step started from.
    first_half: Option<FirstHalf>,
}

struct FirstHalf {
    derivative: ArrayD<f32>,
    dt: f32,
    sample: ArrayD<f32>,
}

impl HeunDiscrete {
    /// `HeunDiscreteScheduler.set_timesteps(steps)`: Euler's timesteps and sigmas, each after the first repeated.
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        let euler = EulerSigmas::new(config, steps, schedule);
        let last = euler.sigmas.len() - 1;
        let timesteps = repeat_after_first(&euler.timesteps, euler.timesteps.len());
        // torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
        let mut sigmas = repeat_after_first(&euler.sigmas[..last], last);
        sigmas.push(euler.sigmas[last]);
        HeunDiscrete {
            sigmas: EulerSigmas { timesteps, sigmas, init_noise_sigma: euler.init_noise_sigma },
            prediction_type: config.prediction_type,
            clip: config.sample_clip(),
            first_half: None,
        }
    }

    fn denoised(&self, model_output: &ArrayD<f32>, sample: &ArrayD<f32>, sigma: f32) -> ArrayD<f32> {
        let mut denoised = predicted_original(self.prediction_type, model_output, sample, sigma);
        if let Some(range) = self.clip {
            denoised.mapv_inplace(|x0| x0.clamp(-range, range));
        }
        denoised
    }
}

/// `torch.cat([values[:1], values[1:count].repeat_interleave(2)])`.
pub(super) fn repeat_after_first<T: Copy>(values: &[T], count: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(2 * count);
    out.push(values[0]);
    for &value in &values[1..count] {
        out.extend([value, value]);
    }
    out
}

impl Scheduler for HeunDiscrete {
    fn timesteps(&self) -> &[f64] {
        &self.sigmas.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.sigmas.init_noise_sigma
    }

    fn order(&self) -> usize {
        2
    }

    fn scale_model_input(&self, sample: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        self.sigmas.scale_model_input(sample, step_index)
    }

    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        _noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let sigmas = &self.sigmas.sigmas;
        match self.first_half.take() {
            // First evaluation: an Euler step, kept for the correction.
            None => {
                let (sigma, sigma_next) = (sigmas[step_index], sigmas[step_index + 1]);
                let denoised = self.denoised(model_output, sample, sigma);
                let derivative = Zip::from(sample).and(&denoised).map_collect(|&x, &x0| (x - x0) / sigma);
                let dt = sigma_next - sigma;
                let next = Zip::from(sample).and(&derivative).map_collect(|&x, &d| x + d * dt);
                self.first_half = Some(FirstHalf { derivative, dt, sample: sample.clone() });
                next
            }
            // Second evaluation, at the next sigma: redo the step with the mean slope (Heun's method).
            Some(first) => {
                let sigma_next = sigmas[step_index];
                let denoised = self.denoised(model_output, sample, sigma_next);
                let dt = first.dt;
                Zip::from(&first.sample).and(sample).and(&denoised).and(&first.derivative).map_collect(
                    |&start, &x, &x0, &d1| {
                        let d2 = (x - x0) / sigma_next;
                        start + (d1 + d2) / 2.0 * dt
                    },
                )
            }
        }
    }

    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        self.sigmas.add_noise(original, noise, step_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedulers::config::TimestepSpacing;

    #[test]
    fn timesteps_and_sigmas_repeat_after_the_first() {
        // HeunDiscreteScheduler(SD 1.5 values, leading).set_timesteps(3): timesteps [667, 334, 334, 1, 1].
        let config = SchedulerConfig { timestep_spacing: Some(TimestepSpacing::Leading), ..SchedulerConfig::default() };
        let heun = HeunDiscrete::new(&config, 3, SigmaSchedule::Automatic);
        assert_eq!(heun.sigmas.timesteps, vec![667., 334., 334., 1., 1.]);
        let s = &heun.sigmas.sigmas;
        assert_eq!(s.len(), 6);
        assert!(s[1] == s[2] && s[3] == s[4] && s[5] == 0.0 && s[0] > s[1], "{s:?}");
        assert_eq!(heun.order(), 2);
    }

    #[test]
    fn a_linear_ode_is_solved_to_second_order() {
        // With the model predicting x0 = c x, dx/dsigma = (1 - c) x / sigma, so x(sigma) = x(s0) (sigma / s0)^(1 - c).
        // Over one step Heun's error is far below Euler's.
        let config = SchedulerConfig { timestep_spacing: Some(TimestepSpacing::Leading), ..SchedulerConfig::default() };
        let mut heun = HeunDiscrete::new(&config, 50, SigmaSchedule::Automatic);
        let c = 0.5f32;
        let mut x = ArrayD::from_elem(vec![1], 1.0f32);
        let mut noise = BatchNoise::zero(1);
        for index in 0..2 {
            // epsilon = (x - x0) / sigma, at the sigma this evaluation sees.
            let sigma = heun.sigmas.sigmas[index];
            let eps = x.mapv(|v| (v - c * v) / sigma);
            x = heun.step(&eps, index, &x, &mut noise);
        }
        let (s0, s1) = (heun.sigmas.sigmas[0] as f64, heun.sigmas.sigmas[1] as f64);
        let exact = (s1 / s0).powf(1.0 - c as f64);
        let euler = 1.0 + (1.0 - c as f64) * (s1 - s0) / s0;
        let heun_error = (x[[0]] as f64 - exact).abs();
        assert!(heun_error < 0.1 * (euler - exact).abs(), "heun {} exact {exact} euler {euler}", x[[0]]);
    }
}
