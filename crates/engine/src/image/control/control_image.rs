//! A control image as the ControlNets and adapters see it, and the record of how it was made.

use image::{GrayImage, ImageBuffer, Pixel, RgbImage};
use ndarray::Array4;

use crate::image::{ResizeMode, crop, resize_image};

/// A control image: RGB in [0, 1] once converted; pixels where `masked` is above half are -1, as diffusers'
/// `make_inpaint_condition` marks the area an inpainting ControlNet fills.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlImage {
    pub image: RgbImage,
    pub masked: Option<GrayImage>,
}

impl ControlImage {
    pub fn new(image: RgbImage) -> ControlImage {
        ControlImage { image, masked: None }
    }

    /// This image stretched to `width` x `height`.
    pub fn resized(&self, width: u32, height: u32) -> ControlImage {
        ControlImage {
            image: resize_image(&self.image, width, height, ResizeMode::Just),
            masked: self.masked.as_ref().map(|mask| resize_image(mask, width, height, ResizeMode::Just)),
        }
    }

    /// The part of this image over the region (`x`, `y`, `w`, `h`) of a `picture` (width, height) image, brought to
    /// `width` x `height` as inpainting's "only masked" brings the picture's region: the control image covers the
    /// whole picture (at any resolution), so it is first stretched to the picture's size, then cropped, then resized
    /// with "resize and fill".
    pub fn region(&self, picture: (u32, u32), region: (u32, u32, u32, u32), width: u32, height: u32) -> Self {
        ControlImage {
            image: picture_region(&self.image, picture, region, width, height),
            masked: self.masked.as_ref().map(|mask| picture_region(mask, picture, region, width, height)),
        }
    }

    /// `[1, 3, height, width]`, resized first when the image has another size (with a warning).
    pub fn tensor(&self, width: u32, height: u32, what: &str, warn: &mut dyn FnMut(&str)) -> Array4<f32> {
        let (image, masked) = if self.image.dimensions() == (width, height) {
            (self.image.clone(), self.masked.clone())
        } else {
            warn(&format!(
                "{what}: the control image is {}x{}, resized to the generation size {width}x{height}",
                self.image.width(),
                self.image.height()
            ));
            let resized = self.resized(width, height);
            (resized.image, resized.masked)
        };
        let mut tensor = Array4::zeros((1, 3, height as usize, width as usize));
        for (x, y, pixel) in image.enumerate_pixels() {
            let hidden = masked.as_ref().is_some_and(|m| m.get_pixel(x, y).0[0] > 127);
            for c in 0..3 {
                tensor[[0, c, y as usize, x as usize]] = if hidden { -1.0 } else { f32::from(pixel.0[c]) / 255.0 };
            }
        }
        tensor
    }
}

/// `image`, which covers a whole `picture`-sized picture, stretched to it, cut to `region` and resized to `width` x
/// `height` with "resize and fill".
fn picture_region<P>(
    image: &ImageBuffer<P, Vec<P::Subpixel>>,
    (picture_width, picture_height): (u32, u32),
    (x, y, w, h): (u32, u32, u32, u32),
    width: u32,
    height: u32,
) -> ImageBuffer<P, Vec<P::Subpixel>>
where
    P: Pixel + 'static,
    P::Subpixel: 'static,
{
    let whole = resize_image(image, picture_width, picture_height, ResizeMode::Just);
    resize_image(&crop(&whole, x, y, w, h), width, height, ResizeMode::Fill)
}

/// How a control image was made, for the PNG metadata (`Module: canny`, `Threshold A: 100`, ...).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Preprocessing {
    /// A1111's module name: `none`, `canny`, `scribble`, `lineart`, `tile`, `inpaint`.
    pub module: String,
    /// Extra `Key: value` pairs (`Threshold A`, `Threshold B`).
    pub params: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use image::{Luma, Rgb};

    use super::*;

    /// Whether every pixel of `image` is within 2 levels of `colour` (Lanczos may round a constant area by one).
    fn all_near(image: &RgbImage, colour: [u8; 3]) -> bool {
        image.pixels().all(|p| p.0.iter().zip(colour).all(|(&a, b)| a.abs_diff(b) <= 2))
    }

    #[test]
    fn a_region_of_the_picture_takes_the_control_image_over_that_region() {
        // One colour per quadrant of a 64x48 picture, with a mask over the left half.
        let quadrant = |x: u32, y: u32| match (x < 32, y < 24) {
            (true, true) => Rgb([255, 0, 0]),
            (false, true) => Rgb([0, 255, 0]),
            (true, false) => Rgb([0, 0, 255]),
            (false, false) => Rgb([255, 255, 255]),
        };
        let image = ControlImage {
            image: RgbImage::from_fn(64, 48, quadrant),
            masked: Some(GrayImage::from_fn(64, 48, |x, _| Luma([if x < 32 { 255 } else { 0 }]))),
        };
        // The bottom-right quadrant, brought to 16x12: white, unmasked.
        let region = image.region((64, 48), (32, 24, 32, 24), 16, 12);
        assert_eq!(region.image.dimensions(), (16, 12));
        assert!(all_near(&region.image, [255, 255, 255]), "the bottom-right quadrant only");
        assert!(region.masked.as_ref().is_some_and(|m| m.pixels().all(|p| p.0[0] < 3)), "the unmasked half only");
        // The top-left one: red, masked.
        let region = image.region((64, 48), (0, 0, 32, 24), 16, 12);
        assert!(all_near(&region.image, [255, 0, 0]));
        assert!(region.masked.is_some_and(|m| m.pixels().all(|p| p.0[0] > 252)));
        // A control image at another resolution covers the same picture: stretched to it first.
        let half = ControlImage::new(resize_image(&image.image, 32, 24, ResizeMode::Just));
        let region = half.region((64, 48), (8, 30, 16, 12), 16, 12);
        assert!(all_near(&region.image, [0, 0, 255]), "the bottom-left quadrant, away from its edges");
    }
}
