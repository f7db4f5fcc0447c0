//! The depth preprocessor, as A1111's ControlNet extension runs Depth Anything (annotator/depth_anything.py, with
//! Depth Anything's own transform, depth_anything/util/transform.py), for any depth model of that kind (Depth
//! Anything v1/v2, DPT/MiDaS; their input size, multiple, mean and std from the model's folder):
//!
//! 1. the RGB picture in [0, 1] resized with OpenCV's bicubic (`cv2.INTER_CUBIC`) so that each side is at least the
//!    model's size and a multiple of its patch (`resize_method="lower_bound"`, rounding as `np.round`, halves to
//!    even), the aspect ratio kept unless the model says otherwise; a model that fixes its input size gets that;
//! 2. normalised with the model's mean and std;
//! 3. the network's relative inverse depth upsampled bilinearly (torch's `F.interpolate`, `align_corners=False`)
//!    to the picture's size;
//! 4. `(d - min) / (max - min) * 255`, truncated to 8 bits as numpy's `astype(np.uint8)`: near is bright.
//!
//! The extension first brings the picture to its "processor resolution" (512 on the short side, padded to a
//! multiple of 64); here the picture is used at the size it is given (the generation size), which only changes the
//! last resampling.

use image::{GrayImage, Luma, RgbImage};
use ndarray::{Array2, Array4, ArrayView2};

use super::{ControlImage, Preprocessing};
use super::{annotated, model_run_reporter};
use crate::error::Result;
use crate::image::{ResizeMode, resize_image};
use crate::model::{DepthConfig, DepthModel};
use crate::progress::{Flow, Progress};

/// OpenCV's bicubic coefficient (`interpolateCubic`, A = -0.75).
const CUBIC_A: f32 = -0.75;

/// Depth Anything's `Resize.constrain_to_multiple_of` without a maximum: `x` rounded (halves to even) to a
/// multiple, raised to the next multiple when that falls below `min`.
fn constrain_to_multiple_of(x: f64, multiple: usize, min: usize) -> usize {
    let multiple_f = multiple as f64;
    let y = ((x / multiple_f).round_ties_even() * multiple_f) as usize;
    if y < min { ((x / multiple_f).ceil() * multiple_f) as usize } else { y }
}

/// The network's input size (height, width) for a picture of `height` x `width`.
pub fn network_size(config: &DepthConfig, height: usize, width: usize) -> (usize, usize) {
    let (size_h, size_w) = config.size;
    let (mut scale_h, mut scale_w) = (size_h as f64 / height as f64, size_w as f64 / width as f64);
    if config.keep_aspect_ratio {
        // "lower_bound": scale so that both sides reach the size.
        let scale = scale_h.max(scale_w);
        (scale_h, scale_w) = (scale, scale);
    }
    (
        constrain_to_multiple_of(scale_h * height as f64, config.multiple_of, size_h),
        constrain_to_multiple_of(scale_w * width as f64, config.multiple_of, size_w),
    )
}

/// Source indices and weights of OpenCV's `INTER_CUBIC` along one axis: 4 taps per output pixel, indices clamped to
/// the picture (OpenCV's replicated border), coefficients in f32 as OpenCV computes them.
fn cubic_taps(input: usize, output: usize) -> Vec<([usize; 4], [f64; 4])> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|d| {
            let position = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let start = position.floor();
            let x = position - start;
            let c0 = ((CUBIC_A * (x + 1.0) - 5.0 * CUBIC_A) * (x + 1.0) + 8.0 * CUBIC_A) * (x + 1.0) - 4.0 * CUBIC_A;
            let c1 = ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1.0;
            let c2 = ((CUBIC_A + 2.0) * (1.0 - x) - (CUBIC_A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
            let c3 = 1.0 - c0 - c1 - c2;
            let index = |k: i64| (start as i64 - 1 + k).clamp(0, input as i64 - 1) as usize;
            ([index(0), index(1), index(2), index(3)], [c0, c1, c2, c3].map(f64::from))
        })
        .collect()
}

/// The network input `[1, 3, height, width]`: the picture in [0, 1], resized with OpenCV's bicubic (in f64, as the
/// reference resizes a float64 picture), normalised.
pub fn depth_input(image: &RgbImage, height: usize, width: usize, mean: [f32; 3], std: [f32; 3]) -> Array4<f32> {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let columns = cubic_taps(in_w, width);
    let rows = cubic_taps(in_h, height);
    // Horizontal pass, then vertical: OpenCV's separable order.
    let mut horizontal = vec![[0f64; 3]; in_h * width];
    for y in 0..in_h {
        for (x, (indices, weights)) in columns.iter().enumerate() {
            let mut sum = [0f64; 3];
            for (&i, &w) in indices.iter().zip(weights) {
                let pixel = image.get_pixel(i as u32, y as u32).0;
                for c in 0..3 {
                    sum[c] += f64::from(pixel[c]) / 255.0 * w;
                }
            }
            horizontal[y * width + x] = sum;
        }
    }
    let mut input = Array4::zeros((1, 3, height, width));
    for (y, (indices, weights)) in rows.iter().enumerate() {
        for x in 0..width {
            for c in 0..3 {
                let value: f64 = indices.iter().zip(weights).map(|(&i, &w)| horizontal[i * width + x][c] * w).sum();
                input[[0, c, y, x]] = ((value - f64::from(mean[c])) / f64::from(std[c])) as f32;
            }
        }
    }
    input
}

