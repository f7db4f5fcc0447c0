//! `--control`, `--adapter`, `--preprocess` and friends on `generate`, `img2img` and `inpaint`, and
//! `pigment preprocess`. Flags and images are checked and the control images preprocessed before any model loads
//! (depth and openpose run their annotator model once the runtime is loaded, before the base model); each
//! preprocessed control image is saved next to the results once the generation has succeeded.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Args, Subcommand};
use image::RgbImage;
use pigment_engine::EngineError;
use pigment_engine::image::control::{
    DEFAULT_CANNY_HIGH, DEFAULT_CANNY_LOW, Preprocessor, canny, control_image, grey_to_rgb,
};
use pigment_engine::image::{LoadedImage, load_image, write_png_atomically};
use pigment_engine::model::{ANNOTATORS_FOLDER, AnnotatorKind, CancelSignal, ResidualKind};
use pigment_engine::pipeline::{Annotator, Flow, GenerationObserver, PendingAnnotation, Progress};
use pigment_engine::pipeline::{ControlSpec, ControlUnitSpec, check_adapter_values, check_controlnet_values};
use pigment_engine::runtime::Runtime;
use serde::Serialize;

use crate::output::OutputPlan;
use crate::progress::{CliObserver, cancel_on_ctrl_c};
use crate::{CliError, RuntimeArgs};

#[derive(Args, Clone)]
pub struct ControlArgs {
    /// A ControlNet folder and its control image, with optional weight and start/end fractions of the steps
    /// (e.g. `models/cn-canny:edges.png:0.8:0:0.6`); repeatable. Needs the model's unet_controlnet/.
    #[arg(long = "control", value_name = "MODEL:IMAGE[:WEIGHT[:START:END]]", value_parser = parse_control)]
    pub controls: Vec<ControlFlag>,
    /// A T2I-Adapter folder and its image, with an optional weight; repeatable. Needs the model's unet_adapter/.
    #[arg(long = "adapter", value_name = "MODEL:IMAGE[:WEIGHT]", value_parser = parse_adapter)]
    pub adapters: Vec<ControlFlag>,
    /// The fraction of the steps, from the first, that get the adapters' features.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub adapter_factor: f64,
    /// Preprocess the control images: canny, scribble, lineart or tile, or with an annotator model depth or
    /// openpose (without it they are used as they are).
    #[arg(long, value_name = "NAME", value_parser = parse_preprocessor)]
    pub preprocess: Option<PreprocessChoice>,
    /// The annotator model folder for --preprocess depth|openpose (default: the first annotators/depth* or
    /// annotators/openpose* folder beside the model's folder, then in the bundled models folder).
    #[arg(long, value_name = "DIR")]
    pub annotator_model: Option<PathBuf>,
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
pub struct ControlFlag {
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

fn parse_control(value: &str) -> Result<ControlFlag, String> {
    let parts = split_spec(value);
    let (weight, start, end) = match parts.len() {
        2 => (1.0, 0.0, 1.0),
        3 => (number(&parts[2], "weight")?, 0.0, 1.0),
        5 => (number(&parts[2], "weight")?, number(&parts[3], "start")?, number(&parts[4], "end")?),
        _ => return Err("expected MODEL:IMAGE, MODEL:IMAGE:WEIGHT or MODEL:IMAGE:WEIGHT:START:END".into()),
    };
    check_controlnet_values(weight, start, end).map_err(|e| e.to_string())?;
    Ok(ControlFlag { model: parts[0].clone().into(), image: parts[1].clone().into(), weight, start, end })
}

fn parse_adapter(value: &str) -> Result<ControlFlag, String> {
    let parts = split_spec(value);
    let weight = match parts.len() {
        2 => 1.0,
        3 => number(&parts[2], "weight")?,
        _ => return Err("expected MODEL:IMAGE or MODEL:IMAGE:WEIGHT".into()),
    };
    check_adapter_values(weight, 1.0).map_err(|e| e.to_string())?;
    Ok(ControlFlag { model: parts[0].clone().into(), image: parts[1].clone().into(), weight, start: 0.0, end: 1.0 })
}

/// `--preprocess`: a preprocessor without a model, or one that runs an annotator model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PreprocessChoice {
    Plain(Preprocessor),
    Annotator(AnnotatorKind),
}

fn parse_preprocessor(value: &str) -> Result<PreprocessChoice, String> {
    if let Some(kind) = AnnotatorKind::parse(value) {
        return Ok(PreprocessChoice::Annotator(kind));
    }
    Preprocessor::parse(value).map(PreprocessChoice::Plain).map_err(|e| e.to_string())
}

/// The annotator folder: `explicit`, else the first `annotators/<kind>*` folder in the folders searched.
fn annotator_folder(
    kind: AnnotatorKind,
    explicit: Option<&Path>,
    models_folders: &[PathBuf],
) -> Result<PathBuf, CliError> {
    if let Some(folder) = explicit {
        return Ok(folder.to_path_buf());
    }
    models_folders.iter().find_map(|folder| kind.find(folder).ok()).ok_or_else(|| {
        let searched: Vec<String> =
            models_folders.iter().map(|f| f.join(ANNOTATORS_FOLDER).display().to_string()).collect();
        CliError::Usage(format!(
            "--preprocess {kind} needs an annotator model: none found (looked for a {kind}* folder with model.onnx \
             in: {}); give one with --annotator-model DIR",
            if searched.is_empty() { "no models folder".to_string() } else { searched.join(", ") }
        ))
    })
}

/// The bundled models folder (the demo model's parent), where annotators are looked for last.
fn default_models_folder() -> Option<PathBuf> {
    pigment_engine::model::find_demo_model().and_then(|demo| demo.parent().map(Path::to_path_buf))
}

/// Runs `annotate` with a progress bar; Ctrl+C (`cancel`) stops it.
fn with_progress<T>(
    cancel: &Arc<AtomicBool>,
    annotate: impl FnOnce(&mut dyn FnMut(&Progress) -> Flow) -> pigment_engine::Result<T>,
) -> Result<T, CliError> {
    let mut observer = CliObserver::new(None, cancel.clone(), std::io::stderr().is_terminal());
    let result = annotate(&mut |p: &Progress| observer.progress(p));
    observer.finish();
    match result {
        Ok(done) => Ok(done),
        Err(EngineError::Cancelled) => Err(CliError::Cancelled { saved: 0 }),
        Err(other) => Err(other.into()),
    }
}

/// Where a unit's model and picture came from and where its preprocessed image goes.
struct UnitFiles {
    model: PathBuf,
    image: PathBuf,
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
    spec: ControlSpec,
    files: Vec<UnitFiles>,
    /// `--preprocess depth|openpose`: the images wait for [`PreparedControl::annotate`].
    annotator: Option<(AnnotatorKind, Option<PathBuf>)>,
    size: (u32, u32),
}

impl ControlArgs {
    fn preprocessor(&self) -> Result<Option<Preprocessor>, CliError> {
        let preprocessor = match self.preprocess {
            Some(PreprocessChoice::Plain(Preprocessor::Canny { .. })) => {
                Some(Preprocessor::Canny { low: self.canny_low, high: self.canny_high })
            }
            Some(PreprocessChoice::Plain(other)) => Some(other),
            Some(PreprocessChoice::Annotator(_)) | None => None,
        };
        if let Some(p) = preprocessor {
            p.validate()?;
        }
        Ok(preprocessor)
    }

