//! Image to image, step for step as diffusers' `StableDiffusionImg2ImgPipeline`: the picture brought to the
//! working size (A1111's resize modes), encoded once, sampled per image with that image's generator, noised to the
//! level of the first step the strength keeps (`get_timesteps`), denoised from there and decoded.
//!
//! Generator order per image, as diffusers: the VAE's latent-distribution sample, then the noise, then any
//! per-step noise of the sampler. Image `i` of a batch draws only from its own generator, so it is the image its
//! seed gives alone.
//!
//! The pieces every pipeline of this family shares live here too: [`Run`] (progress, cancel, warnings, seeds,
//! timings), [`first_step`] (what a strength keeps of a schedule) and the infotext fields.

use std::time::Instant;

use image::RgbImage;
use ndarray::ArrayD;

use super::control::ControlState;
use super::denoise::Denoise;
use super::guidance::Guidance;
use super::inpaint::{self, InpaintRequest};
use super::txt2img::{LATENT_CHANNELS, infotext, random_seed};
use super::vae;
use super::{Control, GenerateRequest, GenerateSummary, GeneratedImage, GenerationObserver, Progress, Stage, Timings};
use crate::error::{EngineError, Result};
use crate::image::{InfoText, ResizeMode, check_image_size, resize_image};
use crate::model::LoadedModel;
use crate::rng::TorchGenerator;
use crate::schedulers::{BatchNoise, Scheduler, create_scheduler};

/// A1111's default denoising strength for image to image.
pub const DEFAULT_IMG2IMG_STRENGTH: f64 = 0.75;

#[derive(Debug, Clone)]
pub struct Img2ImgRequest {
    /// Prompt, sampler, seed, steps, batch; `width` x `height` is the size the picture is brought to and
    /// generated at (and the size of the result).
    pub generate: GenerateRequest,
    pub image: RgbImage,
    /// How much to change: 0 returns the picture, 1 keeps only a trace of it (diffusers' `strength`, A1111's
    /// "Denoising strength"). The sampler runs `int(steps * strength)` of its `steps`.
    pub strength: f64,
    pub resize_mode: ResizeMode,
}

impl Img2ImgRequest {
    pub fn new(generate: GenerateRequest, image: RgbImage) -> Img2ImgRequest {
        Img2ImgRequest { generate, image, strength: DEFAULT_IMG2IMG_STRENGTH, resize_mode: ResizeMode::Just }
    }

    pub fn validate(&self) -> Result<()> {
        self.generate.validate()?;
        check_strength("strength", self.strength)?;
        check_image_size("image size", u64::from(self.image.width()), u64::from(self.image.height()))
    }
}

pub fn img2img(
    model: &mut LoadedModel,
    request: &Img2ImgRequest,
    observer: &mut dyn GenerationObserver,
) -> Result<GenerateSummary> {
    request.validate()?;
    if model.unet.in_channels() == Some(2 * LATENT_CHANNELS + 1) {
        // An inpainting model takes a mask: all white repaints everything, as A1111 conditions inpainting models
        // in img2img (`img2img_image_conditioning`).
        return inpaint::inpaint(model, &InpaintRequest::everything(request), observer);
    }
    let generate = &request.generate;
    let (width, height) = (generate.width, generate.height);
    let image = resize_image(&request.image, width, height, request.resize_mode);
    let mut run = Run::new(observer, generate)?;
    let mut params = vec![("Denoising strength", request.strength.to_string())];
    if request.image.dimensions() != (width, height) {
        params.push(("Resize mode", request.resize_mode.display_name().to_string()));
    }
    let scheduler = create_scheduler(generate.sampler, generate.schedule, &model.scheduler_config, generate.steps)?;
    let Some(first) = first_step(scheduler.as_ref(), generate.steps, request.strength) else {
        if request.strength > 0.0 {
            run.warn(&format!(
                "strength {} with {} steps runs no denoising step (int(steps * strength) is 0); the picture is returned as it is",
                request.strength, generate.steps
            ));
        }
        run.return_input(model, generate, &image, &params)?;
        return Ok(run.finish());
    };
    let guidance = run.guidance(model, generate)?;
    let control = ControlState::prepare(generate, model, &mut |warning| run.warn(warning))?;
    let encoded = run.encode(model, &image, None)?;
    let scaling = model.folder.vae_scaling_factor;
    for batch in 0..generate.batch_count {
        let mut generators = run.generators(generate, batch);
        let mut scheduler =
            create_scheduler(generate.sampler, generate.schedule, &model.scheduler_config, generate.steps)?;
        let mut noise = BatchNoise::new(&mut generators);
        let image_latents = encoded.latents(&mut noise, generate.batch_size, scaling);
        let eps = noise.randn(image_latents.shape());
        let latents = scheduler.add_noise(&image_latents, &eps, first);
        let denoise = Denoise {
            unet: &mut model.unet,
            guidance: &guidance,
            scheduler: scheduler.as_mut(),
            noise: &mut noise,
            first_step: first,
            extra_channels: None,
            control: control.as_ref(),
        };
        let latents = run.denoise(denoise, latents, batch, &mut |_, _| {})?;
        let seeds: Vec<u64> = generators.iter().map(TorchGenerator::seed).collect();
        for (i, seed) in seeds.into_iter().enumerate() {
            let decoded = run.decode(model, &latents, i, batch)?;
            let mut info = infotext(generate, seed, &model.folder.name, &model.hash);
            add_params(&mut info, &params);
            run.deliver(GeneratedImage {
                image: decoded,
                seed,
                index: batch * generate.batch_size + i,
                infotext: info,
            })?;
        }
    }
    Ok(run.finish())
}

