//! A1111's request and response shapes (`modules/api/models.py`) and their translation into engine requests.
//! Field names and defaults follow A1111's processing classes; fields this engine has no use for are accepted and
//! ignored, and features it does not have (face restoration, scripts, variation seeds) are refused by name.

use image::RgbImage;
use pigment_engine::image::{InfoText, ResizeMode};
use pigment_engine::pipeline::{
    DEFAULT_HIRES_STRENGTH, DEFAULT_IMG2IMG_STRENGTH, GenerateRequest, GeneratedImage, Generation, HiresFix,
    HiresUpscaler, ImageSource, InpaintArea, InpaintSource, MaskedContent, Source,
};
use pigment_engine::schedulers::choose_sampler;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use crate::backend::Job;
use crate::error::ApiError;
use crate::images::{decode_mask, decode_picture};

/// The body of `/sdapi/v1/txt2img` and `/sdapi/v1/img2img` (the img2img-only fields are `None` in txt2img).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationBody {
    pub prompt: String,
    pub negative_prompt: String,
    pub styles: Vec<String>,
    /// -1 picks a random seed.
    pub seed: i64,
    pub subseed: i64,
    pub subseed_strength: f64,
    pub sampler_name: Option<String>,
    /// The old name of `sampler_name`, used when that is absent.
    pub sampler_index: Option<String>,
    /// A1111 1.9's separate schedule ("automatic", "karras", "exponential").
    pub scheduler: Option<String>,
    pub batch_size: usize,
    pub n_iter: usize,
    pub steps: usize,
    pub cfg_scale: f32,
    pub width: u32,
    pub height: u32,
    #[serde(deserialize_with = "bool_or_int")]
    pub restore_faces: bool,
    #[serde(deserialize_with = "bool_or_int")]
    pub tiling: bool,
    pub denoising_strength: Option<f64>,
    pub override_settings: Map<String, Value>,
    pub script_name: Option<String>,
    pub alwayson_scripts: Map<String, Value>,
    #[serde(deserialize_with = "bool_or_int")]
    pub send_images: bool,
    #[serde(deserialize_with = "bool_or_int")]
    pub save_images: bool,

    // Hires fix (txt2img).
    #[serde(deserialize_with = "bool_or_int")]
    pub enable_hr: bool,
    pub hr_scale: f64,
    pub hr_upscaler: Option<String>,
    pub hr_second_pass_steps: usize,
    pub hr_resize_x: u32,
    pub hr_resize_y: u32,

    // img2img and inpainting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_images: Option<Vec<String>>,
    /// 0 just resize, 1 crop and resize, 2 resize and fill, 3 just resize (latent upscale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize_mode: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_blur: Option<u32>,
    /// 0 fill, 1 original, 2 latent noise, 3 latent nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inpainting_fill: Option<u8>,
    /// "Only masked": work on the mask's bounding box at full resolution.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "optional_bool_or_int")]
    pub inpaint_full_res: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inpaint_full_res_padding: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "optional_bool_or_int")]
    pub inpainting_mask_invert: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "optional_bool_or_int")]
    pub include_init_images: Option<bool>,
}

impl Default for GenerationBody {
    fn default() -> Self {
        // A1111's StableDiffusionProcessing defaults.
        GenerationBody {
            prompt: String::new(),
            negative_prompt: String::new(),
            styles: Vec::new(),
            seed: -1,
            subseed: -1,
            subseed_strength: 0.0,
            sampler_name: None,
            sampler_index: None,
            scheduler: None,
            batch_size: 1,
            n_iter: 1,
            steps: 50,
            cfg_scale: 7.0,
            width: 512,
            height: 512,
            restore_faces: false,
            tiling: false,
            denoising_strength: None,
            override_settings: Map::new(),
            script_name: None,
            alwayson_scripts: Map::new(),
            send_images: true,
            save_images: false,
            enable_hr: false,
            hr_scale: 2.0,
            hr_upscaler: None,
            hr_second_pass_steps: 0,
            hr_resize_x: 0,
            hr_resize_y: 0,
            init_images: None,
            resize_mode: None,
            mask: None,
            mask_blur: None,
            inpainting_fill: None,
            inpaint_full_res: None,
            inpaint_full_res_padding: None,
            inpainting_mask_invert: None,
            include_init_images: None,
        }
    }
}

/// A1111's clients send flags as `true` or as `1`.
fn bool_or_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(optional_bool_or_int(deserializer)?.unwrap_or(false))
}

