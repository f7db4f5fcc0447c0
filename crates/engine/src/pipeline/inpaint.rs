//! Inpainting and outpainting with AUTOMATIC1111's controls, on diffusers' `StableDiffusionInpaintPipeline`.
//!
//! Two kinds of model:
//! - an inpainting model (9-channel UNet) sees, besides the latents, the mask at latent size and the latents of
//!   the picture with the masked pixels set to 0;
//! - any regular model (4-channel UNet) gets the known latents blended back after every step: the unmasked area is
//!   replaced by the picture's latents noised to the next step's level (the clean latents after the last step),
//!   as diffusers' legacy path does (and A1111 in spirit, which blends in its denoiser).
//!
//! Generator order per image, as diffusers with one image: the picture's latent sample (regular model, or
//! strength below 1), the noise, the masked picture's latent sample (drawn for a regular model too, which does not
//! use it, to keep the order), then Pigment's own draw for masked content "latent noise". diffusers draws the VAE
//! samples of a batch from the first generator only; here every image draws from its own, so image `i` of a batch
//! is the image its seed gives alone (ARCHITECTURE.md, "Noise and seeds").
//!
//! Around that, A1111's controls: mask blur and invert, masked content (fill, original, latent noise, latent
//! nothing), "only masked" (the mask's bounding box plus padding, grown to the working size's aspect ratio, worked
//! on at full resolution and pasted back), and the final composite over the original through the blurred mask, so
//! every pixel outside it is the original's, exactly.

use std::fmt;
use std::str::FromStr;

use image::{GrayImage, RgbImage};
use ndarray::{ArrayD, Axis, Zip, concatenate};

use super::control::{ControlRequest, ControlState};
use super::run::{BatchSampler, Run, Sampling, check_strength, first_step, infotext, owned_params, scheduler};
use super::vae::{INPAINTING_CHANNELS, LATENT_CHANNELS, VAE_FACTOR};
use super::{GenerateRequest, GeneratedImage};
use crate::error::{EngineError, Result};
use crate::image::mask::{self, binarize, blur, bounding_box, composite, expand_to_aspect, fill_masked, latent_mask};
use crate::image::{MAX_IMAGE_SIDE, ResizeMode, check_image_size, crop, lanczos, paste, resize_image};
use crate::model::LoadedModel;
use crate::rng::TorchGenerator;

/// A1111's default mask blur, in pixels.
pub const DEFAULT_MASK_BLUR: u32 = 4;
/// A1111's default "only masked" padding, in pixels.
pub const DEFAULT_ONLY_MASKED_PADDING: u32 = 32;
/// Largest mask blur accepted: a Gaussian of sigma 256 already spreads over 1280 pixels each way.
pub const MAX_MASK_BLUR: u32 = 256;

/// What the masked area starts from (A1111's "Masked content", `inpainting_fill` 0 to 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum MaskedContent {
    /// The surrounding colours spread into the hole before encoding.
    Fill,
    /// The picture as it is (diffusers' behaviour, and A1111's default).
    #[default]
    Original,
    /// Random latents in the masked area.
    LatentNoise,
    /// Zero latents in the masked area.
    LatentNothing,
}

impl MaskedContent {
    pub const ALL: [MaskedContent; 4] =
        [MaskedContent::Fill, MaskedContent::Original, MaskedContent::LatentNoise, MaskedContent::LatentNothing];

    pub fn id(self) -> &'static str {
        match self {
            MaskedContent::Fill => "fill",
            MaskedContent::Original => "original",
            MaskedContent::LatentNoise => "latent-noise",
            MaskedContent::LatentNothing => "latent-nothing",
        }
    }

    /// A1111's name, as written in the infotext.
    pub fn display_name(self) -> &'static str {
        match self {
            MaskedContent::Fill => "fill",
            MaskedContent::Original => "original",
            MaskedContent::LatentNoise => "latent noise",
            MaskedContent::LatentNothing => "latent nothing",
        }
    }
}

impl fmt::Display for MaskedContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

impl FromStr for MaskedContent {
    type Err = EngineError;
    fn from_str(value: &str) -> Result<Self> {
        let wanted = value.trim().to_lowercase().replace(['_', ' '], "-");
        MaskedContent::ALL.into_iter().find(|content| content.id() == wanted).ok_or_else(|| {
            EngineError::parameter("masked content", value, "expected fill, original, latent-noise or latent-nothing")
        })
    }
}

