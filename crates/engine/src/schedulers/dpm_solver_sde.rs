//! DPM++ SDE (k-diffusion's `sample_dpmpp_sde`: DPM-Solver++(2S) with ancestral noise, eta 1, r = 1/2): diffusers'
//! `DPMSolverSDEScheduler`.
//!
//! Each step evaluates the model at the step's sigma and at the midpoint in log sigma: an ancestral DPM-Solver++ step
//! to the midpoint, then the whole step from the start with the midpoint's x0 prediction, each followed by noise of
//! its sigma_up. The last step is Euler alone (to sigma 0): 2n - 1 evaluations for n steps.
//!
//! The noise. diffusers draws it from torchsde's Brownian tree (`BrownianTreeNoiseSampler`, seeded by its own
//! `noise_sampler_seed`, random when unset, never from the pipeline's generator): a draw is the increment of a
//! Brownian motion W, indexed by sigma, over the interval being stepped, normalised to unit variance:
//! `(W(mid) - W(sigma)) / sqrt(sigma - mid)`, then `(W(next) - W(sigma)) / sqrt(sigma - next)`. The tree's sample
//! path cannot be reproduced from a seed's generator, but its law can: here the first draw is standard normal
//! noise z1 from the image's own generator ([`BatchNoise`]), the second adds the increment over [next, mid] from a
//! fresh z2, `sqrt((sigma - mid) / (sigma - next)) z1 + sqrt((mid - next) / (sigma - next)) z2`, so the two draws
//! of a step are correlated as diffusers' are, and steps (disjoint intervals) are independent. The tests compare
//! the deterministic part with diffusers run on zero noise (the reference patches the Brownian sampler to return
//! zeros), check the variance (sigma_up^2) and correlation of the noise, and check that the pipeline's images
//! spread around the zero-noise one as diffusers' do for different Brownian seeds.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig};
use super::euler::{init_noise_sigma, predicted_original};
use super::heun::repeat_after_first;
use super::noise_schedule::{NoiseSchedule, SigmaSteps, SpacedTimesteps, noised, scaled_to_unit_variance, sigma_to_t};
use super::{BatchNoise, Scheduler, SigmaSchedule};

pub(super) struct DpmSolverSde {
    /// `[t0, t(mid 0), t1, t(mid 1), ..., t(mid n-2), t(n-1)]`, float64 as diffusers keeps them.
    timesteps: Vec<f64>,
    /// `[s0, s1, s1, ..., s(n-1), s(n-1), 0]`: entry i is the sigma evaluation i's step reads.
    sigmas: Vec<f32>,
    init_noise_sigma: f32,
    prediction_type: PredictionType,
    /// Between a step's two evaluations: the sample the step started from, the midpoint sigma and the first noise.
    first_half: Option<FirstHalf>,
}

struct FirstHalf {
    start: ArrayD<f32>,
    midpoint: f32,
    noise: ArrayD<f32>,
}

/// The second draw of a step from sigma to `sigma_next` through `midpoint`, given the first (`first`, the normalised
/// Brownian increment over [midpoint, sigma]) and fresh standard normal noise: the normalised increment over
/// [sigma_next, sigma], which contains the first.
fn second_brownian_draw(
    first: &ArrayD<f32>,
    fresh: &ArrayD<f32>,
    sigma: f32,
    midpoint: f32,
    sigma_next: f32,
) -> ArrayD<f32> {
    let (sigma, midpoint, sigma_next) = (sigma as f64, midpoint as f64, sigma_next as f64);
    let span = sigma - sigma_next;
    let shared = ((sigma - midpoint) / span).sqrt() as f32;
    let own = ((midpoint - sigma_next) / span).sqrt() as f32;
    Zip::from(first).and(fresh).map_collect(|&z1, &z2| shared * z1 + own * z2)
}

/// `t = -log(sigma)`, the time variable of k-diffusion's DPM-Solver++ samplers (`t_fn`; float32 here).
fn t_of(sigma: f32) -> f32 {
    -sigma.ln()
}

/// `sigma = exp(-t)` (`sigma_fn`).
fn sigma_of(t: f32) -> f32 {
    (-t).exp()
}

impl DpmSolverSde {
    /// `DPMSolverSDEScheduler.set_timesteps(steps)`: Euler's spacing and sigmas in float64, with the midpoints'
    /// timesteps in the odd places (`_second_order_timesteps`).
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        let SigmaSteps { timesteps, sigmas } = SigmaSteps::new(config, steps, schedule, SpacedTimesteps::Float64);
        let log_sigmas = NoiseSchedule::new(config).log_sigmas();
        // The midpoint in t = -log(sigma) of each pair of consecutive sigmas, in float64.
        let midpoint_ts = sigmas.windows(2).map(|pair| {
            let (t, t_next) = (-pair[0].ln(), -pair[1].ln());
            sigma_to_t((-(t + (t_next - t) * 0.5)).exp(), &log_sigmas)
        });
        let mut interleaved = vec![timesteps[0]];
        for (mid, &t) in midpoint_ts.zip(&timesteps[1..]) {
            interleaved.extend([mid, t]);
        }
        // torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]]) with the final 0.
        let mut sigmas: Vec<f32> = sigmas.into_iter().map(|sigma| sigma as f32).collect();
        sigmas.push(0.0);
        let last = sigmas.len() - 1;
        let mut interleaved_sigmas = repeat_after_first(&sigmas[..last], last);
        interleaved_sigmas.push(0.0);
        DpmSolverSde {
            timesteps: interleaved,
            init_noise_sigma: init_noise_sigma(config, &interleaved_sigmas),
            sigmas: interleaved_sigmas,
            prediction_type: config.prediction_type,
            first_half: None,
        }
    }
}

