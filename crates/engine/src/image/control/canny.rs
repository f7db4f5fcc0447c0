//! Canny edges as OpenCV's `cv2.Canny(grey, low, high)` (aperture 3, L1 gradient), which A1111's ControlNet
//! extension runs for its `canny` module: 3x3 Sobel with replicated borders, |dx| + |dy|, non-maximum suppression
//! in four directions with OpenCV's fixed-point tangent test (imgproc/src/canny.cpp), then hysteresis from the
//! pixels above `high` through 8-connected pixels above `low`. OpenCV's Canny does not blur; `blur_radius`
//! adds its Gaussian first (`cv2.GaussianBlur` with sigma = radius) for noisy pictures.

use image::{GrayImage, Luma, RgbImage};

use crate::image::mask::blur;

/// tan(22.5 degrees) in OpenCV's 15-bit fixed point.
const CANNY_SHIFT: u32 = 15;
const TG22: i64 = 13573;

/// `cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)`: BT.601 weights in OpenCV's 14-bit fixed point, rounded.
pub fn to_grey(image: &RgbImage) -> GrayImage {
    const R: u32 = 4899;
    const G: u32 = 9617;
    const B: u32 = 1868;
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        let [r, g, b] = image.get_pixel(x, y).0;
        Luma([((u32::from(r) * R + u32::from(g) * G + u32::from(b) * B + (1 << 13)) >> 14) as u8])
    })
}

/// White edges on black, the size of `image`.
pub fn canny(image: &RgbImage, low: f32, high: f32, blur_radius: u32) -> GrayImage {
    let grey = blur(&to_grey(image), blur_radius);
    let (width, height) = (grey.width() as usize, grey.height() as usize);
    // OpenCV: thresholds floored, swapped when given the wrong way round.
    let (mut low, mut high) = (low.floor() as i64, high.floor() as i64);
    if low > high {
        std::mem::swap(&mut low, &mut high);
    }
    let at = |x: isize, y: isize| -> i64 {
        let x = x.clamp(0, width as isize - 1) as u32;
        let y = y.clamp(0, height as isize - 1) as u32;
        i64::from(grey.get_pixel(x, y).0[0])
    };
    let mut dx = vec![0i64; width * height];
    let mut dy = vec![0i64; width * height];
    // Magnitudes with a zero border around the image, as OpenCV's row buffers.
    let stride = width + 2;
    let mut magnitude = vec![0i64; stride * (height + 2)];
    for y in 0..height {
        for x in 0..width {
            let (xi, yi) = (x as isize, y as isize);
            let gx = (at(xi + 1, yi - 1) + 2 * at(xi + 1, yi) + at(xi + 1, yi + 1))
                - (at(xi - 1, yi - 1) + 2 * at(xi - 1, yi) + at(xi - 1, yi + 1));
            let gy = (at(xi - 1, yi + 1) + 2 * at(xi, yi + 1) + at(xi + 1, yi + 1))
                - (at(xi - 1, yi - 1) + 2 * at(xi, yi - 1) + at(xi + 1, yi - 1));
            dx[y * width + x] = gx;
            dy[y * width + x] = gy;
            magnitude[(y + 1) * stride + x + 1] = gx.abs() + gy.abs();
        }
    }
    let mag = |x: usize, y: usize| magnitude[y * stride + x];
    // 2: edge, 1: weak candidate (above low, a local maximum), 0: nothing.
    let mut map = vec![0u8; width * height];
    let mut stack = Vec::new();
    for y in 0..height {
        for x in 0..width {
            let (bx, by) = (x + 1, y + 1);
            let m = mag(bx, by);
            if m <= low {
                continue;
            }
            let (xs, ys) = (dx[y * width + x], dy[y * width + x]);
            let ax = xs.abs();
            let ay = ys.abs() << CANNY_SHIFT;
            let tg22x = ax * TG22;
            let is_max = if ay < tg22x {
                m > mag(bx - 1, by) && m >= mag(bx + 1, by)
            } else {
                let tg67x = tg22x + (ax << (CANNY_SHIFT + 1));
                if ay > tg67x {
                    m > mag(bx, by - 1) && m >= mag(bx, by + 1)
                } else {
                    let s: isize = if (xs ^ ys) < 0 { -1 } else { 1 };
                    m > mag((bx as isize - s) as usize, by - 1) && m > mag((bx as isize + s) as usize, by + 1)
                }
            };
            if !is_max {
                continue;
            }
            if m > high {
                map[y * width + x] = 2;
                stack.push((x, y));
            } else {
                map[y * width + x] = 1;
            }
        }
    }
    while let Some((x, y)) = stack.pop() {
        for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
            for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                if map[ny * width + nx] == 1 {
                    map[ny * width + nx] = 2;
                    stack.push((nx, ny));
                }
            }
        }
    }
    GrayImage::from_fn(width as u32, height as u32, |x, y| {
        Luma([if map[y as usize * width + x as usize] == 2 { 255 } else { 0 }])
    })
}
