//! The stages every mode is made of, around one generation's bookkeeping ([`Run`]): progress and cancel,
//! warnings, seeds, timings, the VAE tiling asked for. A mode calls the stages in its order (prompt encoding,
//! latent preparation, the denoising loop with its per-step hook, decoding, delivery) and holds only what differs.

use std::time::Instant;

use image::RgbImage;
use ndarray::ArrayD;

use super::control::ControlState;
use super::denoise::{AfterStep, Denoise};
use super::guidance::Guidance;
use super::vae::{self, VaeTiling, VaeTilingMode};
use super::{GenerateRequest, GenerateSummary, GeneratedImage, GenerationObserver, Timings};
use crate::error::{EngineError, Result};
use crate::image::{InfoText, crop};
use crate::model::LoadedModel;
use crate::progress::{Flow, Progress, Stage};
use crate::rng::TorchGenerator;
use crate::schedulers::{BatchNoise, Scheduler, SigmaSchedule, create_scheduler, sampler_label};

/// One generation's bookkeeping: progress and cancel, warnings, the seeds handed out, timings, VAE tiling, and the
/// crop every delivered image gets (outpainting's canvas).
pub(crate) struct Run<'o> {
    observer: &'o mut dyn GenerationObserver,
    started: Instant,
    batches: usize,
    base_seed: u64,
    seeds: Vec<u64>,
    timings: Timings,
    vae_tiling: VaeTiling,
    /// (x, y, width, height) each image is cut to before delivery.
    pub(crate) crop: Option<(u32, u32, u32, u32)>,
    /// Inside [`Run::batch`]: a skip ends the batch.
    in_batch: bool,
    /// A skip that came before the batch it skips (during prompt encoding, say).
    skip_pending: bool,
    /// The observer answered `Cancel`: a stopped model run after it is that cancel, not a skip.
    cancelled: bool,
}

