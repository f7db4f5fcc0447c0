//! The control panel's preview while an annotator runs, through the app's commands on Tauri's mock runtime with the
//! real ONNX Runtime and the tiny annotator fixtures (tests/fixtures/annotators) in the app's models folder: its
//! progress reaches the window's channel, a cancel (from the window, or a newer preview of the same unit) stops it
//! with the cancelled error the window knows from jobs, and a preview left alone is the picture it was before.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use base64::Engine as _;
use image::RgbImage;
use pigment_app::control::{ControlUnitParams, PreviewWatch, preview};
use pigment_app::control_preview::{ControlPreviewProgress, ControlPreviewSink};
use pigment_app::state::AppState;
use pigment_engine::image::control::depth::depth_control;
use pigment_engine::image::control::openpose::openpose_control;
use pigment_engine::image::load_image;
use pigment_engine::model::{DepthModel, PoseModel};
use pigment_engine::pipeline::{Flow, Progress};
use serde_json::{Value, json};
use tauri::test::MockRuntime;
use tauri::{AppHandle, Manager};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(path)
}

/// The app with the depth and openpose fixtures in its models folder's `annotators/`.
fn app_with_annotators() -> common::TestApp {
    let dir = tempfile::tempdir().unwrap();
    for name in ["depth-anything-tiny", "openpose-tiny"] {
        let to = dir.path().join("data/models/annotators").join(name);
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(fixture(&format!("annotators/{name}"))).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
    common::test_app_in(dir)
}

/// Unit `id` of the panel as the window sends it for its preview.
fn unit(id: u64, preprocessor: &str, picture: &str) -> Value {
    let image = base64::engine::general_purpose::STANDARD.encode(std::fs::read(fixture(picture)).unwrap());
    json!({"id": id, "kind": "controlnet", "model": "tiny-canny", "image": image, "preprocessor": preprocessor})
}

fn depth_unit(id: u64) -> Value {
    unit(id, "depth", "images/scene_64.png")
}

fn preprocess(app: &common::TestApp, unit: &Value, width: u32, height: u32) -> Result<Value, Value> {
    app.invoke("preprocess_control", json!({"unit": unit, "width": width, "height": height, "mask": null}))
}

/// The same preview run directly on the app's state, off the test's thread.
fn preview_on_thread(app: &common::TestApp, unit: &Value) -> std::thread::JoinHandle<Result<Value, Value>> {
    let handle: AppHandle<MockRuntime> = app.app.handle().clone();
    let unit: ControlUnitParams = serde_json::from_value(unit.clone()).unwrap();
    std::thread::spawn(move || {
        let state = handle.state::<AppState>();
        let result = state.control_previews.preview(&unit, 64, 64, None, &state.paths.models_folder, &state.runtime);
        result.map(|p| serde_json::to_value(p).unwrap()).map_err(|e| serde_json::to_value(e).unwrap())
    })
}

fn decode_preview(data_url: &str) -> RgbImage {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data_url.strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    image::load_from_memory(&bytes).unwrap().into_rgb8()
}

/// Every file under `dir` with its size.
fn files_in(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            found.extend(files_in(&entry.path()));
        } else {
            found.push((entry.path(), entry.metadata().unwrap().len()));
        }
    }
    found.sort();
    found
}

/// Records the reports; at the first one, cancels its unit's preview as `cancel_control_preview` does.
struct CancelAtFirstReport {
    app: AppHandle<MockRuntime>,
    reports: Mutex<Vec<ControlPreviewProgress>>,
}

impl ControlPreviewSink for CancelAtFirstReport {
    fn send(&self, progress: ControlPreviewProgress) {
        let mut reports = self.reports.lock().unwrap();
        if reports.is_empty() {
            assert!(self.app.state::<AppState>().control_previews.cancel(progress.unit_id), "it is running");
        }
        reports.push(progress);
    }
}

