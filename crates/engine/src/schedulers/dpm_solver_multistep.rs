//! DPM++ 2M (Lu et al. 2022, "DPM-Solver++", Algorithm 2): diffusers' `DPMSolverMultistepScheduler` with
//! algorithm_type "dpmsolver++", solver_order 2, solver_type "midpoint", lower_order_final and final_sigmas_type
//! "zero".
//!
//! The solver works in data prediction (x0) and half-log-SNR lambda = log(alpha / sigma); the second-order update
//! reuses the previous step's x0 prediction, which this scheduler keeps.

use ndarray::{ArrayD, Zip};

use super::config::{BetaSchedule, PredictionType, SchedulerConfig, TimestepSpacing};
use super::noise_schedule::{
    NoiseSchedule, interp_at, karras_sigmas, leading_timesteps, linspace_rounded_timesteps, sigma_to_t,
    trailing_timesteps,
};
use super::{BatchNoise, Scheduler, SigmaSchedule};

pub(super) struct DpmSolverMultistep {
    /// Integer training timesteps, largest first (Karras ones may repeat).
    timesteps: Vec<f64>,
    /// VE sigmas, one more than `timesteps`: the last is 0.
    sigmas: Vec<f32>,
    prediction_type: PredictionType,
    /// The x0 prediction of the previous step, for the second-order update.
    previous_denoised: Option<ArrayD<f32>>,
    /// Steps taken so far, up to the solver order (diffusers' `lower_order_nums`).
    lower_order_nums: usize,
}

/// The VP signal and noise scales of VE noise level `sigma`: alpha = 1 / sqrt(sigma^2 + 1), sigma_vp = sigma * alpha
/// (`_sigma_to_alpha_sigma_t`).
fn alpha_sigma(sigma: f32) -> (f32, f32) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

/// lambda = log(alpha) - log(sigma), +inf at sigma 0.
fn half_log_snr(alpha: f32, sigma: f32) -> f32 {
    alpha.ln() - sigma.ln()
}

impl DpmSolverMultistep {
    /// `DPMSolverMultistepScheduler.set_timesteps(steps)` with lambda_min_clipped -inf, whose default spacing is
    /// "linspace".
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        let num_train = config.num_train_timesteps;
        // With lambda_min_clipped = -inf no timestep is clipped, so the last usable one is num_train.
        let last_timestep = num_train;
        let mut timesteps = match config.spacing_or(TimestepSpacing::Linspace) {
            // steps + 1 points, the final 0 dropped.
            TimestepSpacing::Linspace => {
                let mut points = linspace_rounded_timesteps((last_timestep - 1) as f64, steps + 1);
                points.pop();
                points
            }
            TimestepSpacing::Leading => {
                let mut points = leading_timesteps(last_timestep / (steps + 1), steps + 1, config.steps_offset);
                points.pop();
                points
            }
            TimestepSpacing::Trailing => trailing_timesteps(last_timestep, num_train, steps),
        };
        let noise_schedule = NoiseSchedule::new(config);
        let train_sigmas = noise_schedule.sigmas();
        let sigmas: Vec<f64> = match schedule {
            SigmaSchedule::Automatic => timesteps.iter().map(|&t| interp_at(t, &train_sigmas)).collect(),
            SigmaSchedule::Karras => {
                // Unlike Euler's, this Karras range is the whole training schedule, whatever the spacing.
                let sigmas = karras_sigmas(train_sigmas[0] as f64, train_sigmas[num_train - 1] as f64, steps);
                let log_sigmas = noise_schedule.log_sigmas();
                // diffusers rounds the Karras timesteps to integers, except for squaredcos_cap_v2, whose fractional
                // ones the int64 cast then truncates.
                let to_integer = match config.beta_schedule {
                    BetaSchedule::SquaredcosCapV2 => f64::trunc,
                    _ => f64::round_ties_even,
                };
                timesteps = sigmas.iter().map(|&sigma| to_integer(sigma_to_t(sigma, &log_sigmas))).collect();
                sigmas
            }
        };
        let mut sigmas: Vec<f32> = sigmas.into_iter().map(|sigma| sigma as f32).collect();
        sigmas.push(0.0);
        DpmSolverMultistep {
            timesteps,
            sigmas,
            prediction_type: config.prediction_type,
            previous_denoised: None,
            lower_order_nums: 0,
        }
    }

    /// The model output as an x0 prediction (`convert_model_output` for dpmsolver++).
    fn denoised(&self, model_output: &ArrayD<f32>, sample: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let (alpha, sigma) = alpha_sigma(self.sigmas[step_index]);
        match self.prediction_type {
            PredictionType::Epsilon => {
                Zip::from(sample).and(model_output).map_collect(|&x, &eps| (x - sigma * eps) / alpha)
            }
            PredictionType::Sample => model_output.clone(),
            PredictionType::VPrediction => {
                Zip::from(sample).and(model_output).map_collect(|&x, &v| alpha * x - sigma * v)
            }
        }
    }
}

impl Scheduler for DpmSolverMultistep {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    fn scale_model_input(&self, sample: &ArrayD<f32>, _step_index: usize) -> ArrayD<f32> {
        sample.clone()
    }

