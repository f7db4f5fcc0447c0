//! Samplers ("schedulers" in diffusers' words) behind one trait.
//!
//! Three separate axes, as in stable-diffusion.cpp's denoiser: the training noise schedule and the model's
//! parameterisation come from the model's `scheduler_config.json` ([`SchedulerConfig`]); the sigma schedule
//! (automatic, Karras, ...) is the user's [`SigmaSchedule`]; the update rule is the [`Sampler`]. Each sampler
//! matches its diffusers scheduler step for step (tests/fixtures/reference/schedulers).
//!
//! The trait is diffusers' interface in Rust: the timesteps the model is evaluated at, `scale_model_input`, `step`,
//! `add_noise`. Every entry of `timesteps` is one model evaluation, so a two-evaluation sampler lists 2n - 1 of them
//! for n steps (Heun repeats each timestep after the first, DPM2 interleaves midpoints) and PLMS n + 1 (its second
//! step is a correction that evaluates the model again). Samplers that need history or a half-finished step keep
//! it inside; stochastic ones draw noise per image from that image's own generator ([`BatchNoise`]).

mod config;
#[cfg(test)]
mod contract_tests;
mod ddim;
mod ddpm;
mod dpm_solver_multistep;
mod dpm_solver_sde;
mod dpm_solver_singlestep;
mod euler;
mod euler_ancestral;
mod factory;
mod heun;
mod k_dpm_2;
mod k_dpm_2_ancestral;
mod lcm;
mod lms;
mod noise_schedule;
mod pndm;
mod sampler;
mod training_timesteps;
mod unipc;

use ndarray::ArrayD;

pub use config::{BetaSchedule, PredictionType, SchedulerConfig, TimestepSpacing};
pub use factory::create_scheduler;
pub use sampler::{Sampler, SigmaSchedule, choose_sampler, known_sampler_names, parse_sampler, sampler_label};

use crate::rng::TorchGenerator;

/// The generators of a batch, one per image (ARCHITECTURE.md, "Noise and seeds": image i of a batch uses seed s + i
/// with its own generator, for its initial latents and any per-step noise).
pub struct BatchNoise<'a> {
    source: NoiseSource<'a>,
}

enum NoiseSource<'a> {
    Generators(&'a mut [TorchGenerator]),
    /// Every draw zero, for `batch` images.
    Zero {
        batch: usize,
    },
}

impl<'a> BatchNoise<'a> {
    pub fn new(generators: &'a mut [TorchGenerator]) -> Self {
        BatchNoise { source: NoiseSource::Generators(generators) }
    }

    /// Noise that is always zero: a stochastic sampler then takes only the deterministic part of each step. This is
    /// how DPM++ SDE, whose diffusers noise cannot be reproduced, is compared with diffusers run on zero noise.
    pub fn zero(batch: usize) -> BatchNoise<'static> {
        BatchNoise { source: NoiseSource::Zero { batch } }
    }

    /// Standard normal noise of `shape`, whose first axis is the batch: image i draws `shape[1..]` from generator i,
    /// as diffusers' `randn_tensor` does with a list of generators.
    pub fn randn(&mut self, shape: &[usize]) -> ArrayD<f32> {
        match &mut self.source {
            NoiseSource::Generators(generators) => {
                assert_eq!(shape[0], generators.len(), "one generator per image of the batch");
                let per_image: usize = shape[1..].iter().product();
                let mut values = vec![0.0f32; per_image * shape[0]];
                for (chunk, generator) in values.chunks_mut(per_image.max(1)).zip(generators.iter_mut()) {
                    generator.fill_randn(chunk);
                }
                ArrayD::from_shape_vec(shape, values).expect("values drawn for the whole shape")
            }
            NoiseSource::Zero { batch } => {
                assert_eq!(shape[0], *batch, "zero noise for the batch it was made for");
                ArrayD::zeros(shape)
            }
        }
    }
}

/// One sampler configured for one generation.
pub trait Scheduler: Send {
    /// The timesteps the model is evaluated at, in order. `step_index` below indexes this list.
    fn timesteps(&self) -> &[f64];

    /// The standard deviation of the initial noise (multiplies the seeded `randn` latents). The defaults here and
    /// in `scale_model_input` are those of the samplers that work on alphas (DDIM, DPM-Solver...): noise of standard
    /// deviation 1, the model input unscaled.
    fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    /// Model evaluations per step (diffusers' `scheduler.order`): 2 for Heun, DPM2, DPM2 a and DPM++ SDE, whose
    /// steps each take two consecutive entries of `timesteps`. Image to image that skips the first `k` steps starts
    /// at `timesteps()[k * order]`, as diffusers' img2img pipelines do.
    fn order(&self) -> usize {
        1
    }

    /// The model input for `sample` at `step_index` (for sigma-based samplers, divided by sqrt(sigma^2 + 1)).
    fn scale_model_input(&self, sample: &ArrayD<f32>, _step_index: usize) -> ArrayD<f32> {
        sample.clone()
    }

    /// Advances `sample` by one model evaluation; returns the new sample. Calls are expected in order of
    /// `step_index`, from the first index given onwards (multistep and two-evaluation samplers keep state between
    /// them, as their diffusers schedulers do).
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
