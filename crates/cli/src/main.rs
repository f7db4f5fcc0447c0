//! `pigment`: a thin command-line layer over pigment-engine. It parses arguments, shows progress, saves images
//! and turns every error into one line on stderr and a non-zero exit code.

mod bench;
mod control;
mod devices;
mod edit;
mod generate;
mod models;
mod output;
mod progress;
mod serve;
mod upscale;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use pigment_engine::EngineError;
use pigment_engine::runtime::{
    ArenaExtension, ConvAlgorithmSearch, CudaOptions, DeviceChoice, IoBindingChoice, LowVramChoice, PrecisionChoice,
    Runtime, RuntimeOptions,
};

#[derive(Parser)]
#[command(name = "pigment", version, about = "Stable Diffusion through ONNX Runtime: generate images, inspect models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate images from a prompt.
    Generate(generate::GenerateCommand),
    /// Change a picture from a prompt (image to image).
    Img2img(edit::Img2ImgArgs),
    /// Repaint the masked part of a picture (white = repaint).
    Inpaint(edit::InpaintArgs),
    /// Extend a picture on any side and paint the new area.
    Outpaint(edit::OutpaintArgs),
    /// Make a picture larger with an upscaler model (ESRGAN family, ONNX) or Lanczos.
    Upscale(upscale::UpscaleArgs),
    /// Make a control image from a picture (for --control): canny, or depth and openpose with an annotator model.
    #[command(subcommand)]
    Preprocess(control::PreprocessCommand),
    /// Inspect model folders.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// List the samplers and schedules.
    Samplers,
    /// Time each stage of a generation (text encoder, UNet per step, VAE decode).
    Bench(bench::BenchArgs),
    /// Show the CPU, memory and GPUs, the execution provider that runs and the precision chosen.
    Devices(devices::DevicesArgs),
    /// Serve AUTOMATIC1111's HTTP API (/sdapi/v1) on a model, for the plugins and scripts that speak it.
    Serve(serve::ServeArgs),
}

/// Options every command that runs a model shares.
#[derive(Args, Clone)]
pub struct RuntimeArgs {
    /// Execution device: auto, cuda, directml or cpu.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// The ONNX Runtime library to load (default: ORT_DYLIB_PATH, next to the executable, or the repository's
    /// .ort/lib).
    #[arg(long)]
    onnxruntime: Option<PathBuf>,
    /// Where optimized graphs and fp16 conversions are kept so later starts are faster (default: the user's cache
    /// folder).
    #[arg(long, conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Keep nothing between runs: optimize graphs at every start and never convert models to fp16.
    #[arg(long)]
    no_cache: bool,
    /// auto (fp16 on GPUs, fp32 on the CPU), fp16 or fp32.
    #[arg(long, default_value = "auto", value_parser = parse_precision)]
    precision: PrecisionChoice,
    /// Low-VRAM mode: auto (when the GPU has less memory than the model needs at once), on, medium or off. On
    /// releases the text encoder after use, loads the UNet and VAE in turn, tiles the VAE, keeps cuDNN workspaces
    /// small; medium keeps the UNet loaded and only the text encoder and VAE take turns.
    #[arg(long, default_value = "auto", value_parser = parse_low_vram)]
    low_vram: LowVramChoice,
    /// IO binding for the parts that run at every step (UNet, ControlNets): auto (off until measured on a GPU), on
    /// or off. Keeps the text embeddings on the device for the whole denoising loop.
    #[arg(long, default_value = "auto", value_parser = parse_engine_value::<IoBindingChoice>)]
    io_binding: IoBindingChoice,
    /// CUDA: how cuDNN picks convolution algorithms: exhaustive (times them all once), heuristic or default.
    #[arg(long, default_value = "exhaustive", value_parser = parse_engine_value::<ConvAlgorithmSearch>)]
    cuda_conv_search: ConvAlgorithmSearch,
    /// CUDA: let cuDNN's algorithm search use as much workspace as it asks (on), or at most 32 MB (off).
    #[arg(long, default_value = "on", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    cuda_conv_max_workspace: bool,
    /// CUDA: how the memory arena grows: same-as-requested or next-power-of-two.
    #[arg(long, default_value = "same-as-requested", value_parser = parse_engine_value::<ArenaExtension>)]
    cuda_arena: ArenaExtension,
    /// CUDA: give the memory of the parts that run once per image (text encoder, VAE) back after each run.
    #[arg(long)]
    cuda_shrink_after_single_runs: bool,
    /// CUDA: one memory arena for all the model's parts instead of one each.
    #[arg(long)]
    cuda_shared_arena: bool,
}

impl RuntimeArgs {
    fn load(&self) -> Result<Runtime, CliError> {
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(|| {
                directories::ProjectDirs::from("org", "Pigment", "Pigment").map(|d| d.cache_dir().to_path_buf())
            })
        };
        let options = RuntimeOptions {
            library_path: self.onnxruntime.clone(),
            device: self.device,
            cache_dir,
            precision: self.precision,
            low_vram: self.low_vram,
            io_binding: self.io_binding,
            cuda: CudaOptions {
                arena_extension: self.cuda_arena,
                conv_algorithm_search: self.cuda_conv_search,
                conv_max_workspace: self.cuda_conv_max_workspace,
                shrink_after_single_runs: self.cuda_shrink_after_single_runs,
                shared_arena: self.cuda_shared_arena,
            },
        };
        Ok(Runtime::load(&options)?)
    }
}

fn parse_engine_value<T: std::str::FromStr<Err = EngineError>>(value: &str) -> Result<T, String> {
    value.parse().map_err(|e: EngineError| e.to_string())
}

fn parse_low_vram(value: &str) -> Result<LowVramChoice, String> {
    value.parse().map_err(|e: EngineError| e.to_string())
}

fn parse_precision(value: &str) -> Result<PrecisionChoice, String> {
    value.parse().map_err(|e: EngineError| e.to_string())
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
        Command::Img2img(args) => edit::run_img2img(args),
        Command::Inpaint(args) => edit::run_inpaint(args),
        Command::Outpaint(args) => edit::run_outpaint(args),
        Command::Upscale(args) => upscale::run(args),
        Command::Models(command) => models::run(command),
        Command::Preprocess(command) => control::run_preprocess(command),
        Command::Samplers => {
            for name in pigment_engine::schedulers::known_sampler_names() {
                println!("{name}");
            }
            Ok(())
        }
        Command::Bench(args) => bench::run(args),
        Command::Devices(args) => devices::run(args),
        Command::Serve(args) => serve::run(args),
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
