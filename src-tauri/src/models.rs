//! The values that cross the IPC boundary, in the UI's camelCase. Conversions to engine types live here so the
//! commands stay thin.

use std::path::PathBuf;

use base64::Engine as _;
use image::{GrayImage, RgbImage};
use pigment_engine::image::{load_image_bytes, load_mask_bytes};
use pigment_engine::pipeline::{
    DEFAULT_IMG2IMG_STRENGTH, DEFAULT_MASK_BLUR, DEFAULT_ONLY_MASKED_PADDING, DEFAULT_OUTPAINT_STRENGTH,
    GenerateRequest, Generation, ImageSource, InpaintArea, InpaintSource, MaskedContent, OutpaintSource, Source, Stage,
};
use pigment_engine::schedulers::{Sampler, SigmaSchedule, choose_sampler};
use serde::{Deserialize, Serialize};

use crate::control::{ControlUnitParams, default_adapter_factor};
use crate::error::{AppError, Result};

/// What the generate form sends.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerateParams {
    /// A model id from `list_models`.
    pub model_id: String,
    pub prompt: String,
    #[serde(default)]
    pub negative_prompt: String,
    /// A sampler id (`euler_a`) or AUTOMATIC1111 name ("Euler a").
    pub sampler: String,
    /// `automatic` or `karras`.
    pub schedule: String,
    pub steps: usize,
    pub cfg_scale: f32,
    /// `None` draws a random seed; the one used comes back with each image.
    pub seed: Option<u64>,
    pub width: u32,
    pub height: u32,
    pub batch_size: usize,
    pub batch_count: usize,
    /// What to start from: nothing (text to image, when absent), or the canvas's picture (and mask).
    #[serde(default)]
    pub mode: JobMode,
    /// ControlNet or T2I-Adapter units (the control panel); none by default.
    #[serde(default)]
    pub controls: Vec<ControlUnitParams>,
    /// ControlNets see the prompt only, shallow residuals weaker (A1111's "ControlNet is more important").
    #[serde(default)]
    pub guess_mode: bool,
    /// The fraction of the steps, from the first, that get the adapters' features.
    #[serde(default = "default_adapter_factor")]
    pub adapter_factor: f64,
}

/// The canvas modes. Pictures and masks travel as base64 PNG bytes (a `data:image/png;base64,` prefix is
/// allowed); a mask is white where to repaint, at the picture's size.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum JobMode {
    #[default]
    Txt2img,
    Img2img {
        image: String,
        #[serde(default = "default_img2img_strength")]
        strength: f64,
    },
    Inpaint {
        image: String,
        mask: String,
        #[serde(default = "default_inpaint_strength")]
        strength: f64,
        #[serde(default = "default_mask_blur")]
        mask_blur: u32,
        #[serde(default)]
        invert_mask: bool,
        /// `fill`, `original`, `latent-noise` or `latent-nothing`.
        #[serde(default = "default_masked_content")]
        masked_content: String,
        #[serde(default)]
        only_masked: bool,
        #[serde(default = "default_padding")]
        padding: u32,
    },
    Outpaint {
        image: String,
        left: u32,
        right: u32,
        top: u32,
        bottom: u32,
        #[serde(default = "default_outpaint_strength")]
        strength: f64,
        #[serde(default = "default_mask_blur")]
        mask_blur: u32,
        #[serde(default = "default_outpaint_content")]
        masked_content: String,
    },
}

fn default_img2img_strength() -> f64 {
    DEFAULT_IMG2IMG_STRENGTH
}
fn default_inpaint_strength() -> f64 {
    1.0
}
fn default_outpaint_strength() -> f64 {
    DEFAULT_OUTPAINT_STRENGTH
}
fn default_mask_blur() -> u32 {
    DEFAULT_MASK_BLUR
}
fn default_padding() -> u32 {
    DEFAULT_ONLY_MASKED_PADDING
}
fn default_masked_content() -> String {
    MaskedContent::Original.id().into()
}
fn default_outpaint_content() -> String {
    MaskedContent::Fill.id().into()
}

/// The bytes of the image `field` carries as base64 (a PNG from the canvas, with or without a data URL prefix).
pub(crate) fn decode_base64(field: &'static str, text: &str) -> Result<Vec<u8>> {
    let text = text.strip_prefix("data:image/png;base64,").unwrap_or(text);
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| invalid(field, format!("not base64 image data ({e})")))
}

