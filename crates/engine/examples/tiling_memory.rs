//! Peak memory of the tiled VAE decode and the tiled upscaler against running them whole, on the CPU.
//!
//!     cargo run --release -p pigment-engine --example tiling_memory
//!
//! Each measurement runs in a child process of its own (this program with `--measure`), so one cannot inherit
//! another's high-water mark; a child reports its peak resident memory (VmHWM) before and after the operation, after
//! loading the model and making the input. Measured: a 2048x2048 and a 1024x1024 VAE decode (latents 256x256 and
//! 128x128) with the demo model, and a x4 upscale of a 1024x1024 picture with the tiny ESRGAN fixture; each tiled
//! (the defaults: VAE tiles of 64 latents with 16 blended; upscaler tiles of 192 pixels) and whole. The demo model and the fixture are tiny
//! (a real SD 1.5 VAE has 16 times the channels, an ESRGAN 8 times), so the figures show how memory scales with
//! tiling, not what a full-size model needs.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use image::{Rgb, RgbImage};
use ndarray::{ArrayD, IxDyn};
use pigment_engine::model::{LoadedModel, UpscalerSession};
use pigment_engine::pipeline::{Flow, UpscaleTiling, VaeTiling, VaeTilingMode, decode_latents, upscale};
use pigment_engine::rng::TorchGenerator;
use pigment_engine::runtime::{DeviceChoice, Runtime, RuntimeOptions, peak_process_memory};

const MIB: f64 = (1u64 << 20) as f64;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Address space each child may take: the whole 2048x2048 decode wants more (its VAE mid-block attention alone is
/// 65536^2 floats, 16 GiB), and without a limit the kernel's OOM killer would pick a process, maybe another one.
const CHILD_ADDRESS_SPACE_KIB: u64 = 16 << 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|a| a == "--measure") {
        let what = args.get(position + 1).map(String::as_str).unwrap_or_default();
        let tiled = args.iter().any(|a| a == "--tiled");
        measure(what, tiled);
        return;
    }
    println!("{:<34} {:>6} {:>12} {:>12} {:>9}", "operation", "mode", "before MiB", "peak MiB", "seconds");
    let exe = std::env::current_exe().expect("this program's path");
    for what in ["vae-decode-2048", "vae-decode-1024", "upscale-x4-1024"] {
        for tiled in [true, false] {
            // `ulimit -v` in a shell that then becomes the child: a refused allocation instead of the OOM killer.
            let script = format!(
                "ulimit -v {CHILD_ADDRESS_SPACE_KIB} && exec \"$0\" --measure {what}{}",
                if tiled { " --tiled" } else { "" }
            );
            let output = Command::new("sh").arg("-c").arg(script).arg(&exe).output().expect("the measuring child runs");
            if output.status.success() || !output.stdout.is_empty() {
                print!("{}", String::from_utf8_lossy(&output.stdout));
            } else {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let reason = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
                let mode = if tiled { "tiled" } else { "whole" };
                println!(
                    "{what:<34} {mode:>6}  failed within {} GiB of address space: {reason}",
                    CHILD_ADDRESS_SPACE_KIB >> 20
                );
            }
        }
    }
}

fn measure(what: &str, tiled: bool) {
    let runtime = Runtime::load(&RuntimeOptions { device: DeviceChoice::Cpu, ..RuntimeOptions::default() })
        .expect("ONNX Runtime loads (npm run setup)");
    let mode = if tiled { "tiled" } else { "whole" };
    let (before, seconds, size) = match what {
        "vae-decode-2048" | "vae-decode-1024" => {
            let latent_side = if what == "vae-decode-2048" { 256 } else { 128 };
            let mut model = LoadedModel::open(&runtime, &repo().join("models/tiny-sd")).expect("the demo model");
            let vae_tiling = if tiled {
                VaeTiling { mode: VaeTilingMode::Always, ..VaeTiling::default() }
            } else {
                VaeTiling { mode: VaeTilingMode::Never, ..VaeTiling::default() }
            };
            // Latents as a sampler leaves them: about unit variance, scaled by the VAE factor.
            let shape = [1, 4, latent_side, latent_side];
            let latents: ArrayD<f32> =
                TorchGenerator::new(0).randn(&shape).into_shape_with_order(IxDyn(&shape)).expect("shape");
            let before = peak_process_memory().unwrap_or(0);
            let started = Instant::now();
            let (image, _) =
                decode_latents(&mut model, &latents, 0, vae_tiling).unwrap_or_else(|e| fail(what, tiled, &e));
            (before, started.elapsed().as_secs_f64(), image.dimensions())
        }
        "upscale-x4-1024" => {
            let path = repo().join("tests/fixtures/models/tiny-esrgan-x4");
            let mut model = UpscalerSession::open(&runtime, &path).expect("the ESRGAN fixture");
            let picture =
                RgbImage::from_fn(1024, 1024, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]));
            let tiling = if tiled { UpscaleTiling::default() } else { UpscaleTiling::whole_image() };
            let before = peak_process_memory().unwrap_or(0);
            let started = Instant::now();
            let image =
                upscale(&picture, 4096, 4096, Some(&mut model), tiling, &mut |_| Flow::Continue).expect("upscale");
            (before, started.elapsed().as_secs_f64(), image.dimensions())
        }
        other => panic!("unknown measurement {other}"),
    };
    let peak = peak_process_memory().unwrap_or(0);
    println!(
        "{:<34} {:>6} {:>12.0} {:>12.0} {:>9.2}",
        format!("{what} ({}x{} out)", size.0, size.1),
        mode,
        before as f64 / MIB,
        peak as f64 / MIB,
        seconds
    );
}

/// Prints the failed measurement as its row (with the peak reached) and ends the child.
fn fail(what: &str, tiled: bool, error: &pigment_engine::EngineError) -> ! {
    let peak = peak_process_memory().unwrap_or(0) as f64 / MIB;
    let mode = if tiled { "tiled" } else { "whole" };
    println!("{what:<34} {mode:>6}  failed at {peak:.0} MiB resident: {error}");
    std::process::exit(2)
}