/// Holds the first report (and so its preview, before it looks at its cancel flag) until the test lets it go;
/// later reports pass.
struct HoldFirstReport {
    held: mpsc::Sender<ControlPreviewProgress>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

impl HoldFirstReport {
    /// The sink, where its first report arrives, and the switch that lets it go on.
    fn new() -> (Arc<HoldFirstReport>, mpsc::Receiver<ControlPreviewProgress>, mpsc::Sender<()>) {
        let (held, first) = mpsc::channel();
        let (go, release) = mpsc::channel();
        (Arc::new(HoldFirstReport { held, release: Mutex::new(Some(release)) }), first, go)
    }
}

impl ControlPreviewSink for HoldFirstReport {
    fn send(&self, progress: ControlPreviewProgress) {
        let release = self.release.lock().unwrap().take();
        if let Some(release) = release {
            self.held.send(progress).unwrap();
            release.recv_timeout(Duration::from_secs(120)).expect("the test lets the first preview go on");
        }
    }
}

#[test]
fn a_preview_cancelled_at_its_first_progress_report_answers_cancelled_and_writes_nothing() {
    let app = app_with_annotators();
    let sink = Arc::new(CancelAtFirstReport { app: app.app.handle().clone(), reports: Mutex::new(Vec::new()) });
    app.app.state::<AppState>().control_previews.watch(sink.clone());
    let before = files_in(app.dir.path());

    let error = preprocess(&app, &depth_unit(7), 64, 64).unwrap_err();
    // The error the window already treats as a cancel (jobs', `AppError::is_cancelled`), on no field.
    assert_eq!(error, json!({"kind": "cancelled", "message": "generation cancelled", "field": null}));
    // It stopped at that report, before the annotator's model ran: no second report.
    let steps: Vec<(u64, usize, usize)> =
        sink.reports.lock().unwrap().iter().map(|r| (r.unit_id, r.step, r.steps)).collect();
    assert_eq!(steps, [(7, 0, 1)]);
    assert_eq!(files_in(app.dir.path()), before, "nothing was written");
    assert!(!app.app.state::<AppState>().control_previews.is_running(7), "the cancelled preview is forgotten");

    // The next preview of the unit (the sink cancels only at its first report) is not touched by that cancel.
    assert_eq!(preprocess(&app, &depth_unit(7), 64, 64).unwrap()["module"], "depth_anything");
    assert_eq!(sink.reports.lock().unwrap().len(), 3);
}

#[test]
fn a_newer_preview_of_the_same_unit_cancels_the_one_still_running() {
    let app = app_with_annotators();
    let (sink, first_report, go_on) = HoldFirstReport::new();
    app.app.state::<AppState>().control_previews.watch(sink);

    let first = preview_on_thread(&app, &depth_unit(3));
    let held = first_report.recv_timeout(Duration::from_secs(120)).expect("the first preview reports");
    assert_eq!((held.unit_id, held.step), (3, 0));
    // While the first waits at its report, the panel asks again for the same unit: the newer one runs to its end.
    let second = preprocess(&app, &depth_unit(3), 64, 64).expect("the newer preview succeeds");
    assert_eq!(second["module"], "depth_anything");
    go_on.send(()).unwrap();
    let error = first.join().unwrap().unwrap_err();
    assert_eq!(error["kind"], "cancelled", "{error}");
    assert!(!app.app.state::<AppState>().control_previews.is_running(3));
}

#[test]
fn the_cancel_command_stops_a_running_preview_of_that_unit_only() {
    let app = app_with_annotators();
    let (sink, first_report, go_on) = HoldFirstReport::new();
    app.app.state::<AppState>().control_previews.watch(sink);

    let running = preview_on_thread(&app, &depth_unit(4));
    first_report.recv_timeout(Duration::from_secs(120)).expect("the preview reports");
    // Another unit's number cancels nothing; this unit's does.
    assert_eq!(app.invoke("cancel_control_preview", json!({"unitId": 5})).unwrap(), json!(false));
    assert_eq!(app.invoke("cancel_control_preview", json!({"unitId": 4})).unwrap(), json!(true));
    go_on.send(()).unwrap();
    assert_eq!(running.join().unwrap().unwrap_err()["kind"], "cancelled");
    // Nothing left to cancel.
    assert_eq!(app.invoke("cancel_control_preview", json!({"unitId": 4})).unwrap(), json!(false));
}

#[test]
fn a_preview_reports_its_progress_to_the_window_and_gives_the_picture_it_gave_before() {
    let app = app_with_annotators();
    // The window's channel, as `watch_control_previews` receives it from `new Channel()`.
    app.invoke("watch_control_previews", json!({"onProgress": "__CHANNEL__:21"})).unwrap();
    let state = app.app.state::<AppState>();
    let models_folder = state.paths.models_folder.clone();
    let runtime = common::runtime();
    let never = &mut |_: &Progress| Flow::Continue;
    let cases = [
        (11, "depth", "images/scene_64.png", (64, 64)),
        (12, "openpose", "annotators/reference/openpose/picture_96x64.png", (96, 64)),
    ];
    for (id, preprocessor, picture_file, (width, height)) in cases {
        let sent = unit(id, preprocessor, picture_file);
        let shown = preprocess(&app, &sent, width, height).expect("the preview succeeds");

        let reports = app.messages_until(21, |m| m["step"] == m["steps"]);
        let fractions: Vec<f64> =
            reports.iter().map(|r| r["step"].as_f64().unwrap() / r["steps"].as_f64().unwrap()).collect();
        assert!(reports.iter().all(|r| r["unitId"] == id), "{preprocessor}: {reports:?}");
        assert!(fractions.windows(2).all(|w| w[0] < w[1]), "{preprocessor}: {fractions:?}");
        assert_eq!((fractions.len(), fractions.last()), (2, Some(&1.0)), "{preprocessor}: {fractions:?}");

        // The same PNG as the preview without progress or cancel (the path the panel took before), and the
        // engine's own control picture for that picture and size.
        let parsed: ControlUnitParams = serde_json::from_value(sent).unwrap();
        let before = preview(&parsed, width, height, None, &models_folder, &state.runtime, unwatched()).unwrap();
        assert_eq!(shown, serde_json::to_value(&before).unwrap(), "{preprocessor}");
        let picture = load_image(&fixture(picture_file)).unwrap().image;
        let annotators = models_folder.join("annotators");
        let (engine, _) = match preprocessor {
            "depth" => depth_control(
                &mut DepthModel::open(&runtime, &annotators.join("depth-anything-tiny")).unwrap(),
                &picture,
                width,
                height,
                never,
            ),
            _ => openpose_control(
                &mut PoseModel::open(&runtime, &annotators.join("openpose-tiny")).unwrap(),
                &picture,
                width,
                height,
                never,
            ),
        }
        .unwrap();
        assert_eq!(decode_preview(shown["image"].as_str().unwrap()), engine.image, "{preprocessor}");
        assert!(!state.control_previews.is_running(id));
    }
}

/// A preview that nothing watches: no progress shown, never cancelled. (The closure captures nothing: leaking its
/// box allocates nothing.)
fn unwatched() -> PreviewWatch<'static> {
    PreviewWatch { progress: Box::leak(Box::new(|_: &Progress| Flow::Continue)), cancel: None }
}
