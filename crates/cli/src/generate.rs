//! `pigment generate`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use pigment_engine::EngineError;
use pigment_engine::model::{LoadedModel, find_demo_model};
use pigment_engine::pipeline::{GenerateRequest, txt2img};
use pigment_engine::schedulers::{SigmaSchedule, parse_sampler};
use serde::Serialize;

use crate::output::OutputPlan;
use crate::progress::{CliObserver, cancel_on_ctrl_c};
use crate::{CliError, RuntimeArgs};

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
    /// Sigma schedule for samplers that take one: automatic or karras (also as part of the sampler name).
    #[arg(long)]
    pub schedule: Option<String>,
    #[arg(long, default_value_t = 512)]
    pub width: u32,
    #[arg(long, default_value_t = 512)]
    pub height: u32,
    /// Images generated together in one pass.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Number of batches, one after the other.
    #[arg(long, default_value_t = 1)]
    pub batch_count: usize,
    /// An existing folder (files NNNNN-SEED.png) or a .png file name; default ./outputs.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Print a JSON summary (files, seeds, timings) on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
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
        let (sampler, mut schedule) = parse_sampler(&self.sampler)?;
        if let Some(name) = &self.schedule {
            let chosen: SigmaSchedule = name.parse()?;
            if schedule != SigmaSchedule::Automatic && chosen != schedule {
                return Err(CliError::Usage(format!(
                    "--sampler {:?} already names a schedule; drop --schedule {name:?} or the schedule in the sampler name",
                    self.sampler
                )));
            }
            schedule = chosen;
        }
        let request = GenerateRequest {
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            seed,
            steps: self.steps,
            cfg_scale,
            sampler,
            schedule,
            width: self.width,
            height: self.height,
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

pub fn run(args: GenerateArgs) -> Result<(), CliError> {
    // Everything the user typed is checked before the runtime and the model load.
    let request = args.request()?;
    let folder = args.model_folder()?;
    let plan = OutputPlan::new(args.output.as_deref(), request.batch_size * request.batch_count)?;
    let runtime = args.runtime.load()?;
    let load_started = std::time::Instant::now();
    let mut model = LoadedModel::open(&runtime, &folder)?;
    let load_time = load_started.elapsed();
    let mut observer = CliObserver::new(Some(plan), cancel_on_ctrl_c(), std::io::stderr().is_terminal());
    let result = txt2img(&mut model, &request, &mut observer);
    observer.finish();
    let summary = match result {
        Ok(summary) => summary,
        Err(EngineError::Cancelled) => return Err(CliError::Cancelled { saved: observer.saved.len() }),
        Err(other) => return Err(other.into()),
    };
    if args.json {
        let summary = Summary {
            files: observer.saved,
            seeds: summary.seeds,
            model: folder,
            execution_provider: runtime.providers().to_string(),
            timings_ms: TimingsMs::new(load_time, &summary.timings),
        };
        println!("{}", serde_json::to_string_pretty(&summary).map_err(|e| CliError::Usage(e.to_string()))?);
    }
    Ok(())
}
