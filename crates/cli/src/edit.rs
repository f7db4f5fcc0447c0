//! `pigment img2img`, `pigment inpaint` and `pigment outpaint`: every flag of `generate`, plus the picture (and
//! mask) and their own controls. Pictures are read, and every flag checked, before the model loads.

use std::path::{Path, PathBuf};

use clap::Args;
use image::RgbImage;
use pigment_engine::EngineError;
use pigment_engine::image::{LoadedImage, ResizeMode, load_image, load_mask};
use pigment_engine::pipeline::{
    DEFAULT_IMG2IMG_STRENGTH, DEFAULT_MASK_BLUR, DEFAULT_ONLY_MASKED_PADDING, DEFAULT_OUTPAINT_STRENGTH,
    GenerateRequest, Generation, ImageSource, InpaintArea, InpaintSource, MaskedContent, OutpaintSource, Source,
};

use crate::CliError;
use crate::generate::{GenerateArgs, execute};

#[derive(Args)]
pub struct Img2ImgArgs {
    /// The picture to change (PNG, JPEG, WebP or BMP; grey, 16-bit and RGBA are converted).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// How much to change: 0 returns the picture, 1 keeps only a trace of it.
    #[arg(long, value_name = "X", default_value_t = DEFAULT_IMG2IMG_STRENGTH)]
    strength: f64,
    /// When the picture is not --width x --height: just (stretch), crop (cover, cut the overflow) or fill (fit,
    /// stretch the edges into the bands).
    #[arg(long, default_value = "just", value_parser = parse_resize_mode)]
    resize_mode: ResizeMode,
    #[command(flatten)]
    generate: GenerateArgs,
}

#[derive(Args)]
pub struct InpaintArgs {
    /// The picture to repaint.
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// White repaints, black keeps (resized to the picture, with a warning, when its size differs).
    #[arg(long, value_name = "FILE")]
    mask: PathBuf,
    /// 1 starts the masked area from noise alone (diffusers' default).
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    strength: f64,
    /// Mask blur in pixels: the repainted area fades into the picture.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MASK_BLUR)]
    mask_blur: u32,
    /// What the masked area starts from: fill, original, latent-noise or latent-nothing.
    #[arg(long, default_value = "original", value_parser = parse_masked_content)]
    masked_content: MaskedContent,
    /// Work on the mask's bounding box (plus --padding) at full --width x --height, and paste it back.
    #[arg(long)]
    only_masked: bool,
    /// Pixels around the mask's bounding box with --only-masked.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ONLY_MASKED_PADDING, requires = "only_masked")]
    padding: u32,
    /// Repaint what is black instead.
    #[arg(long)]
    invert_mask: bool,
    /// When the picture is not --width x --height (whole picture only).
    #[arg(long, default_value = "just", value_parser = parse_resize_mode)]
    resize_mode: ResizeMode,
    #[command(flatten)]
    generate: GenerateArgs,
}

#[derive(Args)]
pub struct OutpaintArgs {
    /// The picture to extend.
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// Pixels added on the left.
    #[arg(long, value_name = "N", default_value_t = 0)]
    left: u32,
    #[arg(long, value_name = "N", default_value_t = 0)]
    right: u32,
    #[arg(long, value_name = "N", default_value_t = 0)]
    top: u32,
    #[arg(long, value_name = "N", default_value_t = 0)]
    bottom: u32,
    /// Denoising strength of the new area (the filled colours guide it below 1).
    #[arg(long, value_name = "X", default_value_t = DEFAULT_OUTPAINT_STRENGTH)]
    strength: f64,
    /// Feather of the new area's edge, in pixels (on the new side: the picture is kept exactly).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MASK_BLUR)]
    mask_blur: u32,
    /// What the new area starts from: fill (the surrounding colours), original, latent-noise or latent-nothing.
    #[arg(long, default_value = "fill", value_parser = parse_masked_content)]
    masked_content: MaskedContent,
    #[command(flatten)]
    generate: GenerateArgs,
}

fn parse_resize_mode(value: &str) -> Result<ResizeMode, String> {
    value.parse().map_err(|e: EngineError| e.to_string())
}

fn parse_masked_content(value: &str) -> Result<MaskedContent, String> {
    value.parse().map_err(|e: EngineError| e.to_string())
}

/// Reads a picture, printing what its conversion changed.
fn read_picture(path: &Path) -> Result<RgbImage, CliError> {
    let LoadedImage { image, warnings } = load_image(path)?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok(image)
}

/// The request with --width/--height defaulting to the picture's size, rounded down to a multiple of 8.
fn request_for(args: &GenerateArgs, picture: &RgbImage) -> Result<GenerateRequest, CliError> {
    let round = |side: u32| (side / 8 * 8).max(8);
    let sized = GenerateArgs {
        width: Some(args.width.unwrap_or(round(picture.width()))),
        height: Some(args.height.unwrap_or(round(picture.height()))),
        ..args.clone()
    };
    sized.request()
}

pub fn run_img2img(args: Img2ImgArgs) -> Result<(), CliError> {
    let picture = read_picture(&args.image)?;
    let params = request_for(&args.generate, &picture)?;
    let source = ImageSource { strength: args.strength, resize_mode: args.resize_mode, ..ImageSource::new(picture) };
    execute(&args.generate, Generation::from_source(params, Source::Image(source)), None)
}

pub fn run_inpaint(args: InpaintArgs) -> Result<(), CliError> {
    let picture = read_picture(&args.image)?;
    let mask = load_mask(&args.mask)?;
    let params = request_for(&args.generate, &picture)?;
    let source = InpaintSource {
        strength: args.strength,
        resize_mode: args.resize_mode,
        mask_blur: args.mask_blur,
        invert_mask: args.invert_mask,
        masked_content: args.masked_content,
        area: if args.only_masked {
            InpaintArea::OnlyMasked { padding: args.padding }
        } else {
            InpaintArea::WholePicture
        },
        ..InpaintSource::new(picture, mask)
    };
    execute(&args.generate, Generation::from_source(params, Source::Inpaint(source)), None)
}

pub fn run_outpaint(args: OutpaintArgs) -> Result<(), CliError> {
    let picture = read_picture(&args.image)?;
    let params = request_for(&args.generate, &picture)?;
    let source = OutpaintSource {
        left: args.left,
        right: args.right,
        top: args.top,
        bottom: args.bottom,
        strength: args.strength,
        mask_blur: args.mask_blur,
        masked_content: args.masked_content,
        ..OutpaintSource::new(picture)
    };
    execute(&args.generate, Generation::from_source(params, Source::Outpaint(source)), None)
}
