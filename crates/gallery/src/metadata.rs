//! What a PNG says about how it was made, from the text chunks of the tools that write them:
//! AUTOMATIC1111 and Pigment (`parameters`, parsed with the engine's infotext parser), ComfyUI (`prompt`, the API
//! graph, else `workflow`, the editor graph) and InvokeAI (`invokeai_metadata`). Every source ends up as the same
//! [`ImageMetadata`], with its parameters in AUTOMATIC1111's names so the detail view and "reuse" treat them alike.

use std::path::Path;

use pigment_engine::image::{InfoText, PARAMETERS_KEY, read_png_text};
use pigment_engine::schedulers::{SigmaSchedule, parse_sampler, sampler_label};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{GalleryError, Result};

pub const COMFYUI_PROMPT_KEY: &str = "prompt";
pub const COMFYUI_WORKFLOW_KEY: &str = "workflow";
pub const INVOKEAI_KEY: &str = "invokeai_metadata";

/// Which tool's metadata a PNG carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataSource {
    /// AUTOMATIC1111's `parameters` (also what Pigment writes).
    A1111,
    ComfyUi,
    InvokeAi,
    /// A PNG without generation metadata.
    None,
}

impl MetadataSource {
    pub fn id(self) -> &'static str {
        match self {
            MetadataSource::A1111 => "a1111",
            MetadataSource::ComfyUi => "comfy_ui",
            MetadataSource::InvokeAi => "invoke_ai",
            MetadataSource::None => "none",
        }
    }

    pub fn from_id(id: &str) -> MetadataSource {
        match id {
            "a1111" => MetadataSource::A1111,
            "comfy_ui" => MetadataSource::ComfyUi,
            "invoke_ai" => MetadataSource::InvokeAi,
            _ => MetadataSource::None,
        }
    }
}

/// The generation parameters of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageMetadata {
    pub source: MetadataSource,
    pub prompt: String,
    pub negative_prompt: String,
    pub model: Option<String>,
    /// AUTOMATIC1111's sampler name with its schedule ("DPM++ 2M Karras") where the sampler is one the engine
    /// knows, else the name as the file has it.
    pub sampler: Option<String>,
    pub steps: Option<u32>,
    pub cfg_scale: Option<f64>,
    pub seed: Option<i64>,
    /// The pixel size of the image itself.
    pub width: u32,
    pub height: u32,
    /// Every `Key: value` pair in AUTOMATIC1111's names and order.
    pub params: Vec<(String, String)>,
    /// The parameters as AUTOMATIC1111's text (what "copy" puts on the clipboard): the file's own text for
    /// A1111 files, made from the fields for the others. Empty for a PNG without metadata.
    pub infotext: String,
}

/// The form values "reuse parameters" fills in, in the generate form's terms (sampler and schedule ids).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReuseParams {
    pub prompt: String,
    pub negative_prompt: String,
    /// The engine's sampler id (`euler_a`) and schedule id (`karras`); `None` when the engine has no such sampler.
    pub sampler: Option<String>,
    pub schedule: Option<String>,
    pub steps: Option<u32>,
    pub cfg_scale: Option<f64>,
    pub seed: Option<i64>,
    pub width: u32,
    pub height: u32,
}

impl ImageMetadata {
    /// No generation metadata, for an image of this size.
    pub fn empty(width: u32, height: u32) -> ImageMetadata {
        ImageMetadata {
            source: MetadataSource::None,
            prompt: String::new(),
            negative_prompt: String::new(),
            model: None,
            sampler: None,
            steps: None,
            cfg_scale: None,
            seed: None,
            width,
            height,
            params: Vec::new(),
            infotext: String::new(),
        }
    }

    /// From AUTOMATIC1111's text alone (what the history keeps), for an image of this size.
    pub fn from_parameters_text(text: &str, width: u32, height: u32) -> ImageMetadata {
        let plain = ImageMetadata::empty(width, height);
        match InfoText::parse(text) {
            Ok(info) => from_infotext(info, text.to_string(), MetadataSource::A1111, plain),
            Err(_) => plain,
        }
    }

    pub fn reuse(&self) -> ReuseParams {
        let parsed = self.sampler.as_deref().and_then(|name| parse_sampler(name).ok());
        // Sizes from other tools need not be multiples of 8; the form's own check reports that.
        let (width, height) =
            InfoText { params: self.params.clone(), ..InfoText::default() }.size().unwrap_or((self.width, self.height));
        ReuseParams {
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            sampler: parsed.map(|(sampler, _)| sampler.id().to_string()),
            schedule: parsed.map(|(_, schedule)| schedule.id().to_string()),
            steps: self.steps,
            cfg_scale: self.cfg_scale,
            seed: self.seed,
            width,
            height,
        }
    }
}

