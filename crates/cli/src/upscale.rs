//! `pigment upscale`: a picture made larger by an ESRGAN-family ONNX model (tiled), or by Lanczos without one.
//! The result keeps the picture's generation parameters and adds A1111's "Postprocess upscale by" and
//! "Postprocess upscaler" (what its Extras tab writes).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use pigment_engine::EngineError;
use pigment_engine::image::{InfoText, PARAMETERS_KEY, read_png_text, write_png_atomically};
use pigment_engine::model::UpscalerSession;
use pigment_engine::pipeline::{UpscaleTiling, upscale};
use serde::Serialize;

use crate::output::OutputPlan;
use crate::progress::{CliObserver, cancel_on_ctrl_c};
use crate::{CliError, RuntimeArgs};

#[derive(Args)]
pub struct UpscaleArgs {
    /// The picture to upscale.
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// Factor: the result is int(width * X) x int(height * X).
    #[arg(long, value_name = "X")]
    scale: f64,
    /// Upscaler model folder (ESRGAN, Real-ESRGAN, ... as ONNX: model.onnx); Lanczos without it.
    #[arg(long, value_name = "DIR")]
    upscaler: Option<PathBuf>,
    /// Tile side in input pixels (memory stays bounded by a tile); 0 runs the whole picture at once.
    #[arg(long, value_name = "N", default_value_t = UpscaleTiling::default().tile)]
    tile: usize,
    /// An existing folder (files NNNNN-upscaled.png) or a .png file name; default ./outputs.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Serialize)]
struct Summary {
    file: PathBuf,
    width: u32,
    height: u32,
    upscaler: String,
    milliseconds: f64,
}

pub fn run(args: UpscaleArgs) -> Result<(), CliError> {
    if !args.scale.is_finite() || args.scale <= 0.0 {
        return Err(EngineError::InvalidParameter {
            name: "scale",
            value: args.scale.to_string(),
            reason: "must be a positive number".into(),
        }
        .into());
    }
    let loaded = pigment_engine::image::load_image(&args.image)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let picture = loaded.image;
    let (width, height) =
        ((f64::from(picture.width()) * args.scale) as u64, (f64::from(picture.height()) * args.scale) as u64);
    // Refused here, before the runtime loads, and again in the engine before anything is allocated.
    pigment_engine::image::check_image_size("upscaled size", width, height)?;
    let plan = OutputPlan::new(args.output.as_deref(), 1)?;
    let tiling = match args.tile {
        0 => UpscaleTiling::whole_image(),
        tile => UpscaleTiling { tile, ..UpscaleTiling::default() },
    };
    let mut model = match &args.upscaler {
        Some(path) => Some(UpscalerSession::open(&args.runtime.load()?, path)?),
        None => None,
    };
    let name = model.as_ref().map_or("Lanczos".to_string(), |m| m.name().to_string());
    let started = std::time::Instant::now();
    let mut observer = CliObserver::new(None, cancel_on_ctrl_c(), std::io::stderr().is_terminal());
    let result = upscale(&picture, width as u32, height as u32, model.as_mut(), tiling, &mut |p| {
        use pigment_engine::pipeline::GenerationObserver;
        observer.progress(p)
    });
    observer.finish();
    let upscaled = match result {
        Ok(image) => image,
        Err(EngineError::Cancelled) => return Err(CliError::Cancelled { saved: 0 }),
        Err(other) => return Err(other.into()),
    };
    let milliseconds = started.elapsed().as_secs_f64() * 1000.0;

    let mut info = read_png_text(&args.image, PARAMETERS_KEY)
        .ok()
        .flatten()
        .and_then(|text| InfoText::parse(&text).ok())
        .unwrap_or_default();
    if info.params.is_empty() {
        info.set("Size", format!("{width}x{height}"));
    }
    info.set("Postprocess upscale by", args.scale);
    info.set("Postprocess upscaler", &name);
    let path = plan.path_with_suffix(0, "upscaled");
    write_png_atomically(&path, &upscaled, &[(PARAMETERS_KEY, info.to_text().trim_start())])?;
    eprintln!("saved {}", path.display());
    if args.json {
        let summary = Summary { file: path, width: width as u32, height: height as u32, upscaler: name, milliseconds };
        println!("{}", serde_json::to_string_pretty(&summary).map_err(|e| CliError::Usage(e.to_string()))?);
    }
    Ok(())
}
