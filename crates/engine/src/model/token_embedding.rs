//! Textual-inversion embeddings as extra rows of the text encoder's token table.
//!
//! The token table is the initializer `[vocab, width]` that a `Gather` indexes with the token ids (in exports of
//! CLIP: `input_ids` -> `Cast`/`Reshape` -> `Gather(token_embedding.weight, ids)`). Its rows are read from the
//! ONNX file, the embeddings' vectors appended, and ONNX Runtime is given the longer table in its place when the
//! session is created (`AddInitializer`), so the export needs no change. An embedding's vectors get the ids from
//! `vocab` on, and the tokenizer maps the embedding's name to them: the text encoder then sees exactly what
//! A1111's `EmbeddingsWithFixes` writes over its token embeddings.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use half::f16;
use ort::value::{DynValue, Tensor};
use protobuf::Message;

use super::onnx_proto::onnx::tensor_proto::DataLocation;
use super::onnx_proto::onnx::{GraphProto, ModelProto, TensorProto};
use super::sessions::{LoadedModel, TextEncoderSession};
use crate::error::{EngineError, Result};
use crate::runtime::Runtime;
use crate::text::{EmbeddingLibrary, EmbeddingTokens};

/// Operators that pass the token ids on unchanged in value, between `input_ids` and the table's `Gather`.
const ID_PASSTHROUGH: [&str; 6] = ["Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"];
/// `TensorProto.DataType` values (onnx.proto).
const FLOAT: i32 = 1;
const FLOAT16: i32 = 10;

impl LoadedModel {
    /// Makes `library`'s embeddings usable by name in prompts: the text encoder session is created again with
    /// their vectors appended to its token table, and the tokenizer learns their names. An empty library removes
    /// the embeddings set before. An embedding whose width is not the text encoder's is an error naming its file
    /// and both widths.
    pub fn set_embeddings(&mut self, runtime: &Runtime, library: &EmbeddingLibrary) -> Result<()> {
        let files = self.folder.text_encoder.clone();
        if library.is_empty() {
            if !self.tokenizer.embeddings().is_empty() {
                self.text_encoder = TextEncoderSession::load_with_initializers(runtime, &files, Vec::new())?;
                self.watch_cancel_in_text_encoder()?;
                self.tokenizer.set_embeddings(Vec::new());
            }
            return Ok(());
        }
        let table = TokenTable::read(&files.model, "input_ids")?;
        let chunk_length = self.tokenizer.max_length() - 2;
        let mut tokens = Vec::with_capacity(library.embeddings().len());
        let mut next_id = table.rows;
        for embedding in library.embeddings() {
            if embedding.width() != table.width {
                return Err(EngineError::EmbeddingWidth {
                    path: embedding.path.clone(),
                    width: embedding.width(),
                    expected: table.width,
                });
            }
            if embedding.count() > chunk_length {
                return Err(EngineError::InvalidEmbedding {
                    path: embedding.path.clone(),
                    reason: format!("it has {} vectors; a prompt chunk holds {chunk_length}", embedding.count()),
                });
            }
            let name_ids = self.tokenizer.tokenize(&embedding.name)?;
            let ids = (next_id..next_id + embedding.count()).map(|id| id as u32).collect();
            next_id += embedding.count();
            tokens.push(EmbeddingTokens::new(&embedding.name, name_ids, ids));
        }
        let name = table.name.clone();
        let value = table.extended(library)?;
        self.text_encoder = TextEncoderSession::load_with_initializers(runtime, &files, vec![(name, value)])?;
        self.watch_cancel_in_text_encoder()?;
        self.tokenizer.set_embeddings(tokens);
        Ok(())
    }
}

/// The text encoder's token table as stored in the model.
struct TokenTable {
    name: String,
    rows: usize,
    width: usize,
    values: TableValues,
}

