//! The live preview as the window shows it: the engine's latent projection (`latents_to_rgb`) as a PNG data URL.

use base64::Engine as _;
use image::RgbImage;
use pigment_engine::image::png_bytes;

/// `image` as a `data:image/png;base64,...` URL for an `<img>`.
pub fn png_data_url(image: &RgbImage) -> Option<String> {
    let bytes = png_bytes(image, &[]).ok()?;
    Some(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_url_holds_a_png_of_the_image() {
        let image = RgbImage::from_pixel(4, 2, image::Rgb([10, 20, 30]));
        let url = png_data_url(&image).unwrap();
        let encoded = url.strip_prefix("data:image/png;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        assert_eq!(image::load_from_memory(&bytes).unwrap().to_rgb8(), image);
    }
}