fn optional_bool_or_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    let flag: Option<Flag> =
        Option::deserialize(deserializer).map_err(|_| serde::de::Error::custom("expected a boolean, or 0 or 1"))?;
    Ok(flag.map(|f| match f {
        Flag::Bool(b) => b,
        Flag::Int(i) => i != 0,
    }))
}

impl GenerationBody {
    /// The engine's request: sampler, schedule, seed and sizes checked, each error naming its field.
    fn generate_request(&self) -> Result<GenerateRequest, ApiError> {
        self.refuse_unsupported()?;
        let name = [&self.sampler_name, &self.sampler_index]
            .into_iter()
            .flatten()
            .find(|n| !n.trim().is_empty())
            .map_or("Euler a", |n| n.as_str());
        let (sampler, schedule) = choose_sampler(name, self.scheduler.as_deref())?;
        let seed = match self.seed {
            -1 => None,
            seed if seed < 0 => return Err(ApiError::field("seed", format!("{seed}: expected -1 or 0 and above"))),
            seed => Some(seed as u64),
        };
        let request = GenerateRequest {
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            seed,
            steps: self.steps,
            cfg_scale: self.cfg_scale,
            sampler,
            schedule,
            width: self.width,
            height: self.height,
            batch_size: self.batch_size,
            batch_count: self.n_iter,
        };
        request.validate()?;
        Ok(request)
    }

    fn refuse_unsupported(&self) -> Result<(), ApiError> {
        let refuse = |field: &str, what: &str| Err(ApiError::field(field, format!("{what} is not supported")));
        if self.restore_faces {
            return refuse("restore_faces", "face restoration");
        }
        if self.tiling {
            return refuse("tiling", "tiling");
        }
        if self.subseed_strength != 0.0 {
            return refuse("subseed_strength", "a variation seed");
        }
        if let Some(script) = self.script_name.as_deref().filter(|s| !s.is_empty()) {
            return Err(ApiError::NotFound { what: "script", name: script.into(), known: "(none)".into() });
        }
        if let Some(script) = self.alwayson_scripts.keys().next() {
            return Err(ApiError::NotFound { what: "always on script", name: script.clone(), known: "(none)".into() });
        }
        Ok(())
    }

