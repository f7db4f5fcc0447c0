//! DPM++ 2M and DPM++ 2M SDE (Lu et al. 2022, "DPM-Solver++", Algorithm 2 and its SDE variant): diffusers'
//! `DPMSolverMultistepScheduler` with algorithm_type "dpmsolver++" or "sde-dpmsolver++", solver_order 2,
//! solver_type "midpoint", lower_order_final and final_sigmas_type "zero".
//!
//! The solver works in data prediction (x0) and half-log-SNR lambda = log(alpha / sigma); the second-order update
//! reuses the previous step's x0 prediction, which this scheduler keeps. The SDE variant adds fresh noise each step
//! from the image's own generator. Also home of the timesteps and sigmas the DPM-Solver family shares
//! ([`SolverSchedule`]) and of its parameterisation helpers.

use ndarray::{ArrayD, Zip};

use super::config::{BetaSchedule, PredictionType, SchedulerConfig, TimestepSpacing};
use super::noise_schedule::{
    NoiseSchedule, exponential_sigmas, interp_at, karras_sigmas, leading_timesteps, linspace_rounded_timesteps, noised,
    sigma_to_t, trailing_timesteps,
};
use super::{BatchNoise, Scheduler, SigmaSchedule};

/// Integer timesteps and float32 sigmas as the DPM-Solver-family schedulers (multistep, singlestep, UniPC) make them
/// with lambda_min_clipped -inf and final_sigmas_type "zero".
pub(super) struct SolverSchedule {
    /// Integer training timesteps, largest first (rounded Karras ones may repeat).
    pub(super) timesteps: Vec<f64>,
    /// VE sigmas, one more than `timesteps`: the last is 0.
    pub(super) sigmas: Vec<f32>,
}

impl SolverSchedule {
    /// `set_timesteps(steps)` with `spacing`: the automatic schedule interpolates the sigmas at the spaced integer
    /// timesteps; Karras and exponential ones span the whole training range, whatever the spacing, with timesteps
    /// from `sigma_to_t` made integers by `karras_to_integer` (Karras) or the int64 cast (exponential).
    pub(super) fn new(
        config: &SchedulerConfig,
        steps: usize,
        schedule: SigmaSchedule,
        spacing: TimestepSpacing,
        karras_to_integer: fn(f64) -> f64,
    ) -> Self {
        let num_train = config.num_train_timesteps;
        // With lambda_min_clipped = -inf no timestep is clipped, so the last usable one is num_train.
        let last_timestep = num_train;
        let spaced = match spacing {
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
        let (sigma_min, sigma_max) = (train_sigmas[0] as f64, train_sigmas[num_train - 1] as f64);
        let (timesteps, sigmas): (Vec<f64>, Vec<f64>) = match schedule {
            SigmaSchedule::Automatic => {
                let sigmas = spaced.iter().map(|&t| interp_at(t, &train_sigmas)).collect();
                (spaced, sigmas)
            }
            SigmaSchedule::Karras | SigmaSchedule::Exponential => {
                let (sigmas, to_integer) = match schedule {
                    SigmaSchedule::Karras => (karras_sigmas(sigma_min, sigma_max, steps), karras_to_integer),
                    _ => (exponential_sigmas(sigma_min, sigma_max, steps), f64::trunc as fn(f64) -> f64),
                };
                let log_sigmas = noise_schedule.log_sigmas();
                let timesteps = sigmas.iter().map(|&sigma| to_integer(sigma_to_t(sigma, &log_sigmas))).collect();
                (timesteps, sigmas)
            }
        };
        let mut sigmas: Vec<f32> = sigmas.into_iter().map(|sigma| sigma as f32).collect();
        sigmas.push(0.0);
        SolverSchedule { timesteps, sigmas }
    }
}

/// The VP signal and noise scales of VE noise level `sigma`: alpha = 1 / sqrt(sigma^2 + 1), sigma_vp = sigma * alpha
/// (`_sigma_to_alpha_sigma_t`).
pub(super) fn alpha_sigma(sigma: f32) -> (f32, f32) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

/// lambda = log(alpha) - log(sigma), +inf at sigma 0.
pub(super) fn half_log_snr(alpha: f32, sigma: f32) -> f32 {
    alpha.ln() - sigma.ln()
}

/// lambda of VE noise level `sigma`.
pub(super) fn lambda_of(sigma: f32) -> f32 {
    let (alpha, sigma) = alpha_sigma(sigma);
    half_log_snr(alpha, sigma)
}

/// The model output at VE noise level `sigma` as an x0 prediction (`convert_model_output` for dpmsolver++, and
/// UniPC's with predict_x0).
pub(super) fn data_prediction(
    prediction_type: PredictionType,
    model_output: &ArrayD<f32>,
    sample: &ArrayD<f32>,
    sigma: f32,
) -> ArrayD<f32> {
    let (alpha, sigma) = alpha_sigma(sigma);
    match prediction_type {
        PredictionType::Epsilon => {
            Zip::from(sample).and(model_output).map_collect(|&x, &eps| (x - sigma * eps) / alpha)
        }
        PredictionType::Sample => model_output.clone(),
        PredictionType::VPrediction => Zip::from(sample).and(model_output).map_collect(|&x, &v| alpha * x - sigma * v),
    }
}

/// The SDE variant's noise-free part and noise scale over a step of log-SNR `h` ending at `(alpha_t, sigma_t)`:
/// `exp(-h)` extra decay on the sample, `alpha_t (1 - exp(-2h))` on x0, and `sigma_t sqrt(1 - exp(-2h))` on the
/// noise (`dpm_solver_first_order_update` for sde-dpmsolver++).
pub(super) struct SdeScales {
    pub(super) sample: f32,
    pub(super) denoised: f32,
    pub(super) noise: f32,
}

impl SdeScales {
    pub(super) fn new(h: f32, alpha_t: f32, sigma_t: f32, sigma_s: f32) -> Self {
        let decay = (-2.0 * h).exp();
        SdeScales {
            sample: sigma_t / sigma_s * (-h).exp(),
            denoised: alpha_t * (1.0 - decay),
            noise: sigma_t * (1.0 - decay).sqrt(),
        }
    }
}

/// The multistep update rule: deterministic DPM-Solver++ or its SDE variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MultistepAlgorithm {
    /// algorithm_type "dpmsolver++" (DPM++ 2M).
    DpmSolverPp,
    /// algorithm_type "sde-dpmsolver++" (DPM++ 2M SDE).
    SdeDpmSolverPp,
}

