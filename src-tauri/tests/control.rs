//! The control panel's jobs as the window sends them (JSON params, control pictures as base64 PNG), run by the
//! app's real job queue with the real ONNX Runtime on the ControlNet fixtures (tests/fixtures/models/tiny-sd-control
//! and tests/fixtures/controlnet, copied into the app's models folder), checked against the engine run directly on
//! the same request; and every bad control value refused at submit, naming its field. The annotator preprocessors
//! (depth, openpose) run in the job on the tiny annotator fixtures (tests/fixtures/annotators) and give the
//! engine's own control pictures.

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use base64::Engine as _;
use image::{DynamicImage, ImageFormat, RgbImage};
use pigment_app::control::{ControlKind, ControlUnitParams, PreviewWatch, annotators_in, control_models_in, preview};
use pigment_app::models::{GenerateParams, JobEvent};
use pigment_app::queue::{EventSink, JobId};
use pigment_app::state::AppState;
use pigment_engine::image::control::depth::depth_control;
use pigment_engine::image::control::openpose::openpose_control;
use pigment_engine::image::control::{Preprocessor, control_image};
use pigment_engine::image::{load_image, read_png_text};
use pigment_engine::model::{AnnotatorKind, DepthModel, LoadedModel, PoseModel, ResidualKind};
use pigment_engine::pipeline::{
    ControlSpec, ControlUnitSpec, Flow, GenerateRequest, GeneratedImage, Generation, GenerationObserver,
    PendingAnnotation, Progress, Resources, Stage, generate,
};
use pigment_engine::schedulers::Sampler;
use serde_json::{Value, json};

struct Collector(Mutex<mpsc::Sender<JobEvent>>);

impl EventSink for Collector {
    fn send(&self, event: JobEvent) {
        let _ = self.0.lock().unwrap().send(event);
    }
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(path)
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The app's state in `dir` with the control base model and the ControlNets and adapter in its models folder.
fn state_with_control_models(dir: &Path) -> AppState {
    let models = dir.join("data/models");
    copy_folder(&fixture("models/tiny-sd-control"), &models.join("tiny-sd-control"));
    for (from, name) in [
        ("controlnet/tiny-canny", "tiny-canny"),
        ("controlnet/tiny-wide", "tiny-wide"),
        ("adapter/tiny-adapter", "tiny-adapter"),
    ] {
        copy_folder(&fixture(from), &models.join(name));
    }
    common::app_state(dir)
}

fn base64_png(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

/// The reference case of tests/fixtures/reference/controlnet/cases.json (`canny_euler`), with one canny unit.
fn params(state: &AppState, unit: Value) -> Value {
    let base = state.models().into_iter().find(|m| m.name == "tiny-sd-control").expect("the base model is listed");
    json!({
        "modelId": base.id, "prompt": "a house", "negativePrompt": "", "sampler": "euler", "schedule": "automatic",
        "steps": 8, "cfgScale": 7.5, "seed": 31, "width": 64, "height": 64, "batchSize": 1, "batchCount": 1,
        "controls": [unit]
    })
}

fn canny_unit() -> Value {
    json!({"kind": "controlnet", "model": "tiny-canny", "image": base64_png(&fixture("images/scene_64.png")),
        "preprocessor": "canny", "cannyLow": 100, "cannyHigh": 200})
}

/// Submits `params` as the window sends them and waits for the job's last event.
fn run_job(state: &AppState, params: Value) -> Result<Vec<PathBuf>, Value> {
    let params: GenerateParams = serde_json::from_value(params).expect("the window's JSON");
    let (tx, rx) = mpsc::channel();
    state.submit(&params, Box::new(Collector(Mutex::new(tx)))).expect("accepted");
    let mut saved = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(180)).expect("the job ends") {
            JobEvent::Image(image) => saved.push(image.path),
            JobEvent::Finished { .. } => return Ok(saved),
            JobEvent::Failed { error } => return Err(serde_json::to_value(error).unwrap()),
            JobEvent::Cancelled { .. } => panic!("cancelled"),
            _ => {}
        }
    }
}