    /// `override_settings.sd_model_checkpoint`, the model this one request runs on.
    fn model_override(&self) -> Result<Option<String>, ApiError> {
        match self.override_settings.get("sd_model_checkpoint") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(name)) if name.trim().is_empty() => Ok(None),
            Some(Value::String(name)) => Ok(Some(name.clone())),
            Some(other) => Err(ApiError::field(
                "override_settings.sd_model_checkpoint",
                format!("expected a model title (a string), got {other}"),
            )),
        }
    }

    pub fn txt2img_job(&self) -> Result<Job, ApiError> {
        let params = self.generate_request()?;
        let (hires, hires_upscaler) = match self.enable_hr {
            true => self.hires(&params).map(|(fix, upscaler)| (Some(fix), upscaler))?,
            false => (None, None),
        };
        let generation = Generation { hires, ..Generation::text(params) };
        Ok(Job::Generate { model: self.model_override()?, generation: Box::new(generation), hires_upscaler })
    }

    /// The hires fix, and the upscaler model's name when it upscales with one.
    fn hires(&self, request: &GenerateRequest) -> Result<(HiresFix, Option<String>), ApiError> {
        let (width, height) = (f64::from(request.width), f64::from(request.height));
        let scale = match (self.hr_resize_x, self.hr_resize_y) {
            (0, 0) => self.hr_scale,
            (x, 0) => f64::from(x) / width,
            (0, y) => f64::from(y) / height,
            (x, y) if (f64::from(x) / width - f64::from(y) / height).abs() < 1e-9 => f64::from(x) / width,
            (x, y) => {
                return Err(ApiError::field(
                    "hr_resize_x",
                    format!("{x}x{y} changes the aspect ratio of {width}x{height}; cropping is not supported"),
                ));
            }
        };
        let name = self.hr_upscaler.as_deref().map(str::trim).unwrap_or("");
        let (upscaler, upscaler_model) = match name.to_lowercase().as_str() {
            "" => (HiresUpscaler::Latent, None),
            lower if lower.starts_with("latent") => (HiresUpscaler::Latent, None),
            "lanczos" | "none" => (HiresUpscaler::Lanczos, None),
            _ => (HiresUpscaler::Model, Some(name.to_string())),
        };
        let fix = HiresFix {
            scale,
            strength: self.denoising_strength.unwrap_or(DEFAULT_HIRES_STRENGTH),
            upscaler,
            steps: (self.hr_second_pass_steps > 0).then_some(self.hr_second_pass_steps),
        };
        fix.validate(request)?;
        Ok((fix, upscaler_model))
    }

    /// An img2img job, or an inpainting one when a mask is given.
    pub fn img2img_job(&self) -> Result<Job, ApiError> {
        let params = self.generate_request()?;
        let first = self
            .init_images
            .as_ref()
            .and_then(|images| images.first())
            .ok_or_else(|| ApiError::field("init_images", "at least one image is required"))?;
        let picture = decode_picture("init_images.0", first)?;
        let strength = self.denoising_strength.unwrap_or(DEFAULT_IMG2IMG_STRENGTH);
        let resize_mode = match self.resize_mode.unwrap_or(0) {
            0 | 3 => ResizeMode::Just,
            1 => ResizeMode::Crop,
            2 => ResizeMode::Fill,
            other => return Err(ApiError::field("resize_mode", format!("{other}: expected 0, 1, 2 or 3"))),
        };
        let model = self.model_override()?;
        let Some(mask) = self.mask.as_deref().filter(|m| !m.trim().is_empty()) else {
            let source = ImageSource { strength, resize_mode, ..ImageSource::new(picture) };
            let generation = Generation::from_source(params, Source::Image(source));
            generation.validate()?;
            return Ok(Job::Generate { model, generation: Box::new(generation), hires_upscaler: None });
        };
        let mask = decode_mask("mask", mask)?;
        let masked_content = match self.inpainting_fill.unwrap_or(0) {
            0 => MaskedContent::Fill,
            1 => MaskedContent::Original,
            2 => MaskedContent::LatentNoise,
            3 => MaskedContent::LatentNothing,
            other => return Err(ApiError::field("inpainting_fill", format!("{other}: expected 0, 1, 2 or 3"))),
        };
        // A1111's default is "only masked" (inpaint_full_res true) with no padding.
        let area = if self.inpaint_full_res.unwrap_or(true) {
            InpaintArea::OnlyMasked { padding: self.inpaint_full_res_padding.unwrap_or(0) }
        } else {
            InpaintArea::WholePicture
        };
        let source = InpaintSource {
            strength,
            resize_mode,
            mask_blur: self.mask_blur.unwrap_or(4),
            invert_mask: self.inpainting_mask_invert.unwrap_or(false),
            masked_content,
            area,
            ..InpaintSource::new(picture, mask)
        };
        let generation = Generation::from_source(params, Source::Inpaint(source));
        generation.validate()?;
        Ok(Job::Generate { model, generation: Box::new(generation), hires_upscaler: None })
    }

    /// The `parameters` echo: the request with defaults filled in; the images left out unless asked for, as A1111.
    pub fn echo(&self) -> Value {
        let mut echo = self.clone();
        if !echo.include_init_images.unwrap_or(false) && echo.init_images.is_some() {
            echo.init_images = Some(Vec::new());
            echo.mask = None;
        }
        serde_json::to_value(echo).unwrap_or(Value::Null)
    }
}

/// A1111's `Processed.js()`: the `info` of a generation, as a JSON string.
pub fn info_json(body: &GenerationBody, request: &GenerateRequest, images: &[GeneratedImage]) -> String {
    let seeds: Vec<u64> = images.iter().map(|i| i.seed).collect();
    let infotexts: Vec<String> = images.iter().map(|i| i.infotext.to_text()).collect();
    let first: Option<&InfoText> = images.first().map(|i| &i.infotext);
    let param = |key: &str| first.and_then(|info| info.get(key)).map(str::to_string);
    let sampler = param("Sampler").unwrap_or_else(|| request.sampler.display_name().to_string());
    json!({
        "prompt": request.prompt,
        "all_prompts": vec![&request.prompt; images.len()],
        "negative_prompt": request.negative_prompt,
        "all_negative_prompts": vec![&request.negative_prompt; images.len()],
        "seed": seeds.first().copied().or(request.seed),
        "all_seeds": seeds,
        "subseed": -1,
        "all_subseeds": vec![-1; images.len()],
        "subseed_strength": 0,
        "width": request.width,
        "height": request.height,
        "sampler_name": sampler,
        "scheduler": request.schedule.display_name(),
        "cfg_scale": request.cfg_scale,
        "steps": request.steps,
        "batch_size": request.batch_size,
        "restore_faces": false,
        "face_restoration_model": null,
        "sd_model_name": param("Model"),
        "sd_model_hash": param("Model hash"),
        "sd_vae_name": null,
        "sd_vae_hash": null,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": body.denoising_strength,
        "extra_generation_params": {},
        "index_of_first_image": 0,
        "infotexts": infotexts,
        "styles": body.styles,
        "job_timestamp": "",
        "clip_skip": 1,
        "is_using_inpainting_conditioning": false,
        "version": concat!("pigment ", env!("CARGO_PKG_VERSION")),
    })
    .to_string()
}

