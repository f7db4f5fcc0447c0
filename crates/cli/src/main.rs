//! `pigment`: a thin command-line layer over pigment-engine. It parses arguments, shows progress, saves images
//! and turns every error into one line on stderr and a non-zero exit code.

mod bench;
mod generate;
mod models;
mod output;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use pigment_engine::EngineError;
use pigment_engine::runtime::{DeviceChoice, Runtime, RuntimeOptions};

#[derive(Parser)]
#[command(name = "pigment", version, about = "Stable Diffusion through ONNX Runtime: generate images, inspect models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate images from a prompt.
    Generate(generate::GenerateArgs),
    /// Inspect model folders.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// List the samplers and schedules.
    Samplers,
    /// Time each stage of a generation (text encoder, UNet per step, VAE decode).
    Bench(bench::BenchArgs),
}

/// Options every command that runs a model shares.
#[derive(Args, Clone)]
pub struct RuntimeArgs {
    /// Execution device: auto, cuda, directml or cpu.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// The ONNX Runtime library to load (default: ORT_DYLIB_PATH, next to the executable, or the repository's .ort/lib).
    #[arg(long)]
    onnxruntime: Option<PathBuf>,
}

impl RuntimeArgs {
    fn load(&self) -> Result<Runtime, CliError> {
        Ok(Runtime::load(&RuntimeOptions { library_path: self.onnxruntime.clone(), device: self.device })?)
    }
}

fn parse_device(value: &str) -> Result<DeviceChoice, String> {
    value.parse().map_err(|e: EngineError| e.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Usage(String),
    #[error("cancelled; {saved} image(s) saved before cancelling")]
    Cancelled { saved: usize },
    #[error("could not write to standard output: {0}")]
    Stdout(#[from] std::io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Models(command) => models::run(command),
        Command::Samplers => {
            for name in pigment_engine::schedulers::known_sampler_names() {
                println!("{name}");
            }
            Ok(())
        }
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            match error {
                // 130 is what shells report for a command interrupted with Ctrl+C.
                CliError::Cancelled { .. } => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
