//! Text to image, step for step as diffusers' `StableDiffusionPipeline`: prompt and negative prompt encoded
//! (negative first in the batch), latents drawn per image from that image's seeded generator and scaled by the
//! sampler's initial sigma, the UNet run on both halves with guidance `uncond + cfg * (cond - uncond)`, the
//! latents divided by the VAE's scaling factor and decoded.

use std::time::Instant;

use ndarray::{Array2, Array3, ArrayD, Axis, concatenate};

use super::{Control, GenerateRequest, GenerateSummary, GeneratedImage, GenerationObserver, Progress, Stage, Timings};
use crate::error::{EngineError, Result};
use crate::image::{InfoText, decoded_to_rgb};
use crate::model::LoadedModel;
use crate::rng::TorchGenerator;
use crate::schedulers::{BatchNoise, SigmaSchedule, create_scheduler, sampler_label};

/// The latent is 1/8 of the image on each side in every Stable Diffusion VAE.
const VAE_DOWNSCALE: u32 = 8;
const LATENT_CHANNELS: usize = 4;

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
    let context = encode_prompts(model, request)?;
    timings.text_encoder = encode_started.elapsed();

    let mut seeds = Vec::with_capacity(request.batch_size * batches);
    for batch in 0..batches {
        let first_index = batch * request.batch_size;
        let mut generators: Vec<TorchGenerator> =
            (0..request.batch_size).map(|i| TorchGenerator::new(base_seed + (first_index + i) as u64)).collect();
        let latents = denoise(model, request, &context, &mut generators, &mut timings, &mut |step, steps| {
            report(observer, Stage::Denoising, batch, step, steps)
        })?;

        report(observer, Stage::Decoding, batch, request.steps, request.steps)?;
        let decode_started = Instant::now();
        let scaled = latents.mapv(|v| v / model.folder.vae_scaling_factor);
        for (i, generator) in generators.iter().enumerate() {
            // One image at a time keeps the decoder's memory to a single image whatever the batch size.
            let decoded = model.vae_decoder.decode(&scaled.slice_axis(Axis(0), (i..i + 1).into()).to_owned())?;
            let image = decoded_to_rgb(&decoded)?.remove(0);
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

/// Hidden states for the whole batch: `[negative; positive]` when guidance runs, else the prompt alone.
fn encode_prompts(model: &mut LoadedModel, request: &GenerateRequest) -> Result<Array3<f32>> {
    let mut texts = Vec::with_capacity(2);
    if request.uses_guidance() {
        texts.push(request.negative_prompt.as_str());
    }
    texts.push(request.prompt.as_str());
    let mut halves = Vec::with_capacity(texts.len());
    for text in texts {
        let ids = model.tokenizer.encode(text)?;
        let ids = Array2::from_shape_vec((1, ids.len()), ids.into_iter().map(i64::from).collect())
            .expect("one row of token ids");
        let hidden = model.text_encoder.encode(&ids)?;
        // The same embedding for every image of the batch, as diffusers' `repeat` for num_images_per_prompt.
        let views = vec![hidden.view(); request.batch_size];
        halves.push(concatenate(Axis(0), &views).expect("equal shapes"));
    }
    let views: Vec<_> = halves.iter().map(|h| h.view()).collect();
    Ok(concatenate(Axis(0), &views).expect("equal shapes"))
}

fn denoise(
    model: &mut LoadedModel,
    request: &GenerateRequest,
    context: &Array3<f32>,
    generators: &mut [TorchGenerator],
    timings: &mut Timings,
    on_step: &mut dyn FnMut(usize, usize) -> Result<()>,
) -> Result<ArrayD<f32>> {
    let loop_started = Instant::now();
    let mut scheduler = create_scheduler(request.sampler, request.schedule, &model.scheduler_config, request.steps)?;
    let shape = [
        request.batch_size,
        LATENT_CHANNELS,
        (request.height / VAE_DOWNSCALE) as usize,
        (request.width / VAE_DOWNSCALE) as usize,
    ];
    let mut noise = BatchNoise::new(generators);
    let init_sigma = scheduler.init_noise_sigma();
    let mut latents = noise.randn(&shape).mapv(|v| v * init_sigma);
    let timesteps = scheduler.timesteps().to_vec();
    let guidance = request.uses_guidance();
    for (index, &timestep) in timesteps.iter().enumerate() {
        let scaled = scheduler.scale_model_input(&latents, index);
        let input = if guidance {
            concatenate(Axis(0), &[scaled.view(), scaled.view()]).expect("equal shapes")
        } else {
            scaled
        };
        let unet_started = Instant::now();
        let prediction = model.unet.predict(&input, timestep, context)?;
        timings.unet += unet_started.elapsed();
        timings.unet_calls += 1;
        let guided = if guidance {
            let batch = request.batch_size;
            let uncond = prediction.slice_axis(Axis(0), (0..batch).into());
            let cond = prediction.slice_axis(Axis(0), (batch..2 * batch).into());
            let cfg = request.cfg_scale;
            let mut guided = uncond.to_owned();
            guided.zip_mut_with(&cond, |u, &c| *u += cfg * (c - *u));
            guided
        } else {
            prediction
        };
        latents = scheduler.step(&guided, index, &latents, &mut noise);
        on_step(index + 1, timesteps.len())?;
    }
    timings.denoising_loop += loop_started.elapsed();
    Ok(latents)
}

/// AUTOMATIC1111's infotext for one image.
fn infotext(request: &GenerateRequest, seed: u64, model_name: &str, model_hash: &str) -> InfoText {
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
    info.set("Version", concat!("Pigment ", env!("CARGO_PKG_VERSION")));
    info
}

/// A1111 draws seeds below 2^32 - 1; so do we, so seeds stay short and portable to it.
fn random_seed() -> Result<u64> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| EngineError::parameter("seed", -1, format!("no random source: {e}")))?;
    Ok(u64::from(u32::from_le_bytes(bytes) % (u32::MAX - 1)))
}
