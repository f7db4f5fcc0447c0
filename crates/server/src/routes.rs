//! The `/sdapi/v1` handlers. Each parses its body (422 naming the field), builds a [`Job`] off the async threads
//! (image decoding is CPU work), waits for the backend and encodes the answer in A1111's shape.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use pigment_engine::image::{InfoText, PARAMETERS_KEY};
use pigment_engine::pipeline::GenerateRequest;
use pigment_engine::schedulers::{Sampler, SigmaSchedule};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use pigment_engine::pipeline::Generation;

use crate::backend::{Backend, Job, JobOutput};
use crate::error::ApiError;
use crate::images::{encode_png_base64, png_parameters};
use crate::models::{ExtrasBody, GenerationBody, PngInfoBody, ProgressQuery, info_json, parameters_object};

#[derive(Clone)]
pub struct ApiState {
    pub backend: Arc<dyn Backend>,
    /// Options set through `POST /options` other than the model (kept for clients that read back what they set).
    pub options: Arc<Mutex<Map<String, Value>>>,
    pub max_body_bytes: usize,
}

type ApiResult = Result<axum::response::Response, ApiError>;

/// The body as `T`: a body over the limit is a 413, bad JSON or a wrong field a 422 naming the field.
pub fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge { limit },
        _ => ApiError::InvalidJson(rejection.body_text()),
    })?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let parsed: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            ApiError::InvalidJson(inner.to_string())
        } else {
            // "init_images[0]" is located as ["body", "init_images", "0"].
            let field = path.replace('[', ".").replace(']', "");
            ApiError::InvalidField { field, message: inner.to_string(), kind: "type_error" }
        }
    })?;
    deserializer.end().map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    Ok(parsed)
}

/// Runs CPU work (image decoding and encoding) on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::Internal(format!("a worker task failed: {e}")))?
}

async fn run(state: &ApiState, job: Job) -> Result<JobOutput, ApiError> {
    state.backend.submit(job).await.map_err(|_| ApiError::QueueStopped)?
}

pub async fn txt2img(State(state): State<ApiState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body: GenerationBody = parse_body(body, state.max_body_bytes)?;
    generate(state, body, GenerationBody::txt2img_job).await
}

pub async fn img2img(State(state): State<ApiState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body: GenerationBody = parse_body(body, state.max_body_bytes)?;
    generate(state, body, GenerationBody::img2img_job).await
}

async fn generate(
    state: ApiState,
    body: GenerationBody,
    job: fn(&GenerationBody) -> Result<Job, ApiError>,
) -> ApiResult {
    let (body, job) = blocking(move || job(&body).map(|job| (body, job))).await?;
    let request: GenerateRequest = generation_of(&job)
        .map(|generation| generation.params.clone())
        .ok_or_else(|| ApiError::Internal("a generation body made another kind of job".into()))?;
    let JobOutput::Images { images, .. } = run(&state, job).await? else {
        return Err(ApiError::Internal("the backend answered a generation with something else".into()));
    };
    blocking(move || {
        let encoded = if body.send_images {
            images
                .iter()
                .map(|image| encode_png_base64(&image.image, &image.infotext.to_text()))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let info = info_json(&body, &request, &images);
        Ok(Json(json!({"images": encoded, "parameters": body.echo(), "info": info})).into_response())
    })
    .await
}

pub async fn progress(
    State(state): State<ApiState>,
    query: Result<Query<ProgressQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiError::field("skip_current_image", e.body_text()))?;
    let snapshot = state.backend.progress();
    let state_object = json!({
        "skipped": snapshot.skipped,
        "interrupted": snapshot.interrupted,
        "stopping_generation": false,
        "job": snapshot.job,
        "job_count": snapshot.job_count,
        "job_timestamp": snapshot.job_timestamp,
        "job_no": snapshot.job_no,
        "sampling_step": snapshot.sampling_step,
        "sampling_steps": snapshot.sampling_steps,
        "queued": snapshot.queued,
    });
    let Some(started) = snapshot.started.filter(|_| snapshot.job_count > 0) else {
        return Ok(Json(json!({"progress": 0.0, "eta_relative": 0.0, "state": state_object, "current_image": null,
            "textinfo": null}))
        .into_response());
    };
    // A1111's estimate (progressapi): done batches plus the current batch's share of steps, and the time so far
    // stretched to the whole.
    let batches = snapshot.job_count as f64;
    let mut done = 0.01 + snapshot.job_no as f64 / batches;
    if snapshot.sampling_steps > 0 {
        done += snapshot.sampling_step as f64 / snapshot.sampling_steps as f64 / batches;
    }
    let elapsed = Instant::now().duration_since(started).as_secs_f64();
    let eta_relative = elapsed / done - elapsed;
    let current_image = match (&snapshot.current_image, query.skip_current_image) {
        (Some(image), false) => Some(encode_png_base64(image, "")?),
        _ => None,
    };
    Ok(Json(json!({"progress": done.min(1.0), "eta_relative": eta_relative, "state": state_object,
        "current_image": current_image, "textinfo": null}))
    .into_response())
}

pub async fn interrupt(State(state): State<ApiState>) -> Json<Value> {
    state.backend.interrupt();
    Json(json!({}))
}

pub async fn skip(State(state): State<ApiState>) -> Json<Value> {
    state.backend.skip();
    Json(json!({}))
}