/// The submit error for `params` as the window receives it (`{kind, message, field}`).
fn refusal(state: &AppState, params: Value) -> Value {
    let params: GenerateParams = serde_json::from_value(params).expect("the window's JSON");
    let (tx, _rx) = mpsc::channel();
    serde_json::to_value(state.submit(&params, Box::new(Collector(Mutex::new(tx)))).unwrap_err()).unwrap()
}

struct Images(Vec<RgbImage>);

impl GenerationObserver for Images {
    fn progress(&mut self, _: &Progress) -> Flow {
        Flow::Continue
    }

    fn image(&mut self, image: GeneratedImage) -> pigment_engine::Result<()> {
        self.0.push(image.image);
        Ok(())
    }
}

/// The same generation through the engine alone, as `pigment generate --control ... --preprocess canny` runs it.
fn engine_result() -> RgbImage {
    let runtime = common::runtime();
    let base = fixture("models/tiny-sd-control");
    let picture = load_image(&fixture("images/scene_64.png")).unwrap().image;
    let (image, preprocessing) =
        control_image(picture, Some(Preprocessor::Canny { low: 100.0, high: 200.0 }), 64, 64).unwrap();
    let unit = ControlUnitSpec {
        kind: ResidualKind::ControlNet,
        model: fixture("controlnet/tiny-canny"),
        image,
        preprocessing,
        weight: 1.0,
        start: 0.0,
        end: 1.0,
        annotation: None,
    };
    let spec = ControlSpec { units: vec![unit], ..ControlSpec::default() };
    let params = GenerateRequest {
        prompt: "a house".into(),
        seed: Some(31),
        steps: 8,
        cfg_scale: 7.5,
        sampler: Sampler::Euler,
        width: 64,
        height: 64,
        ..GenerateRequest::default()
    };
    let generation = Generation { control: spec, ..Generation::text(params) };
    let mut model = LoadedModel::open(&runtime, &base).unwrap();
    let mut images = Images(Vec::new());
    generate(Resources::new(&mut model), &generation, &mut images).unwrap();
    images.0.remove(0)
}

fn rgb(path: &Path) -> RgbImage {
    image::open(path).unwrap().into_rgb8()
}