/// Reads the metadata of the PNG file at `path`. A PNG without metadata gives [`MetadataSource::None`]; a file
/// that is not a PNG is an error naming it.
pub fn read_metadata(path: &Path) -> Result<ImageMetadata> {
    let read_error = |reason: String| GalleryError::Read { path: path.to_path_buf(), reason };
    let text = |key: &str| read_png_text(path, key).map_err(|e| read_error(e.to_string()));
    let (width, height) = image::image_dimensions(path).map_err(|e| read_error(format!("not a PNG image: {e}")))?;
    let plain = ImageMetadata::empty(width, height);
    if let Some(parameters) = text(PARAMETERS_KEY)?
        && let Ok(info) = InfoText::parse(&parameters)
    {
        return Ok(from_infotext(info, parameters, MetadataSource::A1111, plain));
    }
    if let Some(json) = text(INVOKEAI_KEY)?
        && let Some(info) = parse_invokeai(&json)
    {
        return Ok(from_infotext(info.clone(), info.to_text(), MetadataSource::InvokeAi, plain));
    }
    if let Some(json) = text(COMFYUI_PROMPT_KEY)?
        && let Some(info) = parse_comfyui_prompt(&json)
    {
        return Ok(from_infotext(info.clone(), info.to_text(), MetadataSource::ComfyUi, plain));
    }
    if let Some(json) = text(COMFYUI_WORKFLOW_KEY)?
        && let Some(info) = parse_comfyui_workflow(&json)
    {
        return Ok(from_infotext(info.clone(), info.to_text(), MetadataSource::ComfyUi, plain));
    }
    Ok(plain)
}

fn from_infotext(info: InfoText, text: String, source: MetadataSource, plain: ImageMetadata) -> ImageMetadata {
    let sampler = info.get("Sampler").map(|name| match info.get("Schedule type") {
        // A1111 1.9+ writes the schedule apart ("Sampler: DPM++ 2M, Schedule type: Karras").
        Some(schedule) if !schedule.eq_ignore_ascii_case("automatic") => format!("{name} {schedule}"),
        _ => name.to_string(),
    });
    ImageMetadata {
        source,
        model: info.get("Model").map(str::to_string),
        sampler,
        steps: info.get("Steps").and_then(|v| v.parse().ok()),
        cfg_scale: info.get("CFG scale").and_then(|v| v.parse().ok()),
        seed: info.get("Seed").and_then(|v| v.parse().ok()),
        prompt: info.prompt,
        negative_prompt: info.negative_prompt,
        params: info.params,
        infotext: text,
        ..plain
    }
}

/// ComfyUI's sampler names ("euler_ancestral", "dpmpp_2m" with scheduler "karras") as the engine's.
fn comfyui_sampler(name: &str, scheduler: Option<&str>) -> String {
    let id = match name {
        "euler_ancestral" => "euler_a",
        "dpm_2" => "dpm2",
        "dpm_2_ancestral" => "dpm2_a",
        "dpmpp_2s_ancestral" => "dpmpp_2s_a",
        "uni_pc" | "uni_pc_bh2" => "unipc",
        other => other,
    };
    let schedule = scheduler.and_then(|s| s.parse::<SigmaSchedule>().ok()).unwrap_or(SigmaSchedule::Automatic);
    match parse_sampler(id) {
        Ok((sampler, _)) if sampler.supports(schedule) => sampler_label(sampler, schedule),
        Ok((sampler, _)) => sampler_label(sampler, SigmaSchedule::Automatic),
        Err(_) => name.to_string(),
    }
}