/// Where the model works (A1111's "Inpaint area").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InpaintArea {
    /// The whole picture, brought to the working size.
    #[default]
    WholePicture,
    /// The mask's bounding box plus `padding` pixels, grown to the working size's aspect ratio and worked on at the
    /// working size, then pasted back into the untouched picture.
    OnlyMasked { padding: u32 },
}

/// Inpainting's source: the picture, the mask and A1111's controls. The generation's `width` x `height` is the
/// working size (the whole picture's size, or the size the "only masked" region is worked on at).
#[derive(Debug, Clone, PartialEq)]
pub struct InpaintSource {
    pub image: RgbImage,
    /// White repaints, black keeps; grey counts from 128. Resized to the picture (with a warning) if its size
    /// differs.
    pub mask: GrayImage,
    /// diffusers' default is 1: the masked area is started from noise alone.
    pub strength: f64,
    pub resize_mode: ResizeMode,
    pub mask_blur: u32,
    /// Repaint what is black instead (A1111's "Inpaint not masked").
    pub invert_mask: bool,
    pub masked_content: MaskedContent,
    pub area: InpaintArea,
}

impl InpaintSource {
    pub fn new(image: RgbImage, mask: GrayImage) -> InpaintSource {
        InpaintSource {
            image,
            mask,
            strength: 1.0,
            resize_mode: ResizeMode::Just,
            mask_blur: DEFAULT_MASK_BLUR,
            invert_mask: false,
            masked_content: MaskedContent::Original,
            area: InpaintArea::WholePicture,
        }
    }

    pub fn validate(&self) -> Result<()> {
        check_strength("strength", self.strength)?;
        check_image_size("image size", u64::from(self.image.width()), u64::from(self.image.height()))?;
        check_image_size("mask size", u64::from(self.mask.width()), u64::from(self.mask.height()))?;
        if self.mask_blur > MAX_MASK_BLUR {
            return Err(EngineError::parameter(
                "mask blur",
                self.mask_blur,
                format!("must be at most {MAX_MASK_BLUR}"),
            ));
        }
        if let InpaintArea::OnlyMasked { padding } = self.area
            && padding > MAX_IMAGE_SIDE
        {
            return Err(EngineError::parameter("padding", padding, format!("must be at most {MAX_IMAGE_SIDE}")));
        }
        Ok(())
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("Denoising strength", self.strength.to_string()),
            ("Mask blur", self.mask_blur.to_string()),
            ("Masked content", self.masked_content.display_name().to_string()),
        ];
        match self.area {
            InpaintArea::WholePicture => params.push(("Inpaint area", "Whole picture".into())),
            InpaintArea::OnlyMasked { padding } => {
                params.push(("Inpaint area", "Only masked".into()));
                params.push(("Masked area padding", padding.to_string()));
            }
        }
        if self.invert_mask {
            params.push(("Mask mode", "Inpaint not masked".into()));
        }
        params
    }
}

pub(crate) fn inpaint(
    model: &mut LoadedModel,
    params: &GenerateRequest,
    source: &InpaintSource,
    control: &ControlRequest,
    run: &mut Run<'_>,
) -> Result<()> {
    let mut mask = source.mask.clone();
    if mask.dimensions() != source.image.dimensions() {
        let (w, h) = source.image.dimensions();
        run.warn(&format!(
            "the mask is {}x{} but the picture {w}x{h}; the mask was resized to the picture",
            mask.width(),
            mask.height()
        ));
        mask = lanczos(&mask, w, h);
    }
    let soft = blur(&binarize(&mask, source.invert_mask), source.mask_blur);
    inpaint_with_mask(model, params, source, soft, &[], control, run)
}