pub(super) struct DpmSolverMultistep {
    schedule: SolverSchedule,
    algorithm: MultistepAlgorithm,
    prediction_type: PredictionType,
    /// The x0 prediction of the previous step, for the second-order update.
    previous_denoised: Option<ArrayD<f32>>,
    /// Steps taken so far, up to the solver order (diffusers' `lower_order_nums`).
    lower_order_nums: usize,
}

impl DpmSolverMultistep {
    /// `DPMSolverMultistepScheduler.set_timesteps(steps)`, whose default spacing is "linspace".
    pub(super) fn new(
        config: &SchedulerConfig,
        steps: usize,
        schedule: SigmaSchedule,
        algorithm: MultistepAlgorithm,
    ) -> Self {
        // diffusers rounds the Karras timesteps to integers, except for squaredcos_cap_v2, whose fractional ones
        // the int64 cast then truncates.
        let karras_to_integer = match config.beta_schedule {
            BetaSchedule::SquaredcosCapV2 => f64::trunc,
            _ => f64::round_ties_even,
        };
        let spacing = config.spacing_or(TimestepSpacing::Linspace);
        DpmSolverMultistep {
            schedule: SolverSchedule::new(config, steps, schedule, spacing, karras_to_integer),
            algorithm,
            prediction_type: config.prediction_type,
            previous_denoised: None,
            lower_order_nums: 0,
        }
    }
}

impl Scheduler for DpmSolverMultistep {
    fn timesteps(&self) -> &[f64] {
        &self.schedule.timesteps
    }

    /// First order on the first step and on the last (lower_order_final, and final sigma 0), second order between.
    /// The SDE variant draws noise on every step, the last included (where its scale is 0), as diffusers does.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let sigmas = &self.schedule.sigmas;
        let is_last = step_index + 2 == sigmas.len();
        let denoised = data_prediction(self.prediction_type, model_output, sample, sigmas[step_index]);
        let previous = self.previous_denoised.replace(denoised.clone());

        let (alpha_t, sigma_t) = alpha_sigma(sigmas[step_index + 1]);
        let (alpha_s0, sigma_s0) = alpha_sigma(sigmas[step_index]);
        let lambda_t = half_log_snr(alpha_t, sigma_t);
        let lambda_s0 = half_log_snr(alpha_s0, sigma_s0);
        let h = lambda_t - lambda_s0;

