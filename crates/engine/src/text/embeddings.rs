//! Textual-inversion embeddings: files of one or more token vectors, used in a prompt by their name (the file
//! name without its extension), as in AUTOMATIC1111 (modules/textual_inversion/textual_inversion.py).
//!
//! Formats read: A1111's `.pt` (`{"string_to_param": {"*": tensor}, ...}`), Civitai's `.safetensors`
//! (`emb_params`), and diffusers' `learned_embeds.bin`/`.safetensors` (`{"<token>": tensor}`); vectors in
//! float32, float16, bfloat16 or float64. `.pt` and `.bin` are PyTorch's zip+pickle files, read without running
//! any of the pickle's code (the `pytorch-reader` crate only reconstructs tensors and plain values).
//!
//! The model gets the vectors as extra rows of its text encoder's token table
//! ([`crate::model::LoadedModel::set_embeddings`]) and the tokenizer maps the name's tokens to those rows, so a
//! prompt names an embedding as it names any word, e.g. `a portrait, (my-style:1.2)`. `embedding:NAME` names one
//! explicitly; an unknown name written that way gets a warning listing the known embeddings.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use half::{bf16, f16};
use regex::Regex;

use super::tokenizer::ClipTokenizer;
use crate::error::{EngineError, Result};

/// File extensions read from an embeddings folder (case-insensitive); other files (previews, notes) are skipped.
const EXTENSIONS: [&str; 3] = ["pt", "bin", "safetensors"];

/// One embedding: its name and its vectors, `[count, width]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub name: String,
    pub path: PathBuf,
    vectors: Vec<f32>,
    width: usize,
}

impl Embedding {
    /// An embedding from its vectors (`vectors.len()` a multiple of `width`).
    pub fn new(name: &str, path: &Path, vectors: Vec<f32>, width: usize) -> Result<Embedding> {
        if width == 0 || vectors.is_empty() || !vectors.len().is_multiple_of(width) {
            return Err(invalid(path, format!("{} values do not make vectors {width} wide", vectors.len())));
        }
        Ok(Embedding { name: name.to_string(), path: path.to_path_buf(), vectors, width })
    }

    /// Reads an embedding file; its name is the file name without the extension.
    pub fn read(path: &Path) -> Result<Embedding> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(path, "the file name is not a valid embedding name"))?;
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        let tensors = match extension.as_str() {
            "safetensors" => read_safetensors(path)?,
            _ => read_pytorch(path)?,
        };
        let (shape, values) = pick_vectors(path, tensors)?;
        let width = *shape.last().unwrap_or(&0);
        Embedding::new(name, path, values, width)
    }

    /// Number of vectors (tokens) the embedding takes in a prompt.
    pub fn count(&self) -> usize {
        self.vectors.len() / self.width
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// The vectors, `[count, width]` row-major.
    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }
}

/// The embeddings a model can use: the files of an embeddings folder, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddingLibrary {
    embeddings: Vec<Embedding>,
}

impl EmbeddingLibrary {
    /// Every `.pt`, `.bin` and `.safetensors` file in `folder` (not its subfolders). A file that cannot be read
    /// is an error naming it, as are two files with the same name.
    pub fn load_folder(folder: &Path) -> Result<EmbeddingLibrary> {
        let read_error =
            |e: std::io::Error| EngineError::ReadFile { path: folder.to_path_buf(), reason: e.to_string() };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(folder).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
            if path.is_file() && EXTENSIONS.contains(&extension.as_str()) {
                paths.push(path);
            }
        }
        let embeddings = paths.iter().map(|path| Embedding::read(path)).collect::<Result<Vec<_>>>()?;
        EmbeddingLibrary::from_embeddings(embeddings)
    }

    /// A library of the given embeddings, sorted by name (names are compared without case, as prompts are).
    pub fn from_embeddings(mut embeddings: Vec<Embedding>) -> Result<EmbeddingLibrary> {
        embeddings.sort_by_key(|e| (e.name.to_lowercase(), e.path.clone()));
        for pair in embeddings.windows(2) {
            if pair[0].name.to_lowercase() == pair[1].name.to_lowercase() {
                return Err(invalid(
                    &pair[1].path,
                    format!("another embedding has the same name {:?}: {}", pair[1].name, pair[0].path.display()),
                ));
            }
        }
        Ok(EmbeddingLibrary { embeddings })
    }

    pub fn embeddings(&self) -> &[Embedding] {
        &self.embeddings
    }

    pub fn is_empty(&self) -> bool {
        self.embeddings.is_empty()
    }
}

/// `embedding:NAME` (ComfyUI's way of naming an embedding; A1111 matches bare names only).
static EMBEDDING_REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bembedding:([^\s,()\[\]:|\\]+)").expect("the embedding pattern is valid"));

/// `prompt` with each `embedding:NAME` of a known embedding written as its bare name, and a warning for each
/// unknown one (left as written), listing the embeddings the model knows.
pub fn resolve_embedding_references(prompt: &str, tokenizer: &ClipTokenizer, warnings: &mut Vec<String>) -> String {
    EMBEDDING_REFERENCE
        .replace_all(prompt, |captures: &regex::Captures<'_>| {
            let name = &captures[1];
            let known = tokenizer.embeddings().iter().find(|e| e.name.to_lowercase() == name.to_lowercase());
            match known {
                Some(embedding) => embedding.name.clone(),
                None => {
                    let warning = unknown_embedding_warning(name, tokenizer);
                    if !warnings.contains(&warning) {
                        warnings.push(warning);
                    }
                    captures[0].to_string()
                }
            }
        })
        .into_owned()
}