/// Refuses a strength outside [0, 1], naming the parameter.
pub(crate) fn check_strength(name: &'static str, value: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&value) {
        return Err(EngineError::parameter(name, value, "must be between 0 and 1"));
    }
    Ok(())
}

/// The index into the sampler's timesteps where a run of `strength` starts, as diffusers' `get_timesteps`:
/// `init_timestep = min(int(steps * strength), steps)`, `t_start = steps - init_timestep`, evaluations from
/// `t_start * order`. `None` when no step would run.
pub(crate) fn first_step(scheduler: &dyn Scheduler, steps: usize, strength: f64) -> Option<usize> {
    // Python's int() of the float64 product, as diffusers computes it (0.7 * 10 is 7 here, not 6.99...).
    let init_timestep = ((steps as f64 * strength) as usize).min(steps);
    let first = (steps - init_timestep) * scheduler.order();
    (init_timestep > 0 && first < scheduler.timesteps().len()).then_some(first)
}

/// Adds `params` to `info` before its trailing "Version" field (A1111 keeps the version last).
pub(crate) fn add_params(info: &mut InfoText, params: &[(&str, String)]) {
    let version = info.params.iter().position(|(k, _)| k == "Version").map(|i| info.params.remove(i));
    for (key, value) in params {
        info.set(key, value);
    }
    if let Some(version) = version {
        info.params.push(version);
    }
}

/// One generation's bookkeeping: progress and cancel, warnings, the seeds handed out, timings.
pub(crate) struct Run<'o> {
    observer: &'o mut dyn GenerationObserver,
    started: Instant,
    batches: usize,
    base_seed: u64,
    seeds: Vec<u64>,
    pub(crate) timings: Timings,
}