#[test]
fn a_controlnet_job_gives_the_engines_pixels_and_saves_its_control_image() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_control_models(dir.path());

    // The ControlNets and the adapter are listed for the panel, not as base models.
    let listed = control_models_in(&state.paths.models_folder);
    let names: Vec<(&str, ControlKind, Option<&str>)> =
        listed.iter().map(|m| (m.name.as_str(), m.kind, m.family.as_deref())).collect();
    assert_eq!(
        names,
        [
            ("tiny-adapter", ControlKind::Adapter, Some("SD 1.x/2.x")),
            ("tiny-canny", ControlKind::Controlnet, Some("SD 1.x")),
            ("tiny-wide", ControlKind::Controlnet, Some("SD 1.x"))
        ]
    );
    assert!(state.models().iter().all(|m| !m.name.starts_with("tiny-canny") && m.name != "tiny-adapter"));

    let saved = run_job(&state, params(&state, canny_unit())).expect("the job runs");
    assert_eq!(saved.len(), 1);
    let result = rgb(&saved[0]);
    assert_eq!(result, engine_result(), "the app's pixels are the engine's for the same request");
    // And within the CLI's tolerance of diffusers' StableDiffusionControlNetPipeline on this case.
    let reference = rgb(&fixture("reference/controlnet/canny_euler.png"));
    let largest = result.as_raw().iter().zip(reference.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(largest <= 3, "differs from diffusers by {largest}/255");

    // The preprocessed control picture beside the result, as `pigment` names it: OpenCV's Canny of the picture.
    let outputs = dir.path().join("outputs");
    let control_file = outputs.join("00000-control-0.png");
    assert_eq!(saved[0], outputs.join("00000-31.png"));
    assert_eq!(rgb(&control_file), rgb(&fixture("reference/controlnet/canny_64_rgb.png")));
    let parameters = read_png_text(&saved[0], "parameters").unwrap().unwrap();
    assert!(
        parameters.contains(
            "ControlNet 0: \"Module: canny, Model: tiny-canny, Weight: 1, Resize Mode: Just Resize, Threshold A: 100, \
             Threshold B: 200, Guidance Start: 0, Guidance End: 1"
        ),
        "{parameters}"
    );

    // The panel's preview is the same picture the job used.
    let unit: ControlUnitParams = serde_json::from_value(canny_unit()).unwrap();
    let shown = preview(&unit, 64, 64, None, &state.paths.models_folder, &state.runtime, unwatched()).unwrap();
    assert_eq!((shown.module.as_str(), shown.width, shown.height), ("canny", 64, 64));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(shown.image.strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    assert_eq!(image::load_from_memory(&bytes).unwrap().into_rgb8(), rgb(&control_file));

    // A ControlNet made for another family fails the job with the engine's message naming both.
    let mut wide = canny_unit();
    wide["model"] = json!("tiny-wide");
    let error = run_job(&state, params(&state, wide)).unwrap_err();
    assert_eq!(error["field"], "model");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("ControlNet tiny-wide") && message.contains("48 wide"), "{message}");
    assert!(!outputs.join("00001-control-0.png").exists(), "no control picture for a failed job");
    state.shutdown();
}

#[test]
fn a_disabled_unit_is_skipped_and_a_picture_used_as_it_is_is_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_control_models(dir.path());
    let mut as_it_is = canny_unit();
    as_it_is["image"] = json!(base64_png(&fixture("reference/controlnet/canny_64_rgb.png")));
    as_it_is["preprocessor"] = json!("none");
    let disabled = json!({"enabled": false, "kind": "controlnet", "model": "nowhere", "image": "not a picture"});
    let mut job = params(&state, as_it_is);
    job["controls"].as_array_mut().unwrap().push(disabled);
    let saved = run_job(&state, job).expect("the disabled unit is not even read");
    // The same control picture as the canny unit's, given ready-made: the same pixels, and no copy of it.
    assert_eq!(rgb(&saved[0]), engine_result());
    let files: Vec<_> =
        std::fs::read_dir(dir.path().join("outputs")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["00000-31.png"]);
    let parameters = read_png_text(&saved[0], "parameters").unwrap().unwrap();
    assert!(
        parameters.contains("ControlNet 0: \"Module: none, Model: tiny-canny") && !parameters.contains("ControlNet 1")
    );
    state.shutdown();
}