        // multistep_dpm_solver_second_order_update, midpoint: D1 = (m0 - m1) / r0 with r0 = h_0 / h.
        let second_order = match previous {
            Some(previous) if self.lower_order_nums >= 1 && !is_last && step_index >= 1 => {
                let lambda_s1 = lambda_of(sigmas[step_index - 1]);
                let inverse_r0 = 1.0 / ((lambda_s0 - lambda_s1) / h);
                Some(Zip::from(&denoised).and(&previous).map_collect(|&m0, &m1| inverse_r0 * (m0 - m1)))
            }
            _ => None,
        };
        let next = match self.algorithm {
            MultistepAlgorithm::DpmSolverPp => {
                let sample_scale = sigma_t / sigma_s0;
                let denoised_scale = alpha_t * ((-h).exp() - 1.0);
                match second_order {
                    // x_t = (sigma_t / sigma_s) x - alpha_t (e^-h - 1) D0
                    None => {
                        Zip::from(sample).and(&denoised).map_collect(|&x, &d0| sample_scale * x - denoised_scale * d0)
                    }
                    // ... - 0.5 alpha_t (e^-h - 1) D1
                    Some(d1) => {
                        let half_scale = 0.5 * denoised_scale;
                        Zip::from(sample)
                            .and(&denoised)
                            .and(&d1)
                            .map_collect(|&x, &d0, &d1| (sample_scale * x - denoised_scale * d0) - half_scale * d1)
                    }
                }
            }
            MultistepAlgorithm::SdeDpmSolverPp => {
                let fresh = noise.randn(model_output.shape());
                let scales = SdeScales::new(h, alpha_t, sigma_t, sigma_s0);
                match second_order {
                    // x_t = (sigma_t / sigma_s) e^-h x + alpha_t (1 - e^-2h) D0 + sigma_t sqrt(1 - e^-2h) z
                    None => Zip::from(sample)
                        .and(&denoised)
                        .and(&fresh)
                        .map_collect(|&x, &d0, &z| (scales.sample * x + scales.denoised * d0) + scales.noise * z),
                    // ... + 0.5 alpha_t (1 - e^-2h) D1 before the noise
                    Some(d1) => {
                        let half_scale = 0.5 * scales.denoised;
                        Zip::from(sample).and(&denoised).and(&d1).and(&fresh).map_collect(|&x, &d0, &d1, &z| {
                            ((scales.sample * x + scales.denoised * d0) + half_scale * d1) + scales.noise * z
                        })
                    }
                }
            }
        };
        self.lower_order_nums = (self.lower_order_nums + 1).min(2);
        next
    }

    /// `alpha_t * original + sigma_t * noise` at the step's sigma (`DPMSolverMultistepScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let (alpha, sigma) = alpha_sigma(self.schedule.sigmas[step_index]);
        noised(original, noise, alpha, sigma)
    }
}

#[cfg(test)]
mod tests {
    use super::super::noise_schedule::assert_ulps;
    use super::*;

    const PP: MultistepAlgorithm = MultistepAlgorithm::DpmSolverPp;

    fn config(spacing: Option<TimestepSpacing>) -> SchedulerConfig {
        SchedulerConfig { timestep_spacing: spacing, ..SchedulerConfig::default() }
    }

    #[test]
    fn spacings_match_diffusers() {
        // DPMSolverMultistepScheduler(SD 1.5 values).set_timesteps(...) in diffusers 0.42.1.
        let dpm = DpmSolverMultistep::new(&config(None), 10, SigmaSchedule::Automatic, PP);
        assert_eq!(dpm.schedule.timesteps, vec![999., 899., 799., 699., 599., 500., 400., 300., 200., 100.]);
        assert_ulps(dpm.schedule.sigmas[5], 1.618_279_695_510_864_3, 1);
        let dpm = DpmSolverMultistep::new(&config(Some(TimestepSpacing::Leading)), 10, SigmaSchedule::Automatic, PP);
        assert_eq!(dpm.schedule.timesteps, vec![901., 811., 721., 631., 541., 451., 361., 271., 181., 91.]);
        let dpm = DpmSolverMultistep::new(&config(Some(TimestepSpacing::Trailing)), 7, SigmaSchedule::Automatic, PP);
        assert_eq!(dpm.schedule.timesteps, vec![999., 856., 713., 570., 428., 285., 142.]);
    }

    #[test]
    fn karras_timesteps_are_rounded_and_ignore_spacing() {
        for spacing in [None, Some(TimestepSpacing::Leading)] {
            let dpm = DpmSolverMultistep::new(&config(spacing), 10, SigmaSchedule::Karras, PP);
            assert_eq!(dpm.schedule.timesteps, vec![999., 916., 815., 687., 523., 327., 146., 41., 7., 0.]);
            assert_ulps(dpm.schedule.sigmas[0], 14.614_646_911_621_094, 1);
            assert_ulps(dpm.schedule.sigmas[9], 0.029_167_534_783_482_55, 1);
        }
        // squaredcos_cap_v2: truncated, so the first ones repeat.
        let cosine = SchedulerConfig { beta_schedule: BetaSchedule::SquaredcosCapV2, ..config(None) };
        let dpm = DpmSolverMultistep::new(&cosine, 10, SigmaSchedule::Karras, PP);
        assert_eq!(dpm.schedule.timesteps, vec![998., 998., 998., 998., 997., 995., 983., 894., 259., 0.]);
    }

    #[test]
    fn last_step_returns_the_x0_prediction() {
        let mut dpm = DpmSolverMultistep::new(&config(None), 3, SigmaSchedule::Automatic, PP);
        let sample = ArrayD::from_shape_vec(vec![2], vec![1.0f32, -3.0]).unwrap();
        let output = ArrayD::from_shape_vec(vec![2], vec![0.2f32, 0.4]).unwrap();
        let expected = data_prediction(PredictionType::Epsilon, &output, &sample, dpm.schedule.sigmas[2]);
        let mut generators = [crate::rng::TorchGenerator::new(0)];
        let mut noise = BatchNoise::new(&mut generators);
        dpm.lower_order_nums = 2;
        assert_eq!(dpm.step(&output, 2, &sample, &mut noise), expected);
    }
}
