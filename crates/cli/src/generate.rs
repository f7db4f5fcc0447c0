//! `pigment generate`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use pigment_engine::EngineError;
use pigment_engine::model::{CancelSignal, LoadedModel, UpscalerSession, find_demo_model};
use pigment_engine::pipeline::{
    DEFAULT_HIRES_STRENGTH, GenerateRequest, Generation, HiresFix, HiresUpscaler, Resources, VaeTilingMode, generate,
};
use pigment_engine::schedulers::choose_sampler;
use pigment_engine::text::EmbeddingLibrary;
use serde::Serialize;

use crate::control::{ControlArgs, ControlImageReport};
use crate::output::OutputPlan;
use crate::progress::{CliObserver, cancel_on_ctrl_c};
use crate::{CliError, RuntimeArgs};

/// Width and height when none is given (SD 1.5's training size).
const DEFAULT_SIZE: u32 = 512;

#[derive(Args, Clone)]
pub struct GenerateArgs {
    /// Model folder in the diffusers ONNX layout (default: the bundled demo model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub prompt: String,
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub negative_prompt: String,
    /// Seed of the first image (image i uses seed + i); -1 for a random one.
    #[arg(long, default_value = "-1", allow_negative_numbers = true)]
    pub seed: String,
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Classifier-free guidance scale; 1 or less skips the unconditional pass.
    #[arg(long, default_value = "7", allow_negative_numbers = true)]
    pub cfg: String,
    /// Sampler, by AUTOMATIC1111's name ("DPM++ 2M Karras") or id (dpmpp_2m_karras); see `pigment samplers`.
    #[arg(long, default_value = "Euler a")]
    pub sampler: String,
    /// Sigma schedule for samplers that take one: automatic, karras or exponential; a schedule in the sampler name
    /// ("DPM++ 2M Karras") wins, as in AUTOMATIC1111.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Image width [default: 512; img2img and inpaint: the picture's, rounded down to a multiple of 8].
    #[arg(long)]
    pub width: Option<u32>,
    /// Image height [default: 512; img2img and inpaint: the picture's, rounded down to a multiple of 8].
    #[arg(long)]
    pub height: Option<u32>,
    /// Images generated together in one pass.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Number of batches, one after the other.
    #[arg(long, default_value_t = 1)]
    pub batch_count: usize,
    /// Folder of textual-inversion embeddings (.pt, .safetensors, .bin): each is used in the prompt by its file
    /// name without the extension, e.g. `--embeddings emb/` and the prompt "a portrait, (my-style:1.2)".
    #[arg(long, value_name = "DIR")]
    pub embeddings: Option<PathBuf>,
    /// An existing folder (files NNNNN-SEED.png) or a .png file name; default ./outputs.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Print a JSON summary (files, seeds, timings) on stdout.
    #[arg(long)]
    pub json: bool,
    /// VAE in tiles (bounded memory for large images): auto (above 1024x1024), always or never.
    #[arg(long, default_value = "auto", value_parser = parse_vae_tiling)]
    pub vae_tiling: VaeTilingMode,
    #[command(flatten)]
    pub control: ControlArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

fn parse_vae_tiling(value: &str) -> Result<VaeTilingMode, String> {
    value.parse().map_err(|e: EngineError| e.to_string())
}

/// `pigment generate`: the shared flags and the hires fix.
#[derive(Args)]
pub struct GenerateCommand {
    #[command(flatten)]
    pub args: GenerateArgs,
    #[command(flatten)]
    pub hires: HiresArgs,
}

/// Hires fix: generate at --width x --height, upscale by --hires-scale, then image to image at that size.
#[derive(Args)]
pub struct HiresArgs {
    /// Upscale factor of the hires fix (A1111's "Upscale by"); the fix runs when given.
    #[arg(long, value_name = "X")]
    pub hires_scale: Option<f64>,
    /// Denoising strength of the hires pass.
    #[arg(long, value_name = "X", default_value_t = DEFAULT_HIRES_STRENGTH, requires = "hires_scale")]
    pub hires_strength: f64,
    /// Steps of the hires pass (default: --steps).
    #[arg(long, value_name = "N", requires = "hires_scale")]
    pub hires_steps: Option<usize>,
    /// Upscaler model folder (ESRGAN-family ONNX) for the hires fix; without it the latents are upscaled.
    #[arg(long, value_name = "DIR", requires = "hires_scale", conflicts_with = "hires_upscaler")]
    pub upscaler: Option<PathBuf>,
    /// Without --upscaler: latent (A1111's default) or lanczos (the decoded picture).
    #[arg(long, value_name = "KIND", requires = "hires_scale")]
    pub hires_upscaler: Option<String>,
}

impl HiresArgs {
    fn hires(&self) -> Result<Option<HiresFix>, CliError> {
        let Some(scale) = self.hires_scale else { return Ok(None) };
        let upscaler = match (&self.upscaler, self.hires_upscaler.as_deref().map(str::to_lowercase).as_deref()) {
            (Some(_), _) => HiresUpscaler::Model,
            (None, None | Some("latent")) => HiresUpscaler::Latent,
            (None, Some("lanczos")) => HiresUpscaler::Lanczos,
            (None, Some(other)) => {
                return Err(EngineError::InvalidParameter {
                    name: "hires upscaler",
                    value: other.into(),
                    reason: "expected latent or lanczos".into(),
                }
                .into());
            }
        };
        Ok(Some(HiresFix { scale, strength: self.hires_strength, upscaler, steps: self.hires_steps }))
    }
}

impl GenerateArgs {
    pub fn model_folder(&self) -> Result<PathBuf, CliError> {
        match &self.model {
            Some(path) => Ok(path.clone()),
            None => find_demo_model().ok_or_else(|| {
                CliError::Usage("no --model given and the demo model (models/tiny-sd) was not found".into())
            }),
        }
    }

