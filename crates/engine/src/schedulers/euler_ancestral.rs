//! Euler a: an Euler step down to `sigma_down`, then fresh noise back up to the next sigma
//! (diffusers' `EulerAncestralDiscreteScheduler`, k-diffusion's `sample_euler_ancestral` with eta 1).

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig};
use super::euler::{EulerSigmas, predicted_original};
use super::{BatchNoise, Scheduler, SigmaSchedule};

pub(super) struct EulerAncestralDiscrete {
    sigmas: EulerSigmas,
    prediction_type: PredictionType,
}

impl EulerAncestralDiscrete {
    /// `EulerAncestralDiscreteScheduler.set_timesteps`: Euler's timesteps and sigmas (it has no Karras option). The
    /// class refuses "sample" prediction; [`create`](super::sampler::create) does too.
    pub(super) fn new(config: &SchedulerConfig, steps: usize) -> Self {
        EulerAncestralDiscrete {
            sigmas: EulerSigmas::new(config, steps, SigmaSchedule::Automatic),
            prediction_type: config.prediction_type,
        }
    }
}

/// The split of the step from `sigma_from` to `sigma_to` into a deterministic part down to `sigma_down` and added
/// noise of standard deviation `sigma_up`, with `sigma_down^2 + sigma_up^2 = sigma_to^2` (float32, as in diffusers'
/// `step`).
fn ancestral_split(sigma_from: f32, sigma_to: f32) -> (f32, f32) {
    let (from2, to2) = (sigma_from * sigma_from, sigma_to * sigma_to);
    let sigma_up = (to2 * (from2 - to2) / from2).sqrt();
    let sigma_down = (to2 - sigma_up * sigma_up).sqrt();
    (sigma_down, sigma_up)
}

impl Scheduler for EulerAncestralDiscrete {
    fn timesteps(&self) -> &[f64] {
        &self.sigmas.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.sigmas.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        self.sigmas.scale_model_input(sample, step_index)
    }

    /// Draws noise for every step, the last included (where `sigma_up` is 0), as diffusers does, so each image's
    /// generator stays in step with diffusers'.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let sigma = self.sigmas.sigmas[step_index];
        let (sigma_down, sigma_up) = ancestral_split(sigma, self.sigmas.sigmas[step_index + 1]);
        let dt = sigma_down - sigma;
        let denoised = predicted_original(self.prediction_type, model_output, sample, sigma);
        let fresh = noise.randn(model_output.shape());
        Zip::from(sample).and(&denoised).and(&fresh).map_collect(|&x, &x0, &n| {
            let derivative = (x - x0) / sigma;
            (x + derivative * dt) + n * sigma_up
        })
    }

    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        self.sigmas.add_noise(original, noise, step_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::TorchGenerator;

    #[test]
    fn split_keeps_the_variance_of_the_target_sigma() {
        for (from, to) in [(14.6f32, 9.1f32), (1.0, 0.5), (0.3, 0.04)] {
            let (down, up) = ancestral_split(from, to);
            assert!((down * down + up * up - to * to).abs() <= 1e-5 * to * to, "{from} -> {to}");
            assert!(down < to && up > 0.0);
        }
        assert_eq!(ancestral_split(0.04, 0.0), (0.0, 0.0));
    }

    #[test]
    fn each_image_draws_from_its_own_generator() {
        // Image 1 of a batch steps exactly as it does alone with the same seed.
        let config = SchedulerConfig::default();
        let shape = [2usize, 4, 2, 2];
        let sample = ArrayD::from_shape_fn(shape.to_vec(), |index| index[1] as f32 - 1.5 + index[0] as f32);
        let output = sample.mapv(|x| 0.1 * x);
        let mut batch_generators = [TorchGenerator::new(5), TorchGenerator::new(6)];
        let mut scheduler = EulerAncestralDiscrete::new(&config, 4);
        let batch = scheduler.step(&output, 0, &sample, &mut BatchNoise::new(&mut batch_generators));

        let single_sample = sample.slice(ndarray::s![1..2, .., .., ..]).to_owned().into_dyn();
        let single_output = output.slice(ndarray::s![1..2, .., .., ..]).to_owned().into_dyn();
        let mut single_generator = [TorchGenerator::new(6)];
        let mut scheduler = EulerAncestralDiscrete::new(&config, 4);
        let single = scheduler.step(&single_output, 0, &single_sample, &mut BatchNoise::new(&mut single_generator));
        assert_eq!(batch.slice(ndarray::s![1..2, .., .., ..]).to_owned().into_dyn(), single);
    }
}
