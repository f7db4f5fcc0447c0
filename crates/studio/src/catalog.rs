//! The models a front end offers: the bundled or start model, the model folders inside a models folder (not the
//! ControlNets, adapters and annotators that share it), and folders added by hand; found again by an AUTOMATIC1111
//! title ([`crate::titles`]). Listing only checks each folder's files (fast); a folder that cannot be used is listed
//! with its problem so a user sees why. Read again at every listing: a model copied in shows up without a restart.

use std::path::{Path, PathBuf};

use pigment_engine::model::{ANNOTATORS_FOLDER, ControlModelFolder, ModelFolder};

use crate::titles::{canonical, model_name, title_key};

/// Where a listed model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelOrigin {
    /// The model shipped with the app, or the one `pigment serve` started with.
    Bundled,
    /// A folder inside the models folder.
    ModelsFolder,
    /// A folder added by hand.
    Added,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    /// The name lists show and A1111 titles match: the folder's name.
    pub name: String,
    pub path: PathBuf,
    pub origin: ModelOrigin,
    /// Why the folder cannot be used, when its files are not all there.
    pub problem: Option<String>,
}

/// Where models are looked for.
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    pub bundled: Option<PathBuf>,
    pub models_folder: Option<PathBuf>,
    pub added: Vec<PathBuf>,
}

impl ModelCatalog {
    /// Every model, in this order: the bundled one, the models folder's by name, the added ones; a folder reached
    /// twice (by a link, or added from inside the models folder) is listed once, the first time.
    pub fn models(&self) -> Vec<CatalogEntry> {
        let mut candidates: Vec<(PathBuf, ModelOrigin)> = Vec::new();
        candidates.extend(self.bundled.iter().map(|path| (path.clone(), ModelOrigin::Bundled)));
        candidates.extend(
            model_folders_in(self.models_folder.as_deref()).into_iter().map(|p| (p, ModelOrigin::ModelsFolder)),
        );
        candidates.extend(self.added.iter().map(|path| (path.clone(), ModelOrigin::Added)));
        let mut seen: Vec<PathBuf> = Vec::new();
        let mut entries: Vec<CatalogEntry> = Vec::new();
        for (path, origin) in candidates {
            let key = canonical(&path);
            let name = model_name(&path);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let problem = ModelFolder::open(&path).err().map(|error| error.to_string());
            entries.push(CatalogEntry { name, path, origin, problem });
        }
        entries
    }

    /// The usable models alone.
    pub fn usable_models(&self) -> Vec<CatalogEntry> {
        self.models().into_iter().filter(|entry| entry.problem.is_none()).collect()
    }

    /// The usable model an A1111 title names (case-insensitive; a ` [hash]` suffix and a checkpoint extension are
    /// ignored; of two with one name, the first listed); `Err` lists the names known.
    pub fn find(&self, title: &str) -> Result<CatalogEntry, Vec<String>> {
        let models = self.usable_models();
        let wanted = title_key(title);
        match models.iter().find(|entry| title_key(&entry.name) == wanted) {
            Some(entry) => Ok(entry.clone()),
            None => Err(models.into_iter().map(|entry| entry.name).collect()),
        }
    }

    /// The listed model at `path` (compared with links resolved).
    pub fn entry_for(&self, path: &Path) -> Option<CatalogEntry> {
        let wanted = canonical(path);
        self.models().into_iter().find(|entry| canonical(&entry.path) == wanted)
    }
}

/// The subfolders of `folder` that may be base models, by name: not a ControlNet or adapter (recognised by its
/// `config.json`), not the annotators' folder.
fn model_folders_in(folder: Option<&Path>) -> Vec<PathBuf> {
    let Some(Ok(entries)) = folder.map(std::fs::read_dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir() && ControlModelFolder::detect(path).is_none())
        .filter(|path| path.file_name().is_none_or(|name| name != ANNOTATORS_FOLDER))
        .collect();
    found.sort();
    found
}

/// The subfolders of `folder` that hold `marker`, sorted by name (upscalers: `model.onnx`).
pub fn subfolders_with(folder: Option<&Path>, marker: &str) -> Vec<PathBuf> {
    let Some(Ok(entries)) = folder.map(std::fs::read_dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join(marker).is_file())
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_model() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tiny-sd")
    }

    fn copy_model(to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in walk(&demo_model()) {
            let relative = entry.strip_prefix(demo_model()).unwrap();
            let target = to.join(relative);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&entry, target).unwrap();
        }
    }

    fn walk(folder: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
        }
        files
    }

    #[test]
    fn lists_models_once_with_problems_and_finds_them_by_a1111_title() {
        let models = tempfile::tempdir().unwrap();
        copy_model(&models.path().join("Alpha"));
        std::fs::create_dir(models.path().join("broken")).unwrap();
        std::fs::create_dir(models.path().join(ANNOTATORS_FOLDER)).unwrap();
        let controlnet = models.path().join("canny");
        std::fs::create_dir(&controlnet).unwrap();
        std::fs::write(controlnet.join("config.json"), r#"{"_class_name": "ControlNetModel"}"#).unwrap();
        std::fs::write(controlnet.join("model.onnx"), b"not read by a listing").unwrap();
        let catalog = ModelCatalog {
            bundled: Some(demo_model()),
            models_folder: Some(models.path().to_path_buf()),
            // Added twice: once by the models folder, once by hand.
            added: vec![models.path().join("Alpha")],
        };
        let listed = catalog.models();
        let names: Vec<&str> = listed.iter().map(|entry| entry.name.as_str()).collect();
        assert_eq!(names, ["tiny-sd", "Alpha", "broken"]);
        assert_eq!(listed[0].origin, ModelOrigin::Bundled);
        assert_eq!(listed[1].origin, ModelOrigin::ModelsFolder);
        assert!(listed[2].problem.as_deref().is_some_and(|p| p.contains("broken")), "{:?}", listed[2].problem);
        assert_eq!(catalog.find("alpha.safetensors [0123456789]").unwrap().path, models.path().join("Alpha"));
        let known = catalog.find("broken").unwrap_err();
        assert_eq!(known, ["tiny-sd", "Alpha"], "a model with a problem is not found");
        assert_eq!(catalog.entry_for(&models.path().join("Alpha")).unwrap().name, "Alpha");
    }
}