#[test]
fn each_bad_control_value_is_refused_at_submit_naming_its_field_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_control_models(dir.path());
    let with = |changes: Value| {
        let mut unit = canny_unit();
        for (key, value) in changes.as_object().unwrap() {
            unit[key] = value.clone();
        }
        unit
    };
    let not_png = base64::engine::general_purpose::STANDARD.encode(b"these are not pixels");
    let cases: Vec<(Value, &str, Vec<&str>)> = vec![
        (
            with(json!({"model": "tiny-depth"})),
            "control_model",
            vec!["control unit 1", "\"tiny-depth\"", "tiny-canny, tiny-wide"],
        ),
        (
            with(json!({"kind": "adapter"})),
            "control_model",
            vec!["\"tiny-canny\" is not a T2I-Adapter", "tiny-adapter"],
        ),
        (with(json!({"weight": 11.0})), "control_weight", vec!["control weight: 11", "control unit 1"]),
        (with(json!({"weight": -0.5})), "control_weight", vec!["control weight: -0.5"]),
        (with(json!({"start": 0.8, "end": 0.2})), "control_start", vec!["control start: 0.8", "below the end, 0.2"]),
        (with(json!({"end": 1.5})), "control_end", vec!["control end: 1.5"]),
        (with(json!({"image": "@@@"})), "control_image", vec!["control unit 1", "not base64"]),
        (with(json!({"image": not_png})), "control_image", vec!["not an image"]),
        (with(json!({"cannyHigh": 300})), "canny_high", vec!["canny high: 300"]),
        (with(json!({"cannyLow": 250})), "canny_low", vec!["canny low: 250", "canny high, 200"]),
        (with(json!({"preprocessor": "depth"})), "preprocessor", vec!["control unit 1", "depth needs an annotator"]),
        (with(json!({"preprocessor": "openpose"})), "preprocessor", vec!["openpose needs an annotator", "annotators"]),
        (with(json!({"preprocessor": "hed"})), "preprocessor", vec!["preprocessor: hed", "canny"]),
        (with(json!({"preprocessor": "inpaint"})), "control_mask", vec!["needs a mask"]),
    ];
    for (unit, field, expected) in cases {
        let error = refusal(&state, params(&state, unit.clone()));
        assert_eq!(error["field"], field, "{unit}: {error}");
        let message = error["message"].as_str().unwrap();
        for part in expected {
            assert!(message.contains(part), "{field}: {message:?} lacks {part:?}");
        }
    }
    let mut job = params(&state, canny_unit());
    job["adapterFactor"] = json!(2.0);
    let error = refusal(&state, job);
    assert_eq!(error["field"], "adapter_conditioning_factor");
    assert!(error["message"].as_str().unwrap().contains("adapter conditioning factor: 2"), "{error}");
    let mut job = params(&state, canny_unit());
    job["controls"].as_array_mut().unwrap().push(with(json!({"kind": "adapter", "model": "tiny-adapter"})));
    let error = refusal(&state, job);
    assert_eq!(error["field"], "adapter");
    assert!(error["message"].as_str().unwrap().contains("1 adapters with 1 ControlNets"), "{error}");
    assert!(!dir.path().join("outputs").read_dir().unwrap().any(|_| true), "nothing was written");
    state.shutdown();
}

#[test]
fn the_window_lists_control_models_and_previews_a_unit_through_its_commands() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("data/models");
    copy_folder(&fixture("controlnet/tiny-canny"), &models.join("tiny-canny"));
    let app = common::test_app_in(dir);
    let listed = app.invoke("list_control_models", json!({})).unwrap();
    let models = &listed["models"];
    assert_eq!(models[0]["name"], "tiny-canny");
    assert_eq!((models[0]["kind"].as_str(), models[0]["contextWidth"].as_u64()), (Some("controlnet"), Some(32)));
    // No annotator installed: both are listed without a folder, with the folder to install them in.
    let looked_in = app.dir.path().join("data/models/annotators");
    assert_eq!(
        listed["annotators"],
        json!([
            {"name": "depth", "folder": null, "lookedIn": looked_in},
            {"name": "openpose", "folder": null, "lookedIn": looked_in}
        ])
    );

    let unit = canny_unit();
    let shown =
        app.invoke("preprocess_control", json!({"unit": unit, "width": 64, "height": 64, "mask": null})).unwrap();
    assert_eq!((shown["module"].as_str(), shown["width"].as_u64()), (Some("canny"), Some(64)));
    assert_eq!(shown["params"], json!([["Threshold A", "100"], ["Threshold B", "200"]]));
    let error =
        app.invoke("preprocess_control", json!({"unit": unit, "width": 60, "height": 64, "mask": null})).unwrap_err();
    assert_eq!(error["field"], "width");
    // `inpaint` marks the mask's white area; the preview shows it black.
    let mask = {
        let mask = image::GrayImage::from_fn(64, 64, |x, _| image::Luma([if x < 32 { 255 } else { 0 }]));
        let mut bytes = Cursor::new(Vec::new());
        DynamicImage::ImageLuma8(mask).write_to(&mut bytes, ImageFormat::Png).unwrap();
        base64::engine::general_purpose::STANDARD.encode(bytes.into_inner())
    };
    let mut inpaint = canny_unit();
    inpaint["preprocessor"] = json!("inpaint");
    let shown =
        app.invoke("preprocess_control", json!({"unit": inpaint, "width": 64, "height": 64, "mask": mask})).unwrap();
    assert_eq!(shown["module"], "inpaint_only");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(shown["image"].as_str().unwrap().strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    let picture = image::load_from_memory(&bytes).unwrap().into_rgb8();
    let scene = load_image(&fixture("images/scene_64.png")).unwrap().image;
    assert_eq!(picture.get_pixel(5, 5).0, [0, 0, 0]);
    assert_eq!(picture.get_pixel(50, 5), scene.get_pixel(50, 5));
}

