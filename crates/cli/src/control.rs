//! `--control`, `--adapter`, `--preprocess` and friends on `generate`, `img2img` and `inpaint`, and
//! `pigment preprocess`. Flags and images are checked and the control images preprocessed before any model loads;
//! each preprocessed control image is saved next to the results once the generation has succeeded.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use image::RgbImage;
use pigment_engine::image::control::{DEFAULT_CANNY_HIGH, DEFAULT_CANNY_LOW, Preprocessor, canny, grey_to_rgb};
use pigment_engine::image::{LoadedImage, load_image, write_png_atomically};
use pigment_engine::model::{AdapterModel, ControlNetModel, ResidualKind, ResidualUnet};
use pigment_engine::pipeline::{
    AdapterUnit, ControlImage, ControlNetUnit, ControlRequest, Preprocessing, Shared, check_adapter_values,
    check_controlnet_values,
};
use pigment_engine::runtime::Runtime;
use serde::Serialize;

use crate::CliError;
use crate::output::OutputPlan;

#[derive(Args, Clone)]
pub struct ControlArgs {
    /// A ControlNet folder and its control image, with optional weight and start/end fractions of the steps
    /// (e.g. `models/cn-canny:edges.png:0.8:0:0.6`); repeatable. Needs the model's unet_controlnet/.
    #[arg(long = "control", value_name = "MODEL:IMAGE[:WEIGHT[:START:END]]", value_parser = parse_control)]
    pub controls: Vec<ControlSpec>,
    /// A T2I-Adapter folder and its image, with an optional weight; repeatable. Needs the model's unet_adapter/.
    #[arg(long = "adapter", value_name = "MODEL:IMAGE[:WEIGHT]", value_parser = parse_adapter)]
    pub adapters: Vec<ControlSpec>,
    /// The fraction of the steps, from the first, that get the adapters' features.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub adapter_factor: f64,
    /// Preprocess the control images: canny, scribble, lineart or tile (without it they are used as they are).
    #[arg(long, value_name = "NAME", value_parser = parse_preprocessor)]
    pub preprocess: Option<Preprocessor>,
    /// Canny's low threshold (0-255).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CANNY_LOW)]
    pub canny_low: f32,
    /// Canny's high threshold (0-255).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CANNY_HIGH)]
    pub canny_high: f32,
    /// ControlNets see the prompt only, shallow residuals weaker (A1111's "ControlNet is more important").
    #[arg(long)]
    pub guess_mode: bool,
}

/// One `--control` or `--adapter` value.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSpec {
    pub model: PathBuf,
    pub image: PathBuf,
    pub weight: f32,
    pub start: f64,
    pub end: f64,
}

/// `MODEL:IMAGE[:...]` split at colons, keeping Windows drive letters (`C:\...`) with their path.
fn split_spec(value: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut pieces = value.split(':').peekable();
    while let Some(piece) = pieces.next() {
        let drive = piece.len() == 1 && piece.chars().all(|c| c.is_ascii_alphabetic());
        match pieces.peek() {
            Some(next) if drive && (next.starts_with('\\') || next.starts_with('/')) => {
                let rest = pieces.next().unwrap_or_default();
                parts.push(format!("{piece}:{rest}"));
            }
            _ => parts.push(piece.to_string()),
        }
    }
    parts
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.trim().parse().map_err(|_| format!("{what} {text:?} is not a number"))
}

fn parse_control(value: &str) -> Result<ControlSpec, String> {
    let parts = split_spec(value);
    let (weight, start, end) = match parts.len() {
        2 => (1.0, 0.0, 1.0),
        3 => (number(&parts[2], "weight")?, 0.0, 1.0),
        5 => (number(&parts[2], "weight")?, number(&parts[3], "start")?, number(&parts[4], "end")?),
        _ => return Err("expected MODEL:IMAGE, MODEL:IMAGE:WEIGHT or MODEL:IMAGE:WEIGHT:START:END".into()),
    };
    check_controlnet_values(weight, start, end).map_err(|e| e.to_string())?;
    Ok(ControlSpec { model: parts[0].clone().into(), image: parts[1].clone().into(), weight, start, end })
}

fn parse_adapter(value: &str) -> Result<ControlSpec, String> {
    let parts = split_spec(value);
    let weight = match parts.len() {
        2 => 1.0,
        3 => number(&parts[2], "weight")?,
        _ => return Err("expected MODEL:IMAGE or MODEL:IMAGE:WEIGHT".into()),
    };
    check_adapter_values(weight, 1.0).map_err(|e| e.to_string())?;
    Ok(ControlSpec { model: parts[0].clone().into(), image: parts[1].clone().into(), weight, start: 0.0, end: 1.0 })
}

fn parse_preprocessor(value: &str) -> Result<Preprocessor, String> {
    Preprocessor::parse(value).map_err(|e| e.to_string())
}

/// A control image ready to go: read, preprocessed, and where it was saved.
pub struct PreparedImage {
    spec: ControlSpec,
    image: ControlImage,
    preprocessing: Preprocessing,
    saved: Option<PathBuf>,
}

/// What `--json` reports of each control image.
#[derive(Serialize)]
pub struct ControlImageReport {
    pub model: PathBuf,
    pub image: PathBuf,
    pub module: String,
    pub params: Vec<(String, String)>,
    /// The preprocessed image next to the results (absent when the image was used as it is).
    pub saved: Option<PathBuf>,
}

/// The control images of a command, preprocessed; the models load later, with the base model.
pub struct PreparedControl {
    controls: Vec<PreparedImage>,
    adapters: Vec<PreparedImage>,
    adapter_factor: f64,
    guess_mode: bool,
}

