//! Images in and out of the API: base64 (with or without a `data:image/...;base64,` prefix) in, base64 PNG with
//! AUTOMATIC1111's `parameters` text chunk out.
//!
//! Pictures are read by the engine's own readers (the size checked from the header before decoding, alpha and
//! 16-bit handled, masks as PIL's luminance), straight from the decoded bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::{GrayImage, RgbImage};
use pigment_engine::EngineError;
use pigment_engine::image::{PARAMETERS_KEY, load_image_bytes, load_mask_bytes, png_bytes, read_png_text_bytes};

use crate::error::ApiError;

/// The bytes of a base64 image field, `field` naming it in errors.
pub fn decode_base64(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    let text = text.trim();
    // A1111 takes what follows the first comma of a data URL.
    let payload = match text.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map(|(_, data)| data).ok_or_else(|| ApiError::InvalidImage {
            field: field.into(),
            message: "a data URL without a comma before its data".into(),
        })?,
        None => text,
    };
    if payload.is_empty() {
        return Err(ApiError::InvalidImage { field: field.into(), message: "the image is empty".into() });
    }
    let cleaned: String = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(cleaned.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(cleaned.trim_end_matches('=')))
        .map_err(|e| ApiError::InvalidImage { field: field.into(), message: format!("not valid base64: {e}") })
}

/// A picture from a base64 field, as 8-bit RGB.
pub fn decode_picture(field: &str, text: &str) -> Result<RgbImage, ApiError> {
    let bytes = decode_base64(field, text)?;
    load_image_bytes(field, &bytes).map(|loaded| loaded.image).map_err(|error| image_error(field, error))
}

/// A mask from a base64 field: its luminance, white repaints.
pub fn decode_mask(field: &str, text: &str) -> Result<GrayImage, ApiError> {
    let bytes = decode_base64(field, text)?;
    load_mask_bytes(field, &bytes).map_err(|error| image_error(field, error))
}

/// The `parameters` text of a base64 PNG (None when it has none, or is not a PNG).
pub fn png_parameters(field: &str, text: &str) -> Result<Option<String>, ApiError> {
    let bytes = decode_base64(field, text)?;
    // A JPEG or WebP has no PNG text chunks: no parameters, as A1111 answers for a picture without them.
    Ok(read_png_text_bytes(field, &bytes, PARAMETERS_KEY).ok().flatten())
}

/// The engine's reading errors as a 400 naming the field.
fn image_error(field: &str, error: EngineError) -> ApiError {
    match error {
        EngineError::ReadFile { reason, .. } => ApiError::InvalidImage { field: field.into(), message: reason },
        EngineError::InvalidParameter { value, reason, .. } => {
            let reason = reason.rsplit_once(": ").map_or(reason.as_str(), |(_, r)| r).to_string();
            ApiError::InvalidImage { field: field.into(), message: format!("image size {value}: {reason}") }
        }
        other => ApiError::Engine(other),
    }
}

/// `image` as a PNG with `parameters` (when not empty) in a text chunk, as base64 without a prefix (A1111's form).
pub fn encode_png_base64(image: &RgbImage, parameters: &str) -> Result<String, ApiError> {
    let texts: &[(&str, &str)] = if parameters.is_empty() { &[] } else { &[(PARAMETERS_KEY, parameters)] };
    Ok(STANDARD.encode(png_bytes(image, texts)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_png_round_trips_with_its_parameters_and_a_data_url_prefix() {
        let image = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 9]));
        let text = "a cat\nSteps: 2, Sampler: Euler a, Seed: 1 — ünïcode";
        let encoded = encode_png_base64(&image, text).unwrap();
        let url = format!("data:image/png;base64,{encoded}");
        assert_eq!(decode_picture("image", &url).unwrap(), image);
        assert_eq!(png_parameters("image", &encoded).unwrap().as_deref(), Some(text));
    }

    #[test]
    fn invalid_base64_and_non_images_name_the_field() {
        let error = decode_picture("init_images.0", "!!!not base64!!!").unwrap_err();
        assert!(matches!(&error, ApiError::InvalidImage { field, .. } if field == "init_images.0"), "{error}");
        assert!(error.to_string().contains("base64"), "{error}");
        let garbage = STANDARD.encode(b"these are not pixels");
        let error = decode_mask("mask", &garbage).unwrap_err();
        assert!(error.to_string().starts_with("mask: ") && error.to_string().contains("not an image"), "{error}");
        assert!(!error.to_string().contains("/tmp"), "{error}");
    }
}