impl<'o> Run<'o> {
    /// A run of `params` whose VAE tiles as `vae_tiling` asks; a model in low-VRAM mode tiles whenever the
    /// request leaves it to the engine ([`VaeTilingMode::Auto`]).
    pub(crate) fn new(
        observer: &'o mut dyn GenerationObserver,
        params: &GenerateRequest,
        vae_tiling: VaeTiling,
        model: &LoadedModel,
    ) -> Result<Run<'o>> {
        let base_seed = match params.seed {
            Some(seed) => seed,
            None => random_seed()?,
        };
        let mut vae_tiling = vae_tiling;
        if vae_tiling.mode == VaeTilingMode::Auto && model.tiles_vae_always() {
            vae_tiling.mode = VaeTilingMode::Always;
        }
        Ok(Run {
            observer,
            started: Instant::now(),
            batches: params.batch_count,
            base_seed,
            seeds: Vec::new(),
            timings: Timings::default(),
            vae_tiling,
            crop: None,
            in_batch: false,
            skip_pending: false,
            cancelled: false,
        })
    }

    pub(crate) fn report(&mut self, stage: Stage, batch: usize, step: usize, steps: usize) -> Result<()> {
        let progress = Progress { stage, batch, batches: self.batches, step, steps, elapsed: self.started.elapsed() };
        match self.observer.progress(&progress) {
            Flow::Continue => Ok(()),
            Flow::Cancel => {
                self.cancelled = true;
                Err(EngineError::Cancelled)
            }
            Flow::Skip if self.in_batch => Err(EngineError::Skipped),
            Flow::Skip => {
                self.skip_pending = true;
                Ok(())
            }
        }
    }

    /// Runs one batch of a mode. A skip (answered to a report, or to [`GenerationObserver::run_stopped`] after the
    /// signal stopped a model run) ends the batch without its remaining images and the generation goes on with the
    /// next batch; a skip that came before the batch started skips it whole.
    pub(crate) fn batch(&mut self, body: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        if std::mem::take(&mut self.skip_pending) {
            return Ok(());
        }
        self.in_batch = true;
        let result = body(self);
        self.in_batch = false;
        match result {
            Err(EngineError::Skipped) => Ok(()),
            Err(EngineError::Cancelled) if !self.cancelled && self.observer.run_stopped() == Flow::Skip => Ok(()),
            other => other,
        }
    }

    pub(crate) fn warn(&mut self, message: &str) {
        self.observer.warning(message);
    }

    /// The generators of batch `batch`: image i of the request uses seed base + i.
    pub(crate) fn generators(&self, params: &GenerateRequest, batch: usize) -> Vec<TorchGenerator> {
        let first = batch * params.batch_size;
        (0..params.batch_size).map(|i| TorchGenerator::new(self.base_seed + (first + i) as u64)).collect()
    }

    /// Prompt encoding: the prompt and negative prompt, with the embeddings' warnings passed on.
    pub(crate) fn guidance(&mut self, model: &mut LoadedModel, params: &GenerateRequest) -> Result<Guidance> {
        self.report(Stage::EncodingPrompt, 0, 0, params.steps)?;
        let started = Instant::now();
        let guidance = Guidance::new(&model.tokenizer, &mut model.text_encoder, params)?;
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
        let tiling = self.vae_tiling;
        vae::encode(model, image, zero_where, tiling, &mut |done, total| {
            self.report(Stage::EncodingImage, 0, done, total)
        })
    }

    /// The denoising loop of one batch from `latents`, with previews and progress after each step;
    /// `after_step(absolute step index, latents)` may change the latents first (inpainting's blend).
    pub(crate) fn denoise(
        &mut self,
        model: &mut LoadedModel,
        sampling: Sampling<'_>,
        batch_sampler: &mut BatchSampler<'_>,
        latents: ArrayD<f32>,
        batch: usize,
        after_step: &mut dyn FnMut(usize, &mut ArrayD<f32>),
    ) -> Result<ArrayD<f32>> {
        let first = sampling.first_step;
        let denoise = Denoise {
            unet: &mut model.unet,
            guidance: sampling.guidance,
            scheduler: batch_sampler.scheduler.as_mut(),
            noise: &mut batch_sampler.noise,
            first_step: first,
            extra_channels: sampling.extra_channels,
            control: sampling.control,
        };
        let mut timings = std::mem::take(&mut self.timings);
        let hook: &mut AfterStep<'_> = &mut |step, steps, latents| {
            after_step(first + step - 1, latents);
            self.observer.preview(step, steps, latents);
            self.report(Stage::Denoising, batch, step, steps)
        };
        let result = denoise.run(latents, &mut timings, hook);
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
        let tiling = self.vae_tiling;
        let image = vae::decode(
            model,
            latents,
            index,
            tiling,
            &mut |done, total| self.report(Stage::Decoding, batch, done, total),
            &mut warnings,
        );
        self.timings.vae_decode += started.elapsed();
        for warning in warnings {
            self.observer.warning(&warning);
        }
        image
    }

    /// Decoding and delivery of a batch whose images need nothing more: each image decoded alone, with its seed's
    /// infotext (the request's fields and `infotext_params`).
    pub(crate) fn decode_batch(
        &mut self,
        model: &mut LoadedModel,
        params: &GenerateRequest,
        latents: &ArrayD<f32>,
        generators: &[TorchGenerator],
        batch: usize,
        infotext_params: &[(String, String)],
    ) -> Result<()> {
        for (i, seed) in generators.iter().map(TorchGenerator::seed).enumerate() {
            let image = self.decode(model, latents, i, batch)?;
            let infotext = infotext(params, seed, model, infotext_params);
            self.deliver(GeneratedImage { image, seed, index: batch * params.batch_size + i, infotext })?;
        }
        Ok(())
    }

    /// Hands a finished image to the observer (cut to [`Run::crop`] first).
    pub(crate) fn deliver(&mut self, mut image: GeneratedImage) -> Result<()> {
        if let Some((x, y, width, height)) = self.crop
            && image.image.dimensions() != (width, height)
        {
            image.image = crop(&image.image, x, y, width, height);
            image.infotext.set("Size", format!("{width}x{height}"));
        }
        self.seeds.push(image.seed);
        self.observer.image(image)
    }

    /// Every image of the request is `image` itself (nothing to change: strength 0, an empty mask).
    pub(crate) fn return_input(
        &mut self,
        model: &LoadedModel,
        params: &GenerateRequest,
        image: &RgbImage,
        infotext_params: &[(String, String)],
    ) -> Result<()> {
        for index in 0..params.batch_size * params.batch_count {
            let seed = self.base_seed + index as u64;
            let infotext = infotext(params, seed, model, infotext_params);
            self.deliver(GeneratedImage { image: image.clone(), seed, index, infotext })?;
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> GenerateSummary {
        self.timings.total = self.started.elapsed();
        GenerateSummary { seeds: self.seeds, timings: self.timings }
    }
}

/// What the denoising loop of a mode uses besides the latents: the guidance, the control state, where in the
/// schedule it starts, and channels appended to the UNet's input (an inpainting UNet's mask and masked picture).
#[derive(Clone, Copy)]
pub(crate) struct Sampling<'a> {
    pub guidance: &'a Guidance,
    pub control: Option<&'a ControlState>,
    pub first_step: usize,
    pub extra_channels: Option<&'a ArrayD<f32>>,
}

