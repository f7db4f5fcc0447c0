//! The denoising loop every pipeline shares: scale, predict with guidance, step, from `first_step` to the end of
//! the sampler's timesteps. `after_step` sees the latents after each step (progress, cancel, and the blending
//! that inpainting with a regular model needs).

use std::time::Instant;

use ndarray::{ArrayD, Axis, concatenate};

use super::Timings;
use super::control::ControlState;
use super::guidance::Guidance;
use crate::error::{EngineError, Result};
use crate::model::UnetSession;
use crate::schedulers::{BatchNoise, Scheduler};

/// Called after each step with (steps done, steps in this run, the latents), which it may change.
pub(crate) type AfterStep<'f> = dyn FnMut(usize, usize, &mut ArrayD<f32>) -> Result<()> + 'f;

pub(crate) struct Denoise<'a, 'n> {
    pub unet: &'a mut UnetSession,
    pub guidance: &'a Guidance,
    pub scheduler: &'a mut dyn Scheduler,
    pub noise: &'a mut BatchNoise<'n>,
    /// Index into the scheduler's timesteps to start from (0 for text to image, later for img2img).
    pub first_step: usize,
    /// Channels appended to the scaled latents for every UNet call: an inpainting UNet's mask and masked-image
    /// latents (`[batch, 5, h, w]`), as diffusers' `torch.cat([latent_model_input, mask, masked_image_latents], 1)`.
    pub extra_channels: Option<&'a ArrayD<f32>>,
    /// ControlNets or adapters: the UNet with residual inputs at the steps where they act.
    pub control: Option<&'a ControlState>,
}

impl Denoise<'_, '_> {
    pub(crate) fn run(
        self,
        mut latents: ArrayD<f32>,
        timings: &mut Timings,
        after_step: &mut AfterStep<'_>,
    ) -> Result<ArrayD<f32>> {
        let loop_started = Instant::now();
        let timesteps = self.scheduler.timesteps().to_vec();
        let total = timesteps.len();
        for (index, &timestep) in timesteps.iter().enumerate().skip(self.first_step) {
            let mut scaled = self.scheduler.scale_model_input(&latents, index);
            if let Some(extra) = self.extra_channels {
                // The extra channels come from the VAE encoder: a model whose encoder does not downsample by the
                // UNet's factor gives other sizes, an error rather than a panic.
                scaled = concatenate(Axis(1), &[scaled.view(), extra.view()]).map_err(|e| {
                    EngineError::inference(
                        "unet",
                        format!(
                            "the latents {:?} and the inpainting channels {:?} do not align: {e}",
                            scaled.shape(),
                            extra.shape()
                        ),
                    )
                })?;
            }
            let unet_started = Instant::now();
            let prediction = match self.control {
                Some(control) => {
                    let run_steps = total - self.first_step;
                    let sampling_steps = run_steps.div_ceil(self.scheduler.order().max(1));
                    let mut predictor =
                        control.predictor(self.unet, index - self.first_step, run_steps, sampling_steps);
                    self.guidance.predict(&mut predictor, &scaled, timestep, index, total)?
                }
                None => self.guidance.predict(self.unet, &scaled, timestep, index, total)?,
            };
            timings.unet += unet_started.elapsed();
            timings.unet_calls += 1;
            latents = self.scheduler.step(&prediction, index, &latents, self.noise);
            after_step(index + 1 - self.first_step, total - self.first_step, &mut latents)?;
        }
        timings.denoising_loop += loop_started.elapsed();
        Ok(latents)
    }
}