impl ControlArgs {
    fn preprocessor(&self) -> Result<Option<Preprocessor>, CliError> {
        let preprocessor = match self.preprocess {
            Some(Preprocessor::Canny { .. }) => {
                Some(Preprocessor::Canny { low: self.canny_low, high: self.canny_high })
            }
            other => other,
        };
        if let Some(p) = preprocessor {
            p.validate()?;
        }
        Ok(preprocessor)
    }

    /// Reads and preprocesses every control image at `width` x `height`; the preprocessed ones are to be saved
    /// beside the results of `plan` ([`PreparedControl::save`]).
    pub fn prepare(&self, width: u32, height: u32, plan: &OutputPlan) -> Result<PreparedControl, CliError> {
        check_adapter_values(1.0, self.adapter_factor)?;
        let preprocessor = self.preprocessor()?;
        let mut index = 0;
        let mut prepare = |spec: &ControlSpec| -> Result<PreparedImage, CliError> {
            let picture = read_picture(&spec.image)?;
            let prepared = match preprocessor {
                None => PreparedImage {
                    spec: spec.clone(),
                    image: ControlImage::new(picture),
                    preprocessing: Preprocessing { module: "none".into(), params: Vec::new() },
                    saved: None,
                },
                Some(preprocessor) => {
                    let (image, preprocessing) = preprocessor.apply(&picture, width, height)?;
                    let path = control_image_path(plan, index);
                    PreparedImage { spec: spec.clone(), image, preprocessing, saved: Some(path) }
                }
            };
            index += 1;
            Ok(prepared)
        };
        let controls = self.controls.iter().map(&mut prepare).collect::<Result<Vec<_>, _>>()?;
        let adapters = self.adapters.iter().map(&mut prepare).collect::<Result<Vec<_>, _>>()?;
        Ok(PreparedControl { controls, adapters, adapter_factor: self.adapter_factor, guess_mode: self.guess_mode })
    }
}

impl PreparedControl {
    /// Loads the ControlNets or adapters and the base model's UNet with residual inputs.
    pub fn load(&self, runtime: &Runtime, model_folder: &Path) -> Result<ControlRequest, CliError> {
        if self.controls.is_empty() && self.adapters.is_empty() {
            return Ok(ControlRequest::default());
        }
        let kind = if self.controls.is_empty() { ResidualKind::Adapter } else { ResidualKind::ControlNet };
        let unet = Some(Shared::new(ResidualUnet::open(runtime, model_folder, kind)?));
        let controlnets = self
            .controls
            .iter()
            .map(|c| {
                Ok(ControlNetUnit {
                    model: Shared::new(ControlNetModel::open(runtime, &c.spec.model)?),
                    image: c.image.clone(),
                    weight: c.spec.weight,
                    start: c.spec.start,
                    end: c.spec.end,
                    preprocessing: c.preprocessing.clone(),
                })
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        let adapters = self
            .adapters
            .iter()
            .map(|a| {
                Ok(AdapterUnit {
                    model: Shared::new(AdapterModel::open(runtime, &a.spec.model)?),
                    image: a.image.clone(),
                    weight: a.spec.weight,
                    conditioning_factor: self.adapter_factor,
                    preprocessing: a.preprocessing.clone(),
                })
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        Ok(ControlRequest { controlnets, adapters, guess_mode: self.guess_mode, unet })
    }

    /// Writes the preprocessed control images where [`ControlArgs::prepare`] planned them.
    pub fn save(&self) -> Result<(), CliError> {
        for (index, prepared) in self.controls.iter().chain(&self.adapters).enumerate() {
            if let Some(path) = &prepared.saved {
                write_png_atomically(path, &prepared.image.image, &[])?;
                eprintln!("control image {index} ({}): {}", prepared.preprocessing.module, path.display());
            }
        }
        Ok(())
    }

    pub fn report(&self) -> Vec<ControlImageReport> {
        self.controls
            .iter()
            .chain(&self.adapters)
            .map(|p| ControlImageReport {
                model: p.spec.model.clone(),
                image: p.spec.image.clone(),
                module: p.preprocessing.module.clone(),
                params: p.preprocessing.params.clone(),
                saved: p.saved.clone(),
            })
            .collect()
    }
}

/// `NNNNN-control-I.png` beside the first result in a folder, `NAME-control-I.png` beside a named file.
fn control_image_path(plan: &OutputPlan, index: usize) -> PathBuf {
    match plan {
        OutputPlan::Folder { folder, next_number } => folder.join(format!("{next_number:05}-control-{index}.png")),
        OutputPlan::File { path, .. } => {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            path.with_file_name(format!("{stem}-control-{index}.png"))
        }
    }
}

fn read_picture(path: &Path) -> Result<RgbImage, CliError> {
    let LoadedImage { image, warnings } = load_image(path)?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok(image)
}

/// `pigment preprocess`: a control image from a picture, without a model.
#[derive(Subcommand)]
pub enum PreprocessCommand {
    /// Canny edges (OpenCV's Canny), white on black.
    Canny {
        /// The picture.
        image: PathBuf,
        /// The PNG to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[arg(long, value_name = "N", default_value_t = DEFAULT_CANNY_LOW)]
        low: f32,
        #[arg(long, value_name = "N", default_value_t = DEFAULT_CANNY_HIGH)]
        high: f32,
    },
}

pub fn run_preprocess(command: PreprocessCommand) -> Result<(), CliError> {
    match command {
        PreprocessCommand::Canny { image, output, low, high } => {
            Preprocessor::Canny { low, high }.validate()?;
            let picture = read_picture(&image)?;
            let edges = grey_to_rgb(&canny(&picture, low, high, 0));
            write_png_atomically(&output, &edges, &[])?;
            eprintln!("canny {low}/{high}: {}", output.display());
            Ok(())
        }
    }
}