/// The engine's reading errors (the size checked from the header before decoding) as errors naming `field`.
pub(crate) fn image_error(field: &'static str, error: pigment_engine::EngineError) -> AppError {
    match error {
        pigment_engine::EngineError::ReadFile { reason, .. } => invalid(field, reason),
        pigment_engine::EngineError::InvalidParameter { value, reason, .. } => {
            let reason = reason.rsplit_once(": ").map_or(reason.as_str(), |(_, r)| r);
            invalid(field, format!("{value}: {reason}"))
        }
        other => other.into(),
    }
}

/// The picture `field` carries, read as the engine reads files (transparency dropped, 16-bit scaled).
pub(crate) fn decode_picture(field: &'static str, text: &str) -> Result<RgbImage> {
    let bytes = decode_base64(field, text)?;
    load_image_bytes(field, &bytes).map(|loaded| loaded.image).map_err(|e| image_error(field, e))
}

/// The mask at `size`; the canvas paints it at the picture's resolution, so another size is the caller's mistake.
fn decode_mask(text: &str, size: (u32, u32)) -> Result<GrayImage> {
    let mask = decode_any_mask("mask", text)?;
    if mask.dimensions() != size {
        return Err(invalid(
            "mask",
            format!("{}x{} differs from the picture's {}x{}", mask.width(), mask.height(), size.0, size.1),
        ));
    }
    Ok(mask)
}

/// The mask `field` carries, at whatever size it has.
pub(crate) fn decode_any_mask(field: &'static str, text: &str) -> Result<GrayImage> {
    let bytes = decode_base64(field, text)?;
    load_mask_bytes(field, &bytes).map_err(|e| image_error(field, e))
}

fn parse_masked_content(value: &str) -> Result<MaskedContent> {
    Ok(value.parse()?)
}

impl GenerateParams {
    /// The engine's generation for the mode (without control units: see `control::control_spec`), validated by the
    /// engine so every error names its parameter.
    pub fn to_generation(&self) -> Result<Generation> {
        let params = self.generate_request()?;
        let source = match &self.mode {
            JobMode::Txt2img => Source::Text,
            JobMode::Img2img { image, strength } => {
                Source::Image(ImageSource { strength: *strength, ..ImageSource::new(decode_picture("image", image)?) })
            }
            JobMode::Inpaint {
                image,
                mask,
                strength,
                mask_blur,
                invert_mask,
                masked_content,
                only_masked,
                padding,
            } => {
                let picture = decode_picture("image", image)?;
                let mask = decode_mask(mask, picture.dimensions())?;
                Source::Inpaint(InpaintSource {
                    strength: *strength,
                    mask_blur: *mask_blur,
                    invert_mask: *invert_mask,
                    masked_content: parse_masked_content(masked_content)?,
                    area: if *only_masked {
                        InpaintArea::OnlyMasked { padding: *padding }
                    } else {
                        InpaintArea::WholePicture
                    },
                    ..InpaintSource::new(picture, mask)
                })
            }
            JobMode::Outpaint { image, left, right, top, bottom, strength, mask_blur, masked_content } => {
                Source::Outpaint(OutpaintSource {
                    left: *left,
                    right: *right,
                    top: *top,
                    bottom: *bottom,
                    strength: *strength,
                    mask_blur: *mask_blur,
                    masked_content: parse_masked_content(masked_content)?,
                    ..OutpaintSource::new(decode_picture("image", image)?)
                })
            }
        };
        let generation = Generation::from_source(params, source);
        generation.validate()?;
        Ok(generation)
    }

    fn generate_request(&self) -> Result<GenerateRequest> {
        let (sampler, schedule) = choose_sampler(&self.sampler, Some(&self.schedule))?;
        let request = GenerateRequest {
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            seed: self.seed,
            steps: self.steps,
            cfg_scale: self.cfg_scale,
            sampler,
            schedule,
            width: self.width,
            height: self.height,
            batch_size: self.batch_size,
            batch_count: self.batch_count,
        };
        request.validate()?;
        Ok(request)
    }
}

/// One sampler as the picker shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SamplerOption {
    pub id: &'static str,
    pub name: &'static str,
    /// Schedule ids this sampler takes (`automatic` always).
    pub schedules: Vec<&'static str>,
}