    /// Reads and preprocesses every control image at `width` x `height`; the preprocessed ones are to be saved
    /// beside the results of `plan` ([`PreparedControl::save`]).
    pub fn prepare(&self, width: u32, height: u32, plan: &OutputPlan) -> Result<PreparedControl, CliError> {
        let preprocessor = self.preprocessor()?;
        let annotator = match self.preprocess {
            Some(PreprocessChoice::Annotator(kind)) => {
                if let Some(folder) = self.annotator_model.as_ref().filter(|f| !f.is_dir()) {
                    return Err(EngineError::ModelFolderNotFound { path: folder.clone() }.into());
                }
                Some((kind, self.annotator_model.clone()))
            }
            _ => None,
        };
        let flags = self.controls.iter().map(|c| (ResidualKind::ControlNet, c));
        let flags = flags.chain(self.adapters.iter().map(|a| (ResidualKind::Adapter, a)));
        let mut spec =
            ControlSpec { guess_mode: self.guess_mode, adapter_factor: self.adapter_factor, units: Vec::new() };
        let mut files = Vec::new();
        for (index, (kind, flag)) in flags.enumerate() {
            let (image, preprocessing) = control_image(read_picture(&flag.image)?, preprocessor, width, height)?;
            let saved = (preprocessor.is_some() || annotator.is_some()).then(|| control_image_path(plan, index));
            spec.units.push(ControlUnitSpec {
                kind,
                model: flag.model.clone(),
                image,
                preprocessing,
                weight: flag.weight,
                start: flag.start,
                end: flag.end,
                annotation: None,
            });
            files.push(UnitFiles { model: flag.model.clone(), image: flag.image.clone(), saved });
        }
        spec.validate()?;
        Ok(PreparedControl { spec, files, annotator, size: (width, height) })
    }
}

impl PreparedControl {
    /// `--preprocess depth|openpose`: runs the annotator model on every control image (found beside the model's
    /// folder `model_folder`, or the bundled models folder, unless `--annotator-model` names it). Ctrl+C (`cancel`)
    /// stops it.
    pub fn annotate(
        &mut self,
        runtime: &Runtime,
        model_folder: &Path,
        cancel: &Arc<AtomicBool>,
    ) -> Result<(), CliError> {
        let Some((kind, explicit)) = &self.annotator else { return Ok(()) };
        let models_folders: Vec<PathBuf> =
            model_folder.parent().map(Path::to_path_buf).into_iter().chain(default_models_folder()).collect();
        let folder = annotator_folder(*kind, explicit.as_deref(), &models_folders)?;
        let (width, height) = self.size;
        for unit in &mut self.spec.units {
            unit.annotation = Some(PendingAnnotation { kind: *kind, folder: folder.clone(), width, height });
        }
        let signal = CancelSignal::from(cancel.clone());
        with_progress(cancel, |progress| self.spec.annotate(runtime, None, Some(&signal), progress))
    }