/// The split of an ancestral step from `sigma_from` to `sigma_to` into a deterministic part down to sigma_down and
/// noise of sigma_up, with sigma_down^2 + sigma_up^2 = sigma_to^2 and sigma_up at most sigma_to (float32, as the
/// scheduler's `step`).
fn ancestral_split(sigma_from: f32, sigma_to: f32) -> (f32, f32) {
    let (from2, to2) = (sigma_from * sigma_from, sigma_to * sigma_to);
    let sigma_up = sigma_to.min((to2 * (from2 - to2) / from2).sqrt());
    let sigma_down = (to2 - sigma_up * sigma_up).sqrt();
    (sigma_down, sigma_up)
}

impl Scheduler for DpmSolverSde {
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
        let sigma = match &self.first_half {
            None => self.sigmas[step_index],
            Some(first) => first.midpoint,
        };
        scaled_to_unit_variance(sample, sigma)
    }

    /// Draws noise after each evaluation but the last (the Euler step to sigma 0), as diffusers draws from its tree.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let first_half = self.first_half.take();
        let (sigma, sigma_next) = match first_half {
            None => (self.sigmas[step_index], self.sigmas[step_index + 1]),
            Some(_) => (self.sigmas[step_index - 1], self.sigmas[step_index]),
        };
        let (t, t_next) = (t_of(sigma), t_of(sigma_next));
        let t_midpoint = t + (t_next - t) * 0.5;
        let sigma_input = match first_half {
            None => sigma,
            Some(_) => sigma_of(t_midpoint),
        };
        let denoised = predicted_original(self.prediction_type, model_output, sample, sigma_input);
        if sigma_next == 0.0 {
            // The last step: Euler to sigma 0.
            let dt = sigma_next - sigma;
            return Zip::from(sample).and(&denoised).map_collect(|&x, &x0| x + (x - x0) / sigma * dt);
        }
        // The first evaluation goes to the midpoint; the second redoes the step from its start.
        let t_to = if first_half.is_none() { t_midpoint } else { t_next };
        let (sigma_from, sigma_to) = (sigma_of(t), sigma_of(t_to));
        let (sigma_down, sigma_up) = ancestral_split(sigma_from, sigma_to);
        let t_down = t_of(sigma_down);
        // DPM-Solver++ first order from t to t_down: (sigma_down / sigma) x - expm1(t - t_down) x0.
        let sample_scale = sigma_of(t_down) / sigma_of(t);
        let denoised_scale = (t - t_down).exp_m1();
        let fresh = noise.randn(model_output.shape());
        let update = |start: &ArrayD<f32>, noise: &ArrayD<f32>| {
            Zip::from(start)
                .and(&denoised)
                .and(noise)
                .map_collect(|&x, &x0, &z| (sample_scale * x - denoised_scale * x0) + z * sigma_up)
        };
        match first_half {
            None => {
                let next = update(sample, &fresh);
                self.first_half = Some(FirstHalf { start: sample.clone(), midpoint: sigma_to, noise: fresh });
                next
            }
            Some(first) => {
                let noise = second_brownian_draw(&first.noise, &fresh, sigma_from, first.midpoint, sigma_to);
                update(&first.start, &noise)
            }
        }
    }

    /// `original + noise * sigma` (`DPMSolverSDEScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let sigma = self.sigmas[step_index];
        noised(original, noise, 1.0, sigma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::TorchGenerator;
    use crate::schedulers::config::TimestepSpacing;

    fn leading() -> SchedulerConfig {
        SchedulerConfig { timestep_spacing: Some(TimestepSpacing::Leading), ..SchedulerConfig::default() }
    }

    #[test]
    fn midpoints_lie_between_the_steps() {
        let sde = DpmSolverSde::new(&leading(), 10, SigmaSchedule::Automatic);
        assert_eq!(sde.timesteps.len(), 19);
        assert_eq!(sde.timesteps[0], 901.0);
        assert_eq!(sde.timesteps[2], 801.0);
        assert!(sde.timesteps[1] < 901.0 && sde.timesteps[1] > 801.0, "{}", sde.timesteps[1]);
    }

    /// Runs every evaluation of `scheduler` on `sample` with a fixed model, drawing noise from `noise`; returns the
    /// sample after each evaluation.
    fn trajectory(sample: &ArrayD<f32>, noise: &mut BatchNoise<'_>) -> Vec<ArrayD<f32>> {
        let mut sde = DpmSolverSde::new(&leading(), 10, SigmaSchedule::Automatic);
        let mut x = sample.clone();
        let mut out = Vec::new();
        for index in 0..sde.timesteps().len() {
            let scaled = sde.scale_model_input(&x, index);
            let output = scaled.mapv(|v| 0.3 * v + 0.1);
            x = sde.step(&output, index, &x, noise);
            out.push(x.clone());
        }
        out
    }

    #[test]
    fn the_noise_each_evaluation_adds_has_variance_sigma_up_squared() {
        // One step from the same sample with and without noise: the difference is the noise times sigma_up, where
        // sigma_up is k-diffusion's for the half step (sigma to the midpoint) and then for the whole step.
        let shape = [2usize, 4, 32, 32];
        let sample = TorchGenerator::new(5).randn(&shape).mapv(|v| v * 8.0);
        let mut generators = [TorchGenerator::new(7), TorchGenerator::new(8)];
        let noisy = trajectory(&sample, &mut BatchNoise::new(&mut generators));
        let quiet = trajectory(&sample, &mut BatchNoise::zero(2));
        let sde = DpmSolverSde::new(&leading(), 10, SigmaSchedule::Automatic);
        let (sigma, sigma_next) = (sde.sigmas[0] as f64, sde.sigmas[1] as f64);
        let midpoint = (sigma * sigma_next).sqrt();
        // sigma_up^2 = to^2 (from^2 - to^2) / from^2.
        let expected_up2 = midpoint * midpoint * (sigma * sigma - midpoint * midpoint) / (sigma * sigma);
        let difference = &noisy[0] - &quiet[0];
        let n = difference.len() as f64;
        let mean = difference.iter().map(|&d| d as f64).sum::<f64>() / n;
        let variance = difference.iter().map(|&d| (d as f64 - mean).powi(2)).sum::<f64>() / n;
        // 8192 draws: the sample variance is within 5% of the true one with overwhelming probability.
        assert!((variance / expected_up2 - 1.0).abs() < 0.05, "variance {variance} vs sigma_up^2 {expected_up2}");
        assert!(mean.abs() < 4.0 * (expected_up2 / n).sqrt(), "mean {mean}");
        // The noise is each image's own: image 1 alone with generator 8 takes the same first step.
        let alone = trajectory(
            &sample.slice(ndarray::s![1..2, .., .., ..]).to_owned().into_dyn(),
            &mut BatchNoise::new(&mut [TorchGenerator::new(8)]),
        );
        assert_eq!(noisy[0].slice(ndarray::s![1..2, .., .., ..]).to_owned().into_dyn(), alone[0]);
    }

    #[test]
    fn the_two_draws_of_a_step_are_correlated_as_brownian_increments() {
        // Over [1, 4] through 2: the second draw's variance is 1 and its correlation with the first is
        // sqrt((4 - 2) / (4 - 1)), as for (W(2) - W(4)) / sqrt(2) and (W(1) - W(4)) / sqrt(3).
        let shape = [2usize, 4, 64, 64];
        let mut generators = [TorchGenerator::new(1), TorchGenerator::new(2)];
        let mut noise = BatchNoise::new(&mut generators);
        let first = noise.randn(&shape);
        let second = second_brownian_draw(&first, &noise.randn(&shape), 4.0, 2.0, 1.0);
        let n = first.len() as f64;
        let variance = second.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
        let covariance = first.iter().zip(&second).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() / n;
        // 32768 draws: both within 3% of the truth with overwhelming probability.
        assert!((variance - 1.0).abs() < 0.03, "variance {variance}");
        assert!((covariance - (2.0f64 / 3.0).sqrt()).abs() < 0.03, "covariance {covariance}");
    }

    #[test]
    fn the_last_evaluation_adds_no_noise() {
        let sample = TorchGenerator::new(3).randn(&[1, 4, 4, 4]);
        let mut generators = [TorchGenerator::new(1)];
        let noisy = trajectory(&sample, &mut BatchNoise::new(&mut generators));
        let quiet = trajectory(&sample, &mut BatchNoise::zero(1));
        // Same sample before the last (Euler) evaluation gives the same result: feed the noisy one to both.
        let mut sde = DpmSolverSde::new(&leading(), 10, SigmaSchedule::Automatic);
        let last = sde.timesteps().len() - 1;
        let before = &noisy[last - 1];
        let output = before.mapv(|v| 0.3 * v + 0.1);
        let mut generators = [TorchGenerator::new(9)];
        let with_noise = sde.step(&output, last, before, &mut BatchNoise::new(&mut generators));
        let without = sde.step(&output, last, before, &mut BatchNoise::zero(1));
        assert_eq!(with_noise, without);
        assert_ne!(noisy[last], quiet[last]);
    }
}
