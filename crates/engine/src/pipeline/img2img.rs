//! Image to image, step for step as diffusers' `StableDiffusionImg2ImgPipeline`: the picture brought to the
//! working size (A1111's resize modes), encoded once, sampled per image with that image's generator, noised to the
//! level of the first step the strength keeps (`get_timesteps`), denoised from there and decoded.
//!
//! Generator order per image, as diffusers: the VAE's latent-distribution sample, then the noise, then any
//! per-step noise of the sampler. Image `i` of a batch draws only from its own generator, so it is the image its
//! seed gives alone.

use image::RgbImage;

use super::GenerateRequest;
use super::control::{ControlRequest, ControlState};
use super::run::{BatchSampler, Run, Sampling, check_strength, first_step, owned_params, scheduler};
use crate::error::Result;
use crate::image::{ResizeMode, check_image_size, resize_image};
use crate::model::LoadedModel;

/// A1111's default denoising strength for image to image.
pub const DEFAULT_IMG2IMG_STRENGTH: f64 = 0.75;

/// Image to image's source: the picture and how much of it to change.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSource {
    /// Brought to the generation's `width` x `height` (the size of the result) with `resize_mode`.
    pub image: RgbImage,
    /// How much to change: 0 returns the picture, 1 keeps only a trace of it (diffusers' `strength`, A1111's
    /// "Denoising strength"). The sampler runs `int(steps * strength)` of its `steps`.
    pub strength: f64,
    pub resize_mode: ResizeMode,
}

impl ImageSource {
    pub fn new(image: RgbImage) -> ImageSource {
        ImageSource { image, strength: DEFAULT_IMG2IMG_STRENGTH, resize_mode: ResizeMode::Just }
    }

    pub fn validate(&self) -> Result<()> {
        check_strength("strength", self.strength)?;
        check_image_size("image size", u64::from(self.image.width()), u64::from(self.image.height()))
    }
}

pub(crate) fn img2img(
    model: &mut LoadedModel,
    params: &GenerateRequest,
    source: &ImageSource,
    control: &ControlRequest,
    run: &mut Run<'_>,
) -> Result<()> {
    let (width, height) = (params.width, params.height);
    let image = resize_image(&source.image, width, height, source.resize_mode);
    let mut mode_params = vec![("Denoising strength", source.strength.to_string())];
    if source.image.dimensions() != (width, height) {
        mode_params.push(("Resize mode", source.resize_mode.display_name().to_string()));
    }
    let mut infotext_params = control.infotext_params();
    infotext_params.extend(owned_params(&mode_params));
    let plan = scheduler(model, params, params.steps)?;
    let Some(first) = first_step(plan.as_ref(), params.steps, source.strength) else {
        if source.strength > 0.0 {
            run.warn(&format!(
                "strength {} with {} steps runs no denoising step (int(steps * strength) is 0); the picture is returned as it is",
                source.strength, params.steps
            ));
        }
        return run.return_input(model, params, &image, &infotext_params);
    };
    let guidance = run.guidance(model, params)?;
    let control = ControlState::prepare(params, control, model, &mut |warning| run.warn(warning))?;
    let sampling = Sampling { guidance: &guidance, control: control.as_ref(), first_step: first, extra_channels: None };
    let encoded = run.encode(model, &image, None)?;
    let scaling = model.folder.vae_scaling_factor;
    for batch in 0..params.batch_count {
        run.batch(|run| {
            let mut generators = run.generators(params, batch);
            let mut sampler = BatchSampler::new(model, params, params.steps, &mut generators)?;
            let image_latents = encoded.latents(&mut sampler.noise, params.batch_size, scaling);
            let latents = sampler.noised(&image_latents, first);
            let latents = run.denoise(model, sampling, &mut sampler, latents, batch, &mut |_, _| {})?;
            run.decode_batch(model, params, &latents, &generators, batch, &infotext_params)?;
            Ok(())
        })?;
    }
    Ok(())
}
