//! The VAE around the pipelines: pictures to latents (sampled as diffusers samples them), latents to pictures
//! (with the fp16 "black image" check), whole or in tiles.
//!
//! Encoders come in two kinds. Those that output `latent_parameters` (mean and log-variance, twice the latent
//! channels: optimum's exports) describe a distribution that is sampled with the image's own generator, as
//! diffusers' `retrieve_latents(vae.encode(x), generator)` does (`DiagonalGaussianDistribution.sample`: one
//! `randn` of the latent's shape). Those that output a finished latent are used as they are (no draw).
//! Either way the latent is then multiplied by the VAE's scaling factor.
//!
//! Tiling (diffusers' `tiled_encode`/`tiled_decode`) runs the VAE on overlapping tiles and blends the overlaps
//! linearly, so memory stays bounded by a tile and one row of tiles of output whatever the image size. Tiles see
//! less context than the whole picture (GroupNorm statistics and attention are per tile), so a tiled result is
//! close to, not equal to, the untiled one; it is used for large images only (see [`VaeTiling`]).

use image::{GrayImage, Rgb, RgbImage};
use ndarray::{Array4, ArrayD, Axis as NdAxis, IxDyn, s};

use crate::error::{EngineError, Result};
use crate::image::mask::to_vae_input;
use crate::image::tiling::{Axis, BandBlender};
use crate::model::{LoadedModel, VaeDecoderSession, VaeEncoderSession};
use crate::schedulers::BatchNoise;

/// The latent is 1/8 of the image on each side in every Stable Diffusion VAE.
pub(crate) const VAE_FACTOR: usize = 8;
/// Latent channels of every Stable Diffusion 1.x/2.x VAE.
pub(crate) const LATENT_CHANNELS: usize = 4;
/// An inpainting UNet's input: the latents, the masked picture's latents and the mask.
pub(crate) const INPAINTING_CHANNELS: usize = 2 * LATENT_CHANNELS + 1;

/// diffusers' `DiagonalGaussianDistribution` clamps the log-variance to this range before `exp`.
const LOGVAR_RANGE: (f32, f32) = (-30.0, 20.0);

/// In [`VaeTilingMode::Auto`], tile above this many latent positions: 128 x 128, a 1024 x 1024 picture, where an
/// SD 1.5 VAE decoder on the CPU already needs several GB for its activations.
const AUTO_TILING_ABOVE: usize = 128 * 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VaeTilingMode {
    /// Tiles for pictures above 1024 x 1024 pixels, whole below.
    #[default]
    Auto,
    Always,
    Never,
}

impl std::str::FromStr for VaeTilingMode {
    type Err = EngineError;
    fn from_str(value: &str) -> Result<Self> {
        match value.trim().to_lowercase().as_str() {
            "auto" => Ok(VaeTilingMode::Auto),
            "always" | "on" => Ok(VaeTilingMode::Always),
            "never" | "off" => Ok(VaeTilingMode::Never),
            _ => Err(EngineError::parameter("VAE tiling", value, "expected auto, always or never")),
        }
    }
}

/// How the VAE is tiled, in latent positions (8 pixels each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaeTiling {
    pub mode: VaeTilingMode,
    /// Tile side: 64 latents = 512 pixels, diffusers' `tile_latent_min_size` for SD 1.5 (`sample_size` 512 / 8).
    pub tile: usize,
    /// Overlap between neighbouring tiles: diffusers' `tile_overlap_factor` 0.25 of a tile.
    pub overlap: usize,
}

impl Default for VaeTiling {
    fn default() -> Self {
        VaeTiling { mode: VaeTilingMode::Auto, tile: 64, overlap: 16 }
    }
}

impl VaeTiling {
    /// Whether a latent of `height` x `width` is processed in tiles.
    pub fn applies(&self, height: usize, width: usize) -> bool {
        let larger_than_a_tile = height > self.tile || width > self.tile;
        match self.mode {
            VaeTilingMode::Never => false,
            VaeTilingMode::Always => larger_than_a_tile,
            VaeTilingMode::Auto => larger_than_a_tile && height * width > AUTO_TILING_ABOVE,
        }
    }

    fn check(&self) -> Result<()> {
        if self.tile == 0 || self.overlap >= self.tile {
            return Err(EngineError::parameter(
                "VAE tile",
                format!("{} (overlap {})", self.tile, self.overlap),
                "the tile must be positive and larger than its overlap",
            ));
        }
        Ok(())
    }
}

/// What the encoder made of one picture.
#[derive(Debug, Clone)]
pub(crate) enum Encoded {
    /// Mean and standard deviation, `[1, channels, h, w]` each.
    Distribution {
        mean: ArrayD<f32>,
        std: ArrayD<f32>,
    },
    Latent(ArrayD<f32>),
}

