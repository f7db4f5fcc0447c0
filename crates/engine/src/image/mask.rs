//! Inpainting masks (white = repaint, black = keep) and what A1111 does with them: blur, the bounding box for
//! "only masked", filling the masked area from its surroundings, and compositing the result over the original.

use image::{GrayImage, Luma, Rgb, RgbImage};
use ndarray::{Array4, ArrayD};

use super::tiling::reflect_101;

/// A pixel repaints when its mask value is at least this: diffusers' `VaeImageProcessor.binarize` keeps
/// `mask >= 0.5` of 255.
const REPAINT_THRESHOLD: u8 = 128;

/// The mask as 0 or 255 (optionally inverted, A1111's "Inpaint not masked").
pub fn binarize(mask: &GrayImage, invert: bool) -> GrayImage {
    GrayImage::from_fn(mask.width(), mask.height(), |x, y| {
        let repaint = (mask.get_pixel(x, y).0[0] >= REPAINT_THRESHOLD) != invert;
        Luma([if repaint { 255 } else { 0 }])
    })
}

/// Gaussian blur of `radius` pixels as A1111's mask blur: OpenCV's `GaussianBlur` with sigma = radius and a kernel
/// of 2 * int(2.5 * radius + 0.5) + 1 taps (modules/processing.py, `StableDiffusionProcessingImg2Img.init`),
/// horizontal then vertical, edges mirrored without repeating the edge pixel (OpenCV's BORDER_REFLECT_101).
pub fn blur(mask: &GrayImage, radius: u32) -> GrayImage {
    if radius == 0 {
        return mask.clone();
    }
    let sigma = f64::from(radius);
    let half = (2.5 * sigma + 0.5) as i64;
    let weights: Vec<f32> = {
        let raw: Vec<f64> = (-half..=half).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
        let sum: f64 = raw.iter().sum();
        raw.iter().map(|w| (w / sum) as f32).collect()
    };
    let (width, height) = (mask.width() as usize, mask.height() as usize);
    let source: Vec<f32> = mask.as_raw().iter().map(|&v| f32::from(v)).collect();
    let pass = |values: &[f32], along_x: bool| -> Vec<f32> {
        let mut out = vec![0.0f32; values.len()];
        let length = if along_x { width } else { height };
        for y in 0..height {
            for x in 0..width {
                let position = if along_x { x } else { y };
                let mut sum = 0.0f32;
                for (k, weight) in weights.iter().enumerate() {
                    let p = reflect_101(position as i64 + k as i64 - half, length);
                    sum += weight * if along_x { values[y * width + p] } else { values[p * width + x] };
                }
                out[y * width + x] = sum;
            }
        }
        out
    };
    let blurred = pass(&pass(&source, true), false);
    GrayImage::from_raw(
        mask.width(),
        mask.height(),
        blurred.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect(),
    )
    .expect("the blurred mask has the mask's size")
}

/// The smallest rectangle `(x1, y1, x2, y2)` (exclusive ends) holding every non-zero pixel, grown by `padding` and
/// clipped to the mask, as A1111's `masking.get_crop_region_v2`; `None` when the mask is empty.
pub fn bounding_box(mask: &GrayImage, padding: u32) -> Option<(u32, u32, u32, u32)> {
    let (mut x1, mut y1, mut x2, mut y2) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, pixel) in mask.enumerate_pixels() {
        if pixel.0[0] != 0 {
            (x1, y1, x2, y2) = (x1.min(x), y1.min(y), x2.max(x + 1), y2.max(y + 1));
        }
    }
    (x2 > 0).then(|| {
        (
            x1.saturating_sub(padding),
            y1.saturating_sub(padding),
            (x2 + padding).min(mask.width()),
            (y2 + padding).min(mask.height()),
        )
    })
}

