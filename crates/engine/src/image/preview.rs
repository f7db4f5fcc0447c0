//! The live preview (the app's progress panel, the API's `/progress`): the latents mapped to RGB with a fixed linear
//! projection (no VAE), at latent resolution, cheap enough to run after every step.

use image::RgbImage;
use ndarray::{ArrayD, Axis};

/// How each of SD 1.x/2.x's four latent channels adds to R, G and B: AUTOMATIC1111's "Approx cheap" factors
/// (`modules/sd_vae_approx.py`, `cheap_approximation`), fitted by regression on VAE decodes.
const LATENT_RGB_FACTORS: [[f32; 3]; 4] =
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]];

/// Image `index` of `[batch, 4, h, w]` latents as RGB, or `None` when the latents are not of that shape.
pub fn latents_to_rgb(latents: &ArrayD<f32>, index: usize) -> Option<RgbImage> {
    let shape = latents.shape();
    if shape.len() != 4 || shape[1] != LATENT_RGB_FACTORS.len() || index >= shape[0] {
        return None;
    }
    let one = latents.index_axis(Axis(0), index);
    let (height, width) = (shape[2], shape[3]);
    Some(RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let mut rgb = [0.0f32; 3];
        for (channel, factors) in LATENT_RGB_FACTORS.iter().enumerate() {
            let value = one[[channel, y as usize, x as usize]];
            for (sum, factor) in rgb.iter_mut().zip(factors) {
                *sum += value * factor;
            }
        }
        // The projection lands roughly in [-1, 1], like the VAE's output.
        image::Rgb(rgb.map(|v| (((v + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).round() as u8))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_latents_are_mid_grey_and_channels_map_through_the_factors() {
        let mut latents = ArrayD::<f32>::zeros(vec![2, 4, 3, 5]);
        let grey = latents_to_rgb(&latents, 0).unwrap();
        assert_eq!(grey.dimensions(), (5, 3));
        assert!(grey.pixels().all(|p| p.0 == [128, 128, 128]));
        // Channel 3 pulls blue down hardest (factor -0.473): (1 - 0.473) / 2 * 255 = 67.
        latents[[1, 3, 0, 0]] = 1.0;
        assert_eq!(latents_to_rgb(&latents, 1).unwrap().get_pixel(0, 0).0, [104, 93, 67]);
        assert!(latents_to_rgb(&latents, 2).is_none());
    }
}
