//! What the HTTP API costs over the engine, and what an idle server holds in memory.
//!
//! `cargo run --release -p pigment-server --example api_overhead -- [PIGMENT_BINARY] [RUNS] [STEPS] [SIZE]`
//! (default target/release/pigment, 20 runs of 20 steps at 64x64 on the demo model).
//!
//! 1. The engine in this process, as `pigment generate` runs it once its model is loaded: `generate`, then the PNG
//!    with its parameters written (atomically, as the CLI saves).
//! 2. A `pigment serve` process (the real binary): its resident memory once idle, then the same request through
//!    `POST /sdapi/v1/txt2img`, timed at the client (JSON, queue, generation, PNG + base64, HTTP).
//! 3. `pigment generate` as a process, each run paying for start-up and model load (for scale).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use pigment_engine::image::{PARAMETERS_KEY, write_png_atomically};
use pigment_engine::model::LoadedModel;
use pigment_engine::pipeline::{
    Flow, GenerateRequest, GeneratedImage, Generation, GenerationObserver, Progress, Resources, generate,
};
use pigment_engine::runtime::{Runtime, RuntimeOptions};
use pigment_engine::schedulers::{Sampler, SigmaSchedule};
use serde_json::json;

/// Saves each image as the CLI does; `None` keeps nothing (the generation alone).
struct SaveLikeTheCli(Option<PathBuf>);

impl GenerationObserver for SaveLikeTheCli {
    fn progress(&mut self, _: &Progress) -> Flow {
        Flow::Continue
    }
    fn image(&mut self, image: GeneratedImage) -> pigment_engine::Result<()> {
        let Some(path) = &self.0 else { return Ok(()) };
        write_png_atomically(path, &image.image, &[(PARAMETERS_KEY, image.infotext.to_text().as_str())])
    }
}

fn summary(name: &str, mut milliseconds: Vec<f64>) -> (f64, f64) {
    milliseconds.sort_by(f64::total_cmp);
    let mean = milliseconds.iter().sum::<f64>() / milliseconds.len() as f64;
    let median = milliseconds[milliseconds.len() / 2];
    println!(
        "{name:<44} mean {mean:>8.2} ms  median {median:>8.2} ms  min {:>8.2}  max {:>8.2}  (n = {})",
        milliseconds[0],
        milliseconds[milliseconds.len() - 1],
        milliseconds.len()
    );
    (mean, median)
}

fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = std::env::args().skip(1);
    let binary = args.next().map_or_else(|| root.join("target/release/pigment"), PathBuf::from);
    let runs: usize = args.next().map_or(Ok(20), |a| a.parse())?;
    let steps: usize = args.next().map_or(Ok(20), |a| a.parse())?;
    let size: u32 = args.next().map_or(Ok(64), |a| a.parse())?;
    let model_folder = root.join("models/tiny-sd");
    let scratch = tempfile::tempdir()?;
    let txt2img = Generation::text(GenerateRequest {
        prompt: "a photo of a cat".into(),
        seed: Some(1),
        steps,
        sampler: Sampler::Euler,
        schedule: SigmaSchedule::Automatic,
        width: size,
        height: size,
        ..GenerateRequest::default()
    });
    println!("demo model, {size}x{size}, {steps} steps, Euler, {runs} runs each after one warm-up");

    let mut server = Command::new(&binary)
        .args(["serve", "--port", "0", "--quiet", "--no-cache", "--model"])
        .arg(&model_folder)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {} (build it first): {e}", binary.display()))?;
    let mut lines = BufReader::new(server.stderr.take().ok_or("no stderr")?).lines();
    let address = loop {
        let line = lines.next().ok_or("the server exited before listening")??;
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.split('/').next().unwrap_or_default().to_string();
        }
    };
    std::thread::sleep(std::time::Duration::from_secs(1));
    let idle_rss = resident_kib(server.id());

    let runtime = Runtime::load(&RuntimeOptions::default())?;
    let mut model = LoadedModel::open(&runtime, &model_folder)?;
    let mut saving = SaveLikeTheCli(Some(scratch.path().join("image.png")));
    let mut keeping_nothing = SaveLikeTheCli(None);
    let body = json!({"prompt": "a photo of a cat", "seed": 1, "steps": steps, "sampler_name": "Euler",
        "width": size, "height": size});
    let url = format!("http://{address}/sdapi/v1/txt2img");
    let client = reqwest::Client::new();
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Engine and API runs alternate, so a change in the machine's load weighs on both alike.
    let (mut engine, mut generation, mut api) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..=runs {
        let started = Instant::now();
        generate(Resources::new(&mut model), &txt2img, &mut keeping_nothing)?;
        let generation_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        generate(Resources::new(&mut model), &txt2img, &mut saving)?;
        let engine_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        tokio.block_on(async {
            let response = client.post(&url).json(&body).send().await?;
            let status = response.status();
            let answer: serde_json::Value = response.json().await?;
            if !status.is_success() || answer["images"].as_array().map_or(0, Vec::len) != 1 {
                return Err(format!("the API answered {status}: {answer}").into());
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        })?;
        let api_ms = started.elapsed().as_secs_f64() * 1000.0;
        if run > 0 {
            generation.push(generation_ms);
            engine.push(engine_ms);
            api.push(api_ms);
        }
    }
    drop(model);
    let busy_rss = resident_kib(server.id());
    server.kill()?;
    server.wait()?;

    let mut process = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new(&binary)
            .args(["generate", "--no-cache", "--sampler", "Euler", "--seed", "1", "--prompt", "a photo of a cat"])
            .args(["--steps", &steps.to_string(), "--width", &size.to_string(), "--height", &size.to_string()])
            .arg("--model")
            .arg(&model_folder)
            .arg("--output")
            .arg(scratch.path().join("cli.png"))
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            return Err("pigment generate failed".into());
        }
        process.push(started.elapsed().as_secs_f64() * 1000.0);
    }

    let (generation_mean, generation_median) = summary("engine txt2img alone, image kept in memory", generation);
    let (engine_mean, engine_median) = summary("engine txt2img + PNG saved (pigment generate)", engine);
    let (api_mean, api_median) = summary("POST /sdapi/v1/txt2img (pigment serve)", api);
    summary("pigment generate process (start + load + run)", process);
    for (name, mean, median) in [
        ("the generation alone", generation_mean, generation_median),
        ("the CLI's generate + save", engine_mean, engine_median),
    ] {
        println!(
            "API over {name}: mean {:+.2} ms ({:+.1}%), median {:+.2} ms ({:+.1}%)",
            api_mean - mean,
            (api_mean / mean - 1.0) * 100.0,
            api_median - median,
            (api_median / median - 1.0) * 100.0
        );
    }
    let mib = |kib: Option<u64>| kib.map_or("unknown".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!("pigment serve resident memory: idle after start {}, after the runs {}", mib(idle_rss), mib(busy_rss));
    Ok(())
}
