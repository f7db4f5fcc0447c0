//! DPM2 a (k-diffusion's `sample_dpm_2_ancestral`, eta 1): diffusers' `KDPM2AncestralDiscreteScheduler`.
//!
//! Each step splits the move to the next sigma into a deterministic part down to sigma_down and fresh noise of
//! sigma_up (as Euler a does), and takes the deterministic part as DPM2 does: Euler to the geometric midpoint of
//! sigma and sigma_down, a model evaluation there, the whole step with the midpoint's slope; then the noise, from the
//! image's own generator. With eta 1, sigma_down = sigma_next^2 / sigma, so the midpoint is sigma_next itself and its
//! timestep equals the next step's up to float32 rounding. The last step is Euler alone (to sigma 0): 2n - 1
//! evaluations for n steps.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig};
use super::euler::{init_noise_sigma, predicted_original};
use super::k_dpm_2::{StepSigmas, geometric_mean, interleave, midpoint_timesteps};
use super::noise_schedule::{noised, scaled_to_unit_variance};
use super::{BatchNoise, Scheduler, SigmaSchedule};

pub(super) struct KDpm2AncestralDiscrete {
    timesteps: Vec<f64>,
    /// Interleaved per-step sigmas, midpoint sigmas, sigma_up and sigma_down (`self.sigmas`, `self.sigmas_interpol`,
    /// `self.sigmas_up`, `self.sigmas_down`).
    sigmas: Vec<f32>,
    midpoints: Vec<f32>,
    sigmas_up: Vec<f32>,
    sigmas_down: Vec<f32>,
    init_noise_sigma: f32,
    prediction_type: PredictionType,
    /// Between a step's two evaluations: the sample the step started from.
    start: Option<ArrayD<f32>>,
}

impl KDpm2AncestralDiscrete {
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        let StepSigmas { timesteps, sigmas, log_sigmas } = StepSigmas::new(config, steps, schedule);
        // diffusers: sigma_up = sqrt(next^2 (sigma^2 - next^2) / sigma^2), sigma_down = sqrt(next^2 - up^2) in float32.
        // With eta 1 that is sigma_down = next^2 / sigma and sigma_up = next sqrt(1 - (next / sigma)^2), computed
        // so here, in float64: float32's next^2 - up^2 cancels to 0 when next is far below sigma (a cosine schedule
        // in 2 steps), and diffusers then divides 0 by 0 into NaN timesteps. Elsewhere the two agree to float32
        // rounding. After the final 0 both are 0.
        let (mut sigmas_up, mut sigmas_down) = (Vec::with_capacity(steps + 1), Vec::with_capacity(steps + 1));
        for (i, &sigma) in sigmas.iter().enumerate() {
            let (sigma, next) = (sigma as f64, sigmas.get(i + 1).map_or(0.0, |&next| next as f64));
            let (up, down) = if i == steps {
                (0.0, 0.0)
            } else {
                let ratio = next / sigma;
                (next * (1.0 - ratio * ratio).sqrt(), next * ratio)
            };
            sigmas_up.push(up as f32);
            sigmas_down.push(down as f32);
        }
        // sigmas.log().lerp(sigmas_down.log(), 0.5).exp(), the last two set to 0.
        let mut midpoints: Vec<f32> =
            sigmas.iter().zip(&sigmas_down).map(|(&s, &down)| geometric_mean(s, down)).collect();
        midpoints[steps - 1] = 0.0;
        midpoints[steps] = 0.0;
        // [t0, t(mid 0), t1, t(mid 1), t2, ..., t(mid n-2), t(n-1)]
        let midpoint_ts = midpoint_timesteps(&midpoints[..steps - 1], &log_sigmas);
        let mut interleaved = vec![timesteps[0]];
        for (mid, &t) in midpoint_ts.iter().zip(&timesteps[1..]) {
            interleaved.extend([*mid, t]);
        }
        let sigmas = interleave(&sigmas);
        KDpm2AncestralDiscrete {
            timesteps: interleaved,
            init_noise_sigma: init_noise_sigma(config, &sigmas),
            sigmas,
            midpoints: interleave(&midpoints),
            sigmas_up: interleave(&sigmas_up),
            sigmas_down: interleave(&sigmas_down),
            prediction_type: config.prediction_type,
            start: None,
        }
    }
}

impl Scheduler for KDpm2AncestralDiscrete {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.init_noise_sigma
    }

    fn order(&self) -> usize {
        2
    }

    /// `sample / sqrt(sigma^2 + 1)` at the step's sigma, or at the midpoint for the second evaluation.
    fn scale_model_input(&self, sample: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let sigma = match self.start {
            None => self.sigmas[step_index],
            Some(_) => self.midpoints[step_index - 1],
        };
        scaled_to_unit_variance(sample, sigma)
    }

    /// Draws noise on the second evaluation of each step only, as diffusers does.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        match self.start.take() {
            // First evaluation: Euler to the midpoint.
            None => {
                let (sigma, midpoint) = (self.sigmas[step_index], self.midpoints[step_index]);
                let denoised = predicted_original(self.prediction_type, model_output, sample, sigma);
                let dt = midpoint - sigma;
                self.start = Some(sample.clone());
                Zip::from(sample).and(&denoised).map_collect(|&x, &x0| x + (x - x0) / sigma * dt)
            }
            // Second evaluation, at the midpoint: the step to sigma_down with the midpoint's slope, then the noise.
            Some(start) => {
                let before = step_index - 1;
                let (sigma, midpoint) = (self.sigmas[before], self.midpoints[before]);
                let (sigma_up, sigma_down) = (self.sigmas_up[before], self.sigmas_down[before]);
                let denoised = predicted_original(self.prediction_type, model_output, sample, midpoint);
                let dt = sigma_down - sigma;
                let fresh = noise.randn(model_output.shape());
                Zip::from(&start).and(sample).and(&denoised).and(&fresh).map_collect(|&x_start, &x, &x0, &n| {
                    let derivative = (x - x0) / midpoint;
                    (x_start + derivative * dt) + n * sigma_up
                })
            }
        }
    }

    /// `original + noise * sigma` (`KDPM2AncestralDiscreteScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let sigma = self.sigmas[step_index];
        noised(original, noise, 1.0, sigma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_midpoint_is_the_next_sigma() {
        let dpm2_a = KDpm2AncestralDiscrete::new(&SchedulerConfig::default(), 10, SigmaSchedule::Automatic);
        assert_eq!(dpm2_a.timesteps.len(), 19);
        for step in 0..8 {
            let (midpoint, next) = (dpm2_a.midpoints[2 * step], dpm2_a.sigmas[2 * step + 1]);
            assert!((midpoint - next).abs() <= 1e-5 * next, "step {step}: {midpoint} vs {next}");
            assert!((dpm2_a.timesteps[2 * step + 1] - dpm2_a.timesteps[2 * step + 2]).abs() < 1e-2);
        }
        // sigma_down^2 + sigma_up^2 = sigma_next^2.
        let (up, down, next) = (dpm2_a.sigmas_up[2], dpm2_a.sigmas_down[2], dpm2_a.sigmas[3]);
        assert!((up * up + down * down - next * next).abs() < 1e-4 * next * next);
    }
}
