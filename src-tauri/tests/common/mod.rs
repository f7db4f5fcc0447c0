//! Shared by the app's integration tests: the one ONNX Runtime a process may have, the app's state on a temporary
//! folder, and the app on Tauri's mock runtime with its window and the messages of its channels.
#![allow(dead_code)] // each test file is its own crate and uses a different part of this module

use std::cell::RefCell;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pigment_app::paths::AppPaths;
use pigment_app::runtime_slot::RuntimeSlot;
use pigment_app::state::AppState;
use pigment_engine::runtime::{Runtime, RuntimeOptions};
use serde_json::Value;
use tauri::ipc::{CallbackFn, InvokeBody, InvokeResponseBody};
use tauri::test::{INVOKE_KEY, MockRuntime, mock_builder, mock_context, noop_assets};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

/// ONNX Runtime allows one environment per process: every test shares it.
pub fn runtime() -> Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::load(&RuntimeOptions::default()).expect("run `npm run setup` first")).clone()
}

/// The app's folders, all inside `dir`, and the bundled demo model.
pub fn app_paths(dir: &Path) -> AppPaths {
    AppPaths {
        models_folder: dir.join("data/models"),
        settings_file: dir.join("config/settings.json"),
        default_output_folder: dir.join("outputs"),
        demo_model: pigment_engine::model::find_demo_model(),
        onnxruntime_library: None,
    }
}

/// The app's state with its folders inside `dir`, on the shared runtime.
pub fn app_state(dir: &Path) -> AppState {
    AppState::new(app_paths(dir), Arc::new(RuntimeSlot::with(runtime()))).unwrap()
}

/// The app on Tauri's mock runtime, with its main window and what its channels send.
pub struct TestApp {
    pub app: App<MockRuntime>,
    pub window: WebviewWindow<MockRuntime>,
    /// Channel messages as (channel id, message).
    pub messages: mpsc::Receiver<(u32, Value)>,
    /// Messages received while waiting for another channel's.
    pub backlog: RefCell<Vec<(u32, Value)>>,
    /// The folder the app's folders are in.
    pub dir: tempfile::TempDir,
}

/// The app with its folders inside `dir`.
pub fn test_app_in(dir: tempfile::TempDir) -> TestApp {
    let (tx, messages) = mpsc::channel();
    let tx = Mutex::new(tx);
    let app = pigment_app::configure(mock_builder())
        .channel_interceptor(move |_webview, callback, _index, body| {
            let value = match body {
                InvokeResponseBody::Json(json) => serde_json::from_str(json).unwrap(),
                InvokeResponseBody::Raw(_) => Value::Null,
            };
            let _ = tx.lock().unwrap().send((callback.0, value));
            true
        })
        .manage(app_state(dir.path()))
        .build(mock_context(noop_assets()))
        .unwrap();
    let window = WebviewWindowBuilder::new(&app, "main", Default::default()).build().unwrap();
    TestApp { app, window, messages, backlog: Default::default(), dir }
}

/// The app with its folders in a new temporary folder.
pub fn test_app() -> TestApp {
    test_app_in(tempfile::tempdir().unwrap())
}

/// The request the window sends to call `cmd` with `body`.
fn invoke_request(cmd: &str, body: Value) -> InvokeRequest {
    InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "tauri://localhost".parse().unwrap(),
        body: InvokeBody::Json(body),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    }
}

/// Whether `event` is a job's last event.
pub fn is_last_job_event(event: &Value) -> bool {
    matches!(event["kind"].as_str(), Some("finished" | "cancelled" | "failed"))
}

impl TestApp {
    /// Calls command `cmd` as the window does.
    pub fn invoke(&self, cmd: &str, body: Value) -> Result<Value, Value> {
        tauri::test::get_ipc_response(&self.window, invoke_request(cmd, body))
            .map(|b| b.deserialize::<Value>().unwrap())
    }

    /// Calls command `cmd`, which answers with bytes (a `tauri::ipc::Response`), as the window does.
    pub fn invoke_bytes(&self, cmd: &str, body: Value) -> Result<Vec<u8>, Value> {
        tauri::test::get_ipc_response(&self.window, invoke_request(cmd, body)).map(|b| match b {
            InvokeResponseBody::Raw(bytes) => bytes,
            InvokeResponseBody::Json(json) => panic!("{cmd} answered JSON, not bytes: {json}"),
        })
    }

    /// The next message of `channel`, keeping other channels' messages for later.
    pub fn next_event(&self, channel: u32) -> Value {
        let mut backlog = self.backlog.borrow_mut();
        if let Some(index) = backlog.iter().position(|(id, _)| *id == channel) {
            return backlog.remove(index).1;
        }
        loop {
            let (id, event) = self.messages.recv_timeout(Duration::from_secs(120)).expect("a channel message");
            if id == channel {
                return event;
            }
            backlog.push((id, event));
        }
    }

    /// The messages of `channel` up to and including the one `last` accepts.
    pub fn messages_until(&self, channel: u32, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut found = Vec::new();
        loop {
            let message = self.next_event(channel);
            let done = last(&message);
            found.push(message);
            if done {
                return found;
            }
        }
    }

    /// The messages of `channel` up to and including its job's last event.
    pub fn events_until_done(&self, channel: u32) -> Vec<Value> {
        self.messages_until(channel, is_last_job_event)
    }
}
