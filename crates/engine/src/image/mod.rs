//! Images: decoded tensors to 8-bit RGB, PNG files carrying AUTOMATIC1111's `parameters` text, and that text;
//! reading users' pictures and masks, resizing, masks, and the tiling the VAE and upscalers share.

pub mod control;
mod infotext;
mod load;
pub mod mask;
mod numbering;
mod png_file;
mod preview;
mod resize;
pub(crate) mod tiling;

pub use infotext::InfoText;
pub use load::{
    LoadedImage, MAX_IMAGE_SIDE, check_image_size, load_image, load_image_bytes, load_mask, load_mask_bytes,
};
pub use numbering::{next_image_number, numbered_image_path};
pub use png_file::{PARAMETERS_KEY, png_bytes, read_png_text, read_png_text_bytes, write_png_atomically};
pub use preview::latents_to_rgb;
pub use resize::{ResizeMode, lanczos, resize_image};
pub(crate) use resize::{crop, paste};

use image::RgbImage;
use ndarray::{ArrayD, Axis};

use crate::error::{EngineError, Result};

/// VAE output `[batch, 3, h, w]` in [-1, 1] to 8-bit images, as diffusers does: `(x / 2 + 0.5).clamp(0, 1)`, then
/// `(x * 255).round()`.
pub fn decoded_to_rgb(decoded: &ArrayD<f32>) -> Result<Vec<RgbImage>> {
    let shape = decoded.shape();
    if shape.len() != 4 || shape[1] != 3 {
        return Err(EngineError::inference(
            "vae_decoder",
            format!("expected a [batch, 3, height, width] image, got {shape:?}"),
        ));
    }
    if decoded.iter().any(|v| !v.is_finite()) {
        return Err(EngineError::NonFinite { stage: "VAE decode" });
    }
    let (height, width) = (shape[2], shape[3]);
    let mut images = Vec::with_capacity(shape[0]);
    for item in decoded.axis_iter(Axis(0)) {
        let mut image = RgbImage::new(width as u32, height as u32);
        for (x, y, pixel) in image.enumerate_pixels_mut() {
            for channel in 0..3 {
                let value = (item[[channel, y as usize, x as usize]] / 2.0 + 0.5).clamp(0.0, 1.0);
                pixel[channel] = (value * 255.0).round() as u8;
            }
        }
        images.push(image);
    }
    Ok(images)
}