/// The tiny annotator fixtures in the models folder's `annotators/`.
fn install_annotators(state: &AppState) {
    let annotators = state.paths.models_folder.join("annotators");
    for name in ["depth-anything-tiny", "openpose-tiny"] {
        copy_folder(&fixture(&format!("annotators/{name}")), &annotators.join(name));
    }
}

/// Sends the job's events to a channel; cancels the job at its first preprocessing report when asked.
struct JobWatcher {
    events: Mutex<mpsc::Sender<JobEvent>>,
    cancel_at_preprocessing: Option<(Arc<AppState>, Arc<OnceLock<JobId>>)>,
}

impl EventSink for JobWatcher {
    fn send(&self, event: JobEvent) {
        if let (JobEvent::Progress(report), Some((state, id))) = (&event, &self.cancel_at_preprocessing)
            && report.stage == Stage::Preprocessing
        {
            // The worker may report before `submit` has returned the id.
            let id = loop {
                if let Some(id) = id.get() {
                    break *id;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            state.cancel(id).unwrap();
        }
        let _ = self.events.lock().unwrap().send(event);
    }
}

/// Submits `params` and returns every event of the job, up to its last.
fn job_events(state: &Arc<AppState>, params: Value, cancel_at_preprocessing: bool) -> Vec<JobEvent> {
    let params: GenerateParams = serde_json::from_value(params).expect("the window's JSON");
    let (tx, rx) = mpsc::channel();
    let id = Arc::new(OnceLock::new());
    let watcher = JobWatcher {
        events: Mutex::new(tx),
        cancel_at_preprocessing: cancel_at_preprocessing.then(|| (state.clone(), id.clone())),
    };
    id.set(state.submit(&params, Box::new(watcher)).expect("accepted")).unwrap();
    let mut events = Vec::new();
    loop {
        let event = rx.recv_timeout(Duration::from_secs(180)).expect("the job ends");
        let last = matches!(event, JobEvent::Finished { .. } | JobEvent::Failed { .. } | JobEvent::Cancelled { .. });
        events.push(event);
        if last {
            return events;
        }
    }
}

fn decode_preview(data_url: &str) -> RgbImage {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data_url.strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    image::load_from_memory(&bytes).unwrap().into_rgb8()
}

#[test]
fn depth_and_openpose_units_run_their_annotator_in_the_job_and_save_the_engines_picture() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state_with_control_models(dir.path()));
    install_annotators(&state);
    let models_folder = state.paths.models_folder.clone();
    // The annotators folder is not a (broken) base model; the panel is told both annotators are installed.
    assert!(state.models().iter().all(|m| m.name != "annotators"), "{:?}", state.models());
    let annotators: Vec<_> = annotators_in(&models_folder).into_iter().map(|a| (a.name, a.folder.unwrap())).collect();
    assert_eq!(
        annotators,
        [
            ("depth".to_string(), models_folder.join("annotators/depth-anything-tiny")),
            ("openpose".to_string(), models_folder.join("annotators/openpose-tiny"))
        ]
    );
    let runtime = common::runtime();
    let outputs = dir.path().join("outputs");
    let cases = [
        ("depth", "images/scene_64.png", (64, 64), "depth_anything", "depth-anything-tiny"),
        ("openpose", "annotators/reference/openpose/picture_96x64.png", (96, 64), "openpose", "openpose-tiny"),
    ];
    for (number, (preprocessor, picture_file, (width, height), module, folder)) in cases.into_iter().enumerate() {
        let unit = json!({"kind": "controlnet", "model": "tiny-canny", "image": base64_png(&fixture(picture_file)),
            "preprocessor": preprocessor});
        let mut job = params(&state, unit.clone());
        job["width"] = json!(width);
        job["height"] = json!(height);
        let events = job_events(&state, job, false);
        // The annotator ran in the job, reported as the preprocessing stage before the prompt was encoded.
        let stages: Vec<Stage> =
            events.iter().filter_map(|e| if let JobEvent::Progress(p) = e { Some(p.stage) } else { None }).collect();
        assert_eq!(stages.first(), Some(&Stage::Preprocessing), "{preprocessor}: {stages:?}");
        assert!(stages.contains(&Stage::Denoising), "{preprocessor}: {stages:?}");
        let saved: Vec<PathBuf> = events
            .iter()
            .filter_map(|e| if let JobEvent::Image(i) = e { Some(i.path.clone()) } else { None })
            .collect();
        assert!(matches!(events.last(), Some(JobEvent::Finished { .. })), "{preprocessor}: {:?}", events.last());
        assert_eq!(saved, [outputs.join(format!("{number:05}-31.png"))]);

        // The saved control picture is the engine's for the same picture at the job's size.
        let picture = load_image(&fixture(picture_file)).unwrap().image;
        let never = &mut |_: &Progress| Flow::Continue;
        let annotator = models_folder.join("annotators").join(folder);
        let (want, _) = match preprocessor {
            "depth" => {
                depth_control(&mut DepthModel::open(&runtime, &annotator).unwrap(), &picture, width, height, never)
            }
            _ => openpose_control(&mut PoseModel::open(&runtime, &annotator).unwrap(), &picture, width, height, never),
        }
        .unwrap();
        let control_file = outputs.join(format!("{number:05}-control-0.png"));
        let control = rgb(&control_file);
        assert_eq!(control, want.image, "{preprocessor}: the engine's control picture");
        assert!(control.pixels().any(|p| p.0 != [0, 0, 0]), "{preprocessor}: the picture is not blank");
        let parameters = read_png_text(&saved[0], "parameters").unwrap().unwrap();
        assert!(
            parameters.contains(&format!("ControlNet 0: \"Module: {module}, Model: tiny-canny"))
                && parameters.contains(&format!("Preprocessor model: {folder}")),
            "{parameters}"
        );

        // The panel's preview is the saved picture, with the same module.
        let unit: ControlUnitParams = serde_json::from_value(unit).unwrap();
        let shown = preview(&unit, width, height, None, &models_folder, &state.runtime, unwatched()).unwrap();
        assert_eq!(shown.module, module);
        assert_eq!(decode_preview(&shown.image), control, "{preprocessor}: preview");
    }
    state.shutdown();
}

