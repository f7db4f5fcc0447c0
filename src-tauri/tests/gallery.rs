//! The gallery commands as the window calls them, through Tauri's mock runtime, on the real engine (demo model),
//! a real SQLite index and a real XDG trash (in a temporary $HOME).

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::{TestApp, test_app_in};
use pigment_app::state::AppState;
use pigment_engine::image::{PARAMETERS_KEY, write_png_atomically};
use serde_json::{Value, json};
use tauri::Manager;

/// The trash in a temporary $HOME, set once before any test of this binary starts the app or touches the trash.
fn use_a_temporary_home() {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| {
        let home = tempfile::tempdir().unwrap();
        // SAFETY: set once, before this binary's tests start the app or touch the trash.
        unsafe {
            std::env::set_var("HOME", home.path());
            std::env::set_var("XDG_DATA_HOME", home.path().join(".local/share"));
        }
        home
    });
}

fn app() -> TestApp {
    app_with(tempfile::tempdir().unwrap())
}

fn app_with(dir: tempfile::TempDir) -> TestApp {
    use_a_temporary_home();
    test_app_in(dir)
}

impl TestApp {
    fn outputs(&self) -> PathBuf {
        self.dir.path().join("outputs")
    }

    fn search(&self, text: &str) -> Value {
        self.invoke("gallery_search", json!({"query": {"text": text}})).unwrap()
    }

    fn generate(&self, prompt: &str, seed: u64, channel: u32) -> Vec<Value> {
        let models = self.invoke("list_models", json!({})).unwrap();
        let model = models.as_array().unwrap().iter().find(|m| m["source"] == "bundled").unwrap()["id"].clone();
        let params = json!({
            "modelId": model, "prompt": prompt, "negativePrompt": "fog", "sampler": "euler_a",
            "schedule": "automatic", "steps": 3, "cfgScale": 7.0, "seed": seed, "width": 64, "height": 64,
            "batchSize": 1, "batchCount": 2
        });
        self.invoke("submit_job", json!({"params": params, "onEvent": format!("__CHANNEL__:{channel}")})).unwrap();
        self.events_until_done(channel)
    }
}

#[test]
fn generated_images_are_indexed_found_by_prompt_deleted_to_the_trash_and_restored() {
    let app = app();
    let events = app.generate("a lighthouse on a cliff", 42, 7);
    assert_eq!(events.last().unwrap()["kind"], "finished", "{events:#?}");

    // Indexed as they were saved: no rescan needed.
    let page = app.search("lighthouse");
    assert_eq!(page["total"], 2, "{page}");
    let items = page["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["fileName"].as_str().unwrap()).collect();
    assert_eq!(names, ["00001-43.png", "00000-42.png"], "newest first");
    let thumbnail = PathBuf::from(items[0]["thumbnail"].as_str().unwrap());
    assert!(thumbnail.is_file() && thumbnail.starts_with(app.dir.path().join("data/gallery")), "{thumbnail:?}");
    assert_eq!(app.search("nothing-like-this")["total"], 0);

    let id = items[1]["id"].as_i64().unwrap();
    let detail = app.invoke("gallery_image", json!({"id": id})).unwrap();
    assert_eq!(detail["metadata"]["negativePrompt"], "fog");
    assert_eq!(detail["reuse"]["sampler"], "euler_a");
    assert_eq!(detail["reuse"]["seed"], 42);
    assert_eq!(detail["reuse"]["width"], 64);
    let history = app.invoke("gallery_history", json!({"offset": 0, "limit": 10})).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);

    app.invoke("gallery_set_favourite", json!({"id": id, "favourite": true})).unwrap();
    let board = app.invoke("gallery_create_board", json!({"name": "Coast"})).unwrap();
    app.invoke("gallery_board_images", json!({"board": board["id"], "images": [id], "add": true})).unwrap();

    app.invoke("gallery_delete", json!({"ids": [id]})).unwrap();
    let file = app.outputs().join("00000-42.png");
    assert!(!file.exists());
    let home = PathBuf::from(std::env::var_os("XDG_DATA_HOME").unwrap());
    assert!(home.join("Trash/files").read_dir().unwrap().any(|e| e.unwrap().file_name() == "00000-42.png"));
    assert_eq!(app.search("lighthouse")["total"], 1);
    let history = app.invoke("gallery_history", json!({"offset": 0, "limit": 10})).unwrap();
    let gone = history.as_array().unwrap().iter().find(|h| h["fileName"] == "00000-42.png").unwrap().clone();
    assert_eq!(gone["imageId"], Value::Null, "the history keeps the deleted image's generation");
    assert_eq!(gone["metadata"]["prompt"], "a lighthouse on a cliff");

    app.invoke("gallery_undo_delete", json!({"ids": [id]})).unwrap();
    assert!(file.is_file());
    let detail = app.invoke("gallery_image", json!({"id": id})).unwrap();
    assert_eq!(detail["summary"]["favourite"], true);
    assert_eq!(detail["boards"], json!([board["id"]]));
    let error = app.invoke("gallery_undo_delete", json!({"ids": [id]})).unwrap_err();
    assert_eq!(error["field"], "image");
    assert!(error["message"].as_str().unwrap().contains("not in the trash"), "{error}");
}