/// torch's `F.interpolate(mode="bilinear", align_corners=False)` source index and weight along one axis.
fn bilinear_taps(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|d| {
            let source = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (source as usize).min(input - 1);
            let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
            (i0, i1, (source - i0 as f32).clamp(0.0, 1.0))
        })
        .collect()
}

/// The network's depth brought to `width` x `height` (bilinear), scaled so the nearest point is 255 and the
/// farthest 0. A flat depth (max = min) is black.
pub fn depth_to_image(depth: ArrayView2<'_, f32>, width: u32, height: u32) -> GrayImage {
    let (in_h, in_w) = depth.dim();
    let rows = bilinear_taps(in_h, height as usize);
    let columns = bilinear_taps(in_w, width as usize);
    let mut resized = Array2::<f32>::zeros((height as usize, width as usize));
    for (y, &(y0, y1, ly)) in rows.iter().enumerate() {
        for (x, &(x0, x1, lx)) in columns.iter().enumerate() {
            let top = (1.0 - lx) * depth[[y0, x0]] + lx * depth[[y0, x1]];
            let bottom = (1.0 - lx) * depth[[y1, x0]] + lx * depth[[y1, x1]];
            resized[[y, x]] = (1.0 - ly) * top + ly * bottom;
        }
    }
    let min = resized.iter().copied().fold(f32::INFINITY, f32::min);
    let max = resized.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = max - min;
    GrayImage::from_fn(width, height, |x, y| {
        let d = resized[[y as usize, x as usize]];
        Luma([if range > 0.0 { ((d - min) / range * 255.0) as u8 } else { 0 }])
    })
}

/// The depth map of `image`, the picture's size. `progress` sees the model run (stage [`Stage::Preprocessing`],
/// step 0 then 1 of 1) and may cancel before it.
pub fn estimate_depth(
    model: &mut DepthModel,
    image: &RgbImage,
    progress: &mut dyn FnMut(&Progress) -> Flow,
) -> Result<GrayImage> {
    let mut report = model_run_reporter(progress);
    report(0)?;
    let config = model.config().clone();
    let (height, width) = model
        .fixed_input_size()
        .unwrap_or_else(|| network_size(&config, image.height() as usize, image.width() as usize));
    let input = depth_input(image, height, width, config.mean, config.std);
    let depth = model.predict(&input)?;
    let map = depth_to_image(depth.view(), image.width(), image.height());
    report(1)?;
    Ok(map)
}

/// The depth control image for `image` at `width` x `height` (the picture resized to the generation size first,
/// as the model-free preprocessors do), and how it was made for the PNG metadata.
pub fn depth_control(
    model: &mut DepthModel,
    image: &RgbImage,
    width: u32,
    height: u32,
    progress: &mut dyn FnMut(&Progress) -> Flow,
) -> Result<(ControlImage, Preprocessing)> {
    let image = resize_image(image, width, height, ResizeMode::Just);
    let depth = estimate_depth(model, &image, progress)?;
    Ok((ControlImage::new(super::grey_to_rgb(&depth)), annotated(model.module(), model.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_size_keeps_the_aspect_with_each_side_at_least_the_size() {
        let config = DepthConfig::default();
        // 512x768 (h x w): 518 x 777 -> 777 / 14 = 55.5 -> 56 * 14 = 784 (ties to even).
        assert_eq!(network_size(&config, 512, 768), (518, 784));
        assert_eq!(network_size(&config, 768, 512), (784, 518));
        assert_eq!(network_size(&config, 64, 64), (518, 518));
        // np.round(4.5) = 4: 63 -> 56, not 70.
        let small = DepthConfig { size: (42, 42), ..DepthConfig::default() };
        assert_eq!(network_size(&small, 64, 96), (42, 56));
        let fixed = DepthConfig { size: (384, 384), multiple_of: 32, keep_aspect_ratio: false, ..small };
        assert_eq!(network_size(&fixed, 64, 96), (384, 384));
    }

    #[test]
    fn depth_map_is_bright_where_the_depth_is_largest() {
        let depth = Array2::from_shape_fn((2, 3), |(y, x)| (y * 3 + x) as f32);
        let map = depth_to_image(depth.view(), 3, 2);
        assert_eq!(map.get_pixel(0, 0).0[0], 0);
        assert_eq!(map.get_pixel(2, 1).0[0], 255);
        let flat = depth_to_image(Array2::from_elem((4, 4), 2.5f32).view(), 8, 8);
        assert!(flat.pixels().all(|p| p.0[0] == 0));
    }
}
