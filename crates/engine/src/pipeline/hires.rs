//! Hires fix, as AUTOMATIC1111's `StableDiffusionProcessingTxt2Img.sample_hr_pass`: generate at the base size,
//! upscale (the latents themselves, or the decoded picture with Lanczos or an upscaler model), then image to image
//! at the target size with the hires strength.
//!
//! The image's generator (seed s + i) continues through the second pass: after the first pass's noise come the
//! VAE sample of the upscaled picture (picture upscalers), the second pass's starting noise and its per-step
//! noise; so every image is still made again alone from its seed.

use image::RgbImage;
use ndarray::{Axis, concatenate};

use super::control::{ControlRequest, ControlState};
use super::run::{BatchSampler, Run, Sampling, check_strength, first_step, infotext, owned_params, scheduler};
use super::txt2img::{check_text_to_image_unet, latent_shape};
use super::upscale::{UpscaleTiling, upscale};
use super::vae::{VAE_FACTOR, resize_latents};
use super::{GenerateRequest, GeneratedImage, MAX_DIMENSION};
use crate::error::{EngineError, Result};
use crate::model::{LoadedModel, UpscalerSession};
use crate::progress::{Flow, Stage};
use crate::rng::TorchGenerator;
use crate::schedulers::BatchNoise;

/// A1111's default hires denoising strength.
pub const DEFAULT_HIRES_STRENGTH: f64 = 0.7;

/// How the first pass is brought to the target size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HiresUpscaler {
    /// The latents, bilinearly (A1111's default "Latent").
    #[default]
    Latent,
    /// The decoded picture, with Lanczos.
    Lanczos,
    /// The decoded picture, with the upscaler model of the generation's [`super::Resources`].
    Model,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HiresFix {
    /// Target size = base size times this, rounded down to a multiple of 8 (A1111's "Upscale by").
    pub scale: f64,
    /// Denoising strength of the second pass.
    pub strength: f64,
    pub upscaler: HiresUpscaler,
    /// Steps of the second pass; `None` uses the request's (A1111's "Hires steps" 0).
    pub steps: Option<usize>,
}

impl Default for HiresFix {
    fn default() -> Self {
        HiresFix { scale: 2.0, strength: DEFAULT_HIRES_STRENGTH, upscaler: HiresUpscaler::Latent, steps: None }
    }
}

impl HiresFix {
    /// The second pass's size for a `width` x `height` first pass.
    pub fn target_size(&self, width: u32, height: u32) -> (u64, u64) {
        let side = |base: u32| ((f64::from(base) * self.scale) as u64) / 8 * 8;
        (side(width), side(height))
    }

    pub fn validate(&self, request: &GenerateRequest) -> Result<()> {
        if !self.scale.is_finite() || self.scale < 1.0 {
            return Err(EngineError::parameter("hires scale", self.scale, "must be a number of 1 or more"));
        }
        let (width, height) = self.target_size(request.width, request.height);
        let limit = u64::from(MAX_DIMENSION);
        if width > limit || height > limit {
            return Err(EngineError::parameter(
                "hires scale",
                self.scale,
                format!("{}x{} times it is {width}x{height}, above {limit}x{limit}", request.width, request.height),
            ));
        }
        check_strength("hires strength", self.strength)?;
        if let Some(steps) = self.steps {
            GenerateRequest { steps, ..request.clone() }.validate().map_err(|_| {
                EngineError::parameter("hires steps", steps, format!("must be between 1 and {}", super::MAX_STEPS))
            })?;
        }
        Ok(())
    }

    fn upscaler_name(&self, model: Option<&UpscalerSession>) -> String {
        match (self.upscaler, model) {
            (HiresUpscaler::Latent, _) => "Latent".into(),
            (HiresUpscaler::Lanczos, _) => "Lanczos".into(),
            (HiresUpscaler::Model, Some(model)) => model.name().to_string(),
            (HiresUpscaler::Model, None) => "model".into(),
        }
    }
}

