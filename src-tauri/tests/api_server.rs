//! The A1111-compatible API served inside the app: switched on from the settings, its jobs run through the app's
//! queue on the real engine with the demo model, and its images are the files saved in the output folder.

mod common;

use std::path::Path;

use base64::Engine as _;
use pigment_app::api_server::{self, ApiServerSettings};
use pigment_app::state::AppState;
use serde_json::{Value, json};
use tauri::test::{MockRuntime, mock_builder, mock_context, noop_assets};
use tauri::{App, Manager};

fn app(dir: &Path) -> App<MockRuntime> {
    pigment_app::configure(mock_builder()).manage(common::app_state(dir)).build(mock_context(noop_assets())).unwrap()
}

fn pngs(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(folder)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.retain(|p| p.extension().is_some_and(|e| e == "png"));
    found.sort();
    found
}

#[test]
fn the_settings_switch_serves_the_api_through_the_apps_queue() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let handle = app.handle().clone();
    // Port 0: the system picks a free one, so tests never collide.
    let address = api_server::apply(&handle, ApiServerSettings { enabled: true, port: 0 }).unwrap().unwrap();
    assert!(address.ip().is_loopback(), "{address}");
    let url = |path: &str| format!("http://{address}{path}");

    tauri::async_runtime::block_on(async {
        let client = reqwest::Client::new();
        let models: Value = client.get(url("/sdapi/v1/sd-models")).send().await.unwrap().json().await.unwrap();
        assert!(models.as_array().unwrap().iter().any(|m| m["model_name"] == "tiny-sd"), "{models}");

        let answer = client
            .post(url("/sdapi/v1/txt2img"))
            .json(&json!({"prompt": "a red house", "steps": 3, "width": 64, "height": 64, "seed": 11,
                          "sampler_name": "Euler", "batch_size": 2}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let answer: Value = answer.json().await.unwrap();
        let images = answer["images"].as_array().unwrap();
        assert_eq!(images.len(), 2, "{answer}");
        let info: Value = serde_json::from_str(answer["info"].as_str().unwrap()).unwrap();
        assert_eq!(info["all_seeds"], json!([11, 12]));

        // What the client got is what the app saved in its output folder (and so what its gallery shows).
        let saved = pngs(&dir.path().join("outputs"));
        assert_eq!(saved.len(), 2, "{saved:?}");
        for (encoded, file) in images.iter().zip(&saved) {
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap()).unwrap();
            let returned = image::load_from_memory(&bytes).unwrap().to_rgb8();
            assert_eq!(returned, image::open(file).unwrap().to_rgb8(), "{}", file.display());
        }

        // A model the app does not know is refused by name; a known one is chosen.
        let unknown = client
            .post(url("/sdapi/v1/options"))
            .json(&json!({"sd_model_checkpoint": "no-such-model"}))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
        assert!(unknown.text().await.unwrap().contains("no-such-model"));
        let chosen = client
            .post(url("/sdapi/v1/options"))
            .json(&json!({"sd_model_checkpoint": "tiny-sd"}))
            .send()
            .await
            .unwrap();
        assert_eq!(chosen.status(), 200);
        let options: Value = client.get(url("/sdapi/v1/options")).send().await.unwrap().json().await.unwrap();
        assert_eq!(options["sd_model_checkpoint"], "tiny-sd");

        // Upscaler models belong to `pigment serve`; the app's API says so instead of failing obscurely.
        let upscale = client
            .post(url("/sdapi/v1/txt2img"))
            .json(&json!({"prompt": "x", "steps": 2, "width": 64, "height": 64, "enable_hr": true,
                          "hr_upscaler": "no-such-upscaler"}))
            .send()
            .await
            .unwrap();
        assert!(upscale.status().is_client_error(), "{}", upscale.status());
    });

    // Switched off: the port is closed.
    assert_eq!(api_server::apply(&handle, ApiServerSettings { enabled: false, port: 0 }).unwrap(), None);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(std::net::TcpStream::connect(address).is_err(), "the server still answers on {address}");
    app.state::<AppState>().shutdown();
}

#[test]
fn a_port_in_use_is_an_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = api_server::apply(app.handle(), ApiServerSettings { enabled: true, port }).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("apiServer.port") && text.contains(&port.to_string()), "{text}");
    app.state::<AppState>().shutdown();
}

/// The API's skip drops the running job's current batch and the job goes on with the next, as in `pigment serve`:
/// batch 0 is skipped while it samples, batch 1 finishes, and only batch 1's images are answered and saved.
#[test]
fn skip_drops_the_current_batch_and_the_job_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let handle = app.handle().clone();
    let address = api_server::apply(&handle, ApiServerSettings { enabled: true, port: 0 }).unwrap().unwrap();
    let url = move |path: &str| format!("http://{address}{path}");

    tauri::async_runtime::block_on(async {
        let client = reqwest::Client::new();
        let job = {
            let (client, url) = (client.clone(), url("/sdapi/v1/txt2img"));
            tokio::spawn(async move {
                let body = json!({"prompt": "a red house", "steps": 300, "width": 64, "height": 64, "seed": 21,
                                  "sampler_name": "Euler", "n_iter": 2});
                client.post(url).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
            })
        };
        loop {
            let progress: Value = client.get(url("/sdapi/v1/progress")).send().await.unwrap().json().await.unwrap();
            if progress["state"]["job_no"] == 0 && progress["state"]["sampling_step"].as_u64().unwrap_or(0) > 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let skipped = client.post(url("/sdapi/v1/skip")).json(&json!({})).send().await.unwrap();
        assert_eq!(skipped.status(), 200);
        let answer = job.await.unwrap();
        let info: Value = serde_json::from_str(answer["info"].as_str().unwrap()).unwrap();
        assert_eq!(info["all_seeds"], json!([22]), "batch 1 (seed 21 + 1) only: {answer}");
        assert_eq!(pngs(&dir.path().join("outputs")).len(), 1);
    });
    app.state::<AppState>().shutdown();
}
