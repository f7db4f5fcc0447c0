//! The user's settings, one JSON file in the app's config folder. A file that cannot be read or parsed never
//! stops the app: defaults are used, the broken file is kept beside it as `settings.json.corrupt`, and a notice
//! says so. Writes are atomic (temporary file, then rename).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AppError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Auto,
    Cuda,
    DirectMl,
    Cpu,
}

impl Device {
    pub fn choice(self) -> pigment_engine::runtime::DeviceChoice {
        use pigment_engine::runtime::DeviceChoice;
        match self {
            Device::Auto => DeviceChoice::Auto,
            Device::Cuda => DeviceChoice::Cuda,
            Device::DirectMl => DeviceChoice::DirectMl,
            Device::Cpu => DeviceChoice::Cpu,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Auto,
    Fp16,
    Fp32,
}

impl Precision {
    pub fn choice(self) -> pigment_engine::runtime::PrecisionChoice {
        use pigment_engine::runtime::PrecisionChoice;
        match self {
            Precision::Auto => PrecisionChoice::Auto,
            Precision::Fp16 => PrecisionChoice::Fp16,
            Precision::Fp32 => PrecisionChoice::Fp32,
        }
    }
}

/// How the model's parts share the GPU's memory (the engine's low-VRAM modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuMemory {
    /// Low-VRAM mode when the GPU has too little memory for the model at once.
    #[default]
    Auto,
    /// Every part loaded (fastest).
    Full,
    /// The UNet loaded, the text encoder and VAE taking turns.
    Medium,
    /// Every part taking turns, the VAE tiled (least memory, slowest).
    Low,
}

impl GpuMemory {
    pub fn choice(self) -> pigment_engine::runtime::LowVramChoice {
        use pigment_engine::runtime::LowVramChoice;
        match self {
            GpuMemory::Auto => LowVramChoice::Auto,
            GpuMemory::Full => LowVramChoice::Off,
            GpuMemory::Medium => LowVramChoice::Medium,
            GpuMemory::Low => LowVramChoice::On,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

/// Missing keys take their defaults, so files from older versions load.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// `None`: the default output folder ([`crate::paths::AppPaths::default_output_folder`]).
    pub output_folder: Option<PathBuf>,
    /// A model id from the model list; `None`: the bundled demo model.
    pub default_model: Option<String>,
    pub device: Device,
    pub precision: Precision,
    pub gpu_memory: GpuMemory,
    pub theme: Theme,
    /// Folders added with "Add model folder..." (only ever set from a native dialog, never from the UI's text).
    pub model_folders: Vec<PathBuf>,
    /// The AUTOMATIC1111-compatible API on 127.0.0.1 (crates/server), off unless switched on.
    pub api_server: crate::api_server::ApiServerSettings,
}

/// The settings as loaded, and the notice to show when the file was unusable.
#[derive(Debug)]
pub struct LoadedSettings {
    pub settings: Settings,
    pub notice: Option<String>,
}

pub fn load(path: &Path) -> LoadedSettings {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return LoadedSettings { settings: Settings::default(), notice: None };
        }
        Err(error) => return fall_back(path, &error.to_string()),
    };
    match serde_json::from_str::<Settings>(&text) {
        Ok(settings) => LoadedSettings { settings, notice: None },
        Err(error) => fall_back(path, &error.to_string()),
    }
}

fn fall_back(path: &Path, reason: &str) -> LoadedSettings {
    let mut kept = path.as_os_str().to_owned();
    kept.push(".corrupt");
    let kept = PathBuf::from(kept);
    let where_kept = match std::fs::rename(path, &kept) {
        Ok(()) => format!("the file was kept as {}", kept.display()),
        Err(_) => "the file was left as it is".to_string(),
    };
    LoadedSettings {
        settings: Settings::default(),
        notice: Some(format!(
            "Settings in {} could not be read ({reason}); using defaults, {where_kept}.",
            path.display()
        )),
    }
}

pub fn save(path: &Path, settings: &Settings) -> Result<()> {
    let write_error =
        |error: &dyn std::fmt::Display| AppError::Write { path: path.to_path_buf(), reason: error.to_string() };
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|e| write_error(&e))?;
    }
    let text = serde_json::to_string_pretty(settings).map_err(|e| write_error(&e))?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".part");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, text).map_err(|e| write_error(&e))?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        write_error(&e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/settings.json");
        let settings = Settings {
            output_folder: Some(dir.path().join("out")),
            default_model: Some("/models/sd15".into()),
            device: Device::Cuda,
            precision: Precision::Fp16,
            gpu_memory: GpuMemory::Medium,
            theme: Theme::Dark,
            model_folders: vec![dir.path().join("sd15")],
            api_server: crate::api_server::ApiServerSettings { enabled: true, port: 7861 },
        };
        save(&path, &settings).unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.settings, settings);
        assert_eq!(loaded.notice, None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"device\": \"cuda\"") && text.contains("\"theme\": \"dark\""), "{text}");
        assert!(text.contains("\"apiServer\"") && text.contains("\"port\": 7861"), "{text}");
        assert!(text.contains("\"gpuMemory\": \"medium\""), "{text}");
    }

    #[test]
    fn a_missing_file_gives_defaults_without_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(&dir.path().join("settings.json"));
        assert_eq!(loaded.settings, Settings::default());
        assert_eq!(loaded.notice, None);
    }

    #[test]
    fn a_corrupt_file_gives_defaults_a_notice_and_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, "{\"theme\": \"dark\", ").unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.settings, Settings::default());
        let notice = loaded.notice.expect("a notice");
        assert!(notice.contains("settings.json") && notice.contains("using defaults"), "{notice}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("settings.json.corrupt")).unwrap(),
            "{\"theme\": \"dark\", "
        );
        assert!(!path.exists(), "the next save writes a fresh file");
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_corrupt_too_and_unknown_keys_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, r#"{"device": "tpu"}"#).unwrap();
        let loaded = load(&path);
        assert!(loaded.notice.expect("a notice").contains("tpu"));
        std::fs::write(&path, r#"{"theme": "light", "fromTheFuture": 1}"#).unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.settings.theme, Theme::Light);
        assert_eq!(loaded.notice, None);
    }
}