/// The body of `/sdapi/v1/extra-single-image`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtrasBody {
    pub image: String,
    /// 0: scale by `upscaling_resize`; 1: to `upscaling_resize_w` x `upscaling_resize_h`.
    pub resize_mode: u8,
    pub upscaling_resize: f64,
    pub upscaling_resize_w: u32,
    pub upscaling_resize_h: u32,
    #[serde(deserialize_with = "bool_or_int")]
    pub upscaling_crop: bool,
    pub upscaler_1: Option<String>,
    pub upscaler_2: Option<String>,
    pub extras_upscaler_2_visibility: f64,
    pub gfpgan_visibility: f64,
    pub codeformer_visibility: f64,
}

impl Default for ExtrasBody {
    fn default() -> Self {
        ExtrasBody {
            image: String::new(),
            resize_mode: 0,
            upscaling_resize: 2.0,
            upscaling_resize_w: 512,
            upscaling_resize_h: 512,
            upscaling_crop: true,
            upscaler_1: None,
            upscaler_2: None,
            extras_upscaler_2_visibility: 0.0,
            gfpgan_visibility: 0.0,
            codeformer_visibility: 0.0,
        }
    }
}

/// How the extras result is made: the upscale job, and the crop to apply after it (centre, as A1111's
/// "crop to fit").
pub struct ExtrasPlan {
    pub picture: RgbImage,
    pub job_size: (u32, u32),
    pub crop_to: Option<(u32, u32)>,
    pub upscaler: Option<String>,
    pub factor: f64,
}

impl ExtrasBody {
    pub fn plan(&self) -> Result<ExtrasPlan, ApiError> {
        if self.gfpgan_visibility > 0.0 || self.codeformer_visibility > 0.0 {
            let field = if self.gfpgan_visibility > 0.0 { "gfpgan_visibility" } else { "codeformer_visibility" };
            return Err(ApiError::field(field, "face restoration is not supported"));
        }
        let second = self.upscaler_2.as_deref().map(str::trim).filter(|n| !n.is_empty() && *n != "None");
        if second.is_some() && self.extras_upscaler_2_visibility > 0.0 {
            return Err(ApiError::field("upscaler_2", "a second, blended upscaler is not supported"));
        }
        let picture = decode_picture("image", &self.image)?;
        let (width, height) = (f64::from(picture.width()), f64::from(picture.height()));
        let (job_size, crop_to, factor) = match self.resize_mode {
            0 => {
                if !self.upscaling_resize.is_finite() || self.upscaling_resize <= 0.0 {
                    return Err(ApiError::field(
                        "upscaling_resize",
                        format!("{}: must be above 0", self.upscaling_resize),
                    ));
                }
                let factor = self.upscaling_resize;
                (((width * factor) as u32, (height * factor) as u32), None, factor)
            }
            1 => {
                let (w, h) = (self.upscaling_resize_w, self.upscaling_resize_h);
                if w == 0 || h == 0 {
                    return Err(ApiError::field("upscaling_resize_w", format!("{w}x{h}: both sides must be above 0")));
                }
                let factor = (f64::from(w) / width).max(f64::from(h) / height);
                if self.upscaling_crop {
                    let cover = ((width * factor).round() as u32, (height * factor).round() as u32);
                    (cover, Some((w, h)), factor)
                } else {
                    ((w, h), None, factor)
                }
            }
            other => return Err(ApiError::field("resize_mode", format!("{other}: expected 0 or 1"))),
        };
        pigment_engine::image::check_image_size("upscaled size", u64::from(job_size.0), u64::from(job_size.1))?;
        let upscaler = match self.upscaler_1.as_deref().map(str::trim) {
            None | Some("") | Some("None") => None,
            Some(name) if name.eq_ignore_ascii_case("lanczos") => None,
            Some(name) => Some(name.to_string()),
        };
        Ok(ExtrasPlan { picture, job_size, crop_to, upscaler, factor })
    }
}

/// The body of `/sdapi/v1/png-info`.
#[derive(Debug, Clone, Deserialize)]
pub struct PngInfoBody {
    pub image: String,
}

