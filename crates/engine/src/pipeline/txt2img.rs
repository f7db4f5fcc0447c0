//! Text to image, step for step as diffusers' `StableDiffusionPipeline`: prompt and negative prompt encoded
//! ([`super::guidance::Guidance`]), latents drawn per image from that image's seeded generator and scaled by the
//! sampler's initial sigma, denoised, divided by the VAE's scaling factor and decoded one image at a time.

use super::GenerateRequest;
use super::control::{ControlRequest, ControlState};
use super::run::{BatchSampler, Run, Sampling};
use super::vae::{LATENT_CHANNELS, VAE_FACTOR};
use crate::error::{EngineError, Result};
use crate::model::LoadedModel;

pub(crate) fn txt2img(
    model: &mut LoadedModel,
    params: &GenerateRequest,
    control: &ControlRequest,
    run: &mut Run<'_>,
) -> Result<()> {
    check_text_to_image_unet(model, "text-to-image needs a 4-channel UNet (9 channels is an inpainting model)")?;
    let guidance = run.guidance(model, params)?;
    let infotext_params = control.infotext_params();
    let control = ControlState::prepare(params, control, model, &mut |warning| run.warn(warning))?;
    let sampling = Sampling { guidance: &guidance, control: control.as_ref(), first_step: 0, extra_channels: None };
    for batch in 0..params.batch_count {
        run.batch(|run| {
            let mut generators = run.generators(params, batch);
            let mut sampler = BatchSampler::new(model, params, params.steps, &mut generators)?;
            let latents = sampler.initial_noise(&latent_shape(params, params.width, params.height));
            let latents = run.denoise(model, sampling, &mut sampler, latents, batch, &mut |_, _| {})?;
            run.decode_batch(model, params, &latents, &generators, batch, &infotext_params)?;
            Ok(())
        })?;
    }
    Ok(())
}

/// `[batch, 4, height / 8, width / 8]`: the latents of a batch at `width` x `height`.
pub(crate) fn latent_shape(params: &GenerateRequest, width: u32, height: u32) -> [usize; 4] {
    [params.batch_size, LATENT_CHANNELS, height as usize / VAE_FACTOR, width as usize / VAE_FACTOR]
}

/// Text to image (and the hires fix) need a UNet that takes the latents alone; `need` says so in the error.
pub(crate) fn check_text_to_image_unet(model: &LoadedModel, need: &str) -> Result<()> {
    match model.unet.in_channels().filter(|&c| c != LATENT_CHANNELS) {
        Some(channels) => Err(EngineError::IncompatibleComponents {
            folder: model.folder.root.clone(),
            detail: format!("its UNet takes {channels} latent channels; {need}"),
        }),
        None => Ok(()),
    }
}
