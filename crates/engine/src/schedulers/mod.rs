//! Samplers ("schedulers" in diffusers' words) behind one trait.
//!
//! Three separate axes, as in stable-diffusion.cpp's denoiser: the training noise schedule and the model's
//! parameterisation come from the model's `scheduler_config.json` ([`SchedulerConfig`]); the sigma schedule
//! (automatic, Karras, ...) is the user's [`SigmaSchedule`]; the update rule is the [`Sampler`]. Each sampler
//! matches its diffusers scheduler step for step (tests/fixtures/reference/schedulers).
//!
//! The trait is diffusers' interface in Rust: the timesteps the model is evaluated at (a two-evaluation sampler
//! such as Heun lists a timestep twice), `scale_model_input`, `step`, `add_noise`. Multistep samplers keep their
//! history inside; ancestral ones draw noise per image from that image's own generator ([`BatchNoise`]).

mod config;
#[cfg(test)]
mod contract_tests;
mod ddim;
mod dpm_solver_multistep;
mod euler;
mod euler_ancestral;
mod noise_schedule;
mod sampler;

use ndarray::ArrayD;

pub use config::{BetaSchedule, PredictionType, SchedulerConfig, TimestepSpacing};
pub use sampler::{Sampler, SigmaSchedule, known_sampler_names, parse_sampler, sampler_label};

use crate::error::Result;
use crate::rng::TorchGenerator;

/// The generators of a batch, one per image (DESIGN.md: image i of a batch uses seed s + i with its own generator,
/// for its initial latents and any per-step noise).
pub struct BatchNoise<'a> {
    generators: &'a mut [TorchGenerator],
}

impl<'a> BatchNoise<'a> {
    pub fn new(generators: &'a mut [TorchGenerator]) -> Self {
        BatchNoise { generators }
    }

    /// Standard normal noise of `shape`, whose first axis is the batch: image i draws `shape[1..]` from generator i,
    /// as diffusers' `randn_tensor` does with a list of generators.
    pub fn randn(&mut self, shape: &[usize]) -> ArrayD<f32> {
        assert_eq!(shape[0], self.generators.len(), "one generator per image of the batch");
        let per_image: usize = shape[1..].iter().product();
        let mut values = vec![0.0f32; per_image * shape[0]];
        for (chunk, generator) in values.chunks_mut(per_image.max(1)).zip(self.generators.iter_mut()) {
            generator.fill_randn(chunk);
        }
        ArrayD::from_shape_vec(shape, values).expect("values drawn for the whole shape")
    }
}

/// One sampler configured for one generation.
pub trait Scheduler: Send {
    /// The timesteps the model is evaluated at, in order. `step_index` below indexes this list.
    fn timesteps(&self) -> &[f64];

    /// The standard deviation of the initial noise (multiplies the seeded `randn` latents).
    fn init_noise_sigma(&self) -> f32;

    /// The model input for `sample` at `step_index` (for sigma-based samplers, divided by sqrt(sigma^2 + 1)).
    fn scale_model_input(&self, sample: &ArrayD<f32>, step_index: usize) -> ArrayD<f32>;

    /// Advances `sample` by one model evaluation; returns the new sample.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32>;

    /// `original` noised to the level of timestep `step_index` (img2img's starting point).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32>;
}

/// Creates `sampler` for `steps` model steps on a model with `config`.
pub fn create_scheduler(
    sampler: Sampler,
    schedule: SigmaSchedule,
    config: &SchedulerConfig,
    steps: usize,
) -> Result<Box<dyn Scheduler>> {
    sampler::create(sampler, schedule, config, steps)
}