/// Inpaints with `soft` (the picture's size, already binarized, inverted and blurred) as the mask.
fn inpaint_with_mask(
    model: &mut LoadedModel,
    generate: &GenerateRequest,
    request: &InpaintSource,
    soft: GrayImage,
    extra_params: &[(&str, String)],
    control: &ControlRequest,
    run: &mut Run<'_>,
) -> Result<()> {
    let (width, height) = (generate.width, generate.height);
    let mut params = request.params();
    params.extend(extra_params.iter().map(|(k, v)| (*k, v.clone())));
    let in_channels = model.unet.in_channels().unwrap_or(LATENT_CHANNELS);
    if in_channels != LATENT_CHANNELS && in_channels != INPAINTING_CHANNELS {
        return Err(EngineError::IncompatibleComponents {
            folder: model.folder.root.clone(),
            detail: format!("its UNet takes {in_channels} channels; inpainting needs 4 (regular) or 9 (inpainting)"),
        });
    }

    // Where the model works, and how its result goes back into the picture.
    let (work_image, work_mask, placement) = match request.area {
        InpaintArea::WholePicture => {
            if request.image.dimensions() != (width, height) {
                params.push(("Resize mode", request.resize_mode.display_name().to_string()));
            }
            let image = resize_image(&request.image, width, height, request.resize_mode);
            let soft = resize_image(&soft, width, height, request.resize_mode);
            (image, soft, None)
        }
        InpaintArea::OnlyMasked { padding } => match bounding_box(&soft, padding) {
            None => (request.image.clone(), soft.clone(), None),
            Some(region) => {
                let (x1, y1, x2, y2) = expand_to_aspect(region, (width, height), request.image.dimensions());
                let (w, h) = (x2 - x1, y2 - y1);
                // A1111 brings the region to the working size with "resize and fill" and back with "crop and
                // resize"; the region already has the working aspect ratio unless the picture's edge clipped it.
                let image = resize_image(&crop(&request.image, x1, y1, w, h), width, height, ResizeMode::Fill);
                let mask = resize_image(&crop(&soft, x1, y1, w, h), width, height, ResizeMode::Fill);
                (image, mask, Some((x1, y1, w, h)))
            }
        },
    };
    let original = match placement {
        Some(_) => request.image.clone(),
        None => work_image.clone(),
    };
    let mut infotext_params = control.infotext_params();
    infotext_params.extend(owned_params(&params));
    if mask::is_empty(&soft) || mask::is_empty(&work_mask) {
        run.warn("the mask is empty (nothing to repaint); the picture is returned as it is");
        return run.return_input(model, generate, &original, &infotext_params);
    }
    let plan = scheduler(model, generate, generate.steps)?;
    let Some(first) = first_step(plan.as_ref(), generate.steps, request.strength) else {
        if request.strength > 0.0 {
            run.warn(&format!(
                "strength {} with {} steps runs no denoising step; the picture is returned as it is",
                request.strength, generate.steps
            ));
        }
        return run.return_input(model, generate, &original, &infotext_params);
    };
    let nine_channels = in_channels == INPAINTING_CHANNELS;
    // diffusers' `is_strength_max`: at strength 1 the latents start from noise alone.
    let from_noise = request.strength == 1.0;
    let hard = binarize(&work_mask, false);
    let init_image = match request.masked_content {
        MaskedContent::Fill => fill_masked(&work_image, &hard),
        _ => work_image.clone(),
    };

    let guidance = run.guidance(model, generate)?;
    // "Only masked" works on a region of the picture: the control images, which cover the whole picture, are cut to
    // the same region (as A1111's ControlNet extension does).
    let region_control;
    let control = match placement {
        Some(region) => {
            region_control = control.for_region(request.image.dimensions(), region, width, height);
            &region_control
        }
        None => control,
    };
    let control = ControlState::prepare(generate, control, model, &mut |warning| run.warn(warning))?;
    let needs_image_latents = !nine_channels || !from_noise;
    let encoded_image = if needs_image_latents { Some(run.encode(model, &init_image, None)?) } else { None };
    let encoded_masked = if nine_channels { Some(run.encode(model, &init_image, Some(&hard))?) } else { None };
    let (latent_h, latent_w) = (height as usize / VAE_FACTOR, width as usize / VAE_FACTOR);
    let latent_mask = latent_mask(&hard, latent_w, latent_h).into_dyn();
    let scaling = model.folder.vae_scaling_factor;
    let batch_size = generate.batch_size;
    let shape = [batch_size, LATENT_CHANNELS, latent_h, latent_w];

    for batch in 0..generate.batch_count {
        run.batch(|run| {
            let mut generators = run.generators(generate, batch);
            let mut sampler = BatchSampler::new(model, generate, generate.steps, &mut generators)?;
            let noise = &mut sampler.noise;
            let mut image_latents = encoded_image.as_ref().map(|e| e.latents(noise, batch_size, scaling));
            let eps = noise.randn(&shape);
            let masked_latents = match (&encoded_masked, &encoded_image) {
                (Some(masked), _) => Some(masked.latents(noise, batch_size, scaling)),
                (None, Some(image)) => {
                    if image.draws() {
                        // diffusers encodes (and samples) the masked picture even for a regular UNet, which ignores
                        // it: drawn and dropped so the sampler's later noise stays diffusers'.
                        noise.randn(&shape);
                    }
                    None
                }
                (None, None) => None,
            };
            if let Some(latents) = image_latents.as_mut() {
                match request.masked_content {
                    MaskedContent::LatentNoise => {
                        let random = noise.randn(&shape);
                        Zip::from(latents)
                            .and(&random)
                            .and_broadcast(&latent_mask)
                            .for_each(|x, &r, &m| *x = *x * (1.0 - m) + r * m);
                    }
                    MaskedContent::LatentNothing => {
                        Zip::from(latents).and_broadcast(&latent_mask).for_each(|x, &m| *x *= 1.0 - m);
                    }
                    MaskedContent::Fill | MaskedContent::Original => {}
                }
            }
            let latents = match (&image_latents, from_noise) {
                (Some(known), false) => sampler.scheduler.add_noise(known, &eps, first),
                _ => eps.mapv(|v| v * sampler.scheduler.init_noise_sigma()),
            };
            let extra = masked_latents
                .map(|masked| {
                    let masks = vec![latent_mask.view(); batch_size];
                    let masks = concatenate(Axis(0), &masks).map_err(|e| EngineError::inference("inpaint mask", e))?;
                    // The masked latents come from the VAE encoder, the mask from the picture's size: a VAE that does
                    // not downsample by 8 gives other sizes, said rather than a panic.
                    concatenate(Axis(1), &[masks.view(), masked.view()]).map_err(|e| {
                        EngineError::inference(
                            "vae_encoder",
                            format!(
                                "the mask {:?} and the masked image's latents {:?} do not align: {e}",
                                masks.shape(),
                                masked.shape()
                            ),
                        )
                    })
                })
                .transpose()?;
            let timesteps = plan.timesteps().len();
            let blend_with = if nine_channels { None } else { image_latents.as_ref() };
            let mut blend = |index: usize, latents: &mut ArrayD<f32>| {
                let Some(known) = blend_with else { return };
                // diffusers: the known latents noised to the next timestep's level, clean after the last step.
                let known = if index + 1 < timesteps { plan.add_noise(known, &eps, index + 1) } else { known.clone() };
                Zip::from(latents)
                    .and(&known)
                    .and_broadcast(&latent_mask)
                    .for_each(|x, &k, &m| *x = (1.0 - m) * k + m * *x);
            };
            let sampling = Sampling {
                guidance: &guidance,
                control: control.as_ref(),
                first_step: first,
                extra_channels: extra.as_ref(),
            };
            let latents = run.denoise(model, sampling, &mut sampler, latents, batch, &mut blend)?;
            let seeds: Vec<u64> = generators.iter().map(TorchGenerator::seed).collect();
            for (i, seed) in seeds.into_iter().enumerate() {
                let generated = run.decode(model, &latents, i, batch)?;
                let image = match placement {
                    None => composite(&work_image, &generated, &work_mask),
                    Some((x, y, w, h)) => {
                        let mut pasted = original.clone();
                        paste(
                            &mut pasted,
                            &resize_image(&generated, w, h, ResizeMode::Crop),
                            i64::from(x),
                            i64::from(y),
                        );
                        composite(&original, &pasted, &soft)
                    }
                };
                let infotext = infotext(generate, seed, model, &infotext_params);
                run.deliver(GeneratedImage { image, seed, index: batch * batch_size + i, infotext })?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Outpainting's source: the picture and the borders to add. The generation's `width` and `height` are ignored
/// (the canvas is the size).
#[derive(Debug, Clone, PartialEq)]
pub struct OutpaintSource {
    pub image: RgbImage,
    pub left: u32,
    pub right: u32,
    pub top: u32,
    pub bottom: u32,
    /// A regular model needs part of the filled colours to shape the new area: A1111's outpainting scripts
    /// recommend a strength around 0.8.
    pub strength: f64,
    pub mask_blur: u32,
    pub masked_content: MaskedContent,
}

/// Outpainting's default strength (see [`OutpaintSource::strength`]).
pub const DEFAULT_OUTPAINT_STRENGTH: f64 = 0.8;

impl OutpaintSource {
    pub fn new(image: RgbImage) -> OutpaintSource {
        OutpaintSource {
            image,
            left: 0,
            right: 0,
            top: 0,
            bottom: 0,
            strength: DEFAULT_OUTPAINT_STRENGTH,
            mask_blur: DEFAULT_MASK_BLUR,
            masked_content: MaskedContent::Fill,
        }
    }

    /// The canvas: the picture with the new borders.
    pub fn canvas_size(&self) -> (u64, u64) {
        let (w, h) = self.image.dimensions();
        (
            u64::from(w) + u64::from(self.left) + u64::from(self.right),
            u64::from(h) + u64::from(self.top) + u64::from(self.bottom),
        )
    }

    /// The borders, the canvas size, the strength, and `params` at the canvas's size.
    pub fn validate(&self, params: &GenerateRequest) -> Result<()> {
        if self.left == 0 && self.right == 0 && self.top == 0 && self.bottom == 0 {
            return Err(EngineError::parameter(
                "outpaint",
                "0 on every side",
                "give at least one of left, right, top or bottom",
            ));
        }
        let (width, height) = self.canvas_size();
        let limit = u64::from(super::MAX_DIMENSION);
        if width.next_multiple_of(8) > limit || height.next_multiple_of(8) > limit {
            return Err(EngineError::parameter(
                "canvas size",
                format!("{width}x{height}"),
                format!("the picture with its new borders must fit in {limit}x{limit}"),
            ));
        }
        check_strength("strength", self.strength)?;
        let canvas = GenerateRequest {
            width: width.next_multiple_of(8) as u32,
            height: height.next_multiple_of(8) as u32,
            ..params.clone()
        };
        canvas.validate()
    }
}

/// Extends the picture by the source's borders and inpaints them: the new area is filled with the surrounding
/// colours (masked content "fill"), masked, and repainted; the original pixels are kept exactly (the blurred
/// mask's feather stays on the new side). The canvas works at the next multiples of 8 (extra pixels on the sides
/// being extended, cropped off at the end by [`Run::crop`]).
pub(crate) fn outpaint(
    model: &mut LoadedModel,
    params: &GenerateRequest,
    request: &OutpaintSource,
    control: &ControlRequest,
    run: &mut Run<'_>,
) -> Result<()> {
    let (canvas_w, canvas_h) = request.canvas_size();
    let (canvas_w, canvas_h) = (canvas_w as u32, canvas_h as u32);
    let (pad_x, pad_y) = (canvas_w.next_multiple_of(8) - canvas_w, canvas_h.next_multiple_of(8) - canvas_h);
    // The rounding pixels go where the picture grows (left only when it grows left and not right).
    let extra_left = if request.left > 0 && request.right == 0 { pad_x } else { 0 };
    let extra_top = if request.top > 0 && request.bottom == 0 { pad_y } else { 0 };
    let (work_w, work_h) = (canvas_w + pad_x, canvas_h + pad_y);
    let (x0, y0) = (request.left + extra_left, request.top + extra_top);
    let (image_w, image_h) = request.image.dimensions();
    let inside = |x: u32, y: u32| x >= x0 && x < x0 + image_w && y >= y0 && y < y0 + image_h;

    let hard = GrayImage::from_fn(work_w, work_h, |x, y| image::Luma([if inside(x, y) { 0 } else { 255 }]));
    let mut canvas = RgbImage::new(work_w, work_h);
    paste(&mut canvas, &request.image, i64::from(x0), i64::from(y0));
    let canvas = fill_masked(&canvas, &hard);
    // Feathered on the new side only: the blur's spread into the picture is cut off.
    let mut soft = blur(&hard, request.mask_blur);
    for (x, y, pixel) in soft.enumerate_pixels_mut() {
        if inside(x, y) {
            pixel.0[0] = 0;
        }
    }
    let work = GenerateRequest { width: work_w, height: work_h, ..params.clone() };
    let inpaint = InpaintSource {
        image: canvas,
        mask: hard,
        strength: request.strength,
        resize_mode: ResizeMode::Just,
        mask_blur: request.mask_blur,
        invert_mask: false,
        masked_content: request.masked_content,
        area: InpaintArea::WholePicture,
    };
    inpaint.validate()?;
    let sides = [("left", request.left), ("right", request.right), ("top", request.top), ("bottom", request.bottom)];
    let outpaint: Vec<String> = sides.iter().filter(|(_, n)| *n > 0).map(|(side, n)| format!("{side} {n}")).collect();
    let outpaint_params = [("Outpaint", outpaint.join(", "))];
    run.crop = Some((extra_left, extra_top, canvas_w, canvas_h));
    inpaint_with_mask(model, &work, &inpaint, soft, &outpaint_params, control, run)
}
