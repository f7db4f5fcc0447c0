//! Control-image preprocessors that need no model, named as A1111's ControlNet extension names its modules:
//! `canny` (OpenCV's Canny), `scribble` (a hand drawing as white lines on black), `lineart` (edge strength of the
//! blurred picture: an edge-extraction stand-in for the model-based lineart annotators), `tile` (the picture
//! resized), `inpaint` (masked pixels marked -1, diffusers' `make_inpaint_condition`). Depth and pose need ONNX
//! annotator models ([`crate::model::DepthModel`], [`crate::model::PoseModel`]): [`depth`] and [`openpose`].

mod canny;
mod control_image;
pub mod depth;
pub mod openpose;

use std::fmt;

use image::{GrayImage, Luma, RgbImage};

pub use canny::{canny, to_grey};
pub use control_image::{ControlImage, Preprocessing};

use crate::error::{EngineError, Result};
use crate::image::mask::{binarize, blur};
use crate::image::{ResizeMode, resize_image};
use crate::progress::{Flow, Progress, Stage};

/// A1111's default Canny thresholds (Threshold A, Threshold B).
pub const DEFAULT_CANNY_LOW: f32 = 100.0;
pub const DEFAULT_CANNY_HIGH: f32 = 200.0;
/// A scribble pixel is a stroke when it is this far from the paper's brightness (half of 8-bit).
const SCRIBBLE_THRESHOLD: u8 = 127;
/// The blur before lineart's edge strength: OpenCV's GaussianBlur sigma, in pixels.
const LINEART_BLUR: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Preprocessor {
    Canny { low: f32, high: f32 },
    Scribble,
    Lineart,
    Tile,
}

impl Preprocessor {
    pub const NAMES: [&'static str; 4] = ["canny", "scribble", "lineart", "tile"];

    /// `canny` (with A1111's default thresholds), `scribble`, `lineart`, `tile`; case-insensitive.
    pub fn parse(name: &str) -> Result<Preprocessor> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "canny" => Preprocessor::Canny { low: DEFAULT_CANNY_LOW, high: DEFAULT_CANNY_HIGH },
            "scribble" => Preprocessor::Scribble,
            "lineart" => Preprocessor::Lineart,
            "tile" => Preprocessor::Tile,
            _ => {
                return Err(EngineError::parameter(
                    "preprocessor",
                    name,
                    format!("known preprocessors: {} (depth and openpose need models)", Preprocessor::NAMES.join(", ")),
                ));
            }
        })
    }

    pub fn module(self) -> &'static str {
        match self {
            Preprocessor::Canny { .. } => "canny",
            Preprocessor::Scribble => "scribble",
            Preprocessor::Lineart => "lineart",
            Preprocessor::Tile => "tile",
        }
    }

    /// Refuses thresholds outside 0..=255 or the wrong way round, naming them.
    pub fn validate(self) -> Result<()> {
        if let Preprocessor::Canny { low, high } = self {
            for (name, value) in [("canny low", low), ("canny high", high)] {
                if !value.is_finite() || !(0.0..=255.0).contains(&value) {
                    return Err(EngineError::parameter(name, value, "must be between 0 and 255"));
                }
            }
            if low > high {
                return Err(EngineError::parameter("canny low", low, format!("must not be above canny high, {high}")));
            }
        }
        Ok(())
    }

    /// The control image for `image` at `width` x `height` (the generation size), and how it was made for the
    /// PNG metadata.
    pub fn apply(self, image: &RgbImage, width: u32, height: u32) -> Result<(ControlImage, Preprocessing)> {
        self.validate()?;
        let image = resize_image(image, width, height, ResizeMode::Just);
        let (control, params) = match self {
            Preprocessor::Canny { low, high } => (
                grey_to_rgb(&canny(&image, low, high, 0)),
                vec![("Threshold A".to_string(), low.to_string()), ("Threshold B".to_string(), high.to_string())],
            ),
            Preprocessor::Scribble => (grey_to_rgb(&scribble(&image)), Vec::new()),
            Preprocessor::Lineart => (grey_to_rgb(&lineart(&image)), Vec::new()),
            Preprocessor::Tile => (image, Vec::new()),
        };
        Ok((ControlImage::new(control), Preprocessing { module: self.module().to_string(), params }))
    }
}

