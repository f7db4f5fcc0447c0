//! DPM2 (Karras et al. 2022's DPM-Solver-2 variant, k-diffusion's `sample_dpm_2`): diffusers'
//! `KDPM2DiscreteScheduler`.
//!
//! Each step takes an Euler step to the geometric midpoint of the two sigmas, evaluates the model there, and redoes
//! the whole step with the midpoint's slope. The last step is Euler alone (to sigma 0), so n steps take 2n - 1
//! evaluations, at `[t0, t(mid 1), t1, t(mid 2), t2, ...]`.
//!
//! Also home of what DPM2 a shares: the interleaved layout and the midpoint timesteps, which diffusers computes on
//! float32 tensors (see [`midpoint_timesteps`]).

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig};
use super::euler::{init_noise_sigma, predicted_original};
use super::heun::repeat_after_first;
use super::noise_schedule::{
    NoiseSchedule, SigmaSteps, SpacedTimesteps, noised, scaled_to_unit_variance, sigma_to_t_f32, torch_lerp_half,
};
use super::{BatchNoise, Scheduler, SigmaSchedule};

/// The per-step timesteps and float32 sigmas (with the final 0) of both KDPM2 schedulers.
pub(super) struct StepSigmas {
    /// As diffusers keeps them: float32 values on the automatic schedule, float64 ones (Karras rounded to integers)
    /// otherwise.
    pub(super) timesteps: Vec<f64>,
    /// `steps + 1` sigmas, the last 0.
    pub(super) sigmas: Vec<f32>,
    /// `np.log` of the training sigmas, for the midpoints' timesteps.
    pub(super) log_sigmas: Vec<f32>,
}

impl StepSigmas {
    /// `KDPM2DiscreteScheduler.set_timesteps(steps)` (and the ancestral one's) up to the interleaving: Euler's
    /// spacing and sigmas, Karras timesteps rounded, exponential ones not.
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        let SigmaSteps { timesteps, sigmas } = SigmaSteps::new(config, steps, schedule, SpacedTimesteps::Float32);
        let timesteps = match schedule {
            SigmaSchedule::Karras => timesteps.into_iter().map(f64::round_ties_even).collect(),
            SigmaSchedule::Automatic | SigmaSchedule::Exponential => timesteps,
        };
        let mut sigmas: Vec<f32> = sigmas.into_iter().map(|sigma| sigma as f32).collect();
        sigmas.push(0.0);
        StepSigmas { timesteps, sigmas, log_sigmas: NoiseSchedule::new(config).log_sigmas() }
    }
}

/// `torch.cat([values[:1], values[1:].repeat_interleave(2), values[-1:]])`: entry i is what evaluation i (or the
/// step it belongs to) reads.
pub(super) fn interleave(values: &[f32]) -> Vec<f32> {
    let mut out = repeat_after_first(values, values.len());
    out.push(values[values.len() - 1]);
    out
}

/// `exp(lerp(log(a), log(b), 0.5))` in float32: the geometric mean of `a` and `b` as torch computes it.
pub(super) fn geometric_mean(a: f32, b: f32) -> f32 {
    torch_lerp_half(a.ln(), b.ln()).exp()
}

/// The timesteps of the midpoint sigmas: diffusers runs `_sigma_to_t` on float32 tensors here (numpy calls wrapped
/// back into torch), so everything is float32 and the results are float32 values.
pub(super) fn midpoint_timesteps(midpoints: &[f32], log_sigmas: &[f32]) -> Vec<f64> {
    midpoints.iter().map(|&sigma| sigma_to_t_f32(sigma, log_sigmas) as f64).collect()
}

pub(super) struct KDpm2Discrete {
    timesteps: Vec<f64>,
    /// Interleaved sigmas and midpoint sigmas (`self.sigmas`, `self.sigmas_interpol`).
    sigmas: Vec<f32>,
    midpoints: Vec<f32>,
    init_noise_sigma: f32,
    prediction_type: PredictionType,
    /// Between a step's two evaluations: the sample the step started from.
    start: Option<ArrayD<f32>>,
}

impl KDpm2Discrete {
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        let StepSigmas { timesteps, sigmas, log_sigmas } = StepSigmas::new(config, steps, schedule);
        // sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp(): the midpoint below sigma i - 1. Entry 0 (between the
        // first sigma and the final 0) is NaN in torch and never read.
        let mut midpoints = vec![f32::NAN];
        midpoints.extend(sigmas.windows(2).map(|pair| geometric_mean(pair[1], pair[0])));
        let midpoint_ts = midpoint_timesteps(&midpoints[1..steps], &log_sigmas);
        let mut interleaved = vec![timesteps[0]];
        for (mid, &t) in midpoint_ts.iter().zip(&timesteps[1..]) {
            interleaved.extend([*mid, t]);
        }
        let sigmas = interleave(&sigmas);
        KDpm2Discrete {
            timesteps: interleaved,
            init_noise_sigma: init_noise_sigma(config, &sigmas),
            sigmas,
            midpoints: interleave(&midpoints),
            prediction_type: config.prediction_type,
            start: None,
        }
    }
}

impl Scheduler for KDpm2Discrete {
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
            Some(_) => self.midpoints[step_index],
        };
        scaled_to_unit_variance(sample, sigma)
    }

    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        _noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        match self.start.take() {
            // First evaluation: Euler to the midpoint.
            None => {
                let (sigma, midpoint) = (self.sigmas[step_index], self.midpoints[step_index + 1]);
                let denoised = predicted_original(self.prediction_type, model_output, sample, sigma);
                let dt = midpoint - sigma;
                self.start = Some(sample.clone());
                Zip::from(sample).and(&denoised).map_collect(|&x, &x0| x + (x - x0) / sigma * dt)
            }
            // Second evaluation, at the midpoint: the whole step with the midpoint's slope.
            Some(start) => {
                let (sigma, midpoint, sigma_next) =
                    (self.sigmas[step_index - 1], self.midpoints[step_index], self.sigmas[step_index]);
                let denoised = predicted_original(self.prediction_type, model_output, sample, midpoint);
                let dt = sigma_next - sigma;
                Zip::from(&start).and(sample).and(&denoised).map_collect(|&x0_start, &x, &x0| {
                    let derivative = (x - x0) / midpoint;
                    x0_start + derivative * dt
                })
            }
        }
    }

    /// `original + noise * sigma` (`KDPM2DiscreteScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let sigma = self.sigmas[step_index];
        noised(original, noise, 1.0, sigma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedulers::config::TimestepSpacing;

    #[test]
    fn midpoints_interleave_with_the_steps() {
        let config = SchedulerConfig { timestep_spacing: Some(TimestepSpacing::Leading), ..SchedulerConfig::default() };
        let dpm2 = KDpm2Discrete::new(&config, 10, SigmaSchedule::Automatic);
        assert_eq!(dpm2.timesteps.len(), 19);
        // KDPM2DiscreteScheduler(SD 1.5, leading).set_timesteps(10).timesteps[:3] in diffusers 0.42.1.
        assert_eq!(dpm2.timesteps[0], 901.0);
        assert!((dpm2.timesteps[1] - 852.783_020_019_531_2).abs() < 1e-3, "{}", dpm2.timesteps[1]);
        assert_eq!(dpm2.timesteps[2], 801.0);
        // The midpoint sigma is the geometric mean of the step's two sigmas.
        let (s0, s1) = (dpm2.sigmas[0], dpm2.sigmas[1]);
        assert!((dpm2.midpoints[1] - (s0 * s1).sqrt()).abs() < 1e-5);
    }
}