#[test]
fn a_job_cancelled_while_preprocessing_stops_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state_with_control_models(dir.path()));
    install_annotators(&state);
    let unit = json!({"kind": "controlnet", "model": "tiny-canny", "image": base64_png(&fixture("images/scene_64.png")),
        "preprocessor": "depth"});
    let events = job_events(&state, params(&state, unit), true);
    assert!(matches!(events.last(), Some(JobEvent::Cancelled { images: 0 })), "{:?}", events.last());
    // It stopped at the first preprocessing report: no later stage ran.
    assert!(
        events.iter().all(|e| !matches!(e, JobEvent::Progress(p) if p.stage != Stage::Preprocessing)),
        "{events:?}"
    );
    let outputs = dir.path().join("outputs");
    assert!(!outputs.exists() || outputs.read_dir().unwrap().next().is_none(), "nothing was written");
    state.shutdown();
}

#[test]
fn a_missing_or_broken_annotator_is_refused_naming_the_preprocessor_and_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_control_models(dir.path());
    let models_folder = state.paths.models_folder.clone();
    let looked_in = models_folder.join("annotators").display().to_string();
    let unit = json!({"kind": "controlnet", "model": "tiny-canny", "image": base64_png(&fixture("images/scene_64.png")),
        "preprocessor": "depth"});
    // At submit, and in the preview, before any model runs.
    let error = refusal(&state, params(&state, unit.clone()));
    assert_eq!(error["field"], "preprocessor");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("depth needs an annotator model") && message.contains(&looked_in), "{message}");
    let parsed: ControlUnitParams = serde_json::from_value(unit.clone()).unwrap();
    let error = preview(&parsed, 64, 64, None, &models_folder, &state.runtime, unwatched()).unwrap_err();
    assert_eq!(error.field().as_deref(), Some("preprocessor"));
    assert!(error.to_string().contains(&looked_in), "{error}");

    // A "depth" folder holding a pose model: the job fails on the preprocessor, naming the folder.
    let wrong = models_folder.join("annotators/depth-wrong");
    copy_folder(&fixture("annotators/openpose-tiny"), &wrong);
    let error = run_job(&state, params(&state, unit)).unwrap_err();
    assert_eq!(error["field"], "preprocessor", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("depth-wrong") && message.contains("depth map"), "{message}");
    assert!(!dir.path().join("outputs").join("00000-control-0.png").exists());
    state.shutdown();
}