pub async fn get_options(State(state): State<ApiState>) -> Json<Value> {
    let mut options = default_options();
    options.extend(state.options.lock().unwrap_or_else(|p| p.into_inner()).clone());
    let current = state.backend.current_model();
    options.insert("sd_model_checkpoint".into(), json!(current.as_ref().map(|m| &m.title)));
    options.insert("sd_checkpoint_hash".into(), json!(current.and_then(|m| m.hash)));
    Json(Value::Object(options))
}

/// The options A1111's clients read most, at the values that describe this server.
fn default_options() -> Map<String, Value> {
    let Value::Object(options) = json!({
        "samples_format": "png",
        "CLIP_stop_at_last_layers": 1,
        "sd_vae": "Automatic",
        "eta_noise_seed_delta": 0,
        "live_previews_enable": true,
        "show_progress_every_n_steps": 1,
        "enable_pnginfo": true,
    }) else {
        unreachable!("a JSON object literal")
    };
    options
}

pub async fn set_options(State(state): State<ApiState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let mut options: Map<String, Value> = parse_body(body, state.max_body_bytes)?;
    if let Some(model) = options.remove("sd_model_checkpoint") {
        let Value::String(name) = model else {
            return Err(ApiError::field(
                "sd_model_checkpoint",
                format!("expected a model title (a string), got {model}"),
            ));
        };
        run(&state, Job::SwitchModel { name }).await?;
    }
    options.remove("sd_checkpoint_hash");
    state.options.lock().unwrap_or_else(|p| p.into_inner()).extend(options);
    Ok(Json(Value::Null).into_response())
}

pub async fn sd_models(State(state): State<ApiState>) -> Json<Value> {
    let models: Vec<Value> = state
        .backend
        .models()
        .into_iter()
        .map(|m| {
            json!({"title": m.title, "model_name": m.model_name, "hash": m.hash, "sha256": null,
            "filename": m.filename, "config": null})
        })
        .collect();
    Json(Value::Array(models))
}

pub async fn samplers() -> Json<Value> {
    let samplers: Vec<Value> = Sampler::ALL
        .into_iter()
        .map(|s| json!({"name": s.display_name(), "aliases": [s.id()], "options": {}}))
        .collect();
    Json(Value::Array(samplers))
}

pub async fn schedulers() -> Json<Value> {
    let schedulers: Vec<Value> = SigmaSchedule::ALL
        .into_iter()
        .map(|s| {
            json!({"name": s.id(), "label": s.display_name(), "aliases": null, "default_rho": -1,
            "need_inner_model": false})
        })
        .collect();
    Json(Value::Array(schedulers))
}

pub async fn upscalers(State(state): State<ApiState>) -> Json<Value> {
    let builtin = ["None", "Lanczos"]
        .into_iter()
        .map(|name| json!({"name": name, "model_name": null, "model_path": null, "model_url": null, "scale": 4}));
    let models = state.backend.upscalers().into_iter().map(|u| {
        json!({"name": u.name, "model_name": u.name, "model_path": u.model_path, "model_url": null, "scale": u.scale})
    });
    Json(Value::Array(builtin.chain(models).collect()))
}

pub async fn extra_single_image(State(state): State<ApiState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body: ExtrasBody = parse_body(body, state.max_body_bytes)?;
    let (body, plan) = blocking(move || body.plan().map(|plan| (body, plan))).await?;
    let parameters = png_parameters("image", &body.image)?;
    let job =
        Job::Upscale { image: plan.picture, width: plan.job_size.0, height: plan.job_size.1, upscaler: plan.upscaler };
    let JobOutput::Upscaled { image, upscaler } = run(&state, job).await? else {
        return Err(ApiError::Internal("the backend answered an upscale with something else".into()));
    };
    blocking(move || {
        let image = match plan.crop_to {
            Some((w, h)) => {
                let (x, y) = ((image.width().saturating_sub(w)) / 2, (image.height().saturating_sub(h)) / 2);
                image::imageops::crop_imm(&image, x, y, w, h).to_image()
            }
            None => image,
        };
        // The picture keeps its generation parameters, plus what A1111's extras tab adds.
        let mut info = parameters.and_then(|text| InfoText::parse(&text).ok()).unwrap_or_default();
        info.set("Postprocess upscale by", plan.factor);
        info.set("Postprocess upscaler", &upscaler);
        let text = info.to_text();
        let encoded = encode_png_base64(&image, text.trim_start())?;
        let html_info = format!("<p>Postprocess upscale by: {}, Postprocess upscaler: {upscaler}</p>", plan.factor);
        Ok(Json(json!({"html_info": html_info, "image": encoded})).into_response())
    })
    .await
}

pub async fn png_info(State(state): State<ApiState>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body: PngInfoBody = parse_body(body, state.max_body_bytes)?;
    let text = blocking(move || png_parameters("image", &body.image)).await?;
    let Some(text) = text else {
        return Ok(Json(json!({"info": "", "items": {}, "parameters": {}})).into_response());
    };
    let parameters = InfoText::parse(&text).map(|info| parameters_object(&info)).unwrap_or_else(|_| json!({}));
    Ok(Json(json!({"info": text, "items": {PARAMETERS_KEY: text}, "parameters": parameters})).into_response())
}

pub async fn scripts() -> Json<Value> {
    Json(json!({"txt2img": [], "img2img": []}))
}

fn generation_of(job: &Job) -> Option<&Generation> {
    match job {
        Job::Generate { generation, .. } => Some(generation),
        _ => None,
    }
}
