//! pigment-server: an HTTP API compatible with AUTOMATIC1111's `/sdapi/v1`, so the plugins and scripts written for
//! it (Krita, Photoshop, Blender, chat front ends, the `webuiapi` package) work with Pigment.
//!
//! The HTTP layer ([`router`]) only parses, validates and encodes; the work runs through a [`Backend`]: one job at
//! a time, in order. [`LocalBackend`] is `pigment serve`'s (a worker thread that owns the model); the desktop app
//! implements [`Backend`] over its own job queue.

mod auth;
mod backend;
mod error;
mod images;
mod local;
mod models;
pub mod openapi;
mod routes;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

pub use auth::{Credentials, CredentialsError};
pub use backend::{Backend, Job, JobOutput, JobResult, ModelEntry, ProgressSnapshot, UpscalerEntry};
pub use error::ApiError;
pub use local::{LocalBackend, LocalBackendOptions};

/// Bodies larger than this are refused with 413 unless configured otherwise: room for an img2img request with a
/// 2048x2048 picture and its mask as base64 PNGs.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;

pub struct ServerConfig {
    pub credentials: Credentials,
    pub max_body_bytes: usize,
    /// One line on stderr per request: method, path, status, milliseconds.
    pub log_requests: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            credentials: Credentials::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            log_requests: false,
        }
    }
}

/// The API's routes over `backend`.
pub fn router(backend: Arc<dyn Backend>, config: ServerConfig) -> Router {
    let state = routes::ApiState {
        backend,
        options: Arc::new(Mutex::new(serde_json::Map::new())),
        max_body_bytes: config.max_body_bytes,
    };
    let document = Arc::new(openapi::document());
    let mut app = Router::new()
        .route("/sdapi/v1/txt2img", post(routes::txt2img))
        .route("/sdapi/v1/img2img", post(routes::img2img))
        .route("/sdapi/v1/progress", get(routes::progress))
        .route("/sdapi/v1/interrupt", post(routes::interrupt))
        .route("/sdapi/v1/skip", post(routes::skip))
        .route("/sdapi/v1/options", get(routes::get_options).post(routes::set_options))
        .route("/sdapi/v1/sd-models", get(routes::sd_models))
        .route("/sdapi/v1/samplers", get(routes::samplers))
        .route("/sdapi/v1/schedulers", get(routes::schedulers))
        .route("/sdapi/v1/upscalers", get(routes::upscalers))
        .route("/sdapi/v1/extra-single-image", post(routes::extra_single_image))
        .route("/sdapi/v1/png-info", post(routes::png_info))
        .route("/sdapi/v1/scripts", get(routes::scripts))
        .route("/openapi.json", get(move || async move { axum::Json(document.as_ref().clone()) }))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state);
    if config.credentials.required() {
        app = app.layer(middleware::from_fn_with_state(Arc::new(config.credentials), auth::require_credentials));
    }
    if config.log_requests {
        app = app.layer(middleware::from_fn(log_request));
    }
    app
}

async fn log_request(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    eprintln!("{method} {path} {} {:.0} ms", response.status().as_u16(), started.elapsed().as_secs_f64() * 1000.0);
    response
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