impl Encoded {
    /// `[1, channels, h, w]`.
    pub(crate) fn shape(&self) -> Vec<usize> {
        match self {
            Encoded::Distribution { mean, .. } => mean.shape().to_vec(),
            Encoded::Latent(latent) => latent.shape().to_vec(),
        }
    }

    /// Whether [`Encoded::latents`] draws from the generators.
    pub(crate) fn draws(&self) -> bool {
        matches!(self, Encoded::Distribution { .. })
    }

    /// Scaled latents `[batch, channels, h, w]`, image i sampled with generator i: `mean + std * randn`, then
    /// times `scaling` (diffusers' `_encode_vae_image` / img2img `prepare_latents`, one image at a time).
    pub(crate) fn latents(&self, noise: &mut BatchNoise<'_>, batch: usize, scaling: f32) -> ArrayD<f32> {
        let shape = self.shape();
        let batch_shape = [batch, shape[1], shape[2], shape[3]];
        match self {
            Encoded::Distribution { mean, std } => {
                let mut sample = noise.randn(&batch_shape);
                for mut item in sample.axis_iter_mut(NdAxis(0)) {
                    let one = mean.index_axis(NdAxis(0), 0);
                    let spread = std.index_axis(NdAxis(0), 0);
                    ndarray::Zip::from(&mut item)
                        .and(&one)
                        .and(&spread)
                        .for_each(|x, &m, &s| *x = (m + s * *x) * scaling);
                }
                sample
            }
            Encoded::Latent(latent) => {
                let scaled = latent.mapv(|v| v * scaling);
                let views = vec![scaled.view(); batch];
                ndarray::concatenate(NdAxis(0), &views).expect("equal shapes")
            }
        }
    }
}

/// Encodes `image` (sides multiples of 8), with the pixels where `zero_where` repaints set to 0 (inpainting's
/// masked image). `on_tile(done, total)` is called after each tile when tiled.
pub(crate) fn encode(
    model: &mut LoadedModel,
    image: &RgbImage,
    zero_where: Option<&GrayImage>,
    tiling: VaeTiling,
    on_tile: &mut dyn FnMut(usize, usize) -> Result<()>,
) -> Result<Encoded> {
    let latent_channels = model.vae_decoder.latent_channels().unwrap_or(LATENT_CHANNELS);
    let folder = model.folder.root.clone();
    let encoder = model.vae_encoder.as_mut().ok_or_else(|| EngineError::MissingComponent {
        folder: folder.clone(),
        component: "vae_encoder",
        expected: folder.join("vae_encoder/model.onnx"),
    })?;
    let (height, width) = (image.height() as usize / VAE_FACTOR, image.width() as usize / VAE_FACTOR);
    let parameters = if tiling.applies(height, width) {
        tiling.check()?;
        encode_tiled(encoder, image, zero_where, tiling, on_tile)?
    } else {
        let parameters = encoder.encode(&to_vae_input(image, zero_where))?;
        check_finite(&parameters, "VAE encode")?;
        parameters
    };
    let channels = parameters.shape().get(1).copied().unwrap_or(0);
    if channels == 2 * latent_channels {
        let mean = parameters.slice_axis(NdAxis(1), (0..latent_channels).into()).to_owned();
        let std = parameters
            .slice_axis(NdAxis(1), (latent_channels..2 * latent_channels).into())
            .mapv(|logvar| (0.5 * logvar.clamp(LOGVAR_RANGE.0, LOGVAR_RANGE.1)).exp());
        Ok(Encoded::Distribution { mean, std })
    } else if channels == latent_channels {
        Ok(Encoded::Latent(parameters))
    } else {
        Err(EngineError::UnsupportedModelIo {
            component: "vae_encoder",
            name: "latent_parameters".into(),
            detail: format!(
                "the encoder returned {channels} channels; expected {} (mean and log-variance) or {latent_channels} (a latent)",
                2 * latent_channels
            ),
        })
    }
}

