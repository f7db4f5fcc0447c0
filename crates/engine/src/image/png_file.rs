//! PNG files with text chunks. Writes are atomic (a temporary file in the same folder, then a rename), so a crash
//! or a full disk never leaves a half-written image under the final name.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::{EngineError, Result};

/// The chunk AUTOMATIC1111 writes its generation parameters to.
pub const PARAMETERS_KEY: &str = "parameters";

fn write_error(path: &Path, reason: impl ToString) -> EngineError {
    EngineError::WriteFile { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Writes `image` to `path` with `texts` as text chunks (tEXt when Latin-1, iTXt otherwise, as Pillow does).
pub fn write_png_atomically(path: &Path, image: &RgbImage, texts: &[(&str, &str)]) -> Result<()> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| write_error(path, "the path has no file name"))?;
    let temporary: PathBuf = folder.join(format!(".{}.{}.part", file_name.to_string_lossy(), std::process::id()));
    let result = write_png(&temporary, image, texts)
        .and_then(|()| std::fs::rename(&temporary, path).map_err(|e| write_error(path, e)));
    if result.is_err() {
        // Best effort: the temporary file may not exist if creating it was what failed.
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(|error| match error {
        EngineError::WriteFile { reason, .. } => write_error(path, reason),
        other => other,
    })
}

fn write_png(path: &Path, image: &RgbImage, texts: &[(&str, &str)]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| write_error(path, e))?;
    let mut writer = BufWriter::new(file);
    encode_png(&mut writer, image, texts).map_err(|e| write_error(path, e))?;
    writer.flush().map_err(|e| write_error(path, e))?;
    writer.get_ref().sync_all().map_err(|e| write_error(path, e))?;
    Ok(())
}

/// `image` as PNG bytes with `texts` as text chunks, as [`write_png_atomically`] writes it (for images sent rather
/// than saved: the API's answers).
pub fn png_bytes(image: &RgbImage, texts: &[(&str, &str)]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    encode_png(&mut bytes, image, texts).map_err(|e| write_error(Path::new("(PNG in memory)"), e))?;
    Ok(bytes)
}

fn encode_png(
    writer: impl Write,
    image: &RgbImage,
    texts: &[(&str, &str)],
) -> std::result::Result<(), png::EncodingError> {
    let mut encoder = png::Encoder::new(writer, image.width(), image.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    for (key, text) in texts {
        // tEXt holds Latin-1 only; iTXt holds UTF-8 (Pillow makes the same choice).
        if text.chars().all(|c| (c as u32) < 256) {
            encoder.add_text_chunk(key.to_string(), text.to_string())?;
        } else {
            encoder.add_itxt_chunk(key.to_string(), text.to_string())?;
        }
    }
    let mut png = encoder.write_header()?;
    png.write_image_data(image.as_raw())?;
    png.finish()
}

/// The text chunk `key` of a PNG file (tEXt, zTXt or iTXt), if it has one.
pub fn read_png_text(path: &Path, key: &str) -> Result<Option<String>> {
    let file = std::fs::File::open(path)
        .map_err(|e| EngineError::ReadFile { path: path.to_path_buf(), reason: e.to_string() })?;
    png_text(std::io::BufReader::new(file), path, key)
}

/// [`read_png_text`] for a PNG held in memory; `name` stands for the file in errors.
pub fn read_png_text_bytes(name: &str, bytes: &[u8], key: &str) -> Result<Option<String>> {
    png_text(std::io::Cursor::new(bytes), Path::new(name), key)
}

fn png_text(source: impl std::io::BufRead + std::io::Seek, path: &Path, key: &str) -> Result<Option<String>> {
    let read_error = |reason: String| EngineError::ReadFile { path: path.to_path_buf(), reason };
    let decoder = png::Decoder::new(source);
    let reader = decoder.read_info().map_err(|e| read_error(format!("not a PNG image: {e}")))?;
    let info = reader.info();
    if let Some(chunk) = info.uncompressed_latin1_text.iter().find(|c| c.keyword == key) {
        return Ok(Some(chunk.text.clone()));
    }
    if let Some(chunk) = info.compressed_latin1_text.iter().find(|c| c.keyword == key) {
        return chunk.get_text().map(Some).map_err(|e| read_error(e.to_string()));
    }
    if let Some(chunk) = info.utf8_text.iter().find(|c| c.keyword == key) {
        return chunk.get_text().map(Some).map_err(|e| read_error(e.to_string()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_chunks_round_trip_latin1_and_unicode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let image = RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 50, y as u8 * 100, 7]));
        write_png_atomically(&path, &image, &[("parameters", "a cat\nSteps: 2"), ("comment", "一只猫 🐱")]).unwrap();
        assert_eq!(read_png_text(&path, "parameters").unwrap().as_deref(), Some("a cat\nSteps: 2"));
        assert_eq!(read_png_text(&path, "comment").unwrap().as_deref(), Some("一只猫 🐱"));
        assert_eq!(read_png_text(&path, "missing").unwrap(), None);
        assert_eq!(image::open(&path).unwrap().to_rgb8(), image);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_path_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/folder/a.png");
        let error = write_png_atomically(&path, &RgbImage::new(1, 1), &[]).unwrap_err().to_string();
        assert!(error.contains("no/such/folder/a.png"), "{error}");
        assert!(!path.exists());
    }

    #[test]
    fn reading_a_file_that_is_not_a_png_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.png");
        std::fs::write(&path, b"hello").unwrap();
        let error = read_png_text(&path, "parameters").unwrap_err().to_string();
        assert!(error.contains("fake.png") && error.contains("not a PNG"), "{error}");
    }
}