/// `region` grown to the processing size's aspect ratio, shifted back inside the image where it would leave it,
/// as A1111's `masking.expand_crop_region`.
pub fn expand_to_aspect(
    region: (u32, u32, u32, u32),
    processing: (u32, u32),
    image: (u32, u32),
) -> (u32, u32, u32, u32) {
    let (x1, y1, x2, y2) = (i64::from(region.0), i64::from(region.1), i64::from(region.2), i64::from(region.3));
    let (pw, ph) = (i64::from(processing.0), i64::from(processing.1));
    let (iw, ih) = (i64::from(image.0), i64::from(image.1));
    // One axis grows (in exact integer arithmetic: ceil of the fractional growth) and is kept inside the image.
    let grow = |a1: i64, a2: i64, diff: i64, limit: i64| -> (i64, i64) {
        let (mut a1, mut a2) = (a1 - diff / 2, a2 + diff - diff / 2);
        if a2 >= limit {
            let over = a2 - limit;
            a2 -= over;
            a1 -= over;
        }
        if a1 < 0 {
            a2 -= a1;
            a1 = 0;
        }
        (a1, a2.min(limit))
    };
    let (x1, y1, x2, y2) = if (x2 - x1) * ph > (y2 - y1) * pw {
        let diff = ((x2 - x1) * ph - (y2 - y1) * pw + pw - 1) / pw;
        let (y1, y2) = grow(y1, y2, diff, ih);
        (x1, y1, x2, y2)
    } else {
        let diff = ((y2 - y1) * pw - (x2 - x1) * ph + ph - 1) / ph;
        let (x1, x2) = grow(x1, x2, diff, iw);
        (x1, y1, x2, y2)
    };
    (x1 as u32, y1 as u32, x2 as u32, y2 as u32)
}

/// The binary mask at latent resolution, `[1, 1, height, width]` of 0 or 1: nearest-neighbour as diffusers'
/// `prepare_mask_latents` (`torch.nn.functional.interpolate`, mode "nearest": source index floor(i * in / out)).
pub fn latent_mask(mask: &GrayImage, width: usize, height: usize) -> Array4<f32> {
    let (mw, mh) = (mask.width() as usize, mask.height() as usize);
    Array4::from_shape_fn((1, 1, height, width), |(_, _, y, x)| {
        let sy = ((y as f64 * mh as f64 / height as f64).floor() as usize).min(mh - 1);
        let sx = ((x as f64 * mw as f64 / width as f64).floor() as usize).min(mw - 1);
        if mask.get_pixel(sx as u32, sy as u32).0[0] >= REPAINT_THRESHOLD { 1.0 } else { 0.0 }
    })
}