#[test]
fn the_engine_refuses_a_control_picture_that_has_not_been_through_its_annotator() {
    let picture = load_image(&fixture("images/scene_64.png")).unwrap().image;
    let (image, preprocessing) = control_image(picture, None, 64, 64).unwrap();
    let annotation = PendingAnnotation {
        kind: AnnotatorKind::Depth,
        folder: fixture("annotators/depth-anything-tiny"),
        width: 64,
        height: 64,
    };
    let unit = ControlUnitSpec {
        kind: ResidualKind::ControlNet,
        model: fixture("controlnet/tiny-canny"),
        image,
        preprocessing,
        weight: 1.0,
        start: 0.0,
        end: 1.0,
        annotation: Some(annotation),
    };
    let mut spec = ControlSpec { units: vec![unit], ..ControlSpec::default() };
    let runtime = common::runtime();
    let base = fixture("models/tiny-sd-control");
    let mut model = LoadedModel::open(&runtime, &base).unwrap();
    let params = GenerateRequest { seed: Some(1), steps: 2, width: 64, height: 64, ..GenerateRequest::default() };
    let generation = |spec: &ControlSpec| Generation { control: spec.clone(), ..Generation::text(params.clone()) };
    let mut images = Images(Vec::new());
    let error = generate(Resources::new(&mut model), &generation(&spec), &mut images).unwrap_err().to_string();
    assert!(error.contains("preprocessor") && error.contains("depth") && error.contains("annotator"), "{error}");
    assert!(images.0.is_empty());
    // Once annotated, the same spec runs, with the depth module recorded.
    spec.annotate(&runtime, None, None, &mut |_| Flow::Continue).unwrap();
    assert!(!spec.needs_annotation());
    assert_eq!(spec.units[0].preprocessing.module, "depth_anything");
    generate(Resources::new(&mut model), &generation(&spec), &mut images).unwrap();
    assert_eq!(images.0.len(), 1);
}

/// A preview that nothing watches: no progress shown, never cancelled. (The closure captures nothing: leaking its
/// box allocates nothing.)
fn unwatched() -> PreviewWatch<'static> {
    PreviewWatch { progress: Box::leak(Box::new(|_: &Progress| Flow::Continue)), cancel: None }
}
