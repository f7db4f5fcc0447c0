//! Fitting a picture to the size a pipeline works at, with AUTOMATIC1111's three resize modes
//! (modules/images.py, `resize_image`), Lanczos as its resampler.

use std::fmt;
use std::str::FromStr;

use image::imageops::{self, FilterType};
use image::{GenericImageView, ImageBuffer, Pixel};

use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ResizeMode {
    /// Stretch to the target size (A1111's "Just resize").
    #[default]
    Just,
    /// Scale to cover the target, then cut the overflow off both sides ("Crop and resize").
    Crop,
    /// Scale to fit inside the target, then fill the bands left over by stretching the picture's edge
    /// ("Resize and fill").
    Fill,
}

impl ResizeMode {
    pub const ALL: [ResizeMode; 3] = [ResizeMode::Just, ResizeMode::Crop, ResizeMode::Fill];

    pub fn id(self) -> &'static str {
        match self {
            ResizeMode::Just => "just",
            ResizeMode::Crop => "crop",
            ResizeMode::Fill => "fill",
        }
    }

    /// A1111's name, as its "Resize mode" infotext field.
    pub fn display_name(self) -> &'static str {
        match self {
            ResizeMode::Just => "Just resize",
            ResizeMode::Crop => "Crop and resize",
            ResizeMode::Fill => "Resize and fill",
        }
    }
}

impl fmt::Display for ResizeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

impl FromStr for ResizeMode {
    type Err = EngineError;
    fn from_str(value: &str) -> Result<Self> {
        let wanted = value.trim().to_lowercase();
        ResizeMode::ALL
            .into_iter()
            .find(|mode| mode.id() == wanted || mode.display_name().to_lowercase() == wanted)
            .ok_or_else(|| EngineError::parameter("resize mode", value, "expected just, crop or fill"))
    }
}

/// Lanczos resampling (PIL's `Image.LANCZOS`, which A1111 uses when no upscaler is chosen); the same size is a copy.
pub fn lanczos<P>(image: &ImageBuffer<P, Vec<P::Subpixel>>, width: u32, height: u32) -> ImageBuffer<P, Vec<P::Subpixel>>
where
    P: Pixel + 'static,
    P::Subpixel: 'static,
{
    if image.dimensions() == (width, height) {
        return image.clone();
    }
    imageops::resize(image, width, height, FilterType::Lanczos3)
}

/// `image` brought to `width` x `height` with `mode`, as A1111's `resize_image` (same arithmetic, so the same
/// crop and the same bands).
pub fn resize_image<P>(
    image: &ImageBuffer<P, Vec<P::Subpixel>>,
    width: u32,
    height: u32,
    mode: ResizeMode,
) -> ImageBuffer<P, Vec<P::Subpixel>>
where
    P: Pixel + 'static,
    P::Subpixel: 'static,
{
    let (image_width, image_height) = image.dimensions();
    if (image_width, image_height) == (width, height) {
        return image.clone();
    }
    // Ratios compared as A1111 does: target w/h against source w/h.
    let ratio = f64::from(width) / f64::from(height);
    let source_ratio = f64::from(image_width) / f64::from(image_height);
    let scaled_to_height = || ((image_width * height / image_height).max(1), height);
    let scaled_to_width = || (width, (image_height * width / image_width).max(1));
    match mode {
        ResizeMode::Just => lanczos(image, width, height),
        ResizeMode::Crop => {
            let (w, h) = if ratio > source_ratio { scaled_to_width() } else { scaled_to_height() };
            let resized = lanczos(image, w, h);
            let mut out = ImageBuffer::new(width, height);
            paste(
                &mut out,
                &resized,
                i64::from(width / 2) - i64::from(w / 2),
                i64::from(height / 2) - i64::from(h / 2),
            );
            out
        }
        ResizeMode::Fill => {
            let (w, h) = if ratio < source_ratio { scaled_to_width() } else { scaled_to_height() };
            let resized = lanczos(image, w, h);
            let mut out = ImageBuffer::new(width, height);
            let (left, top) = (width / 2 - w / 2, height / 2 - h / 2);
            paste(&mut out, &resized, i64::from(left), i64::from(top));
            // The bands: the nearest row (or column) of the resized picture stretched across them.
            for y in 0..height {
                for x in 0..width {
                    let inside_x = x >= left && x < left + w;
                    let inside_y = y >= top && y < top + h;
                    if inside_x && inside_y {
                        continue;
                    }
                    let source_x = x.clamp(left, left + w - 1) - left;
                    let source_y = y.clamp(top, top + h - 1) - top;
                    out.put_pixel(x, y, *resized.get_pixel(source_x, source_y));
                }
            }
            out
        }
    }
}