pub fn sampler_options() -> Vec<SamplerOption> {
    Sampler::ALL
        .iter()
        .map(|&sampler| SamplerOption {
            id: sampler.id(),
            name: sampler.display_name(),
            schedules: SigmaSchedule::ALL.iter().filter(|&&s| sampler.supports(s)).map(|s| s.id()).collect(),
        })
        .collect()
}

/// Where a model in the list comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// The demo model shipped with the app.
    Bundled,
    /// A folder inside the app's models folder.
    ModelsFolder,
    /// A folder the user added with "Add model folder...".
    Added,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelEntry {
    /// Stable id: the folder's path.
    pub id: String,
    pub name: String,
    pub path: PathBuf,
    pub source: ModelSource,
    /// Why the folder cannot be used, when the quick check (files present) fails.
    pub problem: Option<String>,
}

/// What "Add model folder..." found: the engine's inspection, summarised for the dialog.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelReport {
    pub entry: ModelEntry,
    pub inpainting: bool,
    pub unet_in_channels: Option<usize>,
    pub context_width: Option<usize>,
    pub has_vae_encoder: bool,
    pub size_bytes: u64,
    pub execution_provider: String,
    /// One line per component: `unet: sample float32 [batch, 4, h, w], ...`.
    pub components: Vec<String>,
}

/// What a job's channel receives, in order: `queued`, `started`, then `loadingModel`, `progress` and `image`
/// any number of times, and exactly one of `finished`, `cancelled` or `failed`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum JobEvent {
    Queued { job_id: u64, position: usize },
    Started { job_id: u64 },
    LoadingModel { model: String },
    Progress(ProgressReport),
    Image(ImageResult),
    Finished { images: usize, elapsed_ms: u64 },
    Cancelled { images: usize },
    Failed { error: ErrorReport },
}

/// An [`AppError`] as data (events are cloned and compared; the error itself is neither).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorReport {
    pub kind: String,
    pub message: String,
    pub field: Option<String>,
}

