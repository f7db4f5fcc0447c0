//! Reading the pictures and masks users give: PNG, JPEG, WebP or BMP, any bit depth and colour type. The size is
//! read from the header and checked before any pixel is decoded, so a huge file is refused without allocating.

use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use image::{DynamicImage, GrayImage, ImageDecoder, ImageReader, RgbImage};

use crate::error::{EngineError, Result};

/// Largest width or height of an image read or made by an image operation (an input picture, an upscaled
/// output). 16384 x 16384 RGB is 768 MiB in 8 bits, already more than a desktop should hold twice.
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// A picture as 8-bit RGB, with what was changed to get there.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub image: RgbImage,
    /// Conversions the user may want to know about (transparency dropped).
    pub warnings: Vec<String>,
}

/// Refuses sizes above [`MAX_IMAGE_SIDE`], naming `what` and the size.
pub fn check_image_size(what: &'static str, width: u64, height: u64) -> Result<()> {
    let limit = u64::from(MAX_IMAGE_SIDE);
    if width == 0 || height == 0 || width > limit || height > limit {
        return Err(EngineError::parameter(
            what,
            format!("{width}x{height}"),
            format!("width and height must be between 1 and {MAX_IMAGE_SIDE} pixels"),
        ));
    }
    Ok(())
}

/// Reads `path` as an image: 8-bit or 16-bit, grey or colour, with or without alpha. 16-bit values are scaled to
/// 8 bits, grey is repeated into the three channels, and alpha is dropped (as A1111's `convert("RGB")`), with a
/// warning when some pixel was not opaque.
pub fn load_image(path: &Path) -> Result<LoadedImage> {
    let reader = ImageReader::open(path).map_err(|e| read_error(path, e))?;
    to_picture(decode(reader, path)?, path)
}

/// [`load_image`] for an image held in memory (an upload, a canvas); `name` (a form field, say) stands for the
/// file in errors and warnings.
pub fn load_image_bytes(name: &str, bytes: &[u8]) -> Result<LoadedImage> {
    let name = Path::new(name);
    to_picture(decode(ImageReader::new(Cursor::new(bytes)), name)?, name)
}

fn to_picture(decoded: DynamicImage, name: &Path) -> Result<LoadedImage> {
    let mut warnings = Vec::new();
    if decoded.color().has_alpha() && !is_opaque(&decoded) {
        warnings.push(format!(
            "{} has transparent pixels; transparency is ignored (the colour under it is used)",
            name.display()
        ));
    }
    Ok(LoadedImage { image: decoded.into_rgb8(), warnings })
}

/// Reads `path` as a mask: its luminance in 8 bits, as PIL's `convert("L")` computes it for colour files
/// (ITU-R 601-2: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16). White repaints, black keeps.
pub fn load_mask(path: &Path) -> Result<GrayImage> {
    let reader = ImageReader::open(path).map_err(|e| read_error(path, e))?;
    Ok(to_mask(decode(reader, path)?))
}

/// [`load_mask`] for a mask held in memory; `name` stands for the file in errors.
pub fn load_mask_bytes(name: &str, bytes: &[u8]) -> Result<GrayImage> {
    Ok(to_mask(decode(ImageReader::new(Cursor::new(bytes)), Path::new(name))?))
}

fn to_mask(decoded: DynamicImage) -> GrayImage {
    if !decoded.color().has_color() {
        return decoded.into_luma8();
    }
    let rgb = decoded.into_rgb8();
    GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0.map(u32::from);
        image::Luma([((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16) as u8])
    })
}

