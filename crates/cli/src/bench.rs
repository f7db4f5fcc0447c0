//! `pigment bench`: per-stage times on a model, as a table or JSON. Images are generated but not saved.

use std::path::PathBuf;

use clap::Args;
use pigment_engine::model::{LoadedModel, find_demo_model};
use pigment_engine::pipeline::{GenerateRequest, Generation, Resources, generate};
use pigment_engine::runtime::{ExecutionProvider, PeakGpuMemoryWatch, peak_process_memory, process_gpu_memory};
use pigment_engine::schedulers::parse_sampler;

use crate::generate::TimingsMs;
use crate::progress::{CliObserver, cancel_on_ctrl_c};
use crate::{CliError, RuntimeArgs};

const MIB: f64 = (1u64 << 20) as f64;

#[derive(Args)]
pub struct BenchArgs {
    /// Model folder (default: the bundled demo model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Image width and height.
    #[arg(long, default_value_t = 64)]
    size: u32,
    #[arg(long, default_value_t = 20)]
    steps: usize,
    #[arg(long, default_value_t = 7.5)]
    cfg: f32,
    #[arg(long, default_value = "Euler")]
    sampler: String,
    /// Timed runs after one warm-up run.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn run(args: BenchArgs) -> Result<(), CliError> {
    let folder = match args.model {
        Some(folder) => folder,
        None => {
            find_demo_model().ok_or_else(|| CliError::Usage("the demo model (models/tiny-sd) was not found".into()))?
        }
    };
    let (sampler, schedule) = parse_sampler(&args.sampler)?;
    let generation = Generation::text(GenerateRequest {
        prompt: "a photo of a cat".into(),
        seed: Some(0),
        steps: args.steps,
        cfg_scale: args.cfg,
        sampler,
        schedule,
        width: args.size,
        height: args.size,
        ..GenerateRequest::default()
    });
    generation.validate()?;
    if args.runs == 0 {
        return Err(CliError::Usage("--runs must be at least 1".into()));
    }
    let runtime = args.runtime.load()?;
    let gpu_memory_watch = PeakGpuMemoryWatch::start();
    let started = std::time::Instant::now();
    let mut model = LoadedModel::open(&runtime, &folder)?;
    let load = started.elapsed();
    // The weights and whatever the sessions took at creation, before any activation or cuDNN workspace.
    let gpu_memory_after_load = process_gpu_memory();
    let cancel = cancel_on_ctrl_c();
    let mut observer = CliObserver::new(None, cancel, false);
    // Warm-up: the first runs pay for allocations and kernel selection.
    generate(Resources::new(&mut model), &generation, &mut observer)?;
    let precision = model.info().precision;
    let mut runs = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let summary = generate(Resources::new(&mut model), &generation, &mut observer)?;
        runs.push(TimingsMs::new(load, &summary.timings));
    }
    let peak_gpu_memory = gpu_memory_watch.and_then(PeakGpuMemoryWatch::finish);
    let median = |f: fn(&TimingsMs) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let table = [
        ("model load", load.as_secs_f64() * 1000.0, "ms"),
        ("text encoder", median(|t| t.text_encoder), "ms"),
        ("unet per call", median(|t| t.unet_per_call), "ms"),
        ("denoising loop", median(|t| t.denoising_loop), "ms"),
        ("outside ORT in loop", median(|t| t.outside_onnx_runtime_share) * 100.0, "%"),
        ("vae decode", median(|t| t.vae_decode), "ms"),
        ("end to end", median(|t| t.total), "ms"),
        ("peak RAM", peak_process_memory().unwrap_or(0) as f64 / MIB, "MiB"),
        ("GPU memory after load", gpu_memory_after_load.unwrap_or(0) as f64 / MIB, "MiB"),
        ("GPU memory", process_gpu_memory().unwrap_or(0) as f64 / MIB, "MiB"),
        ("peak GPU memory", peak_gpu_memory.unwrap_or(0) as f64 / MIB, "MiB"),
    ];
    if args.json {
        let object: serde_json::Map<String, serde_json::Value> = table
            .iter()
            .map(|(name, value, unit)| {
                (
                    format!(
                        "{}_{}",
                        name.replace(' ', "_"),
                        match *unit {
                            "%" => "percent",
                            other => other,
                        }
                    ),
                    (*value).into(),
                )
            })
            .chain([
                ("runs".to_string(), runs.len().into()),
                ("size".to_string(), args.size.into()),
                ("steps".to_string(), args.steps.into()),
                ("unet_calls".to_string(), runs[0].unet_calls.into()),
                ("execution_provider".to_string(), runtime.providers().to_string().into()),
                ("io_binding".to_string(), runtime.io_binding().into()),
                ("cuda".to_string(), serde_json::to_value(runtime.cuda_options()).unwrap_or_default()),
                ("precision".to_string(), serde_json::to_value(&precision).unwrap_or_default()),
                ("model".to_string(), folder.display().to_string().into()),
            ])
            .collect();
        println!("{}", serde_json::Value::Object(object));
    } else {
        println!(
            "model {} on {}, {}x{}, {} steps, CFG {}, {} (median of {} runs)",
            folder.display(),
            runtime.providers(),
            args.size,
            args.size,
            args.steps,
            args.cfg,
            args.sampler,
            runs.len()
        );
        println!("precision {}", precision.reason);
        println!("IO binding {}", if runtime.io_binding() { "on" } else { "off" });
        if runtime.providers().active == ExecutionProvider::Cuda {
            println!("CUDA {:?}", runtime.cuda_options());
        }
        for (name, value, unit) in table {
            println!("{name:<22} {value:>10.3} {unit}");
        }
    }
    Ok(())
}