/// A1111's masked content "fill": the masked area painted with the colours around it, nearer ones weighing more
/// (its `masking.fill` blurs the known pixels at radii from 256 down to 0 and stacks the results). Here as a
/// pull-push pyramid: known pixels averaged down level by level, then the averages pulled back up with bilinear
/// interpolation into the unknown pixels; linear in the image size. Known pixels are returned unchanged.
pub fn fill_masked(image: &RgbImage, repaint: &GrayImage) -> RgbImage {
    let (width, height) = (image.width() as usize, image.height() as usize);
    // Premultiplied colour and weight per level; level 0 is the image with weight 1 where known.
    let mut levels: Vec<(usize, usize, Vec<[f32; 4]>)> = Vec::new();
    let base: Vec<[f32; 4]> = image
        .pixels()
        .zip(repaint.pixels())
        .map(|(p, m)| {
            let known = if m.0[0] >= REPAINT_THRESHOLD { 0.0 } else { 1.0 };
            [f32::from(p.0[0]) * known, f32::from(p.0[1]) * known, f32::from(p.0[2]) * known, known]
        })
        .collect();
    if base.iter().all(|v| v[3] == 0.0) {
        // Nothing known: mid grey, as a VAE sees 0 in [-1, 1].
        return RgbImage::from_pixel(image.width(), image.height(), Rgb([128, 128, 128]));
    }
    levels.push((width, height, base));
    while levels.last().is_some_and(|(w, h, _)| *w > 1 || *h > 1) {
        let (w, h, values) = levels.last().expect("at least the base level");
        let (nw, nh) = (w.div_ceil(2), h.div_ceil(2));
        let mut next = vec![[0.0f32; 4]; nw * nh];
        for y in 0..*h {
            for x in 0..*w {
                let target = &mut next[(y / 2) * nw + x / 2];
                for c in 0..4 {
                    target[c] += values[y * w + x][c];
                }
            }
        }
        levels.push((nw, nh, next));
    }
    // Push: every level's unknown share is taken from the (already filled) coarser level, bilinearly sampled.
    let mut filled: Vec<[f32; 3]> = {
        let (_, _, top) = levels.last().expect("the pyramid has a top");
        vec![normalise(top[0]).expect("something is known")]
    };
    let mut filled_size = (1usize, 1usize);
    for (w, h, values) in levels.iter().rev().skip(1) {
        let mut next = vec![[0.0f32; 3]; w * h];
        for y in 0..*h {
            for x in 0..*w {
                let coarse = bilinear(&filled, filled_size, (x as f32 + 0.5) / 2.0 - 0.5, (y as f32 + 0.5) / 2.0 - 0.5);
                let v = values[y * w + x];
                // Weight saturates at 1: a pixel (or block) that is fully known keeps its own average.
                let own = v[3].min(1.0);
                let mean = normalise(v).unwrap_or(coarse);
                next[y * w + x] = [0, 1, 2].map(|c| own * mean[c] + (1.0 - own) * coarse[c]);
            }
        }
        filled = next;
        filled_size = (*w, *h);
    }
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        if repaint.get_pixel(x, y).0[0] < REPAINT_THRESHOLD {
            *image.get_pixel(x, y)
        } else {
            Rgb(filled[y as usize * width + x as usize].map(|v| v.round().clamp(0.0, 255.0) as u8))
        }
    })
}

fn normalise(v: [f32; 4]) -> Option<[f32; 3]> {
    (v[3] > 0.0).then(|| [v[0] / v[3], v[1] / v[3], v[2] / v[3]])
}

fn bilinear(values: &[[f32; 3]], (w, h): (usize, usize), x: f32, y: f32) -> [f32; 3] {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize| values[yy * w + xx];
    [0, 1, 2].map(|c| {
        let top = at(x0, y0)[c] * (1.0 - fx) + at(x1, y0)[c] * fx;
        let bottom = at(x0, y1)[c] * (1.0 - fx) + at(x1, y1)[c] * fx;
        top * (1.0 - fy) + bottom * fy
    })
}

/// `generated` over `original` through `mask` (255 takes the generated pixel, 0 keeps the original exactly), as
/// A1111's `apply_overlay` composites the original with the inverted mask as alpha.
pub fn composite(original: &RgbImage, generated: &RgbImage, mask: &GrayImage) -> RgbImage {
    RgbImage::from_fn(original.width(), original.height(), |x, y| {
        let m = u32::from(mask.get_pixel(x, y).0[0]);
        let (o, g) = (original.get_pixel(x, y).0, generated.get_pixel(x, y).0);
        Rgb([0, 1, 2].map(|c| ((u32::from(o[c]) * (255 - m) + u32::from(g[c]) * m + 127) / 255) as u8))
    })
}

/// The picture as a `[1, 3, height, width]` tensor in [-1, 1], as diffusers' `VaeImageProcessor` makes it
/// (x / 255, then 2x - 1, in float32); pixels where `zero_where` repaints are set to 0 (the masked image of
/// `StableDiffusionInpaintPipeline`: `init_image * (mask < 0.5)`).
pub fn to_vae_input(image: &RgbImage, zero_where: Option<&GrayImage>) -> ArrayD<f32> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    Array4::from_shape_fn((1, 3, height, width), |(_, c, y, x)| {
        if zero_where.is_some_and(|m| m.get_pixel(x as u32, y as u32).0[0] >= REPAINT_THRESHOLD) {
            return 0.0;
        }
        let v = f32::from(image.get_pixel(x as u32, y as u32).0[c]) / 255.0;
        2.0 * v - 1.0
    })
    .into_dyn()
}