enum TableValues {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl TokenTable {
    /// Finds and reads the table of the model at `path` whose token ids come in as `ids_input`.
    fn read(path: &Path, ids_input: &str) -> Result<TokenTable> {
        let invalid = |reason: String| EngineError::InvalidModelFile { path: path.to_path_buf(), reason };
        let bytes =
            std::fs::read(path).map_err(|e| EngineError::ReadFile { path: path.into(), reason: e.to_string() })?;
        let model = ModelProto::parse_from_bytes(&bytes).map_err(|e| invalid(e.to_string()))?;
        drop(bytes);
        let graph = model.graph.get_or_default();
        let tensor = find_token_table(graph, ids_input).map_err(invalid)?;
        let (rows, width) = match tensor.dims.as_slice() {
            &[rows, width] if rows > 0 && width > 0 => (rows as usize, width as usize),
            dims => return Err(invalid(format!("token table {} has shape {dims:?}", tensor.name()))),
        };
        let raw = tensor_bytes(tensor, path)?;
        let count = rows * width;
        let values = match tensor.data_type() {
            FLOAT if !raw.is_empty() => {
                TableValues::F32(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
            FLOAT => TableValues::F32(tensor.float_data.clone()),
            FLOAT16 if !raw.is_empty() => {
                TableValues::F16(raw.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]])).collect())
            }
            // float16 outside raw_data is stored one value per int32, in its low 16 bits.
            FLOAT16 => TableValues::F16(tensor.int32_data.iter().map(|&v| f16::from_bits(v as u16)).collect()),
            other => return Err(invalid(format!("token table {} has element type {other}", tensor.name()))),
        };
        let found = match &values {
            TableValues::F32(v) => v.len(),
            TableValues::F16(v) => v.len(),
        };
        if found != count {
            return Err(invalid(format!("token table {} holds {found} values for {rows}x{width}", tensor.name())));
        }
        Ok(TokenTable { name: tensor.name().to_string(), rows, width, values })
    }

    /// The table with each embedding's vectors appended, in the table's element type.
    fn extended(self, library: &EmbeddingLibrary) -> Result<DynValue> {
        let extra: usize = library.embeddings().iter().map(|e| e.count()).sum();
        let shape = vec![self.rows + extra, self.width];
        let vectors = library.embeddings().iter().flat_map(|e| e.vectors().iter().copied());
        let value = match self.values {
            TableValues::F32(mut values) => {
                values.extend(vectors);
                Tensor::from_array((shape, values)).map(|t| t.into_dyn())
            }
            TableValues::F16(mut values) => {
                values.extend(vectors.map(f16::from_f32));
                Tensor::from_array((shape, values)).map(|t| t.into_dyn())
            }
        };
        value.map_err(|e| EngineError::inference("text_encoder", e))
    }
}

/// The initializer `[vocab, width]` gathered by the token ids: the `Gather` (on axis 0) whose indices come from
/// `ids_input` through operators that keep the values ([`ID_PASSTHROUGH`]), and whose data is an initializer,
/// directly or through an `Identity`.
fn find_token_table<'g>(graph: &'g GraphProto, ids_input: &str) -> std::result::Result<&'g TensorProto, String> {
    let initializers: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name(), t)).collect();
    let mut from_ids: HashSet<&str> = HashSet::from([ids_input]);
    let mut aliases: HashMap<&str, &str> = HashMap::new();
    for node in &graph.node {
        let Some(first) = node.input.first().map(String::as_str) else { continue };
        if ID_PASSTHROUGH.contains(&node.op_type()) && from_ids.contains(first) {
            from_ids.extend(node.output.iter().map(String::as_str));
        }
        if node.op_type() == "Identity" && initializers.contains_key(first) {
            aliases.extend(node.output.iter().map(|output| (output.as_str(), first)));
        }
    }
    let mut tables: Vec<&TensorProto> = Vec::new();
    for node in graph.node.iter().filter(|n| n.op_type() == "Gather" && n.input.len() == 2) {
        let axis = node.attribute.iter().find(|a| a.name() == "axis").map_or(0, |a| a.i());
        if axis != 0 || !from_ids.contains(node.input[1].as_str()) {
            continue;
        }
        let data = node.input[0].as_str();
        let name = aliases.get(data).copied().unwrap_or(data);
        if let Some(tensor) = initializers.get(name).filter(|t| t.dims.len() == 2)
            && !tables.iter().any(|t| t.name() == tensor.name())
        {
            tables.push(tensor);
        }
    }
    match tables.as_slice() {
        [table] => Ok(table),
        [] => Err(format!(
            "no token table found: textual-inversion embeddings need a Gather of a [vocab, width] initializer by \
             {ids_input}"
        )),
        several => Err(format!(
            "several initializers are gathered by {ids_input} ({}); which is the token table is unclear",
            several.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The tensor's `raw_data`, from the model or from its external data file; empty when the values are in the typed
/// fields (`float_data`, `int32_data`).
fn tensor_bytes(tensor: &TensorProto, model: &Path) -> Result<Vec<u8>> {
    if tensor.data_location() != DataLocation::EXTERNAL {
        return Ok(tensor.raw_data().to_vec());
    }
    let entry = |key: &str| tensor.external_data.iter().find(|e| e.key() == key).map(|e| e.value().to_string());
    let location = entry("location").ok_or_else(|| EngineError::InvalidModelFile {
        path: model.to_path_buf(),
        reason: format!("tensor {} is external but names no location", tensor.name()),
    })?;
    let file: PathBuf = model.parent().unwrap_or(Path::new(".")).join(location);
    let read_error = |e: std::io::Error| EngineError::ReadFile { path: file.clone(), reason: e.to_string() };
    let offset = entry("offset").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let mut handle = std::fs::File::open(&file).map_err(read_error)?;
    handle.seek(SeekFrom::Start(offset)).map_err(read_error)?;
    let mut bytes = Vec::new();
    match entry("length").and_then(|v| v.parse::<u64>().ok()) {
        Some(length) => handle.take(length).read_to_end(&mut bytes),
        None => handle.read_to_end(&mut bytes),
    }
    .map_err(read_error)?;
    Ok(bytes)
}