/// One batch's sampler and noise: a fresh scheduler for `steps` and the batch's generators, which the latent
/// preparation draws from first and the sampler's steps after.
pub(crate) struct BatchSampler<'g> {
    pub scheduler: Box<dyn Scheduler>,
    pub noise: BatchNoise<'g>,
}

impl<'g> BatchSampler<'g> {
    pub(crate) fn new(
        model: &LoadedModel,
        params: &GenerateRequest,
        steps: usize,
        generators: &'g mut [TorchGenerator],
    ) -> Result<BatchSampler<'g>> {
        Ok(BatchSampler { scheduler: scheduler(model, params, steps)?, noise: BatchNoise::new(generators) })
    }

    /// Text to image's starting latents: noise of `shape` scaled by the sampler's initial sigma.
    pub(crate) fn initial_noise(&mut self, shape: &[usize]) -> ArrayD<f32> {
        let init_sigma = self.scheduler.init_noise_sigma();
        self.noise.randn(shape).mapv(|v| v * init_sigma)
    }

    /// Image to image's starting latents: `known` noised to the level of step `first_step`.
    pub(crate) fn noised(&mut self, known: &ArrayD<f32>, first_step: usize) -> ArrayD<f32> {
        let eps = self.noise.randn(known.shape());
        self.scheduler.add_noise(known, &eps, first_step)
    }
}

/// The request's sampler and schedule over `steps` steps on the model's scheduler configuration.
pub(crate) fn scheduler(model: &LoadedModel, params: &GenerateRequest, steps: usize) -> Result<Box<dyn Scheduler>> {
    create_scheduler(params.sampler, params.schedule, &model.scheduler_config, steps)
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

/// AUTOMATIC1111's infotext for one image: the request's fields, then `extra` (a mode's and the control units'),
/// then the version, which A1111 keeps last.
pub(crate) fn infotext(
    params: &GenerateRequest,
    seed: u64,
    model: &LoadedModel,
    extra: &[(String, String)],
) -> InfoText {
    let mut info =
        InfoText { prompt: params.prompt.clone(), negative_prompt: params.negative_prompt.clone(), params: Vec::new() };
    info.set("Steps", params.steps);
    info.set("Sampler", sampler_label(params.sampler, SigmaSchedule::Automatic));
    if params.schedule != SigmaSchedule::Automatic {
        info.set("Schedule type", params.schedule.display_name());
    }
    info.set("CFG scale", params.cfg_scale);
    info.set("Seed", seed);
    info.set("Size", format!("{}x{}", params.width, params.height));
    info.set("Model hash", &model.hash);
    info.set("Model", &model.folder.name);
    if params.batch_size > 1 {
        info.set("Batch size", params.batch_size);
    }
    for (key, value) in extra {
        info.set(key, value);
    }
    info.set("Version", concat!("Pigment ", env!("CARGO_PKG_VERSION")));
    info
}

/// `(key, value)` pairs with owned strings, for [`infotext`].
pub(crate) fn owned_params(params: &[(&str, String)]) -> Vec<(String, String)> {
    params.iter().map(|(key, value)| ((*key).to_string(), value.clone())).collect()
}

/// A1111 draws seeds below 2^32 - 1; so do we, so seeds stay short and portable to it.
fn random_seed() -> Result<u64> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| EngineError::parameter("seed", -1, format!("no random source: {e}")))?;
    Ok(u64::from(u32::from_le_bytes(bytes) % (u32::MAX - 1)))
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
}
