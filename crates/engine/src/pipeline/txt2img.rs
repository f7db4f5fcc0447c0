//! Text to image, step for step as diffusers' `StableDiffusionPipeline`: prompt and negative prompt encoded
//! ([`Guidance`]), latents drawn per image from that image's seeded generator and scaled by the sampler's initial
//! sigma, denoised ([`Denoise`]), divided by the VAE's scaling factor and decoded one image at a time.

use std::time::Instant;

use ndarray::ArrayD;

use super::control::ControlState;
use super::denoise::Denoise;
use super::guidance::Guidance;
use super::{Control, GenerateRequest, GenerateSummary, GeneratedImage, GenerationObserver, Progress, Stage, Timings};
use crate::error::{EngineError, Result};
use crate::image::InfoText;
use crate::model::LoadedModel;
use crate::rng::TorchGenerator;
use crate::schedulers::{BatchNoise, SigmaSchedule, create_scheduler, sampler_label};

/// The latent is 1/8 of the image on each side in every Stable Diffusion VAE.
pub(crate) const VAE_DOWNSCALE: u32 = 8;
pub(crate) const LATENT_CHANNELS: usize = 4;

pub fn txt2img(
    model: &mut LoadedModel,
    request: &GenerateRequest,
    observer: &mut dyn GenerationObserver,
) -> Result<GenerateSummary> {
    request.validate()?;
    if let Some(channels) = model.unet.in_channels().filter(|&c| c != LATENT_CHANNELS) {
        return Err(EngineError::IncompatibleComponents {
            folder: model.folder.root.clone(),
            detail: format!(
                "its UNet takes {channels} latent channels; text-to-image needs a 4-channel UNet (9 channels is an inpainting model)"
            ),
        });
    }
    let started = Instant::now();
    let mut timings = Timings::default();
    let base_seed = match request.seed {
        Some(seed) => seed,
        None => random_seed()?,
    };
    let batches = request.batch_count;
    let report = |observer: &mut dyn GenerationObserver, stage, batch, step, steps| -> Result<()> {
        let progress = Progress { stage, batch, batches, step, steps, elapsed: started.elapsed() };
        match observer.progress(&progress) {
            Control::Continue => Ok(()),
            Control::Cancel => Err(EngineError::Cancelled),
        }
    };

    report(observer, Stage::EncodingPrompt, 0, 0, request.steps)?;
    let encode_started = Instant::now();
    let guidance = Guidance::new(&model.tokenizer, &mut model.text_encoder, request)?;
    timings.text_encoder = encode_started.elapsed();
    for warning in guidance.warnings() {
        observer.warning(warning);
    }
    let control = ControlState::prepare(request, model, &mut |warning| observer.warning(warning))?;

    let mut seeds = Vec::with_capacity(request.batch_size * batches);
    for batch in 0..batches {
        let first_index = batch * request.batch_size;
        let mut generators: Vec<TorchGenerator> =
            (0..request.batch_size).map(|i| TorchGenerator::new(base_seed + (first_index + i) as u64)).collect();
        let mut scheduler =
            create_scheduler(request.sampler, request.schedule, &model.scheduler_config, request.steps)?;
        let mut noise = BatchNoise::new(&mut generators);
        let shape = [
            request.batch_size,
            LATENT_CHANNELS,
            (request.height / VAE_DOWNSCALE) as usize,
            (request.width / VAE_DOWNSCALE) as usize,
        ];
        let init_sigma = scheduler.init_noise_sigma();
        let latents = noise.randn(&shape).mapv(|v| v * init_sigma);
        let denoise = Denoise {
            unet: &mut model.unet,
            guidance: &guidance,
            scheduler: scheduler.as_mut(),
            noise: &mut noise,
            first_step: 0,
            extra_channels: None,
            control: control.as_ref(),
        };
        let latents = denoise.run(latents, &mut timings, &mut |step, steps, latents| {
            observer.preview(step, steps, latents);
            report(observer, Stage::Denoising, batch, step, steps)
        })?;

        report(observer, Stage::Decoding, batch, request.steps, request.steps)?;
        let decode_started = Instant::now();
        for (i, generator) in generators.iter().enumerate() {
            let image = decode_one(model, &latents, i, observer)?;
            let seed = generator.seed();
            seeds.push(seed);
            let infotext = infotext(request, seed, &model.folder.name, &model.hash);
            observer.image(GeneratedImage { image, seed, index: first_index + i, infotext })?;
        }
        timings.vae_decode += decode_started.elapsed();
    }
    timings.total = started.elapsed();
    Ok(GenerateSummary { seeds, timings })
}

/// Image `index` of the batch's latents, unscaled and decoded alone so the decoder holds one image at a time (in
/// tiles for large images, again with the fp32 VAE if the fp16 one overflows: see [`super::vae::decode`]).
pub(crate) fn decode_one(
    model: &mut LoadedModel,
    latents: &ArrayD<f32>,
    index: usize,
    observer: &mut dyn GenerationObserver,
) -> Result<image::RgbImage> {
    let mut warnings = Vec::new();
    let image = super::vae::decode(model, latents, index, &mut |_, _| Ok(()), &mut warnings);
    for warning in warnings {
        observer.warning(&warning);
    }
    image
}

/// AUTOMATIC1111's infotext for one image.
pub(crate) fn infotext(request: &GenerateRequest, seed: u64, model_name: &str, model_hash: &str) -> InfoText {
    let mut info = InfoText {
        prompt: request.prompt.clone(),
        negative_prompt: request.negative_prompt.clone(),
        params: Vec::new(),
    };
    info.set("Steps", request.steps);
    info.set("Sampler", sampler_label(request.sampler, SigmaSchedule::Automatic));
    if request.schedule != SigmaSchedule::Automatic {
        info.set("Schedule type", request.schedule.display_name());
    }
    info.set("CFG scale", request.cfg_scale);
    info.set("Seed", seed);
    info.set("Size", format!("{}x{}", request.width, request.height));
    info.set("Model hash", model_hash);
    info.set("Model", model_name);
    if request.batch_size > 1 {
        info.set("Batch size", request.batch_size);
    }
    for (key, value) in request.control.infotext_params() {
        info.set(&key, value);
    }
    info.set("Version", concat!("Pigment ", env!("CARGO_PKG_VERSION")));
    info
}

/// A1111 draws seeds below 2^32 - 1; so do we, so seeds stay short and portable to it.
pub(crate) fn random_seed() -> Result<u64> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| EngineError::parameter("seed", -1, format!("no random source: {e}")))?;
    Ok(u64::from(u32::from_le_bytes(bytes) % (u32::MAX - 1)))
}
