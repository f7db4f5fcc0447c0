//! The API's one error type and how each kind reaches the client: FastAPI's shapes, since that is what A1111's
//! clients parse. A wrong field is a 422 with `{"detail": [{"loc": ["body", field], "msg", "type"}]}`; everything
//! else is `{"detail": message}` with its status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pigment_engine::EngineError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A body field of the wrong type or value: `field` is its path in the body ("steps", "init_images[0]").
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String, kind: &'static str },
    /// Not JSON, or not the object the endpoint takes.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// An image that is not valid base64 or not a picture.
    #[error("{field}: {message}")]
    InvalidImage { field: String, message: String },
    #[error("the body is larger than the {limit} bytes this server accepts")]
    BodyTooLarge { limit: usize },
    #[error("{what} {name:?} not found; known: {known}")]
    NotFound { what: &'static str, name: String, known: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("the job queue has stopped")]
    QueueStopped,
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::InvalidField { field: field.into(), message: message.into(), kind: "value_error" }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidField { .. } | ApiError::InvalidJson(_) | ApiError::Unsupported(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::InvalidImage { .. } => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::QueueStopped => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Engine(error) => match error {
                EngineError::InvalidParameter { .. } | EngineError::UnknownSampler { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                EngineError::ReadFile { .. } | EngineError::InvalidParametersText { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// FastAPI's body: a list of located errors for a bad field, the message otherwise.
    fn body(&self) -> serde_json::Value {
        let located = |field: &str, message: String, kind: &str| {
            let mut loc = vec![json!("body")];
            loc.extend(field.split('.').filter(|p| !p.is_empty()).map(|p| json!(p)));
            json!({"detail": [{"loc": loc, "msg": message, "type": kind}]})
        };
        match self {
            ApiError::InvalidField { field, message, kind } => located(field, message.clone(), kind),
            ApiError::InvalidJson(message) => located("", message.clone(), "json_invalid"),
            ApiError::Engine(EngineError::InvalidParameter { name, .. }) => {
                located(engine_field(name), self.to_string(), "value_error")
            }
            ApiError::Engine(EngineError::UnknownSampler { .. }) => {
                located("sampler_name", self.to_string(), "value_error")
            }
            other => json!({"detail": other.to_string()}),
        }
    }
}

/// The request field an engine parameter name comes from.
fn engine_field(name: &str) -> &str {
    match name {
        "cfg scale" => "cfg_scale",
        "batch size" => "batch_size",
        "batch count" => "n_iter",
        "strength" => "denoising_strength",
        "mask blur" => "mask_blur",
        "padding" => "inpaint_full_res_padding",
        "image size" => "init_images",
        "mask size" => "mask",
        "schedule" => "scheduler",
        "sampler" => "sampler_name",
        "upscaled size" => "upscaling_resize",
        other => other,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_parameter_error_is_located_at_the_request_field() {
        let error = ApiError::Engine(EngineError::InvalidParameter {
            name: "cfg scale",
            value: "-1".into(),
            reason: "must be a number of 0 or more".into(),
        });
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = error.body();
        assert_eq!(body["detail"][0]["loc"], json!(["body", "cfg_scale"]));
        assert!(body["detail"][0]["msg"].as_str().unwrap().contains("-1"), "{body}");
    }

    #[test]
    fn a_nested_field_path_becomes_a_location_list() {
        let body = ApiError::field("override_settings.sd_model_checkpoint", "expected a string").body();
        assert_eq!(body["detail"][0]["loc"], json!(["body", "override_settings", "sd_model_checkpoint"]));
    }
}