/// Whether no pixel of the mask repaints.
pub fn is_empty(mask: &GrayImage) -> bool {
    mask.pixels().all(|p| p.0[0] == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_matches_opencv_on_a_step() {
        // OpenCV's kernel for sigma 2 (11 taps, exp(-i^2 / 8) normalised) over a 0 | 255 step, computed in
        // double precision with numpy and rounded; the vertical pass of a one-row image is the identity.
        let mask = GrayImage::from_fn(16, 1, |x, _| Luma([if x >= 8 { 255 } else { 0 }]));
        let blurred = blur(&mask, 2);
        assert_eq!(blurred.as_raw(), &vec![0, 0, 0, 2, 9, 26, 57, 102, 153, 198, 229, 246, 253, 255, 255, 255]);
        assert_eq!(blur(&mask, 0), mask);
    }

    #[test]
    fn bounding_box_pads_and_clips() {
        let mut mask = GrayImage::new(20, 10);
        mask.put_pixel(5, 4, Luma([255]));
        mask.put_pixel(7, 6, Luma([1]));
        assert_eq!(bounding_box(&mask, 0), Some((5, 4, 8, 7)));
        assert_eq!(bounding_box(&mask, 6), Some((0, 0, 14, 10)));
        assert_eq!(bounding_box(&GrayImage::new(4, 4), 3), None);
    }

    #[test]
    fn crop_region_grows_to_the_processing_aspect_inside_the_image() {
        // A 128x32 region processed at 512x512 becomes 128x128 (A1111's docstring example).
        assert_eq!(expand_to_aspect((100, 200, 228, 232), (512, 512), (512, 512)), (100, 152, 228, 280));
        // Near the bottom edge it shifts up instead of leaving the image.
        assert_eq!(expand_to_aspect((0, 500, 128, 512), (512, 512), (512, 512)), (0, 384, 128, 512));
    }

    #[test]
    fn latent_mask_takes_the_top_left_pixel_of_each_block() {
        let mask = GrayImage::from_fn(16, 16, |x, y| Luma([if x == 8 && y == 0 { 255 } else { 0 }]));
        let latent = latent_mask(&mask, 2, 2);
        assert_eq!(latent.iter().copied().collect::<Vec<_>>(), vec![0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn fill_paints_the_hole_with_the_surrounding_colour_and_keeps_the_rest() {
        let image = RgbImage::from_fn(32, 32, |x, _| if x < 16 { Rgb([200, 0, 0]) } else { Rgb([0, 0, 200]) });
        let hole = GrayImage::from_fn(32, 32, |x, y| {
            Luma([if (12..20).contains(&x) && (12..20).contains(&y) { 255 } else { 0 }])
        });
        let filled = fill_masked(&image, &hole);
        for (x, y, p) in filled.enumerate_pixels() {
            if hole.get_pixel(x, y).0[0] == 0 {
                assert_eq!(p, image.get_pixel(x, y));
            }
        }
        // Left of the hole's middle is reddish, right of it bluish.
        let (left, right) = (filled.get_pixel(13, 16).0, filled.get_pixel(18, 16).0);
        assert!(left[0] > left[2] && right[2] > right[0], "{left:?} {right:?}");
    }

    #[test]
    fn composite_keeps_unmasked_pixels_exactly() {
        let original = RgbImage::from_fn(8, 8, |x, y| Rgb([x as u8 * 30, y as u8 * 30, 7]));
        let generated = RgbImage::from_pixel(8, 8, Rgb([255, 255, 255]));
        let mask = GrayImage::from_fn(8, 8, |x, _| Luma([[0, 255, 128, 0, 0, 0, 0, 0][x as usize]]));
        let out = composite(&original, &generated, &mask);
        for (x, y, p) in out.enumerate_pixels() {
            match x {
                1 => assert_eq!(p.0, [255, 255, 255]),
                2 => assert!(p.0[2] > 100 && p.0[2] < 140),
                _ => assert_eq!(p, original.get_pixel(x, y)),
            }
        }
    }
}