fn unknown_embedding_warning(name: &str, tokenizer: &ClipTokenizer) -> String {
    let names: Vec<&str> = tokenizer.embeddings().iter().map(|e| e.name.as_str()).collect();
    if names.is_empty() {
        format!("unknown embedding {name:?}: no textual-inversion embeddings are loaded; it is read as text")
    } else {
        format!("unknown embedding {name:?}; known embeddings: {}; it is read as text", names.join(", "))
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidEmbedding { path: path.to_path_buf(), reason: reason.into() }
}

/// A tensor of a file: name, element type, shape and little-endian bytes.
struct RawTensor {
    name: String,
    dtype: FloatType,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

#[derive(Clone, Copy)]
enum FloatType {
    F64,
    F32,
    F16,
    Bf16,
    Other,
}

fn read_safetensors(path: &Path) -> Result<Vec<RawTensor>> {
    use safetensors::Dtype;
    let bytes = std::fs::read(path).map_err(|e| EngineError::ReadFile { path: path.into(), reason: e.to_string() })?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| invalid(path, e.to_string()))?;
    Ok(file
        .iter()
        .map(|(name, view)| RawTensor {
            name: name.to_string(),
            dtype: match view.dtype() {
                Dtype::F64 => FloatType::F64,
                Dtype::F32 => FloatType::F32,
                Dtype::F16 => FloatType::F16,
                Dtype::BF16 => FloatType::Bf16,
                _ => FloatType::Other,
            },
            shape: view.shape().to_vec(),
            bytes: view.data().to_vec(),
        })
        .collect())
}

fn read_pytorch(path: &Path) -> Result<Vec<RawTensor>> {
    use pytorch_reader::DType;
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| invalid(path, e.to_string()))?;
    let mut tensors = Vec::new();
    for (name, tensor) in reader.tensors() {
        let dtype = match tensor.dtype() {
            DType::F64 => FloatType::F64,
            DType::F32 => FloatType::F32,
            DType::F16 => FloatType::F16,
            DType::BF16 => FloatType::Bf16,
            _ => FloatType::Other,
        };
        // Only float tensors are read: an integer one is never an embedding.
        let bytes = if matches!(dtype, FloatType::Other) {
            Vec::new()
        } else {
            tensor.read().map_err(|e| invalid(path, e.to_string()))?
        };
        tensors.push(RawTensor { name: name.clone(), dtype, shape: tensor.shape().to_vec(), bytes });
    }
    Ok(tensors)
}

/// The embedding's tensor, as A1111's `create_embedding_from_data` finds it: `string_to_param`'s one entry, else
/// `emb_params`, else the file's only tensor (a diffusers concept); `[width]` is one vector.
fn pick_vectors(path: &Path, mut tensors: Vec<RawTensor>) -> Result<(Vec<usize>, Vec<f32>)> {
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let names = || tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
    let from_a1111: Vec<usize> =
        (0..tensors.len()).filter(|&i| tensors[i].name.starts_with("string_to_param.")).collect();
    let index = if from_a1111.len() == 1 {
        from_a1111[0]
    } else if let Some(i) = tensors.iter().position(|t| t.name == "emb_params") {
        i
    } else if tensors.len() == 1 {
        0
    } else if tensors.iter().any(|t| t.name == "clip_g" || t.name == "clip_l") {
        return Err(invalid(path, "an SDXL embedding (clip_g, clip_l): it needs an SDXL model"));
    } else {
        return Err(invalid(
            path,
            format!("expected one embedding tensor (string_to_param, emb_params or a diffusers token), found: {}", {
                let listed = names();
                if listed.is_empty() { "none".to_string() } else { listed }
            }),
        ));
    };
    let tensor = tensors.swap_remove(index);
    let shape = match tensor.shape.as_slice() {
        [width] => vec![1, *width],
        [count, width] => vec![*count, *width],
        other => {
            return Err(invalid(
                path,
                format!("tensor {} has shape {other:?}, expected [vectors, width]", tensor.name),
            ));
        }
    };
    let values: Vec<f32> = match tensor.dtype {
        FloatType::F32 => tensor.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        FloatType::F64 => tensor
            .bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        FloatType::F16 => tensor.bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        FloatType::Bf16 => tensor.bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        FloatType::Other => return Err(invalid(path, format!("tensor {} is not a float tensor", tensor.name))),
    };
    if values.len() != shape[0] * shape[1] {
        return Err(invalid(path, format!("tensor {} holds {} values for shape {shape:?}", tensor.name, values.len())));
    }
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
    }

    #[test]
    fn reads_a1111_pt_and_civitai_safetensors() {
        let library = EmbeddingLibrary::load_folder(&fixtures().join("embeddings")).unwrap();
        let summary: Vec<(&str, usize, usize)> =
            library.embeddings().iter().map(|e| (e.name.as_str(), e.count(), e.width())).collect();
        assert_eq!(summary, vec![("tiny-style", 2, 32), ("tiny-token", 1, 32)]);
        assert!(library.embeddings()[0].vectors().iter().all(|v| v.is_finite() && v.abs() < 1.0));
    }

    #[test]
    fn a_file_that_is_not_an_embedding_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.pt");
        std::fs::write(&path, b"not a zip").unwrap();
        let error = Embedding::read(&path).unwrap_err().to_string();
        assert!(error.contains("broken.pt"), "{error}");
        // Files of other kinds in the folder are skipped.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        assert!(EmbeddingLibrary::load_folder(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn two_embeddings_of_the_same_name_are_refused() {
        let a = Embedding::new("Style", Path::new("a/Style.pt"), vec![0.0; 4], 4).unwrap();
        let b = Embedding::new("style", Path::new("b/style.safetensors"), vec![0.0; 4], 4).unwrap();
        let error = EmbeddingLibrary::from_embeddings(vec![a, b]).unwrap_err().to_string();
        assert!(error.contains("same name"), "{error}");
    }
}