    pub fn request(&self) -> Result<GenerateRequest, CliError> {
        let seed = match self.seed.trim() {
            "-1" => None,
            text => Some(text.parse::<u64>().map_err(|_| EngineError::InvalidParameter {
                name: "seed",
                value: text.into(),
                reason: "expected -1 or a whole number from 0".into(),
            })?),
        };
        let cfg_scale = self.cfg.trim().parse::<f32>().map_err(|_| EngineError::InvalidParameter {
            name: "cfg scale",
            value: self.cfg.clone(),
            reason: "expected a number".into(),
        })?;
        let (sampler, schedule) = choose_sampler(&self.sampler, self.schedule.as_deref())?;
        let request = GenerateRequest {
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            seed,
            steps: self.steps,
            cfg_scale,
            sampler,
            schedule,
            width: self.width.unwrap_or(DEFAULT_SIZE),
            height: self.height.unwrap_or(DEFAULT_SIZE),
            batch_size: self.batch_size,
            batch_count: self.batch_count,
        };
        request.validate()?;
        Ok(request)
    }
}

#[derive(Serialize)]
struct Summary {
    files: Vec<PathBuf>,
    seeds: Vec<u64>,
    model: PathBuf,
    execution_provider: String,
    timings_ms: TimingsMs,
    /// Each control image: its model, preprocessor and parameters, and where the preprocessed image was saved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    control_images: Vec<ControlImageReport>,
}

#[derive(Serialize)]
pub struct TimingsMs {
    pub model_load: f64,
    pub text_encoder: f64,
    pub unet_total: f64,
    pub unet_calls: usize,
    pub unet_per_call: f64,
    pub denoising_loop: f64,
    pub outside_onnx_runtime_share: f64,
    pub vae_decode: f64,
    pub total: f64,
}

impl TimingsMs {
    pub fn new(load: std::time::Duration, t: &pigment_engine::pipeline::Timings) -> TimingsMs {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        TimingsMs {
            model_load: ms(load),
            text_encoder: ms(t.text_encoder),
            unet_total: ms(t.unet),
            unet_calls: t.unet_calls,
            unet_per_call: if t.unet_calls == 0 { 0.0 } else { ms(t.unet) / t.unet_calls as f64 },
            denoising_loop: ms(t.denoising_loop),
            outside_onnx_runtime_share: t.loop_overhead_fraction(),
            vae_decode: ms(t.vae_decode),
            total: ms(t.total),
        }
    }
}

pub fn run(command: GenerateCommand) -> Result<(), CliError> {
    let GenerateCommand { args, hires } = command;
    let generation = Generation { hires: hires.hires()?, ..Generation::text(args.request()?) };
    execute(&args, generation, hires.upscaler.as_deref())
}

/// Runs `generation` with the flags of `args`: everything the user typed is checked first, then the control images
/// are prepared, the model (and any ControlNets, adapters and `upscaler`) loads, and each image is saved as it
/// comes; `--json` prints the summary.
pub fn execute(args: &GenerateArgs, mut generation: Generation, upscaler: Option<&Path>) -> Result<(), CliError> {
    generation.validate()?;
    let folder = args.model_folder()?;
    let plan = OutputPlan::new(args.output.as_deref(), generation.image_count())?;
    let mut control = args.control.prepare(generation.params.width, generation.params.height, &plan)?;
    let embeddings = match &args.embeddings {
        Some(dir) => EmbeddingLibrary::load_folder(dir)?,
        None => EmbeddingLibrary::default(),
    };
    let runtime = args.runtime.load()?;
    // One Ctrl+C handler for the process: the annotators and the generation share its flag.
    let cancel = cancel_on_ctrl_c();
    control.annotate(&runtime, &folder, &cancel)?;
    generation.control = control.spec().clone();
    generation.vae_tiling.mode = args.vae_tiling;
    let load_started = std::time::Instant::now();
    let mut model = LoadedModel::open(&runtime, &folder)?;
    // Ctrl+C stops a model run while it runs too (a UNet step on a CPU can take many seconds).
    model.watch_cancel(Some(CancelSignal::from(cancel.clone())))?;
    model.set_embeddings(&runtime, &embeddings)?;
    let mut upscaler = upscaler.map(|path| UpscalerSession::open(&runtime, path)).transpose()?;
    let load_time = load_started.elapsed();
    let mut observer = CliObserver::new(Some(plan), cancel, std::io::stderr().is_terminal());
    let result = generate(Resources::new(&mut model).with_upscaler(upscaler.as_mut()), &generation, &mut observer);
    observer.finish();
    let summary = match result {
        Ok(summary) => summary,
        Err(EngineError::Cancelled) => return Err(CliError::Cancelled { saved: observer.saved.len() }),
        Err(other) => return Err(other.into()),
    };
    control.save()?;
    if args.json {
        let summary = Summary {
            files: observer.saved,
            seeds: summary.seeds,
            model: folder,
            execution_provider: runtime.providers().to_string(),
            timings_ms: TimingsMs::new(load_time, &summary.timings),
            control_images: control.report(),
        };
        println!("{}", serde_json::to_string_pretty(&summary).map_err(|e| CliError::Usage(e.to_string()))?);
    }
    Ok(())
}
