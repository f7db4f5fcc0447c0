//! The model a front end keeps loaded between jobs. One rule for every front end: a job naming the loaded model
//! reuses it; another model frees the old one first (two large models may not fit in memory together); when the
//! new one fails to load, the old one is loaded again, so a bad model in the list costs one job, not the session.

use std::path::Path;

use pigment_engine::model::LoadedModel;
use pigment_engine::runtime::Runtime;

use crate::titles::canonical;
use pigment_engine::{EngineError, Result};

#[derive(Default)]
pub struct ModelSlot {
    loaded: Option<LoadedModel>,
}

impl ModelSlot {
    /// A slot holding `model`.
    pub fn with(model: LoadedModel) -> ModelSlot {
        ModelSlot { loaded: Some(model) }
    }

    /// The model of `folder`, loaded with `runtime` unless it is the one loaded already; `loading` is called before
    /// a load starts (a front end says so: it can take a while). On a failed load the previous model is loaded
    /// again (when that fails too the slot is empty) and the new model's error is returned.
    pub fn model(&mut self, runtime: &Runtime, folder: &Path, loading: impl FnOnce(&Path)) -> Result<&mut LoadedModel> {
        let wanted = canonical(folder);
        let reuse = self.loaded.as_ref().is_some_and(|model| canonical(&model.folder.root) == wanted);
        if !reuse {
            let previous = self.loaded.take().map(|model| model.folder.root.clone());
            loading(folder);
            match LoadedModel::open(runtime, folder) {
                Ok(model) => self.loaded = Some(model),
                Err(error) => {
                    self.loaded = previous.and_then(|old| LoadedModel::open(runtime, &old).ok());
                    return Err(error);
                }
            }
        }
        // Filled above, or reused because it was filled.
        self.loaded.as_mut().ok_or_else(|| EngineError::ModelFolderNotFound { path: folder.to_path_buf() })
    }

    pub fn loaded(&self) -> Option<&LoadedModel> {
        self.loaded.as_ref()
    }

    pub fn loaded_mut(&mut self) -> Option<&mut LoadedModel> {
        self.loaded.as_mut()
    }

    /// The loaded model's folder.
    pub fn folder(&self) -> Option<&Path> {
        self.loaded.as_ref().map(|model| model.folder.root.as_path())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use pigment_engine::runtime::{DeviceChoice, RuntimeOptions};

    use super::*;

    fn demo_model() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tiny-sd")
    }

    #[test]
    fn a_model_is_reused_and_a_failed_load_brings_the_previous_back() {
        // On the CPU, whatever the machine has: the rule is the same on every device.
        let runtime =
            Runtime::load(&RuntimeOptions { device: DeviceChoice::Cpu, ..RuntimeOptions::default() }).unwrap();
        let mut slot = ModelSlot::default();
        let mut loads = Vec::new();
        slot.model(&runtime, &demo_model(), |folder| loads.push(folder.to_path_buf())).unwrap();
        slot.model(&runtime, &demo_model().join("../tiny-sd"), |folder| loads.push(folder.to_path_buf())).unwrap();
        assert_eq!(loads.len(), 1, "the same folder (by another path) is reused");
        let broken = tempfile::tempdir().unwrap();
        let error = slot.model(&runtime, broken.path(), |_| {}).err().expect("an empty folder is no model");
        assert!(error.to_string().contains(&broken.path().display().to_string()), "{error}");
        assert_eq!(slot.folder().map(canonical), Some(canonical(&demo_model())), "the previous model is back");
    }
}
