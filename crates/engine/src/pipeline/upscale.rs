//! Upscaling a picture: with an ESRGAN-family model run in overlapping tiles, or with Lanczos when no model is
//! chosen.
//!
//! A model runs in tiles whatever the picture's size, so memory stays bounded by one tile's activations and one
//! row of tiles of output. Each tile is read with a margin of context around it (the picture mirrored at its
//! edges), which is cut off the output: the network's zero padding then never shows inside the picture. Neighbouring
//! tiles overlap and are blended with linear ramps, so what differences remain between them fade instead of making
//! seams. As A1111's `Upscaler.upscale`, the model runs up to three times until the picture is at least the target
//! size, then Lanczos brings it to the exact size.

use image::{Rgb, RgbImage};
use ndarray::{Array4, s};

use crate::error::{EngineError, Result};
use crate::image::tiling::{Axis, BandBlender, reflect_101};
use crate::image::{MAX_IMAGE_SIDE, check_image_size, lanczos};
use crate::model::UpscalerSession;
use crate::progress::{Flow, Progress, Stage};

/// A1111 runs an upscaler model at most this many times to reach the target (`Upscaler.upscale`).
const MAX_PASSES: usize = 3;

/// How an upscaler model is tiled, in input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpscaleTiling {
    /// Tile side: A1111's default ESRGAN tile (`ESRGAN_tile` 192).
    pub tile: usize,
    /// Overlap blended between neighbours: twice A1111's `ESRGAN_tile_overlap` (8), since half of it ramps.
    pub overlap: usize,
    /// Context read around each tile and cut off its output (Real-ESRGAN's `tile_pad` is 10; 16 covers the
    /// receptive field of small models entirely).
    pub margin: usize,
}

impl Default for UpscaleTiling {
    fn default() -> Self {
        UpscaleTiling { tile: 192, overlap: 16, margin: 16 }
    }
}

impl UpscaleTiling {
    /// One tile for the whole picture: the "untiled" run, for comparisons and measurements.
    pub fn whole_image() -> UpscaleTiling {
        UpscaleTiling { tile: MAX_IMAGE_SIDE as usize, overlap: 0, margin: 0 }
    }
}

/// `image` scaled to `width` x `height` with `model` (tiled by `tiling`) or with Lanczos when `None`.
/// `progress` sees every tile of every pass (stage [`Stage::Upscaling`]) and may cancel between tiles.
pub fn upscale(
    image: &RgbImage,
    width: u32,
    height: u32,
    model: Option<&mut UpscalerSession>,
    tiling: UpscaleTiling,
    progress: &mut dyn FnMut(&Progress) -> Flow,
) -> Result<RgbImage> {
    check_image_size("upscaled size", u64::from(width), u64::from(height))?;
    if tiling.tile == 0 || tiling.overlap >= tiling.tile {
        return Err(EngineError::parameter(
            "upscaler tile",
            format!("{} (overlap {})", tiling.tile, tiling.overlap),
            "the tile must be positive and larger than its overlap",
        ));
    }
    let Some(model) = model else {
        return Ok(lanczos(image, width, height));
    };
    // The passes, planned (and checked against the size limit) before any runs.
    let scale = model.scale();
    let mut sizes = vec![image.dimensions()];
    while sizes.len() <= MAX_PASSES && scale > 1 {
        let &(w, h) = sizes.last().expect("the input size");
        if w >= width && h >= height {
            break;
        }
        let next = (u64::from(w) * u64::from(scale), u64::from(h) * u64::from(scale));
        check_image_size("upscaled size", next.0, next.1).map_err(|_| {
            EngineError::parameter(
                "upscaled size",
                format!("{}x{}", next.0, next.1),
                format!(
                    "the upscaler's x{scale} pass from {w}x{h} would exceed the limit of {MAX_IMAGE_SIDE} pixels per side; \
                     choose a smaller scale"
                ),
            )
        })?;
        sizes.push((next.0 as u32, next.1 as u32));
    }
    let tiles: Vec<usize> = sizes[..sizes.len() - 1]
        .iter()
        .map(|&(w, h)| {
            let layout = tile_layout(model, tiling);
            Axis::new(h as usize, layout.height, layout.overlap).starts.len()
                * Axis::new(w as usize, layout.width, layout.overlap).starts.len()
        })
        .collect();
    let total: usize = tiles.iter().sum();
    let mut done = 0;
    let mut report = |done: usize| -> Result<()> {
        let update = Progress {
            stage: Stage::Upscaling,
            batch: 0,
            batches: 1,
            step: done,
            steps: total,
            elapsed: std::time::Duration::ZERO,
        };
        match progress(&update) {
            Flow::Continue => Ok(()),
            Flow::Cancel | Flow::Skip => Err(EngineError::Cancelled),
        }
    };
    report(0)?;
    let mut current = image.clone();
    for pass_tiles in tiles {
        current = model_pass(&current, model, tiling, &mut |tile| report(done + tile))?;
        done += pass_tiles;
    }
    Ok(lanczos(&current, width, height))
}

