//! The commands as the window calls them, through Tauri's mock runtime (`tauri::test`), on the real engine with
//! the bundled demo model and the real ONNX Runtime.

mod common;

use std::path::{Path, PathBuf};

use common::{TestApp, test_app, test_app_in};
use pigment_app::state::AppState;
use serde_json::{Value, json};
use tauri::Manager;

impl TestApp {
    fn demo_model_id(&self) -> String {
        let models = self.invoke("list_models", json!({})).unwrap();
        models.as_array().unwrap().iter().find(|m| m["source"] == "bundled").expect("the demo model")["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn params(&self, change: impl FnOnce(&mut Value)) -> Value {
        let mut params = json!({
            "modelId": self.demo_model_id(), "prompt": "a lighthouse", "negativePrompt": "",
            "sampler": "euler_a", "schedule": "automatic", "steps": 4, "cfgScale": 7.0, "seed": 42,
            "width": 64, "height": 64, "batchSize": 1, "batchCount": 1
        });
        change(&mut params);
        params
    }

    /// Submits on channel `channel`; returns the job id.
    fn submit(&self, params: Value, channel: u32) -> Result<Value, Value> {
        self.invoke("submit_job", json!({"params": params, "onEvent": format!("__CHANNEL__:{channel}")}))
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    let mut kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    kinds.dedup();
    kinds
}

#[test]
fn a_job_streams_progress_with_previews_and_saves_its_image_then_the_next_job_reuses_the_sessions() {
    let app = test_app();
    let id = app.submit(app.params(|_| {}), 11).unwrap();
    assert!(id.as_u64().is_some(), "{id}");
    let events = app.events_until_done(11);
    assert_eq!(kinds(&events), ["queued", "started", "loadingModel", "progress", "image", "finished"], "{events:#?}");

    let image = events.iter().find(|e| e["kind"] == "image").unwrap();
    let path = PathBuf::from(image["path"].as_str().unwrap());
    assert_eq!(path.parent().unwrap(), app.dir.path().join("outputs"));
    assert_eq!(path.file_name().unwrap(), "00000-42.png");
    assert_eq!((image["seed"].as_u64(), image["width"].as_u64()), (Some(42), Some(64)));
    let parameters = pigment_engine::image::read_png_text(&path, "parameters").unwrap().unwrap();
    assert!(parameters.starts_with("a lighthouse\n") && parameters.contains("Seed: 42"), "{parameters}");

    let steps: Vec<u64> =
        events.iter().filter(|e| e["stage"] == "denoising").map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(steps.last(), Some(&4), "the last step is always reported");
    let preview = events.iter().find_map(|e| e["preview"].as_str()).expect("a preview");
    assert!(preview.starts_with("data:image/png;base64,"));
    assert!(events.iter().any(|e| e["etaMs"].is_u64()), "an ETA once steps are timed");

    let _ = app.submit(app.params(|p| p["seed"] = json!(7)), 12).unwrap();
    let events = app.events_until_done(12);
    assert_eq!(kinds(&events), ["queued", "started", "progress", "image", "finished"], "no reload: {events:#?}");
    assert!(app.dir.path().join("outputs/00001-7.png").is_file());
}

#[test]
fn bad_parameters_are_refused_at_submit_naming_the_field() {
    let app = test_app();
    let error = app.submit(app.params(|p| p["width"] = json!(100)), 21).unwrap_err();
    assert_eq!(error["field"], "width");
    assert_eq!(error["kind"], "engine");
    assert!(error["message"].as_str().unwrap().contains("width: 100 (must be a positive multiple of 8)"), "{error}");

    let error = app.submit(app.params(|p| p["sampler"] = json!("Heun++")), 22).unwrap_err();
    assert_eq!(error["field"], "sampler");
    let error = app.submit(app.params(|p| p["modelId"] = json!("/nowhere")), 23).unwrap_err();
    assert_eq!(error["field"], "model");
    assert_eq!(app.invoke("list_jobs", json!({})).unwrap(), json!([]));
}

#[test]
fn a_long_job_is_cancelled_mid_sampling_and_a_waiting_one_can_be_moved_and_cancelled() {
    let app = test_app();
    let long = app.submit(app.params(|p| p["steps"] = json!(1000)), 31).unwrap();
    // Once it runs, the jobs queued after it are the waiting ones that can be moved.
    while app.next_event(31)["kind"] != "started" {}
    let first = app.submit(app.params(|_| {}), 32).unwrap();
    let second = app.submit(app.params(|_| {}), 33).unwrap();
    app.invoke("move_job", json!({"id": second, "index": 0})).unwrap();
    let listed: Vec<Value> =
        app.invoke("list_jobs", json!({})).unwrap().as_array().unwrap().iter().map(|j| j["id"].clone()).collect();
    assert_eq!(listed, [long.clone(), second.clone(), first.clone()]);
    app.invoke("cancel_job", json!({"id": first})).unwrap();

    // Wait until the long job is sampling, then cancel it.
    loop {
        let event = app.next_event(31);
        if event["stage"] == "denoising" && event["step"].as_u64() >= Some(3) {
            break;
        }
    }
    app.invoke("cancel_job", json!({"id": long})).unwrap();
    let events = app.events_until_done(31);
    assert_eq!(events.last().unwrap()["kind"], "cancelled");
    let last_step = events.iter().filter_map(|e| e["step"].as_u64()).max().unwrap_or(0);
    assert!(last_step < 1000, "stopped mid-sampling at step {last_step}");
    assert_eq!(app.events_until_done(32).last().unwrap()["kind"], "cancelled");
    assert_eq!(app.events_until_done(33).last().unwrap()["kind"], "finished");

    let error = app.invoke("cancel_job", json!({"id": 999})).unwrap_err();
    assert_eq!(error["kind"], "unknown_job");
}

#[test]
fn settings_are_saved_and_paths_the_user_did_not_pick_are_refused() {
    let app = test_app();
    let settings = app.invoke("get_settings", json!({})).unwrap();
    assert_eq!(settings["theme"], "system");
    let update =
        json!({"outputFolder": null, "defaultModel": null, "device": "cpu", "precision": "fp32", "theme": "dark"});
    let saved = app.invoke("save_settings", json!({"update": update})).unwrap();
    assert_eq!(saved["settings"]["theme"], "dark");
    assert_eq!(saved["restartNeeded"], true, "the device applies at the next start");
    let file = std::fs::read_to_string(app.dir.path().join("config/settings.json")).unwrap();
    assert!(file.contains("\"theme\": \"dark\"") && file.contains("\"device\": \"cpu\""), "{file}");
    // The GPU memory mode is a runtime option too: it applies at the next start.
    let update = json!({"outputFolder": null, "defaultModel": null, "device": "auto", "precision": "auto",
        "gpuMemory": "medium", "theme": "dark"});
    let saved = app.invoke("save_settings", json!({"update": update})).unwrap();
    assert_eq!((&saved["settings"]["gpuMemory"], &saved["restartNeeded"]), (&json!("medium"), &json!(true)));
    let update = json!({"outputFolder": null, "defaultModel": null, "device": "auto", "precision": "auto",
        "gpuMemory": "auto", "theme": "dark"});
    let saved = app.invoke("save_settings", json!({"update": update})).unwrap();
    assert_eq!(saved["restartNeeded"], false, "back to what the app started with");
    let update = json!({"outputFolder": null, "defaultModel": null, "device": "auto", "precision": "auto",
        "gpuMemory": "most", "theme": "dark"});
    assert!(app.invoke("save_settings", json!({"update": update})).is_err(), "an unknown GPU memory mode");

    let sneaky =
        json!({"outputFolder": "/etc", "defaultModel": null, "device": "auto", "precision": "auto", "theme": "dark"});
    let error = app.invoke("save_settings", json!({"update": sneaky})).unwrap_err();
    assert_eq!(error["kind"], "path_not_allowed", "{error}");

    for (command, path) in [("copy_image", "/etc/passwd"), ("save_image_as", "/etc/hostname")] {
        let error = app.invoke(command, json!({"path": path})).unwrap_err();
        assert_eq!(error["kind"], "path_not_allowed", "{command}: {error}");
    }
    let escape = app.dir.path().join("outputs/../config/settings.json");
    let error = app.invoke("copy_image", json!({"path": escape})).unwrap_err();
    assert!(error["message"].as_str().unwrap().contains("outside"), "{error}");
}

#[test]
fn a_corrupt_settings_file_falls_back_to_defaults_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/settings.json"), "{not json").unwrap();
    let app = test_app_in(dir);
    let info = app.invoke("app_info", json!({})).unwrap();
    let notice = info["settingsNotice"].as_str().expect("a notice");
    assert!(notice.contains("using defaults"), "{notice}");
    assert_eq!(app.invoke("get_settings", json!({})).unwrap()["theme"], "system");
    assert!(info["executionProvider"].as_str().unwrap().starts_with("CPU"), "{info}");
}

#[test]
fn a_model_folder_is_inspected_with_the_engine_and_listed_once_added() {
    let app = test_app();
    let state = app.window.state::<AppState>();
    let demo = pigment_engine::model::find_demo_model().unwrap();
    // A copy outside the app's folders, as the user would pick in the dialog.
    let picked = app.dir.path().join("picked/tiny-copy");
    copy_folder(&demo, &picked);
    let report = state.add_model_folder(&picked).unwrap();
    assert_eq!(report.entry.name, "tiny-copy");
    assert!(!report.inpainting && report.has_vae_encoder);
    assert!(report.components.iter().any(|c| c.starts_with("unet: in sample")), "{:?}", report.components);
    let models = app.invoke("list_models", json!({})).unwrap();
    assert!(models.as_array().unwrap().iter().any(|m| m["source"] == "added" && m["name"] == "tiny-copy"));

    let broken = app.dir.path().join("picked/broken");
    std::fs::create_dir_all(broken.join("tokenizer")).unwrap();
    let error = state.add_model_folder(&broken).unwrap_err().to_string();
    assert!(error.contains("broken") && error.contains("tokenizer"), "{error}");

    let inspected = app.invoke("inspect_model", json!({"id": app.demo_model_id()})).unwrap();
    assert_eq!(inspected["entry"]["source"], "bundled");
}

#[test]
fn the_capability_grants_exactly_pigments_commands_and_each_is_registered() {
    let capability: Value =
        serde_json::from_str(include_str!("../capabilities/main-window.json")).expect("valid capability JSON");
    assert_eq!(capability["windows"], json!(["main"]));
    let granted: Vec<&str> =
        capability["permissions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    let expected: Vec<String> =
        pigment_app::command_names::NAMES.iter().map(|n| format!("allow-{}", n.replace('_', "-"))).collect();
    assert_eq!(granted, expected);

    let app = test_app();
    for name in pigment_app::command_names::NAMES {
        // The two folder pickers would open a dialog; every other command answers (maybe with an argument error).
        if matches!(*name, "add_model_folder" | "pick_output_folder") {
            continue;
        }
        let answer = app.invoke(name, json!({}));
        let text = format!("{answer:?}");
        assert!(!text.contains("not found"), "{name} is not registered: {text}");
    }
    let unknown = app.invoke("read_any_file", json!({"path": "/etc/passwd"})).unwrap_err();
    assert!(unknown.to_string().contains("not found"), "{unknown}");
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() { copy_folder(&path, &target) } else { std::fs::copy(&path, &target).map(|_| ()).unwrap() }
    }
}