/// A1111's `parse_generation_parameters` as a JSON object: "Prompt", "Negative prompt", each parameter, and the
/// size split into "Size-1" and "Size-2".
pub fn parameters_object(info: &InfoText) -> Value {
    let mut object = Map::new();
    object.insert("Prompt".into(), json!(info.prompt));
    object.insert("Negative prompt".into(), json!(info.negative_prompt));
    for (key, value) in &info.params {
        object.insert(key.clone(), json!(value));
    }
    if let Some((width, height)) = info.size() {
        object.insert("Size-1".into(), json!(width.to_string()));
        object.insert("Size-2".into(), json!(height.to_string()));
    }
    Value::Object(object)
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ProgressQuery {
    #[serde(deserialize_with = "bool_or_int")]
    pub skip_current_image: bool,
}

#[cfg(test)]
mod tests {
    use pigment_engine::EngineError;
    use pigment_engine::schedulers::SigmaSchedule;

    use super::*;

    fn body(json: Value) -> GenerationBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a1111_defaults_and_unknown_fields() {
        let request = body(json!({"prompt": "a cat", "unknown_field": [1, 2], "hr_checkpoint_name": null}))
            .generate_request()
            .unwrap();
        assert_eq!((request.steps, request.width, request.height, request.seed), (50, 512, 512, None));
        assert_eq!(request.sampler.display_name(), "Euler a");
    }

    #[test]
    fn sampler_and_scheduler_combine_as_a1111_and_bad_ones_name_the_field() {
        let request = body(json!({"sampler_name": "DPM++ 2M", "scheduler": "Karras"})).generate_request().unwrap();
        assert_eq!(request.schedule, SigmaSchedule::Karras);
        let request = body(json!({"sampler_index": "euler", "scheduler": "automatic"})).generate_request().unwrap();
        assert_eq!(request.sampler.display_name(), "Euler");
        // A schedule in the sampler's name wins over the scheduler field (A1111's get_sampler_and_scheduler).
        let request =
            body(json!({"sampler_name": "DPM++ 2M Karras", "scheduler": "exponential"})).generate_request().unwrap();
        assert_eq!(request.schedule, SigmaSchedule::Karras);
        // The engine's "schedule" is the API's `scheduler` field (error.rs).
        let error = body(json!({"sampler_name": "DDIM", "scheduler": "Karras"})).generate_request().unwrap_err();
        let names_schedule =
            matches!(&error, ApiError::Engine(EngineError::InvalidParameter { name, .. }) if *name == "schedule");
        assert!(names_schedule, "{error}");
        let error = body(json!({"sampler_name": "Nope"})).generate_request().unwrap_err();
        assert!(error.to_string().contains("unknown sampler \"Nope\""), "{error}");
    }

    #[test]
    fn flags_may_be_numbers_and_unsupported_features_are_refused_by_name() {
        let parsed = body(json!({"inpainting_mask_invert": 1, "inpaint_full_res": 0, "restore_faces": false}));
        assert_eq!((parsed.inpainting_mask_invert, parsed.inpaint_full_res), (Some(true), Some(false)));
        let error = body(json!({"restore_faces": true})).generate_request().unwrap_err();
        assert!(error.to_string().starts_with("restore_faces:"), "{error}");
        let error = body(json!({"seed": -5})).generate_request().unwrap_err();
        assert!(error.to_string().starts_with("seed:"), "{error}");
    }

    #[test]
    fn hires_resize_becomes_a_scale_and_upscaler_names_map() {
        let parsed = body(json!({"width": 64, "height": 64, "enable_hr": true, "hr_resize_x": 128,
            "hr_upscaler": "Latent (nearest)", "denoising_strength": 0.5}));
        let Job::Generate { generation, .. } = parsed.txt2img_job().unwrap() else { panic!("expected a generation") };
        let Some(hires) = generation.hires else { panic!("expected a hires txt2img job") };
        assert_eq!((hires.scale, hires.strength, hires.upscaler), (2.0, 0.5, HiresUpscaler::Latent));
        let parsed = body(json!({"width": 64, "height": 64, "enable_hr": true, "hr_upscaler": "tiny-esrgan-x2"}));
        let Job::Generate { generation, hires_upscaler, .. } = parsed.txt2img_job().unwrap() else {
            panic!("expected a generation")
        };
        assert!(generation.hires.is_some(), "expected a hires txt2img job");
        assert_eq!(hires_upscaler.as_deref(), Some("tiny-esrgan-x2"));
    }

    #[test]
    fn png_info_parameters_split_the_size() {
        let info = InfoText::parse("a cat\nNegative prompt: dog\nSteps: 2, Seed: 5, Size: 64x32").unwrap();
        let object = parameters_object(&info);
        assert_eq!(object["Prompt"], "a cat");
        assert_eq!(object["Negative prompt"], "dog");
        assert_eq!((object["Size-1"].as_str(), object["Size-2"].as_str()), (Some("64"), Some("32")));
        assert_eq!(object["Seed"], "5");
    }
}