fn read_error(path: &Path, reason: impl ToString) -> EngineError {
    EngineError::ReadFile { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Decodes what `reader` reads; `path` (a file, or the name standing for bytes) is named in errors.
fn decode<R: BufRead + Seek>(reader: ImageReader<R>, path: &Path) -> Result<DynamicImage> {
    let fail = |reason: String| read_error(path, reason);
    let mut reader = reader.with_guessed_format().map_err(|e| fail(e.to_string()))?;
    if reader.format().is_none() {
        return Err(fail("not an image (expected PNG, JPEG, WebP or BMP)".into()));
    }
    // Our own limit, checked from the header below, replaces the crate's default allocation limit.
    reader.no_limits();
    let decoder = reader.into_decoder().map_err(|e| fail(format!("not an image, or a damaged one: {e}")))?;
    let (width, height) = decoder.dimensions();
    check_image_size("image size", u64::from(width), u64::from(height)).map_err(|error| match error {
        EngineError::InvalidParameter { name, value, reason } => {
            EngineError::InvalidParameter { name, value, reason: format!("{}: {reason}", path.display()) }
        }
        other => other,
    })?;
    DynamicImage::from_decoder(decoder).map_err(|e| fail(format!("not an image, or a damaged one: {e}")))
}

fn is_opaque(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageLumaA8(i) => i.pixels().all(|p| p.0[1] == u8::MAX),
        DynamicImage::ImageRgba8(i) => i.pixels().all(|p| p.0[3] == u8::MAX),
        DynamicImage::ImageLumaA16(i) => i.pixels().all(|p| p.0[1] == u16::MAX),
        DynamicImage::ImageRgba16(i) => i.pixels().all(|p| p.0[3] == u16::MAX),
        DynamicImage::ImageRgba32F(i) => i.pixels().all(|p| p.0[3] >= 1.0),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_sixteen_bit_and_rgba_files_become_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let grey = dir.path().join("grey.png");
        GrayImage::from_fn(4, 3, |x, _| image::Luma([x as u8 * 60])).save(&grey).unwrap();
        let loaded = load_image(&grey).unwrap();
        assert_eq!(loaded.image.get_pixel(2, 1).0, [120, 120, 120]);
        assert!(loaded.warnings.is_empty());

        let deep = dir.path().join("deep.png");
        image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(2, 2, |x, _| image::Rgb([65535, 257 * 128, x as u16 * 257]))
            .save(&deep)
            .unwrap();
        assert_eq!(load_image(&deep).unwrap().image.get_pixel(1, 0).0, [255, 128, 1]);

        let rgba = dir.path().join("rgba.png");
        image::RgbaImage::from_fn(2, 2, |x, _| image::Rgba([10, 20, 30, if x == 0 { 255 } else { 0 }]))
            .save(&rgba)
            .unwrap();
        let loaded = load_image(&rgba).unwrap();
        assert_eq!(loaded.image.get_pixel(1, 1).0, [10, 20, 30]);
        assert!(loaded.warnings[0].contains("transparent"), "{:?}", loaded.warnings);
    }

    #[test]
    fn a_colour_mask_uses_pil_luminance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mask.png");
        RgbImage::from_fn(3, 1, |x, _| image::Rgb([[255, 0, 0], [0, 255, 0], [255, 255, 255]][x as usize]))
            .save(&path)
            .unwrap();
        let mask = load_mask(&path).unwrap();
        // PIL: Image.new("RGB", (1, 1), (255, 0, 0)).convert("L") is 76; green 150; white 255.
        assert_eq!(mask.as_raw(), &vec![76, 150, 255]);
    }

    #[test]
    fn a_file_that_is_not_an_image_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, b"these are not pixels").unwrap();
        let error = load_image(&path).unwrap_err().to_string();
        assert!(error.contains("notes.png") && error.contains("not an image"), "{error}");
        let missing = load_image(&dir.path().join("missing.png")).unwrap_err().to_string();
        assert!(missing.contains("missing.png"), "{missing}");
    }

    #[test]
    fn a_huge_image_is_refused_from_its_header() {
        // A PNG header claiming 20000 x 20000 pixels with no pixel data: refused before decoding (which would fail
        // or allocate 1.2 GB).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.png");
        std::fs::write(&path, png_header(20000, 20000)).unwrap();
        let error = load_image(&path).unwrap_err().to_string();
        assert!(error.contains("20000x20000") && error.contains("16384") && error.contains("huge.png"), "{error}");
    }

    /// A PNG that says it is `width` x `height` (8-bit RGB) and holds almost no data: its signature, IHDR, an
    /// IDAT with an empty zlib stream, IEND. What a decoder sees before the pixels is all a real file of that
    /// size would show; decoding it would fail (or first allocate width * height * 3 bytes).
    pub(crate) fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut header = width.to_be_bytes().to_vec();
        header.extend_from_slice(&height.to_be_bytes());
        header.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in
            [(&b"IHDR"[..], header), (b"IDAT", vec![0x78, 0x9c, 0x03, 0, 0, 0, 0, 1]), (b"IEND", vec![])]
        {
            let mut chunk = kind.to_vec();
            chunk.extend_from_slice(&data);
            bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&chunk);
            bytes.extend_from_slice(&crc32(&chunk).to_be_bytes());
        }
        bytes
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
