//! Euler (Karras et al. 2022, Algorithm 2 without churn): diffusers' `EulerDiscreteScheduler`.
//!
//! Also home of [`EulerSigmas`], the timesteps and sigmas that the sigma-parameterised (k-diffusion style) samplers
//! share: the model input is scaled by `1 / sqrt(sigma^2 + 1)` and noise is added as `x + sigma * noise`.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use super::noise_schedule::{SigmaSteps, SpacedTimesteps, noised, scaled_to_unit_variance};
use super::{BatchNoise, Scheduler, SigmaSchedule};

/// Timesteps and sigmas as `EulerDiscreteScheduler.set_timesteps` makes them (float32), the final sigma zero.
pub(super) struct EulerSigmas {
    /// Float32 values, fractional for the Karras schedule and for "linspace" spacing.
    pub(super) timesteps: Vec<f64>,
    /// One more than `timesteps`: the last is 0.
    pub(super) sigmas: Vec<f32>,
    pub(super) init_noise_sigma: f32,
}

impl EulerSigmas {
    /// `EulerDiscreteScheduler.set_timesteps(steps)` (interpolation_type "linear", final_sigmas_type "zero"), whose
    /// default spacing is "linspace"; `EulerAncestralDiscreteScheduler.set_timesteps` is the same on the automatic
    /// schedule, and so are LMS's.
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        let SigmaSteps { timesteps, sigmas } = SigmaSteps::new(config, steps, schedule, SpacedTimesteps::Float32);
        let timesteps = timesteps.into_iter().map(|t| t as f32 as f64).collect();
        let mut sigmas: Vec<f32> = sigmas.into_iter().map(|sigma| sigma as f32).collect();
        sigmas.push(0.0);
        let init_noise_sigma = init_noise_sigma(config, &sigmas);
        EulerSigmas { timesteps, sigmas, init_noise_sigma }
    }

    /// `sample / (sigma^2 + 1) ** 0.5` (`scale_model_input`).
    pub(super) fn scale_model_input(&self, sample: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let sigma = self.sigmas[step_index];
        scaled_to_unit_variance(sample, sigma)
    }

    /// `original + noise * sigma` (`add_noise`).
    pub(super) fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let sigma = self.sigmas[step_index];
        noised(original, noise, 1.0, sigma)
    }
}

/// The `init_noise_sigma` of diffusers' sigma-parameterised schedulers: the largest sigma, and for "leading" spacing
/// `sqrt(max^2 + 1)` (the start treated as a VP sample scaled up).
pub(super) fn init_noise_sigma(config: &SchedulerConfig, sigmas: &[f32]) -> f32 {
    let max_sigma = sigmas.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    match config.spacing_or(TimestepSpacing::Linspace) {
        TimestepSpacing::Linspace | TimestepSpacing::Trailing => max_sigma,
        TimestepSpacing::Leading => (max_sigma * max_sigma + 1.0).sqrt(),
    }
}

/// The denoised sample the model's output implies at noise level `sigma` (the `pred_original_sample` of
/// `EulerDiscreteScheduler.step`, churn 0 so sigma_hat = sigma).
pub(super) fn predicted_original(
    prediction_type: PredictionType,
    model_output: &ArrayD<f32>,
    sample: &ArrayD<f32>,
    sigma: f32,
) -> ArrayD<f32> {
    match prediction_type {
        PredictionType::Epsilon => Zip::from(sample).and(model_output).map_collect(|&x, &eps| x - sigma * eps),
        // x0 = -sigma / sqrt(sigma^2 + 1) * v + x / (sigma^2 + 1)
        PredictionType::VPrediction => {
            let variance = sigma * sigma + 1.0;
            let v_scale = -sigma / variance.sqrt();
            Zip::from(sample).and(model_output).map_collect(|&x, &v| v * v_scale + x / variance)
        }
        PredictionType::Sample => model_output.clone(),
    }
}

pub(super) struct EulerDiscrete {
    sigmas: EulerSigmas,
    prediction_type: PredictionType,
}

impl EulerDiscrete {
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        EulerDiscrete { sigmas: EulerSigmas::new(config, steps, schedule), prediction_type: config.prediction_type }
    }
}

impl Scheduler for EulerDiscrete {
    fn timesteps(&self) -> &[f64] {
        &self.sigmas.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.sigmas.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        self.sigmas.scale_model_input(sample, step_index)
    }