/// Tiles as one pass runs them, in input pixels.
struct TileLayout {
    width: usize,
    height: usize,
    margin: usize,
    overlap: usize,
}

/// The tiling's layout, or, for a model that fixes its input size, tiles that with their margins have that size
/// (without margins, and a quarter of the tile blended, when the size leaves no room for them).
fn tile_layout(model: &UpscalerSession, tiling: UpscaleTiling) -> TileLayout {
    let UpscaleTiling { tile, overlap, margin } = tiling;
    match model.fixed_input_size() {
        Some((h, w)) if h.min(w) > 2 * margin + overlap => {
            TileLayout { width: w - 2 * margin, height: h - 2 * margin, margin, overlap }
        }
        Some((h, w)) => TileLayout { width: w, height: h, margin: 0, overlap: overlap.min(h.min(w) / 4) },
        None => TileLayout { width: tile, height: tile, margin, overlap },
    }
}

/// One run of the model over `image`, tile by tile; the context around border tiles is the picture mirrored.
fn model_pass(
    image: &RgbImage,
    model: &mut UpscalerSession,
    tiling: UpscaleTiling,
    on_tile: &mut dyn FnMut(usize) -> Result<()>,
) -> Result<RgbImage> {
    let scale = model.scale() as usize;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let TileLayout { width: tile_w, height: tile_h, margin, overlap } = tile_layout(model, tiling);
    let rows = Axis::new(height, tile_h, overlap);
    let columns = Axis::new(width, tile_w, overlap);
    let (out_w, out_h) = (width * scale, height * scale);
    let mut out = RgbImage::new(out_w as u32, out_h as u32);
    let mut blender = BandBlender::new(out_w, 3);
    let mut count = 0;
    for (r, &top) in rows.starts.iter().enumerate() {
        let row_weights = rows.weights(r, scale);
        for (c, &left) in columns.starts.iter().enumerate() {
            let (h, w) = (rows.tile + 2 * margin, columns.tile + 2 * margin);
            let input = Array4::from_shape_fn((1, 3, h, w), |(_, ch, y, x)| {
                let sy = reflect_101(top as i64 + y as i64 - margin as i64, height);
                let sx = reflect_101(left as i64 + x as i64 - margin as i64, width);
                f32::from(image.get_pixel(sx as u32, sy as u32).0[ch]) / 255.0
            });
            let output = model.run(&input)?;
            if output.shape() != [1, 3, h * scale, w * scale] {
                return Err(EngineError::UnsupportedModelIo {
                    component: "upscaler",
                    name: model.name().to_string(),
                    detail: format!("for a [1, 3, {h}, {w}] tile it returned {:?}, not x{scale}", output.shape()),
                });
            }
            if output.iter().any(|v| !v.is_finite()) {
                return Err(EngineError::NonFinite { stage: "the upscaler" });
            }
            let (m, th, tw) = (margin * scale, rows.tile * scale, columns.tile * scale);
            let core = output.slice(s![0, .., m..m + th, m..m + tw]);
            blender.add(core, left * scale, top * scale, &row_weights, &columns.weights(c, scale));
            count += 1;
            on_tile(count)?;
        }
        let until = rows.starts.get(r + 1).map_or(height, |&next| next) * scale;
        blender.flush(until, &mut |y, line| {
            for x in 0..out_w {
                let pixel = [0, 1, 2].map(|ch| (line[x * 3 + ch].clamp(0.0, 1.0) * 255.0).round() as u8);
                out.put_pixel(x as u32, y as u32, Rgb(pixel));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanczos_without_a_model_and_the_size_limit() {
        let image = RgbImage::from_pixel(10, 6, Rgb([40, 80, 120]));
        let mut never_cancel = |_: &Progress| Flow::Continue;
        let out = upscale(&image, 25, 15, None, UpscaleTiling::default(), &mut never_cancel).unwrap();
        assert_eq!(out.dimensions(), (25, 15));
        assert!(out.pixels().all(|p| p.0 == [40, 80, 120]));
        let error = upscale(&image, 20000, 20000, None, UpscaleTiling::default(), &mut never_cancel).unwrap_err();
        assert!(error.to_string().contains("20000x20000") && error.to_string().contains("16384"), "{error}");
    }
}