#[test]
fn a_rescan_finds_copied_in_images_reports_progress_and_drops_removed_ones() {
    let app = app();
    std::fs::create_dir_all(app.outputs()).unwrap();
    for (i, prompt) in ["a red fox in the snow", "a windmill in a tulip field", "an old harbour"].iter().enumerate() {
        let text = format!("{prompt}\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {i}, Size: 8x8, Model: tiny-sd");
        let image = image::RgbImage::from_pixel(8, 8, image::Rgb([i as u8 * 60, 10, 200]));
        write_png_atomically(&app.outputs().join(format!("copied-{i}.png")), &image, &[(PARAMETERS_KEY, &text)])
            .unwrap();
    }
    let report = app.invoke("gallery_rescan", json!({"onProgress": "__CHANNEL__:5"})).unwrap();
    assert_eq!(report["added"], 3, "{report}");
    let progress = app.messages_until(5, |p| p["done"] == p["total"]);
    assert_eq!(progress.last().unwrap(), &json!({"done": 3, "total": 3}));
    assert_eq!(app.search("tulip")["total"], 1);

    std::fs::remove_file(app.outputs().join("copied-1.png")).unwrap();
    let report = app.invoke("gallery_rescan", json!({"onProgress": "__CHANNEL__:6"})).unwrap();
    assert_eq!(report["removed"], 1, "{report}");
    assert_eq!(app.search("tulip")["total"], 0);
    let filters = app.invoke("gallery_filters", json!({})).unwrap();
    assert_eq!(filters["samplers"], json!(["Euler a"]));
}

#[test]
fn paths_from_the_window_cannot_leave_the_gallery_folder() {
    let app = app();
    std::fs::create_dir_all(app.outputs()).unwrap();
    std::fs::write(app.dir.path().join("secret.png"), b"x").unwrap();
    for name in ["../secret.png", "/etc/passwd", "sub/../../secret.png"] {
        let error = app.invoke("gallery_reveal", json!({"fileName": name})).unwrap_err();
        assert_eq!(error["kind"], "path_not_allowed", "{name}: {error}");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(app.dir.path().join("secret.png"), app.outputs().join("link.png")).unwrap();
        let error = app.invoke("gallery_reveal", json!({"fileName": "link.png"})).unwrap_err();
        assert!(error["message"].as_str().unwrap().contains("outside"), "{error}");
    }
    // Import takes only files the user dropped on the window.
    let error =
        app.invoke("gallery_import_dropped", json!({"paths": [app.dir.path().join("secret.png")]})).unwrap_err();
    assert_eq!(error["kind"], "path_not_allowed");
    assert!(error["message"].as_str().unwrap().contains("dropped"), "{error}");
    // Bad values name what was wrong.
    let error = app.invoke("gallery_image", json!({"id": 999})).unwrap_err();
    assert_eq!((error["kind"].as_str(), error["field"].as_str()), (Some("invalid_input"), Some("image")));
    let error = app.invoke("gallery_search", json!({"query": {"limit": 100000}})).unwrap_err();
    assert!(error["message"].as_str().unwrap().contains("100000"), "{error}");
    let error = app.invoke("gallery_create_board", json!({"name": ""})).unwrap_err();
    assert_eq!(error["field"], "board name");
}