impl fmt::Display for Preprocessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.module())
    }
}

/// The control image for `picture`: preprocessed at the generation size, or used as it is without a preprocessor
/// (module `none`; the pipeline resizes it to the generation size, saying so).
pub fn control_image(
    picture: RgbImage,
    preprocessor: Option<Preprocessor>,
    width: u32,
    height: u32,
) -> Result<(ControlImage, Preprocessing)> {
    match preprocessor {
        Some(preprocessor) => preprocessor.apply(&picture, width, height),
        None => Ok((ControlImage::new(picture), Preprocessing { module: "none".into(), params: Vec::new() })),
    }
}

pub fn grey_to_rgb(grey: &GrayImage) -> RgbImage {
    RgbImage::from_fn(grey.width(), grey.height(), |x, y| {
        let v = grey.get_pixel(x, y).0[0];
        image::Rgb([v, v, v])
    })
}

/// A drawing as white strokes on black: dark strokes on light paper (the paper's mean above half) are inverted,
/// light strokes on a dark canvas kept; every pixel is 0 or 255.
pub fn scribble(drawing: &RgbImage) -> GrayImage {
    let grey = to_grey(drawing);
    let mean = grey.as_raw().iter().map(|&v| u64::from(v)).sum::<u64>() / grey.as_raw().len().max(1) as u64;
    let light_paper = mean > u64::from(SCRIBBLE_THRESHOLD);
    GrayImage::from_fn(grey.width(), grey.height(), |x, y| {
        let v = grey.get_pixel(x, y).0[0];
        let stroke = if light_paper { v < SCRIBBLE_THRESHOLD } else { v > SCRIBBLE_THRESHOLD };
        Luma([if stroke { 255 } else { 0 }])
    })
}

/// Line strength: the Sobel gradient magnitude of the slightly blurred grey picture, scaled so the strongest edge
/// is white.
pub fn lineart(image: &RgbImage) -> GrayImage {
    let grey = blur(&to_grey(image), LINEART_BLUR);
    let (width, height) = (grey.width() as i64, grey.height() as i64);
    let at =
        |x: i64, y: i64| f32::from(grey.get_pixel(x.clamp(0, width - 1) as u32, y.clamp(0, height - 1) as u32).0[0]);
    let strength: Vec<f32> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .map(|(x, y)| {
            let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x - 1, y)
                - at(x - 1, y + 1);
            let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x, y - 1)
                - at(x + 1, y - 1);
            (gx * gx + gy * gy).sqrt()
        })
        .collect();
    let strongest = strength.iter().copied().fold(0.0f32, f32::max);
    let scale = if strongest > 0.0 { 255.0 / strongest } else { 0.0 };
    GrayImage::from_fn(grey.width(), grey.height(), |x, y| {
        Luma([(strength[(y as usize) * (width as usize) + x as usize] * scale).round() as u8])
    })
}

/// The inpainting ControlNet's condition (diffusers' `make_inpaint_condition`): the picture with the pixels the
/// mask repaints (from 128) marked -1. The mask is brought to the picture's size.
pub fn inpaint_condition(image: &RgbImage, mask: &GrayImage) -> (ControlImage, Preprocessing) {
    let mask = resize_image(mask, image.width(), image.height(), ResizeMode::Just);
    let control = ControlImage { image: image.clone(), masked: Some(binarize(&mask, false)) };
    (control, Preprocessing { module: "inpaint_only".into(), params: Vec::new() })
}

