//! ONNX Runtime's optimized graphs, kept on disk so the second start of a model skips graph optimization.
//!
//! The first load optimizes at level 2 ("extended": fusions that every machine with this provider can run, but not
//! the CPU-specific memory layouts of level 3, which depend on the processor's vector width) and asks ONNX Runtime
//! to save the result; every load, the first included, then reads the saved graph and only adds the layout passes. The key covers the model
//! files (path, size, modification time), the execution provider and the ONNX Runtime and Pigment versions, so a
//! changed model or runtime gets a new entry. The graph is written under a temporary name and renamed last, after
//! its weights file is complete: an entry whose graph exists is whole.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use sha2::{Digest, Sha256};

use super::folder::ComponentFiles;
use crate::error::{EngineError, Result};
use crate::runtime::Runtime;

pub(crate) struct LoadedSession {
    pub session: Session,
    /// The graph file the session was made from (the cached one when the cache served it).
    pub graph: PathBuf,
}

pub(crate) fn load_error(files: &ComponentFiles, error: impl std::fmt::Display) -> EngineError {
    let mut reason = error.to_string();
    if !files.external_data.is_empty() {
        let names: Vec<String> = files.external_data.iter().map(|p| p.display().to_string()).collect();
        reason.push_str(&format!(" (weights in {}: missing or truncated?)", names.join(", ")));
    }
    EngineError::InvalidModelFile { path: files.model.clone(), reason }
}

/// A session for `files`, through the cache in `cache_dir` when there is one.
pub(crate) fn load_session(
    runtime: &Runtime,
    files: &ComponentFiles,
    cache_dir: Option<&Path>,
) -> Result<LoadedSession> {
    let Some(cache_dir) = cache_dir else {
        let session = runtime.session_builder()?.commit_from_file(&files.model).map_err(|e| load_error(files, e))?;
        return Ok(LoadedSession { session, graph: files.model.clone() });
    };
    let key = cache_key(runtime, files)?;
    let graph = cache_dir.join(format!("{key}.onnx"));
    if graph.is_file() {
        let session = runtime
            .session_builder()?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| EngineError::inference("configuring a session", e))?
            .commit_from_file(&graph);
        match session {
            Ok(session) => return Ok(LoadedSession { session, graph }),
            // A damaged entry is rebuilt from the model rather than failing the load.
            Err(_) => remove_entry(&graph),
        }
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| EngineError::WriteFile { path: cache_dir.to_path_buf(), reason: e.to_string() })?;
    let partial = cache_dir.join(format!("{key}.onnx.part"));
    let weights_name = format!("{key}.onnx.data");
    let configure = |stage: &'static str| move |e: ort::Error<_>| EngineError::inference(stage, e);
    let optimizing = runtime
        .session_builder()?
        .with_optimization_level(GraphOptimizationLevel::Level2)
        .map_err(configure("configuring a session"))?
        .with_optimized_model_path(&partial)
        .map_err(configure("configuring a session"))?
        // Large weights go to one file beside the graph, as in the model folders (protobuf caps a file at 2 GB).
        .with_config_entry("session.optimized_model_external_initializers_file_name", &weights_name)
        .map_err(configure("configuring a session"))?
        .with_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        .map_err(configure("configuring a session"))?
        .commit_from_file(&files.model)
        .map_err(|e| load_error(files, e))?;
    drop(optimizing);
    // The session is made from the saved graph even this first time, so every run with a cache computes with the
    // same graph. If keeping the entry fails, the model itself still works.
    if std::fs::rename(&partial, &graph).is_ok()
        && let Ok(session) = runtime
            .session_builder()?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(configure("configuring a session"))?
            .commit_from_file(&graph)
    {
        return Ok(LoadedSession { session, graph });
    }
    remove_entry(&graph);
    let session = runtime.session_builder()?.commit_from_file(&files.model).map_err(|e| load_error(files, e))?;
    Ok(LoadedSession { session, graph: files.model.clone() })
}

fn remove_entry(graph: &Path) {
    let _ = std::fs::remove_file(graph);
    let _ = std::fs::remove_file(graph.with_extension("onnx.data"));
}

fn cache_key(runtime: &Runtime, files: &ComponentFiles) -> Result<String> {
    let mut hasher = Sha256::new();
    for path in std::iter::once(&files.model).chain(&files.external_data) {
        let metadata =
            std::fs::metadata(path).map_err(|e| EngineError::ReadFile { path: path.clone(), reason: e.to_string() })?;
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        hasher.update(canonical.to_string_lossy().as_bytes());
        hasher.update(metadata.len().to_le_bytes());
        let modified = metadata.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        hasher.update(modified.map_or(0, |d| d.as_nanos()).to_le_bytes());
    }
    hasher.update(runtime.providers().active.to_string().as_bytes());
    // A graph optimized for fixed shapes is another graph.
    for (name, size) in runtime.dimension_overrides() {
        hasher.update(name.as_bytes());
        hasher.update(size.to_le_bytes());
    }
    hasher.update(runtime.version().as_bytes());
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    Ok(hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect())
}