fn number(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// InvokeAI's `invokeai_metadata` (3.x, 4.x, 5.x): positive_prompt, negative_prompt, model.name, scheduler, steps,
/// cfg_scale, seed, width, height.
pub fn parse_invokeai(json: &str) -> Option<InfoText> {
    let meta: Map<String, Value> = serde_json::from_str(json).ok()?;
    let text = |key: &str| meta.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let mut info =
        InfoText { prompt: text("positive_prompt"), negative_prompt: text("negative_prompt"), params: vec![] };
    if let Some(steps) = number(meta.get("steps")) {
        info.set("Steps", steps);
    }
    if let Some(scheduler) = meta.get("scheduler").and_then(Value::as_str) {
        // InvokeAI's scheduler names follow diffusers' ("euler_a", "dpmpp_2m_k"); the Karras ones end in "_k".
        let (name, schedule) = match scheduler.strip_suffix("_k") {
            Some(base) => (base, Some("karras")),
            None => (scheduler, None),
        };
        info.set("Sampler", comfyui_sampler(name, schedule));
    }
    if let Some(cfg) = number(meta.get("cfg_scale")) {
        info.set("CFG scale", cfg);
    }
    if let Some(seed) = number(meta.get("seed")) {
        info.set("Seed", seed);
    }
    if let (Some(w), Some(h)) = (number(meta.get("width")), number(meta.get("height"))) {
        info.set("Size", format!("{w}x{h}"));
    }
    if let Some(model) = meta.get("model").and_then(|m| m.get("name").or(Some(m))).and_then(Value::as_str) {
        info.set("Model", model);
    }
    if info.prompt.is_empty() && info.params.is_empty() { None } else { Some(info) }
}

/// ComfyUI's API graph (the `prompt` chunk): `{"id": {"class_type", "inputs"}}`, links as `["id", output]`. The
/// sampler is the KSampler (or KSamplerAdvanced); its prompts are the texts of the CLIPTextEncode nodes wired to
/// its `positive` and `negative` inputs; the model is the checkpoint loader its `model` input leads to.
pub fn parse_comfyui_prompt(json: &str) -> Option<InfoText> {
    let graph: Map<String, Value> = serde_json::from_str(json).ok()?;
    let node = |id: &Value| -> Option<&Map<String, Value>> {
        let id = match id {
            Value::Array(link) => link.first()?,
            other => other,
        };
        let key = match id {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        graph.get(&key)?.as_object()
    };
    let inputs = |n: &Map<String, Value>| n.get("inputs").and_then(Value::as_object).cloned().unwrap_or_default();
    let class = |n: &Map<String, Value>| n.get("class_type").and_then(Value::as_str).unwrap_or_default().to_string();
    // Follows links from `start` through nodes (conditioning combiners, LoRA loaders) to the first string `key`.
    let follow = |start: Option<&Value>, keys: &[&str]| -> Option<String> {
        let mut pending: Vec<&Value> = start.into_iter().collect();
        let mut visited = 0;
        while let Some(link) = pending.pop() {
            visited += 1;
            if visited > 64 {
                return None;
            }
            let n = node(link)?;
            let n_inputs = n.get("inputs").and_then(Value::as_object)?;
            for key in keys {
                match n_inputs.get(*key) {
                    Some(Value::String(s)) => return Some(s.clone()),
                    Some(link @ Value::Array(_)) => pending.push(link),
                    _ => {}
                }
            }
            for (_, value) in n_inputs.iter().filter(|(k, _)| matches!(k.as_str(), "conditioning" | "model")) {
                if value.is_array() {
                    pending.push(value);
                }
            }
        }
        None
    };
    let (_, sampler) = graph
        .iter()
        .filter_map(|(id, n)| Some((id, n.as_object()?)))
        .filter(|(_, n)| class(n).starts_with("KSampler"))
        .min_by_key(|(id, _)| id.parse::<u64>().unwrap_or(u64::MAX))?;
    let sampler_inputs = inputs(sampler);
    let mut info = InfoText {
        prompt: follow(sampler_inputs.get("positive"), &["text", "text_g", "value"]).unwrap_or_default(),
        negative_prompt: follow(sampler_inputs.get("negative"), &["text", "text_g", "value"]).unwrap_or_default(),
        params: Vec::new(),
    };
    if let Some(steps) = number(sampler_inputs.get("steps")) {
        info.set("Steps", steps);
    }
    if let Some(name) = sampler_inputs.get("sampler_name").and_then(Value::as_str) {
        info.set("Sampler", comfyui_sampler(name, sampler_inputs.get("scheduler").and_then(Value::as_str)));
    }
    if let Some(cfg) = number(sampler_inputs.get("cfg")) {
        info.set("CFG scale", cfg);
    }
    if let Some(seed) = number(sampler_inputs.get("seed").or(sampler_inputs.get("noise_seed"))) {
        info.set("Seed", seed);
    }
    if let Some(latent) = sampler_inputs.get("latent_image").and_then(node) {
        let latent = inputs(latent);
        if let (Some(w), Some(h)) = (number(latent.get("width")), number(latent.get("height"))) {
            info.set("Size", format!("{w}x{h}"));
        }
    }
    if let Some(model) = follow(sampler_inputs.get("model"), &["ckpt_name", "unet_name"]) {
        info.set("Model", model.rsplit_once('.').map_or(model.as_str(), |(stem, _)| stem));
    }
    Some(info)
}

/// ComfyUI's editor graph (the `workflow` chunk), for files saved without the API graph: the texts of its
/// CLIPTextEncode nodes (the first is taken as the prompt, the second as the negative prompt, as the default
/// workflow lays them out) and the checkpoint name.
pub fn parse_comfyui_workflow(json: &str) -> Option<InfoText> {
    let workflow: Value = serde_json::from_str(json).ok()?;
    let nodes = workflow.get("nodes")?.as_array()?;
    let widget_text = |kind: &str| -> Vec<String> {
        let mut found: Vec<(u64, String)> = nodes
            .iter()
            .filter(|n| n.get("type").and_then(Value::as_str) == Some(kind))
            .filter_map(|n| {
                let text = n.get("widgets_values")?.get(0)?.as_str()?.to_string();
                Some((n.get("id").and_then(Value::as_u64).unwrap_or(u64::MAX), text))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, t)| t).collect()
    };
    let texts = widget_text("CLIPTextEncode");
    let mut info = InfoText {
        prompt: texts.first().cloned().unwrap_or_default(),
        negative_prompt: texts.get(1).cloned().unwrap_or_default(),
        params: Vec::new(),
    };
    if let Some(model) = widget_text("CheckpointLoaderSimple").first() {
        info.set("Model", model.rsplit_once('.').map_or(model.as_str(), |(stem, _)| stem));
    }
    if info.prompt.is_empty() && info.params.is_empty() { None } else { Some(info) }
}
