//! LMS: the linear multistep method of order 4 on dx/dsigma = (x - x0) / sigma (k-diffusion's `sample_lms`),
//! diffusers' `LMSDiscreteScheduler`.
//!
//! Each step combines the last (up to) four slopes with weights that integrate the Lagrange polynomial through
//! their sigmas over the step. diffusers integrates with `scipy.integrate.quad`; the integrand is a polynomial of
//! degree at most 3, which 4-point Gauss-Legendre integrates exactly, so the weights agree to float rounding.

use std::collections::VecDeque;

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig};
use super::euler::{EulerSigmas, predicted_original};
use super::{BatchNoise, Scheduler, SigmaSchedule};

/// The most slopes a step combines (`step(order=4)`).
const ORDER: usize = 4;

pub(super) struct LmsDiscrete {
    /// Euler's timesteps and sigmas (LMS's `set_timesteps` is the same).
    sigmas: EulerSigmas,
    prediction_type: PredictionType,
    /// The slopes of the steps taken, oldest first, at most [`ORDER`].
    derivatives: VecDeque<ArrayD<f32>>,
}

impl LmsDiscrete {
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        LmsDiscrete {
            sigmas: EulerSigmas::new(config, steps, schedule),
            prediction_type: config.prediction_type,
            derivatives: VecDeque::with_capacity(ORDER + 1),
        }
    }

    /// The weight of the slope taken `current` steps ago in step `step_index` of `order` slopes: the integral over
    /// [sigma_i, sigma_i+1] of the Lagrange basis polynomial through the sigmas of those steps
    /// (`get_lms_coefficient`).
    fn coefficient(&self, order: usize, step_index: usize, current: usize) -> f64 {
        let sigmas = &self.sigmas.sigmas;
        let basis = |tau: f64| {
            (0..order).filter(|&k| k != current).fold(1.0, |product, k| {
                let node = sigmas[step_index - k] as f64;
                product * (tau - node) / (sigmas[step_index - current] as f64 - node)
            })
        };
        gauss_legendre_4(basis, sigmas[step_index] as f64, sigmas[step_index + 1] as f64)
    }
}

/// The integral of `f` from `a` to `b` by 4-point Gauss-Legendre quadrature, exact for polynomials up to degree 7.
fn gauss_legendre_4(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    // Nodes +-sqrt(3/7 -+ 2/7 sqrt(6/5)) with weights (18 +- sqrt(30)) / 36.
    let inner = (3.0 / 7.0 - 2.0 / 7.0 * (6.0f64 / 5.0).sqrt()).sqrt();
    let outer = (3.0 / 7.0 + 2.0 / 7.0 * (6.0f64 / 5.0).sqrt()).sqrt();
    let inner_weight = (18.0 + 30.0f64.sqrt()) / 36.0;
    let outer_weight = (18.0 - 30.0f64.sqrt()) / 36.0;
    let (half, middle) = ((b - a) / 2.0, (a + b) / 2.0);
    let at = |node: f64| f(middle + half * node);
    half * (inner_weight * (at(-inner) + at(inner)) + outer_weight * (at(-outer) + at(outer)))
}

impl Scheduler for LmsDiscrete {
    fn timesteps(&self) -> &[f64] {
        &self.sigmas.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.sigmas.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        self.sigmas.scale_model_input(sample, step_index)
    }

    /// `LMSDiscreteScheduler.step(order=4)`: the order grows with the step index up to 4; from a later first index
    /// (img2img) only the slopes taken so far count, as in diffusers' `zip`.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        _noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let sigma = self.sigmas.sigmas[step_index];
        let denoised = predicted_original(self.prediction_type, model_output, sample, sigma);
        self.derivatives.push_back(Zip::from(sample).and(&denoised).map_collect(|&x, &x0| (x - x0) / sigma));
        if self.derivatives.len() > ORDER {
            self.derivatives.pop_front();
        }
        let order = (step_index + 1).min(ORDER);
        // Newest slope first, with the weights in float32 as torch multiplies them.
        let mut update = ArrayD::<f32>::zeros(sample.shape());
        for (current, derivative) in (0..order).zip(self.derivatives.iter().rev()) {
            let weight = self.coefficient(order, step_index, current) as f32;
            update.zip_mut_with(derivative, |sum, &d| *sum += weight * d);
        }
        sample + &update
    }

    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        self.sigmas.add_noise(original, noise, step_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_is_exact_on_cubics() {
        let cubic = |x: f64| 2.0 * x * x * x - x * x + 3.0 * x - 5.0;
        let antiderivative = |x: f64| 0.5 * x.powi(4) - x.powi(3) / 3.0 + 1.5 * x * x - 5.0 * x;
        let (a, b) = (14.6, 0.03);
        let exact = antiderivative(b) - antiderivative(a);
        assert!((gauss_legendre_4(cubic, a, b) - exact).abs() < 1e-9 * exact.abs());
    }

    #[test]
    fn first_order_coefficient_is_the_step_size() {
        // With one slope the basis polynomial is 1: the weight is sigma_next - sigma (an Euler step).
        let lms = LmsDiscrete::new(&SchedulerConfig::default(), 10, SigmaSchedule::Automatic);
        let s = &lms.sigmas.sigmas;
        assert!((lms.coefficient(1, 0, 0) - (s[1] as f64 - s[0] as f64)).abs() < 1e-9);
        // The weights of one step sum to its size (the basis polynomials sum to 1).
        let sum: f64 = (0..4).map(|current| lms.coefficient(4, 5, current)).sum();
        assert!((sum - (s[6] as f64 - s[5] as f64)).abs() < 1e-9, "{sum}");
    }
}