fn encode_tiled(
    encoder: &mut VaeEncoderSession,
    image: &RgbImage,
    zero_where: Option<&GrayImage>,
    tiling: VaeTiling,
    on_tile: &mut dyn FnMut(usize, usize) -> Result<()>,
) -> Result<ArrayD<f32>> {
    let (height, width) = (image.height() as usize / VAE_FACTOR, image.width() as usize / VAE_FACTOR);
    let rows = Axis::new(height, tiling.tile, tiling.overlap);
    let columns = Axis::new(width, tiling.tile, tiling.overlap);
    let total = rows.starts.len() * columns.starts.len();
    let mut out: Option<Array4<f32>> = None;
    let mut blender: Option<BandBlender> = None;
    for (r, &top) in rows.starts.iter().enumerate() {
        for (c, &left) in columns.starts.iter().enumerate() {
            let (x, y) = ((left * VAE_FACTOR) as u32, (top * VAE_FACTOR) as u32);
            let (w, h) = ((columns.tile * VAE_FACTOR) as u32, (rows.tile * VAE_FACTOR) as u32);
            let tile_image = crate::image::crop(image, x, y, w, h);
            let tile_mask = zero_where.map(|m| crate::image::crop(m, x, y, w, h));
            let parameters = encoder.encode(&to_vae_input(&tile_image, tile_mask.as_ref()))?;
            check_finite(&parameters, "VAE encode")?;
            let channels = parameters.shape()[1];
            let out = out.get_or_insert_with(|| Array4::zeros((1, channels, height, width)));
            let blender = blender.get_or_insert_with(|| BandBlender::new(width, channels));
            let tile = parameters
                .index_axis(NdAxis(0), 0)
                .into_dimensionality()
                .map_err(|e| EngineError::inference("vae_encoder", format!("output {:?}: {e}", parameters.shape())))?;
            blender.add(tile, left, top, &rows.weights(r, 1), &columns.weights(c, 1));
            on_tile(r * columns.starts.len() + c + 1, total)?;
            if c + 1 == columns.starts.len() {
                let until = rows.starts.get(r + 1).copied().unwrap_or(height);
                blender.flush(until, &mut |y, line| {
                    for x in 0..width {
                        for ch in 0..channels {
                            out[[0, ch, y, x]] = line[x * channels + ch];
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }
    out.map(Array4::into_dyn)
        .ok_or_else(|| EngineError::inference("vae_encoder", format!("no tile in {width}x{height}")))
}

/// Decodes image `index` of `latents` (scaled, as the sampler holds them) to 8-bit RGB as diffusers does
/// (`latents / scaling_factor`, decode, `(x / 2 + 0.5).clamp(0, 1)`, `(x * 255).round()`), in tiles for large
/// images. Non-finite output from an fp16 decoder (the fp16 VAE "black image") is decoded again with the fp32
/// decoder of `vae_decoder_fp32/` when the folder has one (said in `warnings`; that decoder is then kept for the
/// model's later images, as A1111's automatic revert to a 32-bit VAE), else reported as an error.
pub(crate) fn decode(
    model: &mut LoadedModel,
    latents: &ArrayD<f32>,
    index: usize,
    tiling: VaeTiling,
    on_tile: &mut dyn FnMut(usize, usize) -> Result<()>,
    warnings: &mut Vec<String>,
) -> Result<RgbImage> {
    let scale = model.folder.vae_scaling_factor;
    let one = latents.slice_axis(NdAxis(0), (index..index + 1).into()).mapv(|v| v / scale);
    if let Some(fp32) = model.vae_decoder_fp32.as_mut() {
        return decode_with(fp32, &one, tiling, on_tile);
    }
    match decode_with(&mut model.vae_decoder, &one, tiling, on_tile) {
        Err(EngineError::NonFinite { .. }) if model.vae_decoder.is_fp16() => match model.fp32_vae_decoder()? {
            Some(fp32) => {
                warnings.push(
                    "the fp16 VAE decoder produced NaN or infinity; decoded with the fp32 decoder of vae_decoder_fp32/ \
                     (used from now on for this model)"
                        .into(),
                );
                decode_with(fp32, &one, tiling, on_tile)
            }
            None => Err(EngineError::NonFinite {
                stage: "the fp16 VAE decoder (the fp16 \"black image\" problem: add an fp32 decoder as \
                        vae_decoder_fp32/model.onnx to retry with it, or use an fp32 VAE)",
            }),
        },
        other => other,
    }
}

/// Decodes image `index` of scaled latents `[batch, channels, h, w]` (as a sampler leaves them) to 8-bit RGB, in
/// tiles when `tiling` says so, with the fp32 retry of [`decode`]; its warnings come back with the picture. For
/// callers that hold latents themselves (benchmarks, a canvas preview at full quality).
pub fn decode_latents(
    model: &mut LoadedModel,
    latents: &ArrayD<f32>,
    index: usize,
    tiling: VaeTiling,
) -> Result<(RgbImage, Vec<String>)> {
    let mut warnings = Vec::new();
    let image = decode(model, latents, index, tiling, &mut |_, _| Ok(()), &mut warnings)?;
    Ok((image, warnings))
}

fn decode_with(
    decoder: &mut VaeDecoderSession,
    latent: &ArrayD<f32>,
    tiling: VaeTiling,
    on_tile: &mut dyn FnMut(usize, usize) -> Result<()>,
) -> Result<RgbImage> {
    let (height, width) = (latent.shape()[2], latent.shape()[3]);
    if !tiling.applies(height, width) {
        let decoded = decoder.decode(latent)?;
        check_finite(&decoded, "VAE decode")?;
        return Ok(crate::image::decoded_to_rgb(&decoded)?.remove(0));
    }
    tiling.check()?;
    let rows = Axis::new(height, tiling.tile, tiling.overlap);
    let columns = Axis::new(width, tiling.tile, tiling.overlap);
    let total = rows.starts.len() * columns.starts.len();
    let mut image = RgbImage::new((width * VAE_FACTOR) as u32, (height * VAE_FACTOR) as u32);
    let mut blender = BandBlender::new(width * VAE_FACTOR, 3);
    for (r, &top) in rows.starts.iter().enumerate() {
        let row_weights = rows.weights(r, VAE_FACTOR);
        for (c, &left) in columns.starts.iter().enumerate() {
            let tile = latent.slice(s![.., .., top..top + rows.tile, left..left + columns.tile]).to_owned().into_dyn();
            let decoded = decoder.decode(&tile)?;
            check_finite(&decoded, "VAE decode")?;
            let decoded = decoded.index_axis(NdAxis(0), 0).into_dimensionality().map_err(|e| {
                EngineError::inference("vae_decoder", format!("expected a [1, 3, height, width] image: {e}"))
            })?;
            blender.add(decoded, left * VAE_FACTOR, top * VAE_FACTOR, &row_weights, &columns.weights(c, VAE_FACTOR));
            on_tile(r * columns.starts.len() + c + 1, total)?;
        }
        let until = rows.starts.get(r + 1).map_or(height, |&next| next) * VAE_FACTOR;
        blender.flush(until, &mut |y, line| {
            for x in 0..width * VAE_FACTOR {
                let pixel = [0, 1, 2].map(|c| ((line[x * 3 + c] / 2.0 + 0.5).clamp(0.0, 1.0) * 255.0).round() as u8);
                image.put_pixel(x as u32, y as u32, Rgb(pixel));
            }
            Ok(())
        })?;
    }
    Ok(image)
}

fn check_finite(values: &ArrayD<f32>, stage: &'static str) -> Result<()> {
    if values.iter().all(|v| v.is_finite()) { Ok(()) } else { Err(EngineError::NonFinite { stage }) }
}

/// Latents `[batch, c, h, w]` resized to `height` x `width` with bilinear interpolation as
/// `torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False)`: A1111's "Latent"
/// hires upscaler.
pub(crate) fn resize_latents(latents: &ArrayD<f32>, height: usize, width: usize) -> ArrayD<f32> {
    let shape = latents.shape();
    let (batch, channels, in_h, in_w) = (shape[0], shape[1], shape[2], shape[3]);
    // Source coordinate of output index i: (i + 0.5) * in / out - 0.5, clamped at 0 (PyTorch's area_pixel_compute
    // _source_index with align_corners False), and the neighbour index clamped at the last row/column.
    let source = |i: usize, input: usize, output: usize| -> (usize, usize, f32) {
        let x = ((i as f32 + 0.5) * input as f32 / output as f32 - 0.5).max(0.0);
        let lower = (x.floor() as usize).min(input - 1);
        let upper = (lower + 1).min(input - 1);
        (lower, upper, x - lower as f32)
    };
    let rows: Vec<_> = (0..height).map(|y| source(y, in_h, height)).collect();
    let cols: Vec<_> = (0..width).map(|x| source(x, in_w, width)).collect();
    ArrayD::from_shape_fn(IxDyn(&[batch, channels, height, width]), |index| {
        let (b, c, y, x) = (index[0], index[1], index[2], index[3]);
        let (y0, y1, fy) = rows[y];
        let (x0, x1, fx) = cols[x];
        let at = |yy: usize, xx: usize| latents[[b, c, yy, xx]];
        (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1.0 - fx) * at(y1, x0) + fx * at(y1, x1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_tiling_starts_above_1024_pixels() {
        let tiling = VaeTiling::default();
        assert!(!tiling.applies(64, 64));
        assert!(!tiling.applies(128, 128));
        assert!(tiling.applies(136, 128));
        assert!(VaeTiling { mode: VaeTilingMode::Always, ..tiling }.applies(65, 8));
        assert!(!VaeTiling { mode: VaeTilingMode::Always, ..tiling }.applies(64, 64));
        assert!(!VaeTiling { mode: VaeTilingMode::Never, ..tiling }.applies(512, 512));
    }

    #[test]
    fn bilinear_latent_resize_matches_torch() {
        // torch.nn.functional.interpolate(torch.arange(4.).reshape(1, 1, 2, 2), size=(4, 4), mode="bilinear")
        let latents = ArrayD::from_shape_vec(IxDyn(&[1, 1, 2, 2]), vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        let resized = resize_latents(&latents, 4, 4);
        let expected = [0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0];
        for (got, want) in resized.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{resized:?}");
        }
    }
}
