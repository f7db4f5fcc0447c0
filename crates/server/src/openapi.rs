//! The OpenAPI 3.0 description served at `/openapi.json`. Request schemas are derived from the body types'
//! defaults (every field, with its JSON type and A1111's default), so they cannot drift from what is parsed.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::models::{ExtrasBody, GenerationBody};

/// Every route: (method, path, summary, request schema name, response description).
pub const ROUTES: &[(&str, &str, &str, Option<&str>, &str)] = &[
    ("post", "/sdapi/v1/txt2img", "Text to image", Some("Txt2ImgRequest"), "images, parameters, info"),
    (
        "post",
        "/sdapi/v1/img2img",
        "Image to image; with `mask`, inpainting",
        Some("Img2ImgRequest"),
        "images, parameters, info",
    ),
    (
        "get",
        "/sdapi/v1/progress",
        "The running job's progress and live preview",
        None,
        "progress, eta_relative, state, current_image",
    ),
    ("post", "/sdapi/v1/interrupt", "Stop the running job (its finished images are returned)", None, "{}"),
    ("post", "/sdapi/v1/skip", "Skip the running job's current batch", None, "{}"),
    ("get", "/sdapi/v1/options", "Options; sd_model_checkpoint is the loaded model", None, "an object of options"),
    ("post", "/sdapi/v1/options", "Set options; sd_model_checkpoint loads that model", Some("Options"), "null"),
    ("get", "/sdapi/v1/sd-models", "Models sd_model_checkpoint may name", None, "a list of models"),
    ("get", "/sdapi/v1/samplers", "Samplers", None, "a list of samplers"),
    ("get", "/sdapi/v1/schedulers", "Sigma schedules", None, "a list of schedules"),
    ("get", "/sdapi/v1/upscalers", "Upscalers for extras and the hires fix", None, "a list of upscalers"),
    (
        "post",
        "/sdapi/v1/extra-single-image",
        "Upscale one picture",
        Some("ExtrasSingleImageRequest"),
        "image, html_info",
    ),
    (
        "post",
        "/sdapi/v1/png-info",
        "Read a PNG's generation parameters",
        Some("PNGInfoRequest"),
        "info, items, parameters",
    ),
    ("get", "/sdapi/v1/scripts", "Scripts (none)", None, "txt2img and img2img script lists"),
    ("get", "/openapi.json", "This description", None, "OpenAPI 3.0"),
];

/// A JSON schema of `value`'s fields, their types read from the values (`nullable` names fields whose default is
/// null, with their type).
fn schema_of(value: &impl Serialize, nullable: &[(&str, &str)]) -> Value {
    let Ok(Value::Object(fields)) = serde_json::to_value(value) else { return json!({"type": "object"}) };
    let properties: Map<String, Value> = fields
        .into_iter()
        .map(|(name, default)| {
            let schema = match &default {
                Value::Null => {
                    let kind = nullable.iter().find(|(n, _)| *n == name).map_or("string", |(_, k)| *k);
                    json!({"type": kind, "nullable": true})
                }
                Value::Bool(_) => json!({"type": "boolean", "default": default}),
                Value::Number(n) if n.is_f64() => json!({"type": "number", "default": default}),
                Value::Number(_) => json!({"type": "integer", "default": default}),
                Value::String(_) => json!({"type": "string", "default": default}),
                Value::Array(_) => json!({"type": "array", "items": {"type": "string"}}),
                Value::Object(_) => json!({"type": "object"}),
            };
            (name, schema)
        })
        .collect();
    json!({"type": "object", "properties": properties})
}

pub fn document() -> Value {
    let nullable = [("denoising_strength", "number")];
    let txt2img = GenerationBody::default();
    let img2img = GenerationBody {
        init_images: Some(Vec::new()),
        resize_mode: Some(0),
        mask: Some(String::new()),
        mask_blur: Some(4),
        inpainting_fill: Some(0),
        inpaint_full_res: Some(true),
        inpaint_full_res_padding: Some(0),
        inpainting_mask_invert: Some(false),
        include_init_images: Some(false),
        ..GenerationBody::default()
    };
    let mut schemas = Map::new();
    schemas.insert("Txt2ImgRequest".into(), schema_of(&txt2img, &nullable));
    schemas.insert("Img2ImgRequest".into(), schema_of(&img2img, &nullable));
    schemas.insert("ExtrasSingleImageRequest".into(), schema_of(&ExtrasBody::default(), &[]));
    schemas.insert(
        "PNGInfoRequest".into(),
        json!({"type": "object", "required": ["image"], "properties": {"image": {"type": "string",
            "description": "base64 PNG, optionally as a data:image/png;base64, URL"}}}),
    );
    schemas.insert(
        "Options".into(),
        json!({"type": "object", "properties": {"sd_model_checkpoint": {"type": "string"}},
            "additionalProperties": true}),
    );
    let mut paths = Map::new();
    for (method, path, summary, request, response) in ROUTES {
        let mut operation = json!({
            "summary": summary,
            "responses": {
                "200": {"description": response, "content": {"application/json": {"schema": {}}}},
                "401": {"description": "credentials required (when the server was started with them)"},
            },
        });
        if let Some(schema) = request {
            operation["requestBody"] = json!({"required": true, "content": {"application/json":
                {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
            operation["responses"]["400"] = json!({"description": "an image that is not valid base64 or a picture"});
            operation["responses"]["413"] = json!({"description": "the body is over the size limit"});
            operation["responses"]["422"] =
                json!({"description": "a field of the wrong type or value, located in detail[].loc"});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Pigment: AUTOMATIC1111-compatible API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}, "bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}