impl<'o> Run<'o> {
    pub(crate) fn new(observer: &'o mut dyn GenerationObserver, request: &GenerateRequest) -> Result<Run<'o>> {
        let base_seed = match request.seed {
            Some(seed) => seed,
            None => random_seed()?,
        };
        Ok(Run {
            observer,
            started: Instant::now(),
            batches: request.batch_count,
            base_seed,
            seeds: Vec::new(),
            timings: Timings::default(),
        })
    }

    pub(crate) fn report(&mut self, stage: Stage, batch: usize, step: usize, steps: usize) -> Result<()> {
        let progress = Progress { stage, batch, batches: self.batches, step, steps, elapsed: self.started.elapsed() };
        match self.observer.progress(&progress) {
            Control::Continue => Ok(()),
            Control::Cancel => Err(EngineError::Cancelled),
        }
    }

    pub(crate) fn warn(&mut self, message: &str) {
        self.observer.warning(message);
    }

    /// The generators of batch `batch`: image i of the request uses seed base + i.
    pub(crate) fn generators(&self, request: &GenerateRequest, batch: usize) -> Vec<TorchGenerator> {
        let first = batch * request.batch_size;
        (0..request.batch_size).map(|i| TorchGenerator::new(self.base_seed + (first + i) as u64)).collect()
    }

    pub(crate) fn guidance(&mut self, model: &mut LoadedModel, request: &GenerateRequest) -> Result<Guidance> {
        self.report(Stage::EncodingPrompt, 0, 0, request.steps)?;
        let started = Instant::now();
        let guidance = Guidance::new(&model.tokenizer, &mut model.text_encoder, request)?;
        self.timings.text_encoder += started.elapsed();
        for warning in guidance.warnings() {
            self.observer.warning(warning);
        }
        Ok(guidance)
    }

    /// The VAE encoding of `image` (with the repainted pixels of `zero_where` set to 0), reporting tiles.
    pub(crate) fn encode(
        &mut self,
        model: &mut LoadedModel,
        image: &RgbImage,
        zero_where: Option<&image::GrayImage>,
    ) -> Result<vae::Encoded> {
        self.report(Stage::EncodingImage, 0, 0, 1)?;
        vae::encode(model, image, zero_where, &mut |done, total| self.report(Stage::EncodingImage, 0, done, total))
    }

    /// Runs `denoise` from `latents`, with previews and progress after each step; `blend(absolute step index,
    /// latents)` may change the latents first (inpainting with a regular model).
    pub(crate) fn denoise(
        &mut self,
        denoise: Denoise<'_, '_>,
        latents: ArrayD<f32>,
        batch: usize,
        blend: &mut dyn FnMut(usize, &mut ArrayD<f32>),
    ) -> Result<ArrayD<f32>> {
        let first = denoise.first_step;
        let mut timings = std::mem::take(&mut self.timings);
        let result = denoise.run(latents, &mut timings, &mut |step, steps, latents| {
            blend(first + step - 1, latents);
            self.observer.preview(step, steps, latents);
            self.report(Stage::Denoising, batch, step, steps)
        });
        self.timings = timings;
        result
    }

    /// Image `index` of `latents` decoded, reporting tiles and passing on the VAE's warnings.
    pub(crate) fn decode(
        &mut self,
        model: &mut LoadedModel,
        latents: &ArrayD<f32>,
        index: usize,
        batch: usize,
    ) -> Result<RgbImage> {
        self.report(Stage::Decoding, batch, 0, 1)?;
        let started = Instant::now();
        let mut warnings = Vec::new();
        let image = vae::decode(
            model,
            latents,
            index,
            &mut |done, total| self.report(Stage::Decoding, batch, done, total),
            &mut warnings,
        );
        self.timings.vae_decode += started.elapsed();
        for warning in warnings {
            self.observer.warning(&warning);
        }
        image
    }

    pub(crate) fn deliver(&mut self, image: GeneratedImage) -> Result<()> {
        self.seeds.push(image.seed);
        self.observer.image(image)
    }

    /// Every image of the request is `image` itself (nothing to change: strength 0, an empty mask).
    pub(crate) fn return_input(
        &mut self,
        model: &LoadedModel,
        request: &GenerateRequest,
        image: &RgbImage,
        params: &[(&str, String)],
    ) -> Result<()> {
        for index in 0..request.batch_size * request.batch_count {
            let seed = self.base_seed + index as u64;
            let mut info = infotext(request, seed, &model.folder.name, &model.hash);
            add_params(&mut info, params);
            self.deliver(GeneratedImage { image: image.clone(), seed, index, infotext: info })?;
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> GenerateSummary {
        self.timings.total = self.started.elapsed();
        GenerateSummary { seeds: self.seeds, timings: self.timings }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedulers::{Sampler, SchedulerConfig, SigmaSchedule};

    #[test]
    fn strength_keeps_the_last_int_steps_times_strength_steps() {
        let scheduler =
            create_scheduler(Sampler::Euler, SigmaSchedule::Automatic, &SchedulerConfig::default(), 10).unwrap();
        assert_eq!(first_step(scheduler.as_ref(), 10, 0.75), Some(3));
        // 10 * 0.7 is 7.000000000000001 in float64 (and 6.9999998 in float32): 7 steps run, as in diffusers.
        assert_eq!(first_step(scheduler.as_ref(), 10, 0.7), Some(3));
        assert_eq!(first_step(scheduler.as_ref(), 10, 1.0), Some(0));
        assert_eq!(first_step(scheduler.as_ref(), 10, 0.05), None);
        assert_eq!(first_step(scheduler.as_ref(), 10, 0.0), None);
    }

    #[test]
    fn params_go_before_the_version() {
        let mut info = InfoText::default();
        info.set("Steps", 20);
        info.set("Version", "Pigment");
        add_params(&mut info, &[("Denoising strength", "0.5".into())]);
        let keys: Vec<&str> = info.params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["Steps", "Denoising strength", "Version"]);
    }
}