/// Text to image with the hires fix; `upscaler` is the model for [`HiresUpscaler::Model`] (checked given by
/// [`super::generate`]).
pub(crate) fn txt2img_hires(
    model: &mut LoadedModel,
    request: &GenerateRequest,
    hires: &HiresFix,
    control: &ControlRequest,
    mut upscaler: Option<&mut UpscalerSession>,
    run: &mut Run<'_>,
) -> Result<()> {
    check_text_to_image_unet(model, "the hires fix needs a 4-channel UNet")?;
    let (target_w, target_h) = hires.target_size(request.width, request.height);
    let (target_w, target_h) = (target_w as u32, target_h as u32);
    let second_steps = hires.steps.unwrap_or(request.steps);
    let second = GenerateRequest { width: target_w, height: target_h, steps: second_steps, ..request.clone() };
    let mut mode_params =
        vec![("Denoising strength", hires.strength.to_string()), ("Hires upscale", hires.scale.to_string())];
    if let Some(steps) = hires.steps {
        mode_params.push(("Hires steps", steps.to_string()));
    }
    mode_params.push(("Hires upscaler", hires.upscaler_name(upscaler.as_deref())));
    let mut infotext_params = control.infotext_params();
    infotext_params.extend(owned_params(&mode_params));

    let guidance = run.guidance(model, request)?;
    // Control guides both passes, as in A1111's ControlNet extension: each with the control images at its size (the
    // second pass's stretched without a warning, the hires fix asked for that size); start/end apply to each pass.
    let first_control = ControlState::prepare(request, control, model, &mut |warning| run.warn(warning))?;
    let second_control = match first_control {
        Some(_) => {
            let resized = control.resized(target_w, target_h);
            ControlState::prepare(&second, &resized, model, &mut |warning| run.warn(warning))?
        }
        None => None,
    };
    let scaling = model.folder.vae_scaling_factor;
    let batch_size = request.batch_size;
    let plan = scheduler(model, request, second_steps)?;
    let first = first_step(plan.as_ref(), second_steps, hires.strength);
    if first.is_none() {
        run.warn(&format!(
            "hires strength {} with {second_steps} steps runs no denoising step; the upscaled first pass is returned",
            hires.strength
        ));
    }
    let first_pass =
        Sampling { guidance: &guidance, control: first_control.as_ref(), first_step: 0, extra_channels: None };
    for batch in 0..request.batch_count {
        run.batch(|run| {
            let mut generators = run.generators(request, batch);

            // First pass: text to image at the base size.
            let mut sampler = BatchSampler::new(model, request, request.steps, &mut generators)?;
            let latents = sampler.initial_noise(&latent_shape(request, request.width, request.height));
            let base = run.denoise(model, first_pass, &mut sampler, latents, batch, &mut |_, _| {})?;

            // Upscale: latents directly, or decode, upscale the picture and encode it again.
            let (latent_h, latent_w) = (target_h as usize / VAE_FACTOR, target_w as usize / VAE_FACTOR);
            let mut pictures: Vec<RgbImage> = Vec::new();
            let known = match hires.upscaler {
                HiresUpscaler::Latent => resize_latents(&base, latent_h, latent_w),
                HiresUpscaler::Lanczos | HiresUpscaler::Model => {
                    let mut per_image = Vec::with_capacity(batch_size);
                    for i in 0..batch_size {
                        let small = run.decode(model, &base, i, batch)?;
                        let model_upscaler = match hires.upscaler {
                            HiresUpscaler::Model => upscaler.as_deref_mut(),
                            _ => None,
                        };
                        // A skip or cancel seen during the upscale stops it; the report's own error says which.
                        let mut stopped = None;
                        let big =
                            upscale(&small, target_w, target_h, model_upscaler, UpscaleTiling::default(), &mut |p| {
                                match run.report(Stage::Upscaling, batch, p.step, p.steps) {
                                    Ok(()) => Flow::Continue,
                                    Err(error) => {
                                        stopped = Some(error);
                                        Flow::Cancel
                                    }
                                }
                            });
                        let big = match (big, stopped) {
                            (Err(EngineError::Cancelled), Some(error)) => return Err(error),
                            (big, _) => big?,
                        };
                        let encoded = run.encode(model, &big, None)?;
                        let mut own = BatchNoise::new(&mut generators[i..=i]);
                        per_image.push(encoded.latents(&mut own, 1, scaling));
                        pictures.push(big);
                    }
                    let views: Vec<_> = per_image.iter().map(|latents| latents.view()).collect();
                    concatenate(Axis(0), &views).map_err(|e| EngineError::inference("hires fix", e))?
                }
            };

            // Second pass: image to image at the target size.
            let latents = match first {
                Some(first) => {
                    let second_pass = Sampling {
                        guidance: &guidance,
                        control: second_control.as_ref(),
                        first_step: first,
                        extra_channels: None,
                    };
                    let mut sampler = BatchSampler::new(model, request, second_steps, &mut generators)?;
                    let latents = sampler.noised(&known, first);
                    Some(run.denoise(model, second_pass, &mut sampler, latents, batch, &mut |_, _| {})?)
                }
                None => None,
            };
            let seeds: Vec<u64> = generators.iter().map(TorchGenerator::seed).collect();
            for (i, seed) in seeds.into_iter().enumerate() {
                let image = match (&latents, pictures.get(i)) {
                    (Some(latents), _) => run.decode(model, latents, i, batch)?,
                    (None, Some(picture)) => picture.clone(),
                    (None, None) => run.decode(model, &known, i, batch)?,
                };
                let mut info = infotext(&second, seed, model, &infotext_params);
                // A1111 records the first pass's size and steps; the hires fields say the rest.
                info.set("Steps", request.steps);
                info.set("Size", format!("{}x{}", request.width, request.height));
                run.deliver(GeneratedImage { image, seed, index: batch * batch_size + i, infotext: info })?;
            }
            Ok(())
        })?;
    }
    Ok(())
}