/// How a picture made by an annotator model is recorded: A1111's module and `Preprocessor model: <folder name>`.
fn annotated(module: &str, model_name: &str) -> Preprocessing {
    Preprocessing {
        module: module.to_string(),
        params: vec![("Preprocessor model".to_string(), model_name.to_string())],
    }
}

/// The progress of a preprocessor's one model run: `report(0)` before it, `report(1)` after (stage
/// [`Stage::Preprocessing`], one step); a cancel from `progress` becomes [`EngineError::Cancelled`].
fn model_run_reporter(progress: &mut dyn FnMut(&Progress) -> Flow) -> impl FnMut(usize) -> Result<()> + '_ {
    let started = std::time::Instant::now();
    move |step| match progress(&Progress {
        stage: Stage::Preprocessing,
        batch: 0,
        batches: 1,
        step,
        steps: 1,
        elapsed: started.elapsed(),
    }) {
        Flow::Continue => Ok(()),
        Flow::Cancel | Flow::Skip => Err(EngineError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scribble_turns_dark_strokes_on_paper_into_white_on_black() {
        let mut drawing = RgbImage::from_pixel(8, 8, image::Rgb([240, 240, 230]));
        for x in 0..8 {
            drawing.put_pixel(x, 3, image::Rgb([20, 30, 40]));
        }
        let lines = scribble(&drawing);
        assert_eq!(lines.get_pixel(2, 3).0[0], 255);
        assert_eq!(lines.get_pixel(2, 5).0[0], 0);
        // Light strokes on a dark canvas stay as they are.
        let canvas = RgbImage::from_fn(8, 8, |_, y| if y == 3 { image::Rgb([255; 3]) } else { image::Rgb([0; 3]) });
        assert_eq!(scribble(&canvas), lines);
    }

    #[test]
    fn lineart_is_bright_on_edges_and_dark_on_flat_areas() {
        let image = RgbImage::from_fn(16, 16, |x, _| if x < 8 { image::Rgb([0; 3]) } else { image::Rgb([255; 3]) });
        let lines = lineart(&image);
        assert_eq!(lines.get_pixel(1, 8).0[0], 0);
        assert!(lines.get_pixel(7, 8).0[0] > 200 || lines.get_pixel(8, 8).0[0] > 200);
    }

    #[test]
    fn inpaint_condition_marks_the_masked_pixels() {
        let image = RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 0]));
        let mask = GrayImage::from_fn(4, 4, |x, _| Luma([if x >= 2 { 200 } else { 100 }]));
        let (control, info) = inpaint_condition(&image, &mask);
        let tensor = control.tensor(4, 4, "test", &mut |_| panic!("same size: no warning"));
        assert_eq!(tensor[[0, 0, 0, 0]], 1.0);
        assert_eq!(tensor[[0, 1, 0, 0]], 0.0);
        assert!((0..3).all(|c| tensor[[0, c, 1, 3]] == -1.0));
        assert_eq!(info.module, "inpaint_only");
    }

    #[test]
    fn tile_is_the_picture_at_the_generation_size() {
        let image = RgbImage::from_pixel(32, 16, image::Rgb([10, 20, 30]));
        let (control, info) = Preprocessor::Tile.apply(&image, 64, 32).unwrap();
        assert_eq!(control.image.dimensions(), (64, 32));
        assert_eq!(control.image.get_pixel(10, 10).0, [10, 20, 30]);
        assert_eq!(info.module, "tile");
    }

    #[test]
    fn bad_preprocessor_values_are_refused_with_their_names() {
        let error = Preprocessor::parse("depth_midas").unwrap_err().to_string();
        assert!(error.contains("preprocessor: depth_midas") && error.contains("canny"), "{error}");
        let error = Preprocessor::Canny { low: 10.0, high: 300.0 }.validate().unwrap_err().to_string();
        assert!(error.contains("canny high: 300"), "{error}");
        let error = Preprocessor::Canny { low: 150.0, high: 100.0 }.validate().unwrap_err().to_string();
        assert!(error.contains("canny low: 150"), "{error}");
    }
}