#[test]
fn a_dropped_png_shows_its_parameters_and_can_be_imported() {
    let app = app();
    let downloads = app.dir.path().join("Downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let dropped = downloads.join("ComfyUI_00001_.png");
    let prompt = r#"{"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 25, "cfg": 6.5,
        "sampler_name": "euler_ancestral", "scheduler": "normal", "model": ["4", 0], "positive": ["6", 0],
        "negative": ["7", 0], "latent_image": ["5", 0]}},
      "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
      "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 640, "batch_size": 1}},
      "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a glass bottle with a galaxy inside", "clip": ["4", 1]}},
      "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark", "clip": ["4", 1]}}}"#;
    write_png_atomically(&dropped, &image::RgbImage::new(16, 20), &[("prompt", prompt)]).unwrap();
    std::fs::write(downloads.join("fake.png"), b"not a png").unwrap();

    app.invoke("watch_dropped_files", json!({"onDrop": "__CHANNEL__:9"})).unwrap();
    let state = app.app.state::<AppState>();
    state.gallery.dropped(&[dropped.clone(), downloads.join("notes.txt"), downloads.join("fake.png")]);
    let infos = app.messages_until(9, |info| info["fileName"] == "fake.png");
    assert_eq!(infos.len(), 2, "only PNG files: {infos:#?}");
    assert_eq!(infos[0]["metadata"]["source"], "comfy_ui");
    assert_eq!(infos[0]["metadata"]["prompt"], "a glass bottle with a galaxy inside");
    assert_eq!(infos[0]["reuse"]["sampler"], "euler_a");
    assert_eq!(infos[0]["reuse"]["height"], 640);
    assert!(infos[1]["error"].as_str().unwrap().contains("fake.png"), "{}", infos[1]);

    let ids = app.invoke("gallery_import_dropped", json!({"paths": [dropped]})).unwrap();
    assert_eq!(ids.as_array().unwrap().len(), 1);
    assert!(app.outputs().join("imported/ComfyUI_00001_.png").is_file());
    assert_eq!(app.search("galaxy")["total"], 1);
    assert!(dropped.is_file(), "the original stays where it was");
}

#[test]
fn a_damaged_index_is_rebuilt_from_the_files_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs");
    std::fs::create_dir_all(&outputs).unwrap();
    for i in 0..2u8 {
        let text = format!("a castle in the clouds\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {i}, Size: 8x8");
        write_png_atomically(
            &outputs.join(format!("{i:05}-{i}.png")),
            &image::RgbImage::new(8, 8),
            &[(PARAMETERS_KEY, &text)],
        )
        .unwrap();
    }
    // An earlier run indexed the folder and closed its index.
    let gallery_data = dir.path().join("data/gallery");
    let service = pigment_app::gallery::GalleryService::new(gallery_data.clone());
    assert_eq!(service.rescan(&outputs, &mut |_| {}).unwrap().added, 2);
    let database = service.gallery(&outputs).unwrap().database_path().to_path_buf();
    drop(service);

    // Garbage over the index's first pages, as a disk fault would leave it.
    let mut bytes = std::fs::read(&database).unwrap();
    bytes[..4096].fill(0x5a);
    std::fs::write(&database, bytes).unwrap();

    let app = app_with(dir);
    let status = app.invoke("gallery_status", json!({})).unwrap();
    let moved_to = PathBuf::from(status["recovery"]["movedTo"].as_str().expect("the damage is reported"));
    assert!(moved_to.is_file() && moved_to.starts_with(&gallery_data), "{status}");
    let report = app.invoke("gallery_rescan", json!({"onProgress": "__CHANNEL__:3"})).unwrap();
    assert_eq!(report["added"], 2, "rebuilt from the files: {report}");
    assert_eq!(app.search("castle")["total"], 2);
}
