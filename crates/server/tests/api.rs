//! The API end to end: a real server on an ephemeral port, the demo model in ONNX Runtime, a real HTTP client.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::{GrayImage, RgbImage};
use pigment_engine::image::{InfoText, PARAMETERS_KEY, read_png_text};
use pigment_engine::model::LoadedModel;
use pigment_engine::pipeline::{
    Flow, GenerateRequest, GeneratedImage, Generation, GenerationObserver, Progress, Resources, generate,
};
use pigment_engine::runtime::{Runtime, RuntimeOptions};
use pigment_server::{Credentials, LocalBackend, LocalBackendOptions, ServerConfig, openapi, router, serve};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn runtime() -> Runtime {
    // ONNX Runtime takes one environment per process: every server in this binary shares it.
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Runtime::load(&RuntimeOptions::default()).expect("ONNX Runtime (run scripts/setup.sh)"))
        .clone()
}

struct TestServer {
    base: String,
    client: reqwest::Client,
}

impl TestServer {
    async fn start(config: ServerConfig) -> TestServer {
        let options = LocalBackendOptions {
            runtime: runtime(),
            model: repo().join("models/tiny-sd"),
            // Holds tiny-sd variants (one of them broken on purpose) and the tiny ESRGAN upscalers.
            models_folder: Some(repo().join("tests/fixtures/models")),
            upscalers_folder: Some(repo().join("tests/fixtures/models")),
        };
        let backend = tokio::task::spawn_blocking(move || LocalBackend::start(options)).await.unwrap().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener, router(Arc::new(backend), config), std::future::pending()));
        TestServer { base, client: reqwest::Client::new() }
    }

    async fn open() -> TestServer {
        TestServer::start(ServerConfig::default()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/sdapi/v1/{path}", self.base)
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self.client.post(self.url(path)).json(body).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post_ok(&self, path: &str, body: &Value) -> Value {
        let (status, answer) = self.post(path, body).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {answer}");
        answer
    }
}

fn tiny(extra: Value) -> Value {
    let mut body = json!({"prompt": "a red cube", "width": 64, "height": 64, "steps": 2, "seed": 42,
        "sampler_name": "Euler a"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

/// A response image: its pixels and its `parameters` text.
fn decode(encoded: &Value) -> (RgbImage, Option<String>) {
    let bytes = STANDARD.decode(encoded.as_str().expect("a base64 string")).expect("valid base64");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.png");
    std::fs::write(&path, &bytes).unwrap();
    (image::load_from_memory(&bytes).unwrap().to_rgb8(), read_png_text(&path, PARAMETERS_KEY).unwrap())
}

fn fixture_base64(name: &str) -> String {
    let bytes = std::fs::read(repo().join("tests/fixtures/images").join(name)).unwrap();
    format!("data:image/png;base64,{}", STANDARD.encode(bytes))
}

fn info(answer: &Value) -> Value {
    serde_json::from_str(answer["info"].as_str().expect("info is a JSON string")).unwrap()
}

struct Collect(Vec<GeneratedImage>);

impl GenerationObserver for Collect {
    fn progress(&mut self, _: &Progress) -> Flow {
        Flow::Continue
    }
    fn image(&mut self, image: GeneratedImage) -> pigment_engine::Result<()> {
        self.0.push(image);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txt2img_answers_in_a1111_shape_with_the_engines_pixels() {
    let server = TestServer::open().await;
    let answer = server.post_ok("txt2img", &tiny(json!({"batch_size": 2, "unknown_field": {"x": 1}}))).await;
    let images = answer["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    let info = info(&answer);
    assert_eq!(info["all_seeds"], json!([42, 43]));
    assert_eq!(info["seed"], 42);
    assert_eq!(info["sd_model_name"], "tiny-sd");
    assert_eq!(answer["parameters"]["steps"], 2);
    assert_eq!(answer["parameters"]["batch_size"], 2);

    // The same request straight through the engine gives the same pixels and infotext.
    let request = GenerateRequest {
        prompt: "a red cube".into(),
        seed: Some(42),
        steps: 2,
        width: 64,
        height: 64,
        batch_size: 2,
        ..GenerateRequest::default()
    };
    let direct = tokio::task::spawn_blocking(move || {
        let mut model = LoadedModel::open(&runtime(), &repo().join("models/tiny-sd")).unwrap();
        let mut collect = Collect(Vec::new());
        generate(Resources::new(&mut model), &Generation::text(request), &mut collect).unwrap();
        collect.0
    })
    .await
    .unwrap();
    for (encoded, expected) in images.iter().zip(&direct) {
        let (pixels, parameters) = decode(encoded);
        assert_eq!(pixels, expected.image, "seed {}", expected.seed);
        assert_eq!(parameters.as_deref(), Some(expected.infotext.to_text().as_str()));
    }
    assert_eq!(info["infotexts"][1], direct[1].infotext.to_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn img2img_and_inpainting_keep_what_the_mask_keeps() {
    let server = TestServer::open().await;
    let original = image::open(repo().join("tests/fixtures/images/scene_64.png")).unwrap().to_rgb8();
    let answer = server
        .post_ok(
            "img2img",
            &tiny(json!({"init_images": [fixture_base64("scene_64.png")], "steps": 4,
            "denoising_strength": 0.5})),
        )
        .await;
    let (changed, parameters) = decode(&answer["images"][0]);
    assert_eq!(changed.dimensions(), (64, 64));
    assert!(parameters.unwrap().contains("Denoising strength: 0.5"));
    assert_eq!(answer["parameters"]["init_images"], json!([]), "images are not echoed unless asked");

    let mask = image::open(repo().join("tests/fixtures/images/mask_64.png")).unwrap().to_luma8();
    let answer = server
        .post_ok(
            "img2img",
            &tiny(json!({"init_images": [fixture_base64("scene_64.png")],
            "mask": fixture_base64("mask_64.png"), "steps": 4, "denoising_strength": 0.9, "mask_blur": 2,
            "inpainting_fill": 1, "inpaint_full_res": false, "inpainting_mask_invert": 0})),
        )
        .await;
    let (inpainted, parameters) = decode(&answer["images"][0]);
    let parameters = parameters.unwrap();
    assert!(parameters.contains("Mask blur: 2") && parameters.contains("Masked content: original"), "{parameters}");
    let (kept, repainted) = split_by_mask(&mask, 8);
    assert!(!kept.is_empty() && !repainted.is_empty(), "the fixture mask has both areas");
    for &(x, y) in &kept {
        assert_eq!(inpainted.get_pixel(x, y), original.get_pixel(x, y), "kept pixel ({x}, {y})");
    }
    let changed = repainted.iter().filter(|&&(x, y)| inpainted.get_pixel(x, y) != original.get_pixel(x, y)).count();
    assert!(changed * 2 > repainted.len(), "{changed} of {} masked pixels changed", repainted.len());
}

type Pixels = Vec<(u32, u32)>;

/// Pixels at least `margin` away from the other kind: (kept, repainted).
fn split_by_mask(mask: &GrayImage, margin: i64) -> (Pixels, Pixels) {
    let (w, h) = (i64::from(mask.width()), i64::from(mask.height()));
    let white = |x: i64, y: i64| mask.get_pixel(x.clamp(0, w - 1) as u32, y.clamp(0, h - 1) as u32).0[0] >= 128;
    let (mut kept, mut repainted) = (Vec::new(), Vec::new());
    for y in 0..h {
        for x in 0..w {
            let around: Vec<bool> = (-margin..=margin)
                .flat_map(|dy| (-margin..=margin).map(move |dx| (dx, dy)))
                .map(|(dx, dy)| white(x + dx, y + dy))
                .collect();
            if around.iter().all(|&v| !v) {
                kept.push((x as u32, y as u32));
            } else if around.iter().all(|&v| v) {
                repainted.push((x as u32, y as u32));
            }
        }
    }
    (kept, repainted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_advances_with_a_preview_and_interrupt_stops_the_job() {
    let server = Arc::new(TestServer::open().await);
    let idle = server.get("progress").await;
    assert_eq!((idle["progress"].as_f64(), idle["state"]["job_count"].as_u64()), (Some(0.0), Some(0)));
    let long = {
        let server = server.clone();
        tokio::spawn(async move { server.post("txt2img", &tiny(json!({"steps": 1000}))).await })
    };
    let mut seen = Vec::new();
    let mut preview = None;
    while seen.len() < 3 {
        let progress = server.get("progress").await;
        let step = progress["state"]["sampling_step"].as_u64().unwrap();
        if step > 0 && seen.last() != Some(&step) {
            assert_eq!(progress["state"]["sampling_steps"], 1000);
            let fraction = progress["progress"].as_f64().unwrap();
            assert!(fraction > 0.0 && fraction < 1.0, "{progress}");
            preview = progress["current_image"].as_str().map(str::to_string);
            seen.push(step);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "steps advance: {seen:?}");
    let (preview, _) = decode(&json!(preview.expect("a preview image")));
    assert_eq!(preview.dimensions(), (8, 8), "the preview is at latent resolution");

    assert_eq!(server.post_ok("interrupt", &json!({})).await, json!({}));
    let (status, answer) = long.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["images"], json!([]), "interrupted before its only image was finished");
    let progress = server.get("progress").await;
    assert_eq!(progress["state"]["job_count"], 0, "idle again: {progress}");
    // The queue goes on after an interrupt.
    let answer = server.post_ok("txt2img", &tiny(json!({}))).await;
    assert_eq!(answer["images"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_drops_the_current_batch_and_goes_on() {
    let server = Arc::new(TestServer::open().await);
    let job = {
        let server = server.clone();
        tokio::spawn(async move { server.post("txt2img", &tiny(json!({"steps": 1000, "n_iter": 2, "seed": 7}))).await })
    };
    // Skip batch 0 once it is sampling, then interrupt batch 1 once it is.
    for batch in 0..2 {
        loop {
            let state = server.get("progress").await["state"].clone();
            if state["job_no"] == batch && state["sampling_step"].as_u64().unwrap() > 1 {
                assert_eq!(state["job_count"], 2);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let action = if batch == 0 { "skip" } else { "interrupt" };
        server.post_ok(action, &json!({})).await;
        if batch == 0 {
            assert_eq!(server.get("progress").await["state"]["skipped"], true);
        }
    }
    let (status, answer) = job.await.unwrap();
    assert_eq!((status, answer["images"].clone()), (StatusCode::OK, json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_switch_the_model_and_refuse_unknown_or_broken_ones() {
    let server = TestServer::open().await;
    let titles: Vec<String> =
        server.get("sd-models").await.as_array().unwrap().iter().map(|m| m["title"].as_str().unwrap().into()).collect();
    assert_eq!(titles[0], "tiny-sd");
    assert!(titles.contains(&"tiny-sd-fp16-vae".to_string()), "{titles:?}");
    assert!(!titles.iter().any(|t| t.contains("esrgan")), "upscalers are not checkpoints: {titles:?}");
    assert_eq!(server.get("options").await["sd_model_checkpoint"], "tiny-sd");

    server.post_ok("options", &json!({"sd_model_checkpoint": "tiny-sd-fp16-vae [0123456789]", "my_option": 5})).await;
    let options = server.get("options").await;
    assert_eq!(
        (options["sd_model_checkpoint"].as_str(), options["my_option"].as_i64()),
        (Some("tiny-sd-fp16-vae"), Some(5))
    );
    let answer = server.post_ok("txt2img", &tiny(json!({}))).await;
    assert_eq!(info(&answer)["sd_model_name"], "tiny-sd-fp16-vae");

    let (status, answer) = server.post("options", &json!({"sd_model_checkpoint": "no-such-model"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("no-such-model"), "{answer}");
    // A model whose parts do not fit fails to load; the one before is loaded again.
    let (status, answer) = server.post("options", &json!({"sd_model_checkpoint": "tiny-sd-mismatch"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("inconsistent"), "{answer}");
    assert_eq!(server.get("options").await["sd_model_checkpoint"], "tiny-sd-fp16-vae");
    let (status, answer) = server.post("options", &json!({"sd_model_checkpoint": 3})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["detail"][0]["loc"], json!(["body", "sd_model_checkpoint"]));

    // A per-request override loads a model too.
    let answer =
        server.post_ok("txt2img", &tiny(json!({"override_settings": {"sd_model_checkpoint": "tiny-sd"}}))).await;
    assert_eq!(info(&answer)["sd_model_name"], "tiny-sd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let server = TestServer::open().await;
    let garbage: Vec<u8> = (0..50_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let response = server.client.post(server.url("txt2img")).body(garbage).send().await;
    // The server answers 413 once the limit is passed and closes; the client may see that answer or, still
    // writing, only the closed connection. Either way nothing ran, and the checks below show it still serves.
    match response {
        Ok(response) => {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let body: Value = response.json().await.unwrap();
            assert!(body["detail"].as_str().unwrap().contains("larger than the 33554432 bytes"), "{body}");
        }
        Err(error) => assert!(error.is_request() || error.is_body(), "{error:?}"),
    }

    let located = |answer: &Value| answer["detail"][0]["loc"].clone();
    let (status, answer) = server.post("txt2img", &tiny(json!({"width": -64}))).await;
    assert_eq!((status, located(&answer)), (StatusCode::UNPROCESSABLE_ENTITY, json!(["body", "width"])), "{answer}");
    let (status, answer) = server.post("txt2img", &tiny(json!({"height": 100}))).await;
    assert_eq!((status, located(&answer)), (StatusCode::UNPROCESSABLE_ENTITY, json!(["body", "height"])), "{answer}");
    let (status, answer) = server.post("txt2img", &tiny(json!({"steps": "many"}))).await;
    assert_eq!((status, located(&answer)), (StatusCode::UNPROCESSABLE_ENTITY, json!(["body", "steps"])), "{answer}");
    let (status, answer) = server.post("txt2img", &tiny(json!({"sampler_name": "Euler z"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(located(&answer), json!(["body", "sampler_name"]));
    assert!(answer["detail"][0]["msg"].as_str().unwrap().contains("Euler z"), "{answer}");
    let response = server.client.post(server.url("txt2img")).body("{\"prompt\": ").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let (status, answer) =
        server.post("img2img", &tiny(json!({"init_images": ["data:image/png;base64,@@@notbase64"]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("init_images.0: not valid base64"), "{answer}");
    let not_a_picture = STANDARD.encode(b"\x89PNG\r\n\x1a\n but then nothing of a picture");
    let (status, answer) = server.post("img2img", &tiny(json!({"init_images": [not_a_picture]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = server
        .post("img2img", &tiny(json!({"init_images": [fixture_base64("scene_64.png")], "mask": "bm90IGFuIGltYWdl"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["detail"].as_str().unwrap().starts_with("mask: "), "{answer}");
    let (status, _) = server.post("png-info", &json!({"image": "%%%"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = server.post("txt2img", &tiny(json!({"script_name": "x/y/z plot"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    let answer = server.post_ok("txt2img", &tiny(json!({}))).await;
    assert_eq!(answer["images"].as_array().unwrap().len(), 1, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_are_queued_and_all_answered() {
    let server = Arc::new(TestServer::open().await);
    let mut requests = tokio::task::JoinSet::new();
    for seed in 0..200u64 {
        let server = server.clone();
        requests.spawn(async move {
            let (status, answer) = server.post("txt2img", &tiny(json!({"steps": 1, "seed": seed}))).await;
            (seed, status, answer)
        });
    }
    let mut answered = 0;
    while let Some(result) = requests.join_next().await {
        let (seed, status, answer) = result.unwrap();
        assert_eq!(status, StatusCode::OK, "seed {seed}: {answer}");
        assert_eq!(info(&answer)["all_seeds"], json!([seed]));
        answered += 1;
    }
    assert_eq!(answered, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required_when_configured() {
    let credentials = Credentials::new(Some("ann:secret"), Some("key-1")).unwrap();
    let server = TestServer::start(ServerConfig { credentials, ..ServerConfig::default() }).await;
    let status = |request: reqwest::RequestBuilder| async move { request.send().await.unwrap().status() };
    let url = server.url("samplers");
    let response = server.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Basic");
    assert_eq!(status(server.client.get(&url).basic_auth("ann", Some("wrong"))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(server.client.get(&url).bearer_auth("key-2")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(server.client.get(&url).basic_auth("ann", Some("secret"))).await, StatusCode::OK);
    assert_eq!(status(server.client.get(&url).bearer_auth("key-1")).await, StatusCode::OK);
    let generate = server.client.post(server.url("txt2img")).json(&tiny(json!({})));
    assert_eq!(status(generate).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_openapi_and_every_route() {
    let server = TestServer::open().await;
    let samplers: Vec<String> =
        server.get("samplers").await.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().into()).collect();
    assert!(samplers.contains(&"Euler a".into()) && samplers.contains(&"DPM++ 2M".into()), "{samplers:?}");
    let schedulers = server.get("schedulers").await;
    assert!(schedulers.as_array().unwrap().iter().any(|s| s["name"] == "karras"), "{schedulers}");
    let upscalers: Vec<String> =
        server.get("upscalers").await.as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap().into()).collect();
    assert_eq!(&upscalers[..2], ["None", "Lanczos"]);
    assert!(upscalers.contains(&"tiny-esrgan-x2".into()), "{upscalers:?}");
    assert_eq!(server.get("scripts").await, json!({"txt2img": [], "img2img": []}));

    let document: Value =
        server.client.get(format!("{}/openapi.json", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(document["openapi"], "3.0.3");
    for (method, path, ..) in openapi::ROUTES {
        assert!(document["paths"][path][method].is_object(), "{method} {path} is described");
        let url = format!("{}{path}", server.base);
        // A body no endpoint accepts: what comes back shows the route exists without running a job.
        let response = match *method {
            "get" => server.client.get(&url).send().await.unwrap(),
            _ => server
                .client
                .post(&url)
                .body(r#"{"steps": "x", "image": 1, "sd_model_checkpoint": 2}"#)
                .send()
                .await
                .unwrap(),
        };
        let routed = [StatusCode::OK, StatusCode::UNPROCESSABLE_ENTITY];
        assert!(routed.contains(&response.status()), "{method} {path} is routed: {}", response.status());
    }
    let properties = &document["components"]["schemas"]["Img2ImgRequest"]["properties"];
    assert_eq!(properties["inpainting_fill"]["type"], "integer");
    assert_eq!(properties["inpaint_full_res"]["type"], "boolean");
    assert_eq!(document["components"]["schemas"]["Txt2ImgRequest"]["properties"]["steps"]["default"], 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extras_upscale_and_png_info_round_trip() {
    let server = TestServer::open().await;
    let generated = server.post_ok("txt2img", &tiny(json!({"negative_prompt": "blurry, dark"}))).await;
    let image = generated["images"][0].clone();
    let (_, text) = decode(&image);
    let text = text.unwrap();

    let answer = server
        .post_ok("png-info", &json!({"image": format!("data:image/png;base64,{}", image.as_str().unwrap())}))
        .await;
    assert_eq!(answer["info"], text);
    assert_eq!(answer["items"]["parameters"], text);
    assert_eq!(answer["parameters"]["Negative prompt"], "blurry, dark");
    assert_eq!(answer["parameters"]["Seed"], "42");
    assert_eq!(
        (answer["parameters"]["Size-1"].as_str(), answer["parameters"]["Size-2"].as_str()),
        (Some("64"), Some("64"))
    );
    let plain = RgbImage::new(4, 4);
    let mut bytes = Vec::new();
    plain.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    let answer = server.post_ok("png-info", &json!({"image": STANDARD.encode(&bytes)})).await;
    assert_eq!(answer["info"], "");

    let answer = server
        .post_ok("extra-single-image", &json!({"image": image, "upscaler_1": "tiny-esrgan-x2", "upscaling_resize": 2}))
        .await;
    let (upscaled, parameters) = decode(&answer["image"]);
    assert_eq!(upscaled.dimensions(), (128, 128));
    let parameters = InfoText::parse(&parameters.unwrap()).unwrap();
    assert_eq!(parameters.get("Postprocess upscaler"), Some("tiny-esrgan-x2"));
    assert_eq!(parameters.get("Seed"), Some("42"), "the picture keeps its own parameters");

    let answer = server
        .post_ok(
            "extra-single-image",
            &json!({"image": fixture_base64("scene_64.png"), "resize_mode": 1,
            "upscaling_resize_w": 100, "upscaling_resize_h": 60, "upscaler_1": "Lanczos"}),
        )
        .await;
    assert_eq!(decode(&answer["image"]).0.dimensions(), (100, 60));
    let (status, answer) = server
        .post("extra-single-image", &json!({"image": fixture_base64("scene_64.png"), "upscaler_1": "nope"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hires_fix_doubles_the_size() {
    let server = TestServer::open().await;
    let answer = server
        .post_ok(
            "txt2img",
            &tiny(json!({"enable_hr": true, "hr_scale": 2, "hr_upscaler": "Latent",
            "denoising_strength": 0.6, "hr_second_pass_steps": 2})),
        )
        .await;
    let (image, parameters) = decode(&answer["images"][0]);
    assert_eq!(image.dimensions(), (128, 128));
    assert!(parameters.unwrap().contains("Hires upscale: 2"));
}