    /// One Euler step of dx/dsigma = (x - x0) / sigma from sigma to the next sigma.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        _noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let sigma = self.sigmas.sigmas[step_index];
        let dt = self.sigmas.sigmas[step_index + 1] - sigma;
        let denoised = predicted_original(self.prediction_type, model_output, sample, sigma);
        Zip::from(sample).and(&denoised).map_collect(|&x, &x0| {
            let derivative = (x - x0) / sigma;
            x + derivative * dt
        })
    }

    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        self.sigmas.add_noise(original, noise, step_index)
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
    fn sd15_file_without_spacing_uses_linspace() {
        // EulerDiscreteScheduler.from_pretrained(SD 1.5).set_timesteps(10): linspace, init sigma = max sigma.
        let sigmas = EulerSigmas::new(&config(None), 10, SigmaSchedule::Automatic);
        assert_eq!(sigmas.timesteps, vec![999., 888., 777., 666., 555., 444., 333., 222., 111., 0.]);
        assert_ulps(sigmas.init_noise_sigma, 14.614_646_911_621_094, 1);
        assert_eq!(sigmas.sigmas.len(), 11);
        assert_eq!(sigmas.sigmas[10], 0.0);
    }

    #[test]
    fn leading_init_sigma_is_the_vp_rescaling() {
        let sigmas = EulerSigmas::new(&config(Some(TimestepSpacing::Leading)), 10, SigmaSchedule::Automatic);
        let max = sigmas.sigmas[0];
        assert_eq!(sigmas.init_noise_sigma, (max * max + 1.0).sqrt());
    }

    /// diffusers 0.42.1: `EulerDiscreteScheduler(SD 1.5 values, use_karras_sigmas=True)`, `set_timesteps(10)`:
    /// float32 timesteps and sigmas, for "leading" spacing and for the class default ("linspace").
    #[test]
    fn karras_matches_diffusers() {
        /// Spacing, timesteps, sigmas, init_noise_sigma.
        type Case = (Option<TimestepSpacing>, [f64; 10], [f64; 11], f64);
        let cases: [Case; 2] = [
            (
                Some(TimestepSpacing::Leading),
                [
                    901.0,
                    815.0175170898438,
                    710.50048828125,
                    581.6551513671875,
                    426.5304260253906,
                    260.2430114746094,
                    121.14097595214844,
                    40.272430419921875,
                    9.30146598815918,
                    1.0000001192092896,
                ],
                [
                    8.390686988830566,
                    5.477698802947998,
                    3.478407144546509,
                    2.1403043270111084,
                    1.2701091766357422,
                    0.7226703763008118,
                    0.3913528323173523,
                    0.19980022311210632,
                    0.09496716409921646,
                    0.04131447896361351,
                    0.0,
                ],
                8.450066566467285,
            ),
            (
                None,
                [
                    999.0,
                    916.2840576171875,
                    815.0449829101562,
                    687.1532592773438,
                    523.198974609375,
                    327.1472473144531,
                    145.93905639648438,
                    40.856876373291016,
                    6.732410907745361,
                    0.0,
                ],
                [
                    14.614646911621094,
                    9.102937698364258,
                    5.478401184082031,
                    3.1686110496520996,
                    1.7494231462478638,
                    0.9140765070915222,
                    0.44692090153694153,
                    0.20139986276626587,
                    0.08191105723381042,
                    0.02916753478348255,
                    0.0,
                ],
                14.614646911621094,
            ),
        ];
        for (spacing, timesteps, sigmas, init) in cases {
            let karras = EulerSigmas::new(&config(spacing), 10, SigmaSchedule::Karras);
            for (got, want) in karras.timesteps.iter().zip(timesteps) {
                // Timesteps go through two logarithms (numpy's SIMD log vs libm): allow a few float32 ulps.
                assert!((got - want).abs() <= 1e-4 * want.max(1.0), "{spacing:?}: timestep {got} vs {want}");
            }
            for (got, want) in karras.sigmas.iter().zip(sigmas) {
                assert_ulps(*got, want, 2);
            }
            assert_ulps(karras.init_noise_sigma, init, 2);
        }
    }

    #[test]
    fn v_prediction_of_the_true_velocity_recovers_the_clean_sample() {
        // x = x0 + sigma * eps and v = alpha * eps - sigma_vp * x0, where alpha = 1 / sqrt(sigma^2 + 1) and
        // sigma_vp = sigma * alpha.
        let (x0, eps, sigma) = (0.7f32, -1.3f32, 2.5f32);
        let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
        let v = alpha * eps - sigma * alpha * x0;
        let sample = ArrayD::from_elem(vec![1], x0 + sigma * eps);
        let denoised = predicted_original(PredictionType::VPrediction, &ArrayD::from_elem(vec![1], v), &sample, sigma);
        assert!((denoised[[0]] - x0).abs() < 1e-5);
    }
}