/// Copies `source` into `target` with its top-left corner at (`left`, `top`), clipped to `target`.
pub(crate) fn paste<P: Pixel>(
    target: &mut ImageBuffer<P, Vec<P::Subpixel>>,
    source: &ImageBuffer<P, Vec<P::Subpixel>>,
    left: i64,
    top: i64,
) {
    for (x, y, pixel) in source.enumerate_pixels() {
        let (tx, ty) = (left + i64::from(x), top + i64::from(y));
        if tx >= 0 && ty >= 0 && tx < i64::from(target.width()) && ty < i64::from(target.height()) {
            target.put_pixel(tx as u32, ty as u32, *pixel);
        }
    }
}

/// The `width` x `height` region at (`x`, `y`) as its own image.
pub(crate) fn crop<P>(
    image: &ImageBuffer<P, Vec<P::Subpixel>>,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
) -> ImageBuffer<P, Vec<P::Subpixel>>
where
    P: Pixel + 'static,
{
    image.view(x, y, width, height).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn picture(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| Rgb([(x * 7) as u8, (y * 5) as u8, 99]))
    }

    #[test]
    fn same_size_is_returned_unchanged_in_every_mode() {
        let image = picture(40, 24);
        for mode in ResizeMode::ALL {
            assert_eq!(resize_image(&image, 40, 24, mode), image, "{mode}");
        }
    }

    #[test]
    fn crop_keeps_the_aspect_ratio_and_cuts_the_sides() {
        // A constant picture stays constant whatever the mode; the output has the target size.
        let flat = RgbImage::from_pixel(80, 40, Rgb([10, 200, 30]));
        for mode in ResizeMode::ALL {
            let out = resize_image(&flat, 32, 32, mode);
            assert_eq!(out.dimensions(), (32, 32));
            assert!(out.pixels().all(|p| p.0 == [10, 200, 30]), "{mode}");
        }
    }

    #[test]
    fn fill_stretches_the_edges_into_the_bands() {
        // 2:1 into a square: the picture is 32 x 16 in the middle, bands of 8 rows above and below.
        let image = RgbImage::from_fn(64, 32, |_, y| match y {
            0..4 => Rgb([255, 0, 0]),
            28.. => Rgb([0, 0, 255]),
            _ => Rgb([0, 0, 0]),
        });
        let out = resize_image(&image, 32, 32, ResizeMode::Fill);
        assert_eq!(out.get_pixel(16, 0).0, out.get_pixel(16, 7).0, "top band repeats the first row");
        assert_eq!(out.get_pixel(16, 31).0, out.get_pixel(16, 24).0, "bottom band repeats the last row");
        assert!(out.get_pixel(16, 0).0[0] > 150 && out.get_pixel(16, 31).0[2] > 150);
    }

    #[test]
    fn mode_names_parse() {
        assert_eq!("crop".parse::<ResizeMode>().unwrap(), ResizeMode::Crop);
        assert_eq!("Resize and fill".parse::<ResizeMode>().unwrap(), ResizeMode::Fill);
        assert!("stretch".parse::<ResizeMode>().unwrap_err().to_string().contains("resize mode: stretch"));
    }
}