    /// First order on the first step and on the last (lower_order_final, and final sigma 0), second order between.
    /// Steps are expected in order from the first index given.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        _noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let is_last = step_index + 1 == self.timesteps.len();
        let denoised = self.denoised(model_output, sample, step_index);
        let previous = self.previous_denoised.replace(denoised.clone());

        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[step_index + 1]);
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[step_index]);
        let lambda_t = half_log_snr(alpha_t, sigma_t);
        let lambda_s0 = half_log_snr(alpha_s0, sigma_s0);
        let h = lambda_t - lambda_s0;
        let sample_scale = sigma_t / sigma_s0;
        let denoised_scale = alpha_t * ((-h).exp() - 1.0);

        let second_order = match previous {
            Some(previous) if self.lower_order_nums >= 1 && !is_last && step_index >= 1 => Some(previous),
            _ => None,
        };
        let next = match second_order {
            // dpm_solver_first_order_update: x_t = (sigma_t / sigma_s) x - alpha_t (e^-h - 1) D0
            None => Zip::from(sample).and(&denoised).map_collect(|&x, &d0| sample_scale * x - denoised_scale * d0),
            // multistep_dpm_solver_second_order_update, midpoint: D1 = (m0 - m1) / r0, r0 = h_0 / h, and
            // x_t = (sigma_t / sigma_s0) x - alpha_t (e^-h - 1) D0 - 0.5 alpha_t (e^-h - 1) D1
            Some(previous) => {
                let (alpha_s1, sigma_s1) = alpha_sigma(self.sigmas[step_index - 1]);
                let lambda_s1 = half_log_snr(alpha_s1, sigma_s1);
                let r0 = (lambda_s0 - lambda_s1) / h;
                let inverse_r0 = 1.0 / r0;
                let half_scale = 0.5 * denoised_scale;
                Zip::from(sample).and(&denoised).and(&previous).map_collect(|&x, &m0, &m1| {
                    let d1 = inverse_r0 * (m0 - m1);
                    (sample_scale * x - denoised_scale * m0) - half_scale * d1
                })
            }
        };
        self.lower_order_nums = (self.lower_order_nums + 1).min(2);
        next
    }

    /// `alpha_t * original + sigma_t * noise` at the step's sigma (`DPMSolverMultistepScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let (alpha, sigma) = alpha_sigma(self.sigmas[step_index]);
        Zip::from(original).and(noise).map_collect(|&x, &n| alpha * x + sigma * n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::noise_schedule::assert_ulps;
    use super::*;

    fn config(spacing: Option<TimestepSpacing>) -> SchedulerConfig {
        SchedulerConfig { timestep_spacing: spacing, ..SchedulerConfig::default() }
    }

    #[test]
    fn spacings_match_diffusers() {
        // DPMSolverMultistepScheduler(SD 1.5 values).set_timesteps(...) in diffusers 0.42.1.
        let dpm = DpmSolverMultistep::new(&config(None), 10, SigmaSchedule::Automatic);
        assert_eq!(dpm.timesteps, vec![999., 899., 799., 699., 599., 500., 400., 300., 200., 100.]);
        assert_ulps(dpm.sigmas[5], 1.618_279_695_510_864_3, 1);
        let dpm = DpmSolverMultistep::new(&config(Some(TimestepSpacing::Leading)), 10, SigmaSchedule::Automatic);
        assert_eq!(dpm.timesteps, vec![901., 811., 721., 631., 541., 451., 361., 271., 181., 91.]);
        let dpm = DpmSolverMultistep::new(&config(Some(TimestepSpacing::Trailing)), 7, SigmaSchedule::Automatic);
        assert_eq!(dpm.timesteps, vec![999., 856., 713., 570., 428., 285., 142.]);
    }

    #[test]
    fn karras_timesteps_are_rounded_and_ignore_spacing() {
        for spacing in [None, Some(TimestepSpacing::Leading)] {
            let dpm = DpmSolverMultistep::new(&config(spacing), 10, SigmaSchedule::Karras);
            assert_eq!(dpm.timesteps, vec![999., 916., 815., 687., 523., 327., 146., 41., 7., 0.]);
            assert_ulps(dpm.sigmas[0], 14.614_646_911_621_094, 1);
            assert_ulps(dpm.sigmas[9], 0.029_167_534_783_482_55, 1);
        }
        // squaredcos_cap_v2: truncated, so the first ones repeat.
        let cosine = SchedulerConfig { beta_schedule: BetaSchedule::SquaredcosCapV2, ..config(None) };
        let dpm = DpmSolverMultistep::new(&cosine, 10, SigmaSchedule::Karras);
        assert_eq!(dpm.timesteps, vec![998., 998., 998., 998., 997., 995., 983., 894., 259., 0.]);
    }

    #[test]
    fn last_step_returns_the_x0_prediction() {
        let mut dpm = DpmSolverMultistep::new(&config(None), 3, SigmaSchedule::Automatic);
        let sample = ArrayD::from_shape_vec(vec![2], vec![1.0f32, -3.0]).unwrap();
        let output = ArrayD::from_shape_vec(vec![2], vec![0.2f32, 0.4]).unwrap();
        let expected = dpm.denoised(&output, &sample, 2);
        let mut generators = [crate::rng::TorchGenerator::new(0)];
        let mut noise = BatchNoise::new(&mut generators);
        dpm.lower_order_nums = 2;
        assert_eq!(dpm.step(&output, 2, &sample, &mut noise), expected);
    }
}