    /// The units as the generation takes them (their models load with the base model).
    pub fn spec(&self) -> &ControlSpec {
        &self.spec
    }

    /// Writes the preprocessed control images where [`ControlArgs::prepare`] planned them.
    pub fn save(&self) -> Result<(), CliError> {
        for (index, (unit, files)) in self.spec.units.iter().zip(&self.files).enumerate() {
            if let Some(path) = &files.saved {
                write_png_atomically(path, &unit.image.image, &[])?;
                eprintln!("control image {index} ({}): {}", unit.preprocessing.module, path.display());
            }
        }
        Ok(())
    }

    pub fn report(&self) -> Vec<ControlImageReport> {
        self.spec
            .units
            .iter()
            .zip(&self.files)
            .map(|(unit, files)| ControlImageReport {
                model: files.model.clone(),
                image: files.image.clone(),
                module: unit.preprocessing.module.clone(),
                params: unit.preprocessing.params.clone(),
                saved: files.saved.clone(),
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

/// Where `pigment preprocess depth|openpose` finds its model.
#[derive(Args)]
pub struct AnnotatorArgs {
    /// The picture.
    image: PathBuf,
    /// The PNG to write (the picture's size).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// The annotator model folder (model.onnx; depth models may carry preprocessor_config.json).
    #[arg(long, value_name = "DIR")]
    annotator_model: Option<PathBuf>,
    /// The models folder whose annotators/ subfolder holds the model (default: the bundled models folder).
    #[arg(long, value_name = "DIR")]
    models_folder: Option<PathBuf>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// `pigment preprocess`: a control image from a picture.
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
    /// A depth map from an ONNX depth model (Depth Anything, DPT/MiDaS): near is bright.
    Depth(AnnotatorArgs),
    /// OpenPose body skeletons from the CMU body model as ONNX, drawn on black.
    Openpose(AnnotatorArgs),
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
        PreprocessCommand::Depth(args) => run_annotator(AnnotatorKind::Depth, args),
        PreprocessCommand::Openpose(args) => run_annotator(AnnotatorKind::Openpose, args),
    }
}

fn run_annotator(kind: AnnotatorKind, args: AnnotatorArgs) -> Result<(), CliError> {
    let picture = read_picture(&args.image)?;
    let models_folders: Vec<PathBuf> = args.models_folder.clone().or_else(default_models_folder).into_iter().collect();
    if let Some(folder) = args.annotator_model.as_ref().filter(|f| !f.is_dir()) {
        return Err(EngineError::ModelFolderNotFound { path: folder.clone() }.into());
    }
    let folder = annotator_folder(kind, args.annotator_model.as_deref(), &models_folders)?;
    let runtime = args.runtime.load()?;
    let mut annotator = Annotator::open(&runtime, kind, &folder)?;
    let cancel = cancel_on_ctrl_c();
    annotator.watch_cancel(Some(&CancelSignal::from(cancel.clone())))?;
    let (control, preprocessing) =
        with_progress(&cancel, |progress| annotator.apply(&picture, picture.width(), picture.height(), progress))?;
    write_png_atomically(&args.output, &control.image, &[])?;
    eprintln!("{} ({}): {}", preprocessing.module, folder.display(), args.output.display());
    Ok(())
}