impl From<&AppError> for ErrorReport {
    fn from(error: &AppError) -> Self {
        ErrorReport { kind: error.kind().into(), message: error.to_string(), field: error.field() }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProgressReport {
    pub stage: Stage,
    /// 0-based batch, and the number of batches.
    pub batch: usize,
    pub batches: usize,
    pub step: usize,
    pub steps: usize,
    pub elapsed_ms: u64,
    /// Estimated time left for the whole job, once a step has been timed.
    pub eta_ms: Option<u64>,
    /// A small PNG of the first image of the batch (`data:` URL), every few steps.
    pub preview: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageResult {
    pub path: PathBuf,
    pub seed: u64,
    pub index: usize,
    pub width: u32,
    pub height: u32,
    /// AUTOMATIC1111's parameters text, as written into the PNG.
    pub parameters: String,
}

/// A job as the queue panel lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub id: u64,
    pub running: bool,
    pub label: String,
    pub images: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub version: &'static str,
    pub models_folder: PathBuf,
    pub output_folder: PathBuf,
    pub config_file: PathBuf,
    /// Set when the settings file was unreadable and defaults are in use.
    pub settings_notice: Option<String>,
    /// "CPU", "CUDA; ..." once ONNX Runtime has loaded; the error text when it failed.
    pub execution_provider: Option<String>,
    pub runtime_error: Option<String>,
    /// Where the A1111-compatible API listens ("127.0.0.1:7860") while it runs.
    pub api_server_address: Option<String>,
}

/// Where a text field of the form failed, for [`AppError::InvalidInput`].
pub fn invalid(field: &'static str, reason: impl Into<String>) -> AppError {
    AppError::InvalidInput { field, reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn params() -> GenerateParams {
        GenerateParams {
            model_id: "m".into(),
            prompt: "a cat".into(),
            negative_prompt: String::new(),
            sampler: "euler_a".into(),
            schedule: "automatic".into(),
            steps: 4,
            cfg_scale: 7.0,
            seed: Some(1),
            width: 64,
            height: 64,
            batch_size: 1,
            batch_count: 1,
            mode: JobMode::Txt2img,
            controls: Vec::new(),
            guess_mode: false,
            adapter_factor: 1.0,
        }
    }

    #[test]
    fn params_become_a_request_with_the_sampler_and_schedule() {
        let request = GenerateParams { sampler: "dpmpp_2m".into(), schedule: "karras".into(), ..params() }
            .to_generation()
            .unwrap();
        let request = &request.params;
        assert_eq!((request.sampler, request.schedule), (Sampler::DpmPp2M, SigmaSchedule::Karras));
        let named = GenerateParams { sampler: "DPM++ 2M Karras".into(), ..params() }.to_generation().unwrap();
        assert_eq!(named.params.schedule, SigmaSchedule::Karras);
    }

    #[test]
    fn bad_params_fail_on_their_field() {
        let error = GenerateParams { width: 100, ..params() }.to_generation().unwrap_err();
        assert_eq!(error.field().as_deref(), Some("width"));
        assert!(error.to_string().contains("width: 100"), "{error}");
        let error = GenerateParams { sampler: "nope".into(), ..params() }.to_generation().unwrap_err();
        assert_eq!(error.field().as_deref(), Some("sampler"));
        let error = GenerateParams { schedule: "linear".into(), ..params() }.to_generation().unwrap_err();
        assert_eq!(error.field().as_deref(), Some("schedule"));
    }

    use image::{DynamicImage, ImageFormat};

    fn png_base64(image: &DynamicImage) -> String {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, ImageFormat::Png).unwrap();
        base64::engine::general_purpose::STANDARD.encode(bytes.into_inner())
    }

    fn picture(width: u32, height: u32) -> String {
        png_base64(&DynamicImage::ImageRgb8(RgbImage::from_pixel(width, height, image::Rgb([10, 20, 30]))))
    }

    fn mask(width: u32, height: u32) -> String {
        png_base64(&DynamicImage::ImageLuma8(GrayImage::from_pixel(width, height, image::Luma([255]))))
    }

    fn inpaint(image: String, mask: String) -> JobMode {
        JobMode::Inpaint {
            image,
            mask,
            strength: 1.0,
            mask_blur: 4,
            invert_mask: false,
            masked_content: "original".into(),
            only_masked: false,
            padding: 32,
        }
    }

    fn field_and_message(mode: JobMode) -> (Option<String>, String) {
        let error = GenerateParams { mode, ..params() }.to_generation().unwrap_err();
        (error.field(), error.to_string())
    }

    #[test]
    fn each_mode_becomes_its_engine_request() {
        let json = serde_json::json!({"modelId": "m", "prompt": "a cat", "sampler": "euler_a", "schedule": "automatic",
            "steps": 4, "cfgScale": 7.0, "seed": 1, "width": 64, "height": 64, "batchSize": 1, "batchCount": 1});
        let txt2img: GenerateParams = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(txt2img.to_generation().unwrap().source, Source::Text, "no mode is text to image");
        let mut with_mode = json.clone();
        with_mode["mode"] = serde_json::json!({"kind": "img2img", "image": format!("data:image/png;base64,{}", picture(48, 40)), "strength": 0.5});
        let Source::Image(request) =
            serde_json::from_value::<GenerateParams>(with_mode).unwrap().to_generation().unwrap().source
        else {
            panic!("not img2img")
        };
        assert_eq!((request.image.dimensions(), request.strength), ((48, 40), 0.5));
        assert_eq!(request.image.get_pixel(3, 3).0, [10, 20, 30]);
        let mut with_mode = json.clone();
        with_mode["mode"] = serde_json::json!({"kind": "inpaint", "image": picture(64, 64), "mask": mask(64, 64),
            "maskBlur": 2, "invertMask": true, "maskedContent": "latent-noise", "onlyMasked": true, "padding": 8});
        let Source::Inpaint(request) =
            serde_json::from_value::<GenerateParams>(with_mode).unwrap().to_generation().unwrap().source
        else {
            panic!("not inpaint")
        };
        assert_eq!((request.mask_blur, request.invert_mask, request.strength), (2, true, 1.0));
        assert_eq!(
            (request.masked_content, request.area),
            (MaskedContent::LatentNoise, InpaintArea::OnlyMasked { padding: 8 })
        );
        let mut with_mode = json;
        with_mode["mode"] = serde_json::json!({"kind": "outpaint", "image": picture(64, 64), "left": 16, "right": 0,
            "top": 8, "bottom": 0});
        let Source::Outpaint(request) =
            serde_json::from_value::<GenerateParams>(with_mode).unwrap().to_generation().unwrap().source
        else {
            panic!("not outpaint")
        };
        assert_eq!((request.left, request.top, request.masked_content), (16, 8, MaskedContent::Fill));
    }

    #[test]
    fn bad_pictures_and_masks_fail_on_their_field() {
        let (field, message) = field_and_message(JobMode::Img2img { image: "not base64!".into(), strength: 0.5 });
        assert_eq!(field.as_deref(), Some("image"));
        assert!(message.contains("not base64"), "{message}");
        let text = base64::engine::general_purpose::STANDARD.encode(b"these are not pixels");
        let (field, message) = field_and_message(JobMode::Img2img { image: text, strength: 0.5 });
        assert_eq!(field.as_deref(), Some("image"));
        assert!(message.contains("not an image"), "{message}");
        let truncated = {
            let full = base64::engine::general_purpose::STANDARD.decode(picture(8, 8)).unwrap();
            base64::engine::general_purpose::STANDARD.encode(&full[..20])
        };
        let (field, message) = field_and_message(JobMode::Img2img { image: truncated, strength: 0.5 });
        assert_eq!(field.as_deref(), Some("image"));
        assert!(message.contains("damaged"), "{message}");
        // PNG headers claiming 0 x 8 and 20000 x 8 pixels (the CRC recomputed so only the size is wrong).
        let with_width = |width: u32| {
            let mut bytes = base64::engine::general_purpose::STANDARD.decode(picture(8, 8)).unwrap();
            bytes[16..20].copy_from_slice(&width.to_be_bytes());
            let crc = crc32(&bytes[12..29]);
            bytes[29..33].copy_from_slice(&crc.to_be_bytes());
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        let (field, message) = field_and_message(JobMode::Img2img { image: with_width(0), strength: 0.5 });
        assert_eq!(field.as_deref(), Some("image"));
        assert!(message.contains("damaged") && message.contains("Invalid image dimensions"), "{message}");
        let (field, message) = field_and_message(JobMode::Img2img { image: with_width(20000), strength: 0.5 });
        assert_eq!(field.as_deref(), Some("image"));
        assert_eq!(message, "invalid image: 20000x8: width and height must be between 1 and 16384 pixels");
        let (field, message) = field_and_message(inpaint(picture(64, 64), mask(32, 64)));
        assert_eq!(field.as_deref(), Some("mask"));
        assert!(message.contains("32x64 differs from the picture's 64x64"), "{message}");
        let (field, _) = field_and_message(inpaint(picture(64, 64), "@@".into()));
        assert_eq!(field.as_deref(), Some("mask"));
    }

    #[test]
    fn bad_canvas_settings_fail_on_their_field() {
        let (field, message) = field_and_message(JobMode::Img2img { image: picture(64, 64), strength: 1.5 });
        assert_eq!(field.as_deref(), Some("strength"));
        assert!(message.contains("1.5"), "{message}");
        let JobMode::Inpaint { image, mask: m, .. } = inpaint(picture(64, 64), mask(64, 64)) else { unreachable!() };
        let with = |mask_blur: u32, masked_content: &str| JobMode::Inpaint {
            image: image.clone(),
            mask: m.clone(),
            strength: 1.0,
            mask_blur,
            invert_mask: false,
            masked_content: masked_content.into(),
            only_masked: false,
            padding: 32,
        };
        let (field, message) = field_and_message(with(1000, "original"));
        assert_eq!(field.as_deref(), Some("mask_blur"));
        assert!(message.contains("1000"), "{message}");
        let (field, message) = field_and_message(with(4, "smudge"));
        assert_eq!(field.as_deref(), Some("masked_content"));
        assert!(message.contains("smudge"), "{message}");
        let outpaint = JobMode::Outpaint {
            image: picture(64, 64),
            left: 0,
            right: 0,
            top: 0,
            bottom: 0,
            strength: 0.8,
            mask_blur: 4,
            masked_content: "fill".into(),
        };
        let (field, message) = field_and_message(outpaint);
        assert_eq!(field.as_deref(), Some("outpaint"));
        assert!(message.contains("0 on every side"), "{message}");
    }

    /// PNG's chunk CRC (ISO 3309), for the hand-made header above.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn events_serialize_with_a_kind_tag_and_camel_case_fields() {
        let json = serde_json::to_value(JobEvent::Queued { job_id: 3, position: 1 }).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "queued", "jobId": 3, "position": 1}));
        let json = serde_json::to_value(JobEvent::Finished { images: 2, elapsed_ms: 5 }).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "finished", "images": 2, "elapsedMs": 5}));
    }
}
