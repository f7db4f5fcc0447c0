//! The model list: the bundled demo model, every model folder in the app's models folder, and the folders the user
//! added (`pigment_studio::ModelCatalog`). Listing only checks that the files are there (fast); adding a folder loads
//! it with the engine.

use std::path::{Path, PathBuf};

use pigment_engine::model::{LoadedModel, ModelFolder, TensorSpec};
use pigment_engine::runtime::Runtime;
use pigment_studio::{CatalogEntry, ModelCatalog, ModelOrigin};

use crate::error::{AppError, Result};
use crate::models::{ModelEntry, ModelReport, ModelSource};
use crate::paths::AppPaths;
use crate::settings::Settings;

pub fn list_models(paths: &AppPaths, settings: &Settings) -> Vec<ModelEntry> {
    let catalog = ModelCatalog {
        bundled: paths.demo_model.clone(),
        models_folder: Some(paths.models_folder.clone()),
        added: settings.model_folders.clone(),
    };
    catalog.models().into_iter().map(entry).collect()
}

fn entry(model: CatalogEntry) -> ModelEntry {
    let source = match model.origin {
        ModelOrigin::Bundled => ModelSource::Bundled,
        ModelOrigin::ModelsFolder => ModelSource::ModelsFolder,
        ModelOrigin::Added => ModelSource::Added,
    };
    ModelEntry {
        id: model.path.display().to_string(),
        name: model.name,
        path: model.path,
        source,
        problem: model.problem,
    }
}

/// The folder of the listed model `id`; a model whose files are missing fails with the engine's error for it.
pub fn resolve(id: &str, paths: &AppPaths, settings: &Settings) -> Result<PathBuf> {
    let entry = list_models(paths, settings)
        .into_iter()
        .find(|entry| entry.id == id)
        .ok_or_else(|| AppError::UnknownModel { id: id.to_string() })?;
    ModelFolder::open(&entry.path)?;
    Ok(entry.path)
}

/// The model a job uses when none is named: the default from the settings, else the first usable one.
pub fn default_model(paths: &AppPaths, settings: &Settings) -> Option<ModelEntry> {
    let models = list_models(paths, settings);
    let preferred = settings.default_model.as_deref();
    models
        .iter()
        .find(|m| Some(m.id.as_str()) == preferred && m.problem.is_none())
        .or_else(|| models.iter().find(|m| m.problem.is_none()))
        .cloned()
}

/// Loads the folder with the engine (every session, as a generation would) and reports what was found.
pub fn inspect(runtime: &Runtime, path: &Path, source: ModelSource) -> Result<ModelReport> {
    let info = LoadedModel::open(runtime, path)?.info();
    let describe = |name: &str, inputs: &[TensorSpec], outputs: &[TensorSpec]| {
        let list = |specs: &[TensorSpec]| specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        format!("{name}: in {} / out {}", list(inputs), list(outputs))
    };
    let folder = &info.folder;
    Ok(ModelReport {
        entry: ModelEntry {
            id: path.display().to_string(),
            name: folder.name.clone(),
            path: path.to_path_buf(),
            source,
            problem: None,
        },
        inpainting: info.inpainting,
        unet_in_channels: info.unet_in_channels,
        context_width: info.context_width,
        has_vae_encoder: folder.vae_encoder.is_some(),
        size_bytes: folder.text_encoder.size
            + folder.unet.size
            + folder.vae_decoder.size
            + folder.vae_encoder.as_ref().map_or(0, |f| f.size),
        execution_provider: info.execution_provider.clone(),
        components: vec![
            describe("text_encoder", &info.text_encoder.inputs, &info.text_encoder.outputs),
            describe("unet", &info.unet.inputs, &info.unet.outputs),
            describe("vae_decoder", &info.vae_decoder.inputs, &info.vae_decoder.outputs),
        ],
    })
}
