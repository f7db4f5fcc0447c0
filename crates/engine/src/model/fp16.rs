//! fp16 variants of fp32 ONNX components, made once at import and cached.
//!
//! Where a model folder holds only fp32 weights and fp16 is wanted (a GPU), [`fp16_variant`] returns an fp16 copy
//! of one component (`unet/model.onnx`, ...), converting it the first time:
//!
//! - float32 initializers and `Constant` tensors become float16 (values beyond fp16's range saturate at ±65504 and
//!   tiny non-zero values stay non-zero, as onnxconverter-common's `convert_np_to_float16` does);
//! - the graph's inputs and outputs keep their float32 type: Cast nodes at the boundary, as
//!   `convert_float_to_float16(keep_io_types=True)`, so the pipeline feeds and reads the same tensors;
//! - the operations that overflow or lose too much in fp16 stay in fp32 with Casts around them (see
//!   [`Fp32Reason`]): a stated operator block list, the variance half of decomposed LayerNorm/RMSNorm (`Pow` and
//!   the reduction after it) and the sinusoidal timestep embedding (`Sin`/`Cos` and what computes their argument);
//! - `Cast` nodes to float32 become casts to float16, `value_info` types follow.
//!
//! The result is `model.onnx` with every weight of 1 KiB or more in `model.onnx_data` beside it, whatever the
//! source's layout (weights inside the graph, `model.onnx_data`, `weights.pb`). Weights are streamed one tensor at a
//! time in 4 MiB chunks: converting a 3.4 GB external-data UNet holds its graph (a few MB) and two chunk buffers,
//! never the weights. Sources whose weights sit inside `model.onnx` are held once, as parsed.
//!
//! ```no_run
//! use std::path::Path;
//! use pigment_engine::model::fp16::fp16_variant;
//! use pigment_engine::progress::Flow;
//!
//! let unet = Path::new("models/sd15/unet/model.onnx");
//! let cache = Path::new("/home/me/.cache/pigment");
//! let fp16_unet = fp16_variant(unet, cache, |done, total| {
//!     println!("converting the UNet: {done} of {total} bytes");
//!     Flow::Continue
//! })?;
//! // `fp16_unet` is `<cache>/fp16/<entry>/model.onnx`: load it in place of the fp32 graph.
//! # Ok::<(), pigment_engine::EngineError>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component as PathComponent, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use half::f16;
use protobuf::{EnumOrUnknown, Message, MessageField};
use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};
use crate::progress::Flow;

use super::onnx_proto::onnx::attribute_proto::AttributeType;
use super::onnx_proto::onnx::tensor_proto::DataLocation;
use super::onnx_proto::onnx::type_proto;
use super::onnx_proto::onnx::{
    AttributeProto, GraphProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto, ValueInfoProto,
};

/// Part of every cache key: bump it when the converter's output changes, so old cache entries are not reused.
pub const CONVERTER_VERSION: u32 = 1;

/// File names of a converted component, as ONNX Runtime resolves them: the weights file next to the graph.
pub const GRAPH_FILE: &str = "model.onnx";
pub const WEIGHTS_FILE: &str = "model.onnx_data";

/// Tensors smaller than this stay inside the graph, as onnx's `save_model(size_threshold=1024)` keeps them.
const INLINE_LIMIT: u64 = 1024;
/// Elements converted per read while streaming weights (4 MiB of float32).
const CHUNK_ELEMENTS: usize = 1 << 20;
/// A temporary conversion folder untouched for this long belongs to a run that died; it is removed.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);
/// Key in the converted model's `metadata_props`.
const METADATA_KEY: &str = "pigment.fp16_converter";

/// `TensorProto.DataType` values (onnx.proto).
mod data_type {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const STRING: i32 = 8;

    /// Bits per element, for the fixed-size types (4-bit and 2-bit types are packed).
    pub fn bits(data_type: i32) -> Option<u64> {
        Some(match data_type {
            2 | 3 | 9 | 17..=20 | 24 => 8, // uint8, int8, bool, float8 variants
            4 | 5 | 10 | 16 => 16,         // uint16, int16, float16, bfloat16
            1 | 6 | 12 => 32,              // float, int32, uint32
            7 | 11 | 13 | 14 => 64,        // int64, double, uint64, complex64
            15 => 128,                     // complex128
            21..=23 => 4,                  // uint4, int4, float4e2m1
            25 | 26 => 2,                  // uint2, int2
            _ => return None,              // undefined, string, float6 variants
        })
    }
}

pub use crate::error::Fp16Problem;

/// Why a node stays in fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fp32Reason {
    /// Its operator is on the block list ([`fp32_operator`]).
    BlockedOperator,
    /// `Pow` and the reduction, epsilon `Add` and `Sqrt` after it: the variance of a decomposed LayerNorm/RMSNorm.
    /// Squares overflow fp16 as soon as |x - mean| > 255.9 (256² > 65504), long before x itself does; the mean of
    /// squares is then infinite and the normalized output zero. torch computes these statistics in fp32 under fp16,
    /// as ONNX Runtime's fused LayerNormalization does (`stash_type` float).
    VarianceChain,
    /// `Sin`/`Cos` and the nodes that compute their argument (`timestep * frequencies`): diffusers computes the
    /// timestep embedding in float32 and casts only the result (`get_timestep_embedding`, `t_emb.to(dtype)`).
    /// In fp16, a timestep near 999 is stored to ±0.25 and the highest frequencies' phase is lost.
    SinusoidalEmbedding,
    /// An operator that makes float32 out of non-float inputs in a way the converter cannot retarget.
    FloatFromNonFloat,
    /// A constant (or cast) whose only users run in fp32, so converting it would only lose precision.
    Fp32Users,
}

/// One node left in fp32.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fp32Node {
    pub name: String,
    pub op_type: String,
    pub reason: Fp32Reason,
}

/// What a conversion did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fp16Summary {
    /// Float32 initializers and `Constant` tensors now stored as float16.
    pub fp16_tensors: usize,
    /// Float32 initializers kept as they were: every node that uses them runs in fp32.
    pub fp32_tensors: usize,
    /// Nodes left in fp32, with the reason.
    pub fp32_nodes: Vec<Fp32Node>,
    /// Cast nodes added (graph boundary and around fp32 nodes).
    pub casts_added: usize,
    /// Bytes of initializer data read from the source, and written to the converted weights file.
    pub source_weight_bytes: u64,
    pub weights_file_bytes: u64,
}

/// The fp16 variant of the fp32 ONNX graph `component_model` (its weights inside it or in files next to it),
/// converted into `cache_dir/fp16/` on the first call and returned from there afterwards.
///
/// The entry is keyed by the source's identity: the graph file's SHA-256, size and modification time, the size and
/// modification time of every other file in its folder (the external weights), and [`CONVERTER_VERSION`]. A changed
/// source gets a new entry, and the entries of its older versions are removed. An entry appears only complete
/// (written in a temporary folder, then renamed), so an interrupted conversion never leaves one that looks done.
///
/// `progress` gets (weight bytes done, total) after each tensor; returning [`Flow::Cancel`] stops the conversion
/// with [`EngineError::Cancelled`] (as a cancelled generation: the CLI and the app already treat it as such) and
/// leaves nothing behind. It is not called when the cache answers.
pub fn fp16_variant(
    component_model: &Path,
    cache_dir: &Path,
    progress: impl FnMut(u64, u64) -> Flow,
) -> Result<PathBuf> {
    let identity = SourceIdentity::of(component_model)?;
    let root = cache_dir.join("fp16");
    let entry = root.join(identity.entry_name());
    let graph = entry.join(GRAPH_FILE);
    if graph.is_file() {
        return Ok(graph);
    }
    match convert_to_fp16(component_model, &entry, progress) {
        Ok(_) => {}
        // Another process finished the same conversion first: its entry is as good as ours.
        Err(_) if graph.is_file() => {}
        Err(error) => return Err(error),
    }
    identity.remove_stale_entries(&root);
    Ok(graph)
}

/// Converts the fp32 ONNX graph `source_model` into a new folder `destination` holding [`GRAPH_FILE`] and
/// [`WEIGHTS_FILE`]. The folder is written under a temporary name beside it and renamed when complete; it must not
/// exist yet. `progress` as in [`fp16_variant`].
pub fn convert_to_fp16(
    source_model: &Path,
    destination: &Path,
    mut progress: impl FnMut(u64, u64) -> Flow,
) -> Result<Fp16Summary> {
    let problem = |problem| EngineError::Fp16Conversion { path: source_model.to_path_buf(), problem };
    if destination.exists() {
        return Err(problem(Fp16Problem::DestinationExists { destination: destination.to_path_buf() }));
    }
    let (parent, name) = match (destination.parent(), destination.file_name()) {
        (Some(parent), Some(name)) => (parent, name.to_string_lossy()),
        _ => return Err(write_error(destination, "not a folder path")),
    };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let temporary = TemporaryFolder::create(parent.join(format!(".tmp-{name}-{}-{nanos}", std::process::id())))?;
    let summary = convert_into(source_model, temporary.path(), &mut progress)?;
    fs::rename(temporary.path(), destination).map_err(|e| write_error(destination, e))?;
    temporary.keep();
    Ok(summary)
}

fn convert_into(source: &Path, folder: &Path, progress: &mut dyn FnMut(u64, u64) -> Flow) -> Result<Fp16Summary> {
    let problem = |problem| EngineError::Fp16Conversion { path: source.to_path_buf(), problem };
    let file = File::open(source).map_err(|e| read_error(source, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut model = ModelProto::parse_from_reader(&mut reader)
        .map_err(|e| problem(Fp16Problem::NotOnnx { reason: e.to_string() }))?;
    drop(reader);
    let opset = default_opset(&model);
    let graph = check_convertible(&model).map_err(problem)?;

    let facts = GraphFacts::read(graph);
    let plan = Plan::make(graph, &facts, opset);
    let fp32_nodes = plan.fp32_nodes(graph);
    let fp16_initializers = plan.fp16_initializers(graph, &facts);
    // The type of every float32 tensor after conversion, before any cast.
    let converted: HashMap<String, i32> = facts
        .types
        .iter()
        .filter(|&(_, &t)| t == data_type::FLOAT)
        .map(|(name, _)| (name.clone(), plan.converted_type(name, &facts, &fp16_initializers, &graph.node)))
        .collect();

    let graph = model.graph.mut_or_insert_default();
    let casts_added = rewrite_nodes(graph, &facts, &plan, &converted);
    update_declared_types(graph, &facts, &converted);

    let mut weights = WeightsWriter::create(folder.join(WEIGHTS_FILE))?;
    let source_dir = source.parent().unwrap_or(Path::new("."));
    let mut external = ExternalFiles::new(source_dir);
    let total: u64 = graph.initializer.iter().map(source_bytes).sum();
    let mut done = 0;
    let (mut fp16_tensors, mut fp32_tensors) = (0, 0);
    if progress(0, total) != Flow::Continue {
        return Err(EngineError::Cancelled);
    }
    for tensor in &mut graph.initializer {
        let to_fp16 = fp16_initializers.contains(tensor.name());
        if tensor.data_type() == data_type::FLOAT {
            if to_fp16 {
                fp16_tensors += 1;
            } else {
                fp32_tensors += 1;
            }
        }
        done += source_bytes(tensor);
        store_tensor(tensor, to_fp16, source, &mut external, Some(&mut weights))?;
        if progress(done, total) != Flow::Continue {
            return Err(EngineError::Cancelled);
        }
    }
    // Constant tensors: converted where they are, inside the graph, unless all their users run in fp32.
    for node in graph.node.iter_mut().filter(|node| is_onnx_op(node, "Constant")) {
        let fp16 = !plan.fp32_constant_outputs.contains(node.output.first().map_or("", String::as_str));
        for attribute in node.attribute.iter_mut().filter(|a| a.name() == "value") {
            if let Some(tensor) = attribute.t.as_mut() {
                let to_fp16 = fp16 && tensor.data_type() == data_type::FLOAT;
                fp16_tensors += usize::from(to_fp16);
                store_tensor(tensor, to_fp16, source, &mut external, None)?;
            }
        }
    }
    let weights_file_bytes = weights.finish()?;

    model.metadata_props.retain(|entry| entry.key() != METADATA_KEY);
    let mut stamp = StringStringEntryProto::new();
    stamp.set_key(METADATA_KEY.into());
    stamp.set_value(CONVERTER_VERSION.to_string());
    model.metadata_props.push(stamp);
    write_graph(&model, &folder.join(GRAPH_FILE)).map_err(|e| match e {
        GraphWriteError::TooLarge(bytes) => problem(Fp16Problem::TooLarge { bytes }),
        GraphWriteError::Io(error) => error,
    })?;
    Ok(Fp16Summary {
        fp16_tensors,
        fp32_tensors,
        fp32_nodes,
        casts_added,
        source_weight_bytes: total,
        weights_file_bytes,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// What can be converted

fn check_convertible(model: &ModelProto) -> std::result::Result<&GraphProto, Fp16Problem> {
    let graph = model
        .graph
        .as_ref()
        .filter(|graph| !graph.node.is_empty())
        .ok_or_else(|| Fp16Problem::NotOnnx { reason: "it has no graph".into() })?;
    if !model.functions.is_empty() {
        let names: Vec<&str> = model.functions.iter().map(|f| f.name()).collect();
        return Err(Fp16Problem::LocalFunctions { names: names.join(", ") });
    }
    if !graph.sparse_initializer.is_empty() {
        let names: Vec<&str> =
            graph.sparse_initializer.iter().map(|s| s.values.as_ref().map_or("", |v| v.name())).collect();
        return Err(Fp16Problem::SparseInitializers { names: names.join(", ") });
    }
    for node in &graph.node {
        let holds_graph = node.attribute.iter().any(|a| {
            a.g.is_some()
                || !a.graphs.is_empty()
                || matches!(attribute_type(a), Some(AttributeType::GRAPH | AttributeType::GRAPHS))
        });
        if holds_graph {
            return Err(Fp16Problem::Subgraph { node: node.name().into(), op_type: node.op_type().into() });
        }
    }
    // Already converted: our stamp, or more float16 weight bytes than float32 ones (a graph converted elsewhere keeps
    // a few float32 tensors, such as Resize scales).
    if model.metadata_props.iter().any(|entry| entry.key() == METADATA_KEY) {
        return Err(Fp16Problem::AlreadyFp16);
    }
    let constants = graph
        .node
        .iter()
        .filter(|n| is_onnx_op(n, "Constant"))
        .flat_map(|n| n.attribute.iter().filter_map(|a| a.t.as_ref()));
    let (mut fp32_bytes, mut fp16_bytes) = (0, 0);
    for tensor in graph.initializer.iter().chain(constants) {
        match tensor.data_type() {
            data_type::FLOAT => fp32_bytes += source_bytes(tensor),
            data_type::FLOAT16 => fp16_bytes += source_bytes(tensor),
            _ => {}
        }
    }
    if fp16_bytes > fp32_bytes {
        return Err(Fp16Problem::AlreadyFp16);
    }
    if fp32_bytes == 0 {
        return Err(Fp16Problem::NoFloatWeights);
    }
    Ok(graph)
}

fn attribute_type(attribute: &AttributeProto) -> Option<AttributeType> {
    attribute.type_.and_then(|t| t.enum_value().ok())
}

fn is_onnx_domain(node: &NodeProto) -> bool {
    matches!(node.domain(), "" | "ai.onnx")
}

fn is_onnx_op(node: &NodeProto, op_type: &str) -> bool {
    is_onnx_domain(node) && node.op_type() == op_type
}

fn default_opset(model: &ModelProto) -> i64 {
    model.opset_import.iter().filter(|o| matches!(o.domain(), "" | "ai.onnx")).map(|o| o.version()).max().unwrap_or(1)
}

// ---------------------------------------------------------------------------------------------------------------
// Which nodes run in fp16

/// Operators that stay in fp32. onnxconverter-common's `DEFAULT_OP_BLOCK_LIST` for the ones that can occur in SD
/// graphs (the ai.onnx.ml operators it lists are covered by blocking that whole domain), plus the random and
/// quantization operators.
fn fp32_operator(node: &NodeProto) -> bool {
    if node.domain() == "ai.onnx.ml" {
        // Classical ML operators (LinearClassifier, TreeEnsemble, ...): float32-only kernels.
        return true;
    }
    is_onnx_domain(node)
        && matches!(
            node.op_type(),
            // onnxconverter-common's defaults: fp16 kernels are missing for these on some providers, and an fp16
            // Range or running sum counts exactly only to 2048. Upsample is the deprecated Resize, whose scales are
            // float32 (Resize itself runs in fp16; only its scales input stays float32, see fp32_input).
            "Range" | "CumSum" | "TopK" | "Min" | "Max" | "Upsample" | "NonMaxSuppression" | "RoiAlign"
            // Noise is drawn in float32 (as torch draws SD's noise), then cast: fp16 sampling clips the tails.
            | "RandomNormal" | "RandomUniform" | "RandomNormalLike" | "RandomUniformLike" | "Multinomial"
            | "Bernoulli"
            // Scales are float32 by contract up to opset 19; quantized graphs keep them so.
            | "QuantizeLinear" | "DequantizeLinear" | "DynamicQuantizeLinear"
            // Sums of squares overflow fp16 like the variance chain below.
            | "ReduceSumSquare" | "ReduceL2"
        )
}

/// Inputs whose type is float32 whatever the data's type: they keep a float32 source (a Cast if need be).
fn fp32_input(node: &NodeProto, slot: usize, opset: i64) -> bool {
    match (node.domain(), node.op_type()) {
        ("" | "ai.onnx", "Resize") => slot == if opset <= 10 { 1 } else { 2 }, // scales
        ("" | "ai.onnx", "Upsample") => slot == 1,
        // ONNX Runtime's fused GroupNorm takes float32 gamma and beta (ALWAYS_FLOAT_INPUTS in ORT's float16.py).
        ("com.microsoft", "GroupNorm" | "SkipGroupNorm") => slot == 1 || slot == 2,
        _ => false,
    }
}

/// Outputs that are float32 whatever the input type: normalization statistics kept at `stash_type` float.
fn fp32_output(node: &NodeProto, slot: usize) -> bool {
    match (node.domain(), node.op_type()) {
        ("" | "ai.onnx" | "com.microsoft", "LayerNormalization")
        | ("com.microsoft", "SkipLayerNormalization" | "SkipSimplifiedLayerNormalization") => slot == 1 || slot == 2,
        ("com.microsoft", "SimplifiedLayerNormalization") => slot == 1,
        _ => false,
    }
}

/// Ops through which the variance chain continues after `Pow`: mean of squares, + epsilon, square root.
const VARIANCE_CHAIN_OPS: &[&str] = &["ReduceMean", "ReduceSum", "Add", "Sqrt"];
/// Ops through which the timestep argument of `Sin`/`Cos` is followed back: arithmetic and reshaping of a few
/// hundred numbers, cheap in fp32.
const SINUSOID_ARGUMENT_OPS: &[&str] = &[
    "Mul",
    "Div",
    "Add",
    "Sub",
    "Neg",
    "Exp",
    "Cast",
    "Unsqueeze",
    "Squeeze",
    "Reshape",
    "Expand",
    "Concat",
    "Slice",
    "Gather",
    "Identity",
    "Flatten",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Fp16,
    Fp32(Fp32Reason),
    /// Constants and casts from non-float types: fp16 when a user runs in fp16, else fp32.
    FollowUsers,
}

/// Names, types and connections of the graph as it was read.
struct GraphFacts {
    /// Element type of every tensor whose type is known (declared or inferred).
    types: HashMap<String, i32>,
    producer: HashMap<String, (usize, usize)>,
    consumers: HashMap<String, Vec<(usize, usize)>>,
    graph_inputs: HashSet<String>,
    graph_outputs: HashSet<String>,
    initializers: HashSet<String>,
}

impl GraphFacts {
    fn read(graph: &GraphProto) -> GraphFacts {
        let initializers: HashSet<String> = graph.initializer.iter().map(|t| t.name().to_string()).collect();
        let graph_inputs =
            graph.input.iter().map(|v| v.name().to_string()).filter(|n| !initializers.contains(n)).collect();
        let graph_outputs = graph.output.iter().map(|v| v.name().to_string()).collect();
        let mut producer = HashMap::new();
        let mut consumers: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        for (index, node) in graph.node.iter().enumerate() {
            for (slot, name) in node.output.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
                producer.insert(name.clone(), (index, slot));
            }
            for (slot, name) in node.input.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
                consumers.entry(name.clone()).or_default().push((index, slot));
            }
        }
        GraphFacts { types: infer_types(graph), producer, consumers, graph_inputs, graph_outputs, initializers }
    }

    fn is_float(&self, name: &str) -> bool {
        self.types.get(name) == Some(&data_type::FLOAT)
    }
}

/// The precision of every node, and where casts go.
struct Plan {
    precision: Vec<Precision>,
    opset: i64,
    /// Outputs of `Constant` nodes that stay float32.
    fp32_constant_outputs: HashSet<String>,
}

impl Plan {
    fn make(graph: &GraphProto, facts: &GraphFacts, opset: i64) -> Plan {
        let nodes = &graph.node;
        let mut precision: Vec<Option<Precision>> = vec![None; nodes.len()];
        for (index, node) in nodes.iter().enumerate() {
            if fp32_operator(node) {
                precision[index] = Some(Precision::Fp32(Fp32Reason::BlockedOperator));
            }
        }
        // Variance chains: Pow, then its sole float user while that is a reduction, + epsilon or square root.
        for (index, node) in nodes.iter().enumerate() {
            if !is_onnx_op(node, "Pow") || precision[index].is_some() {
                continue;
            }
            let mut current = index;
            loop {
                precision[current] = Some(Precision::Fp32(Fp32Reason::VarianceChain));
                let users = nodes[current].output.first().and_then(|out| facts.consumers.get(out));
                match users.map(Vec::as_slice) {
                    Some([(next, _)])
                        if precision[*next].is_none()
                            && is_onnx_domain(&nodes[*next])
                            && VARIANCE_CHAIN_OPS.contains(&nodes[*next].op_type()) =>
                    {
                        current = *next
                    }
                    _ => break,
                }
            }
        }
        // Sinusoidal embeddings: Sin/Cos and the float nodes computing their argument.
        let mut stack: Vec<usize> =
            (0..nodes.len()).filter(|&i| is_onnx_op(&nodes[i], "Sin") || is_onnx_op(&nodes[i], "Cos")).collect();
        while let Some(index) = stack.pop() {
            if precision[index].is_some() {
                continue;
            }
            precision[index] = Some(Precision::Fp32(Fp32Reason::SinusoidalEmbedding));
            for input in nodes[index].input.iter().filter(|name| facts.is_float(name)) {
                if let Some(&(producer, _)) = facts.producer.get(input) {
                    let node = &nodes[producer];
                    if is_onnx_domain(node) && SINUSOID_ARGUMENT_OPS.contains(&node.op_type()) {
                        stack.push(producer);
                    }
                }
            }
        }
        // Everything else: fp16, except nodes that make floats from non-floats.
        for (index, node) in nodes.iter().enumerate() {
            if precision[index].is_some() {
                continue;
            }
            let float_in = node.input.iter().any(|name| facts.is_float(name));
            let float_out = node.output.iter().any(|name| facts.is_float(name));
            precision[index] = Some(if float_in || !float_out {
                Precision::Fp16
            } else if is_onnx_domain(node)
                && matches!(node.op_type(), "Constant" | "ConstantOfShape" | "Cast")
                && !node.attribute.iter().any(|a| a.name() == "sparse_value")
            {
                Precision::FollowUsers
            } else {
                Precision::Fp32(Fp32Reason::FloatFromNonFloat)
            });
        }
        let mut plan = Plan {
            precision: precision.into_iter().map(|p| p.unwrap_or(Precision::Fp16)).collect(),
            opset,
            fp32_constant_outputs: HashSet::new(),
        };
        // Constants and casts follow their users (who are never FollowUsers themselves: those take no floats).
        for index in 0..nodes.len() {
            if plan.precision[index] != Precision::FollowUsers {
                continue;
            }
            let fp16_user = nodes[index].output.iter().filter(|name| facts.is_float(name)).any(|name| {
                facts.consumers.get(name).is_some_and(|users| users.iter().any(|&(n, s)| plan.wants_fp16(nodes, n, s)))
            });
            plan.precision[index] = if fp16_user { Precision::Fp16 } else { Precision::Fp32(Fp32Reason::Fp32Users) };
            if !fp16_user && is_onnx_op(&nodes[index], "Constant") {
                plan.fp32_constant_outputs.extend(nodes[index].output.iter().cloned());
            }
        }
        plan
    }

    fn is_fp16(&self, node: usize) -> bool {
        self.precision[node] == Precision::Fp16
    }

    /// Whether input `slot` of node `node` takes float16 (when its tensor is a float one).
    fn wants_fp16(&self, nodes: &[NodeProto], node: usize, slot: usize) -> bool {
        self.is_fp16(node) && !fp32_input(&nodes[node], slot, self.opset)
    }

    fn fp32_nodes(&self, graph: &GraphProto) -> Vec<Fp32Node> {
        graph
            .node
            .iter()
            .zip(&self.precision)
            .filter_map(|(node, precision)| match precision {
                Precision::Fp32(reason) => {
                    Some(Fp32Node { name: node.name().into(), op_type: node.op_type().into(), reason: *reason })
                }
                _ => None,
            })
            .collect()
    }

    /// Float32 initializers to store as float16: those read by an fp16 input, and unused ones. An initializer that
    /// is also a graph output keeps float32, as the graph's outputs do.
    fn fp16_initializers(&self, graph: &GraphProto, facts: &GraphFacts) -> HashSet<String> {
        graph
            .initializer
            .iter()
            .filter(|t| t.data_type() == data_type::FLOAT && !facts.graph_outputs.contains(t.name()))
            .filter(|t| match facts.consumers.get(t.name()) {
                None => true,
                Some(users) => users.iter().any(|&(node, slot)| self.wants_fp16(&graph.node, node, slot)),
            })
            .map(|t| t.name().to_string())
            .collect()
    }

    /// The element type a float32 tensor has after conversion, before any cast.
    fn converted_type(
        &self,
        name: &str,
        facts: &GraphFacts,
        fp16_initializers: &HashSet<String>,
        graph: &[NodeProto],
    ) -> i32 {
        if facts.graph_inputs.contains(name) {
            return data_type::FLOAT;
        }
        if facts.initializers.contains(name) {
            return if fp16_initializers.contains(name) { data_type::FLOAT16 } else { data_type::FLOAT };
        }
        match facts.producer.get(name) {
            Some(&(node, slot)) if self.is_fp16(node) && !fp32_output(&graph[node], slot) => data_type::FLOAT16,
            _ => data_type::FLOAT,
        }
    }
}

/// Inserts the casts, retargets the nodes that run in fp16, and keeps the graph outputs float32 by renaming the
/// fp16 tensor behind each. Node order stays topological: a cast is placed right before its first user, or right
/// after the producer of a graph output. Returns the number of casts added.
fn rewrite_nodes(graph: &mut GraphProto, facts: &GraphFacts, plan: &Plan, converted: &HashMap<String, i32>) -> usize {
    let mut names = NameSource::new(graph);
    let original = std::mem::take(&mut graph.node);
    let converted_type = |name: &str| converted.get(name).copied().unwrap_or(data_type::FLOAT);
    // Graph outputs computed in fp16: the fp16 tensor gets a new name, a Cast gives the output its float32 value.
    let mut renamed: HashMap<String, String> = HashMap::new();
    for output in &facts.graph_outputs {
        if facts.is_float(output) && facts.producer.contains_key(output) && converted_type(output) == data_type::FLOAT16
        {
            renamed.insert(output.clone(), names.fresh(&format!("{output}_fp16")));
        }
    }
    let mut casts: HashMap<(String, i32), String> = HashMap::new();
    let mut nodes = Vec::with_capacity(original.len() + original.len() / 4);
    let mut casts_added = 0;
    for (index, mut node) in original.into_iter().enumerate() {
        for slot in 0..node.input.len() {
            let name = node.input[slot].clone();
            if name.is_empty() || !facts.is_float(&name) {
                continue;
            }
            let fp16_input = plan.is_fp16(index) && !fp32_input(&node, slot, plan.opset);
            let want = if fp16_input { data_type::FLOAT16 } else { data_type::FLOAT };
            let (current, current_type) = match renamed.get(&name) {
                // The float32 graph output itself serves fp32 users.
                Some(_) if want == data_type::FLOAT => (name.clone(), data_type::FLOAT),
                Some(internal) => (internal.clone(), data_type::FLOAT16),
                None => (name.clone(), converted_type(&name)),
            };
            if current_type == want {
                node.input[slot] = current;
                continue;
            }
            let key = (current.clone(), want);
            let cast_output = match casts.get(&key) {
                Some(output) => output.clone(),
                None => {
                    let suffix = if want == data_type::FLOAT16 { "fp16" } else { "fp32" };
                    let output = names.fresh(&format!("{current}_{suffix}"));
                    nodes.push(cast_node(names.fresh(&format!("{current}_to_{suffix}")), &current, &output, want));
                    casts_added += 1;
                    casts.insert(key, output.clone());
                    output
                }
            };
            node.input[slot] = cast_output;
        }
        if plan.is_fp16(index) {
            retarget_to_fp16(&mut node);
        }
        let mut output_casts = Vec::new();
        for output in &mut node.output {
            if let Some(internal) = renamed.get(output.as_str()) {
                let name = names.fresh(&format!("{output}_to_fp32"));
                output_casts.push(cast_node(name, internal, output, data_type::FLOAT));
                *output = internal.clone();
            }
        }
        casts_added += output_casts.len();
        nodes.push(node);
        nodes.extend(output_casts);
    }
    graph.node = nodes;
    casts_added
}

/// Attributes that fix a float32 output type, changed to float16 on a node that runs in fp16.
fn retarget_to_fp16(node: &mut NodeProto) {
    if !is_onnx_domain(node) {
        return;
    }
    match node.op_type() {
        "Cast" => {
            for attribute in &mut node.attribute {
                if attribute.name() == "to" && attribute.i() == i64::from(data_type::FLOAT) {
                    attribute.set_i(data_type::FLOAT16.into());
                }
            }
        }
        "EyeLike" => {
            for attribute in &mut node.attribute {
                if attribute.name() == "dtype" && attribute.i() == i64::from(data_type::FLOAT) {
                    attribute.set_i(data_type::FLOAT16.into());
                }
            }
        }
        "ConstantOfShape" => {
            // The value defaults to a float32 zero: an explicit float16 zero replaces it. An explicit float32
            // value (one element) is converted in place.
            let value = node.attribute.iter_mut().find(|a| a.name() == "value");
            match value {
                Some(attribute) => {
                    if let Some(tensor) = attribute.t.as_mut().filter(|t| t.data_type() == data_type::FLOAT) {
                        // Small by definition (one element): convert in place.
                        let values = float_values_inline(tensor);
                        set_fp16_inline(tensor, &values);
                    }
                }
                None => {
                    let mut tensor = TensorProto::new();
                    tensor.set_name("value".into());
                    tensor.dims = vec![1];
                    set_fp16_inline(&mut tensor, &[0.0]);
                    node.attribute.push(tensor_attribute("value", tensor));
                }
            }
        }
        "Constant" => {
            // value_float / value_floats become an fp16 `value` tensor; `value` tensors are converted with the
            // initializers (convert_into).
            for attribute in &mut node.attribute {
                let (values, dims) = match attribute.name() {
                    "value_float" => (attribute.f.map_or(vec![], |f| vec![f]), vec![]),
                    "value_floats" => (attribute.floats.clone(), vec![attribute.floats.len() as i64]),
                    _ => continue,
                };
                let mut tensor = TensorProto::new();
                tensor.dims = dims;
                set_fp16_inline(&mut tensor, &values);
                *attribute = tensor_attribute("value", tensor);
            }
        }
        _ => {}
    }
}

fn cast_node(name: String, input: &str, output: &str, to: i32) -> NodeProto {
    let mut node = NodeProto::new();
    node.set_name(name);
    node.set_op_type("Cast".into());
    node.input.push(input.into());
    node.output.push(output.into());
    let mut to_attribute = AttributeProto::new();
    to_attribute.set_name("to".into());
    to_attribute.type_ = Some(EnumOrUnknown::new(AttributeType::INT));
    to_attribute.set_i(to.into());
    node.attribute.push(to_attribute);
    node
}

fn tensor_attribute(name: &str, tensor: TensorProto) -> AttributeProto {
    let mut attribute = AttributeProto::new();
    attribute.set_name(name.into());
    attribute.type_ = Some(EnumOrUnknown::new(AttributeType::TENSOR));
    attribute.t = MessageField::some(tensor);
    attribute
}

/// `value_info` entries and initializer-backed graph inputs carry the converted types; graph outputs stay float32.
fn update_declared_types(graph: &mut GraphProto, facts: &GraphFacts, converted: &HashMap<String, i32>) {
    for value in graph.value_info.iter_mut().chain(graph.input.iter_mut()) {
        let name = value.name();
        if facts.graph_outputs.contains(name) {
            continue;
        }
        let Some(&new_type) = converted.get(name) else { continue };
        if let Some(type_proto::Value::TensorType(tensor)) = value.type_.as_mut().and_then(|t| t.value.as_mut())
            && tensor.elem_type == Some(data_type::FLOAT)
        {
            tensor.elem_type = Some(new_type);
        }
    }
}

/// Unused tensor and node names.
struct NameSource {
    taken: HashSet<String>,
}

impl NameSource {
    fn new(graph: &GraphProto) -> NameSource {
        let mut taken = HashSet::new();
        for node in &graph.node {
            taken.insert(node.name().to_string());
            taken.extend(node.input.iter().cloned());
            taken.extend(node.output.iter().cloned());
        }
        taken.extend(graph.input.iter().chain(&graph.output).chain(&graph.value_info).map(|v| v.name().to_string()));
        taken.extend(graph.initializer.iter().map(|t| t.name().to_string()));
        NameSource { taken }
    }

    fn fresh(&mut self, base: &str) -> String {
        let mut candidate = base.to_string();
        let mut counter = 1;
        while self.taken.contains(&candidate) {
            candidate = format!("{base}_{counter}");
            counter += 1;
        }
        self.taken.insert(candidate.clone());
        candidate
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Element types

fn value_info_type(value: &ValueInfoProto) -> Option<i32> {
    match value.type_.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(tensor) => tensor.elem_type,
        _ => None,
    }
}

fn constant_type(node: &NodeProto) -> Option<i32> {
    let attribute = node.attribute.first()?;
    Some(match attribute.name() {
        "value" => attribute.t.as_ref()?.data_type(),
        "sparse_value" => attribute.sparse_tensor.as_ref()?.values.as_ref()?.data_type(),
        "value_float" | "value_floats" => data_type::FLOAT,
        "value_int" | "value_ints" => data_type::INT64,
        "value_string" | "value_strings" => data_type::STRING,
        _ => return None,
    })
}

/// The element type of every tensor: declared (graph inputs, outputs, value_info, initializers), else inferred node
/// by node in graph order (ONNX graphs are topologically sorted) from the operator's type rule. Only "float32 or
/// not" matters to the converter, so the rules cover the operators whose output type is not their first input's.
fn infer_types(graph: &GraphProto) -> HashMap<String, i32> {
    let mut types = HashMap::new();
    for value in graph.input.iter().chain(&graph.output).chain(&graph.value_info) {
        if let Some(t) = value_info_type(value).filter(|&t| t != 0) {
            types.insert(value.name().to_string(), t);
        }
    }
    for tensor in &graph.initializer {
        types.insert(tensor.name().to_string(), tensor.data_type());
    }
    for node in &graph.node {
        let inferred = output_types(node, &types);
        for (slot, output) in node.output.iter().enumerate() {
            if let Some(t) = inferred.get(slot).copied().flatten()
                && !output.is_empty()
            {
                types.entry(output.clone()).or_insert(t);
            }
        }
    }
    types
}

fn output_types(node: &NodeProto, types: &HashMap<String, i32>) -> Vec<Option<i32>> {
    let input = |slot: usize| node.input.get(slot).and_then(|name| types.get(name)).copied();
    let first_known = node.input.iter().find_map(|name| types.get(name)).copied();
    let int_attribute = |name: &str| node.attribute.iter().find(|a| a.name() == name).map(|a| a.i() as i32);
    let count = node.output.len();
    let all = |t: Option<i32>| vec![t; count];
    let with_rest = |first: Vec<Option<i32>>| {
        let mut types = first;
        types.resize(count, None);
        types
    };
    if !is_onnx_domain(node) {
        return all(first_known);
    }
    match node.op_type() {
        "Cast" => all(int_attribute("to")),
        "CastLike" => all(input(1)),
        "Constant" => all(constant_type(node)),
        "ConstantOfShape" => all(Some(
            node.attribute
                .iter()
                .find(|a| a.name() == "value")
                .and_then(|a| a.t.as_ref())
                .map_or(data_type::FLOAT, TensorProto::data_type),
        )),
        "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" | "NonMaxSuppression" => all(Some(data_type::INT64)),
        "MatMulInteger" | "ConvInteger" => all(Some(data_type::INT32)),
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or" | "Xor" | "IsNaN"
        | "IsInf" => all(Some(data_type::BOOL)),
        "RandomNormal" | "RandomUniform" => all(int_attribute("dtype").or(Some(data_type::FLOAT))),
        "RandomNormalLike" | "RandomUniformLike" | "EyeLike" | "Bernoulli" => all(int_attribute("dtype").or(input(0))),
        "Multinomial" => all(int_attribute("dtype").or(Some(data_type::INT32))),
        "Where" => all(input(1).or(input(2))),
        "OneHot" => all(input(2)),
        "DequantizeLinear" => all(input(1)),
        "QuantizeLinear" => all(input(2).or(Some(data_type::UINT8))),
        "DynamicQuantizeLinear" => {
            with_rest(vec![Some(data_type::UINT8), Some(data_type::FLOAT), Some(data_type::UINT8)])
        }
        "TopK" | "MaxPool" => with_rest(vec![input(0), Some(data_type::INT64)]),
        "Dropout" => with_rest(vec![input(0), Some(data_type::BOOL)]),
        "Unique" => with_rest(vec![input(0), Some(data_type::INT64), Some(data_type::INT64), Some(data_type::INT64)]),
        "LayerNormalization" => with_rest(vec![input(0), Some(data_type::FLOAT), Some(data_type::FLOAT)]),
        _ => all(first_known),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Weights

/// Converts one float32 to float16 bits without changing its sign or finiteness (onnxconverter-common's
/// `convert_np_to_float16`): finite values beyond ±65504 saturate there instead of becoming infinite, and non-zero
/// values below the smallest subnormal (2^-24) become ±2^-24 instead of zero.
fn f32_to_f16_bits(value: f32) -> u16 {
    const SMALLEST: f32 = 5.960_464_5e-8; // 2^-24
    let magnitude = value.abs();
    let saturated = if !value.is_finite() || magnitude == 0.0 {
        value
    } else if magnitude > f16::MAX.to_f32() {
        f16::MAX.to_f32().copysign(value)
    } else if magnitude < SMALLEST {
        SMALLEST.copysign(value)
    } else {
        value
    };
    f16::from_f32(saturated).to_bits()
}

/// The float16 form of little-endian float32 bytes, in `output` (replacing its content).
fn f32_bytes_to_f16_bytes(input: &[u8], output: &mut Vec<u8>) {
    output.clear();
    output.resize(input.len() / 2, 0);
    for (source, target) in input.chunks_exact(4).zip(output.chunks_exact_mut(2)) {
        let value = f32::from_le_bytes([source[0], source[1], source[2], source[3]]);
        target.copy_from_slice(&f32_to_f16_bits(value).to_le_bytes());
    }
}

/// The float values of a small inline tensor (a ConstantOfShape value).
fn float_values_inline(tensor: &TensorProto) -> Vec<f32> {
    match &tensor.raw_data {
        Some(raw) => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        None => tensor.float_data.clone(),
    }
}

fn set_fp16_inline(tensor: &mut TensorProto, values: &[f32]) {
    let mut raw = Vec::with_capacity(values.len() * 2);
    for value in values {
        raw.extend_from_slice(&f32_to_f16_bits(*value).to_le_bytes());
    }
    tensor.set_data_type(data_type::FLOAT16);
    tensor.float_data.clear();
    tensor.raw_data = Some(raw);
}

fn element_count(tensor: &TensorProto) -> std::result::Result<u64, Fp16Problem> {
    tensor
        .dims
        .iter()
        .try_fold(1u64, |count, &dim| u64::try_from(dim).ok().and_then(|d| count.checked_mul(d)))
        .ok_or_else(|| Fp16Problem::InvalidTensor {
            tensor: tensor.name().into(),
            reason: format!("invalid dimensions {:?}", tensor.dims),
        })
}

fn is_external(tensor: &TensorProto) -> bool {
    tensor.data_location.is_some_and(|l| l.enum_value() == Ok(DataLocation::EXTERNAL))
}

fn external_entry<'a>(tensor: &'a TensorProto, key: &str) -> Option<&'a str> {
    tensor.external_data.iter().find(|e| e.key() == key).map(|e| e.value())
}

/// Bytes of a tensor's data in the source, for progress.
fn source_bytes(tensor: &TensorProto) -> u64 {
    if is_external(tensor) {
        if let Some(length) = external_entry(tensor, "length").and_then(|l| l.parse().ok()) {
            return length;
        }
    } else if let Some(raw) = &tensor.raw_data {
        return raw.len() as u64;
    }
    match (element_count(tensor), data_type::bits(tensor.data_type())) {
        (Ok(count), Some(bits)) => (count * bits).div_ceil(8),
        _ => 0,
    }
}

/// The external weight files of the source, opened once each. Locations are relative to the graph's folder and
/// may not leave it (as ONNX Runtime requires).
struct ExternalFiles {
    folder: PathBuf,
    open: HashMap<String, (PathBuf, File, u64)>,
}

impl ExternalFiles {
    fn new(folder: &Path) -> ExternalFiles {
        ExternalFiles { folder: folder.to_path_buf(), open: HashMap::new() }
    }

    fn open(&mut self, tensor: &str, location: &str) -> std::result::Result<&mut (PathBuf, File, u64), Fp16Problem> {
        if !self.open.contains_key(location) {
            let path = self.folder.join(location);
            let problem =
                |reason: String| Fp16Problem::ExternalData { tensor: tensor.into(), file: path.clone(), reason };
            let relative = Path::new(location);
            if location.is_empty() || !relative.components().all(|c| matches!(c, PathComponent::Normal(_))) {
                return Err(problem("the location must be a path inside the model's folder".into()));
            }
            let file = File::open(&path).map_err(|e| problem(e.to_string()))?;
            let length = file.metadata().map_err(|e| problem(e.to_string()))?.len();
            self.open.insert(location.to_string(), (path, file, length));
        }
        self.open.get_mut(location).ok_or_else(|| Fp16Problem::ExternalData {
            tensor: tensor.into(),
            file: self.folder.join(location),
            reason: "opened file vanished from the table".into(),
        })
    }
}

/// The converted weights file, written front to back.
struct WeightsWriter {
    path: PathBuf,
    writer: BufWriter<File>,
    offset: u64,
}

impl WeightsWriter {
    fn create(path: PathBuf) -> Result<WeightsWriter> {
        let file = File::create(&path).map_err(|e| write_error(&path, e))?;
        Ok(WeightsWriter { writer: BufWriter::with_capacity(1 << 20, file), path, offset: 0 })
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).map_err(|e| write_error(&self.path, e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and syncs (the folder is renamed into place next, so its content must be on disk); returns the size.
    fn finish(self) -> Result<u64> {
        let file = self.writer.into_inner().map_err(|e| write_error(&self.path, e.error()))?;
        file.sync_all().map_err(|e| write_error(&self.path, e))?;
        Ok(self.offset)
    }
}

/// Where a tensor's converted data goes: the weights file from `INLINE_LIMIT` bytes on (when there is one, as for
/// initializers), else inside the graph.
enum Placement<'w> {
    File { writer: &'w mut WeightsWriter, offset: u64 },
    Inline(Vec<u8>),
}

impl<'w> Placement<'w> {
    fn choose(length: u64, weights: Option<&'w mut WeightsWriter>) -> Placement<'w> {
        match weights {
            Some(writer) if length >= INLINE_LIMIT => {
                let offset = writer.offset;
                Placement::File { writer, offset }
            }
            _ => Placement::Inline(Vec::with_capacity(usize::try_from(length).unwrap_or(0))),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Placement::File { writer, .. } => writer.append(bytes),
            Placement::Inline(buffer) => {
                buffer.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn finish(self, tensor: &mut TensorProto) {
        tensor.external_data.clear();
        tensor.raw_data = None;
        tensor.data_location = None;
        match self {
            Placement::Inline(bytes) => tensor.raw_data = Some(bytes),
            Placement::File { writer, offset } => {
                let entry = |key: &str, value: String| {
                    let mut entry = StringStringEntryProto::new();
                    entry.set_key(key.into());
                    entry.set_value(value);
                    entry
                };
                tensor.external_data = vec![
                    entry("location", WEIGHTS_FILE.into()),
                    entry("offset", offset.to_string()),
                    entry("length", (writer.offset - offset).to_string()),
                ];
                tensor.data_location = Some(EnumOrUnknown::new(DataLocation::EXTERNAL));
            }
        }
    }
}

/// Stores one tensor in the converted model: float16 when `to_fp16` (and it is float32), its data read from the
/// source (inline or external, streamed in chunks) and written to the weights file or inline.
fn store_tensor(
    tensor: &mut TensorProto,
    to_fp16: bool,
    source: &Path,
    external: &mut ExternalFiles,
    weights: Option<&mut WeightsWriter>,
) -> Result<()> {
    let problem = |problem| EngineError::Fp16Conversion { path: source.to_path_buf(), problem };
    let name = tensor.name().to_string();
    let invalid = |reason: String| problem(Fp16Problem::InvalidTensor { tensor: name.clone(), reason });
    let convert = to_fp16 && tensor.data_type() == data_type::FLOAT;
    let elements = element_count(tensor).map_err(problem)?;

    if is_external(tensor) {
        let location = external_entry(tensor, "location").unwrap_or_default().to_string();
        let number = |key: &str| -> Result<Option<u64>> {
            external_entry(tensor, key)
                .map(|v| v.parse::<u64>().map_err(|_| invalid(format!("external data {key} {v:?} is not a number"))))
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let bits = data_type::bits(tensor.data_type())
            .ok_or_else(|| invalid(format!("external data of element type {}", tensor.data_type())))?;
        let expected = elements.checked_mul(bits).map(|b| b.div_ceil(8)).ok_or_else(|| invalid("too large".into()))?;
        let length = number("length")?.unwrap_or(expected);
        if length != expected {
            return Err(invalid(format!(
                "external data length {length} does not match its shape {:?} ({expected} bytes)",
                tensor.dims
            )));
        }
        let (path, file, file_length) = external.open(&name, &location).map_err(problem)?;
        if offset.checked_add(length).is_none_or(|end| end > *file_length) {
            return Err(problem(Fp16Problem::ExternalData {
                tensor: name.clone(),
                file: path.clone(),
                reason: format!(
                    "the file is {file_length} bytes, the tensor needs bytes {offset}..{}",
                    offset + length
                ),
            }));
        }
        let read_problem = |e: std::io::Error, path: &Path| {
            problem(Fp16Problem::ExternalData { tensor: name.clone(), file: path.to_path_buf(), reason: e.to_string() })
        };
        file.seek(SeekFrom::Start(offset)).map_err(|e| read_problem(e, path))?;
        let mut placement = Placement::choose(if convert { length / 2 } else { length }, weights);
        let mut buffer = vec![0u8; CHUNK_ELEMENTS * 4];
        let mut converted = Vec::with_capacity(CHUNK_ELEMENTS * 2);
        let mut left = length;
        while left > 0 {
            let take = left.min(buffer.len() as u64) as usize;
            file.read_exact(&mut buffer[..take]).map_err(|e| read_problem(e, path))?;
            if convert {
                f32_bytes_to_f16_bytes(&buffer[..take], &mut converted);
                placement.write(&converted)?;
            } else {
                placement.write(&buffer[..take])?;
            }
            left -= take as u64;
        }
        placement.finish(tensor);
    } else if convert {
        let raw = match tensor.raw_data.take() {
            Some(raw) if raw.len() as u64 == elements * 4 => raw,
            Some(raw) => {
                return Err(invalid(format!("{} bytes of data for {elements} float32 values", raw.len())));
            }
            None if tensor.float_data.len() as u64 == elements => {
                std::mem::take(&mut tensor.float_data).iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            None => {
                return Err(invalid(format!("{} values for shape {:?}", tensor.float_data.len(), tensor.dims)));
            }
        };
        let mut placement = Placement::choose(elements * 2, weights);
        let mut converted = Vec::with_capacity(CHUNK_ELEMENTS * 2);
        for chunk in raw.chunks(CHUNK_ELEMENTS * 4) {
            f32_bytes_to_f16_bytes(chunk, &mut converted);
            placement.write(&converted)?;
        }
        drop(raw);
        placement.finish(tensor);
    } else if let Some(raw) = tensor.raw_data.take_if(|raw| raw.len() as u64 >= INLINE_LIMIT && weights.is_some()) {
        let mut placement = Placement::choose(raw.len() as u64, weights);
        placement.write(&raw)?;
        placement.finish(tensor);
    }
    if convert {
        tensor.set_data_type(data_type::FLOAT16);
        tensor.float_data.clear();
    }
    Ok(())
}

enum GraphWriteError {
    TooLarge(u64),
    Io(EngineError),
}

fn write_graph(model: &ModelProto, path: &Path) -> std::result::Result<(), GraphWriteError> {
    let size = model.compute_size();
    if size > i32::MAX as u64 {
        return Err(GraphWriteError::TooLarge(size));
    }
    let io = |e: &dyn fmt::Display| GraphWriteError::Io(write_error(path, e));
    let file = File::create(path).map_err(|e| io(&e))?;
    let mut writer = BufWriter::new(file);
    model.write_to_writer(&mut writer).map_err(|e| io(&e))?;
    let file = writer.into_inner().map_err(|e| io(&e.error().to_string()))?;
    file.sync_all().map_err(|e| io(&e))
}

// ---------------------------------------------------------------------------------------------------------------
// Cache

/// Who a source is (its path, hashed: entries of older versions of the same file are removed) and what it holds
/// (the cache key).
struct SourceIdentity {
    source: String,
    key: String,
}

impl SourceIdentity {
    fn of(model: &Path) -> Result<SourceIdentity> {
        let canonical = fs::canonicalize(model).map_err(|e| read_error(model, e))?;
        let metadata = fs::metadata(&canonical).map_err(|e| read_error(model, e))?;
        let mut graph_hash = Sha256::new();
        let mut file = File::open(&canonical).map_err(|e| read_error(model, e))?;
        std::io::copy(&mut file, &mut graph_hash).map_err(|e| read_error(model, e))?;

        let mut key = Sha256::new();
        key.update(format!("pigment fp16 converter {CONVERTER_VERSION}\n"));
        key.update(graph_hash.finalize());
        key.update(format!("\n{} {}\n", metadata.len(), modified_nanos(&metadata)));
        // Every other file in the folder: the external weights are among them, and a changed weights file changes
        // its size or modification time (the graph, which records only offsets, may not change at all).
        let folder = canonical.parent().unwrap_or(Path::new("."));
        let mut siblings = Vec::new();
        for entry in fs::read_dir(folder).map_err(|e| read_error(folder, e))? {
            let entry = entry.map_err(|e| read_error(folder, e))?;
            let path = entry.path();
            if path == canonical {
                continue;
            }
            if let Ok(metadata) = entry.metadata()
                && metadata.is_file()
            {
                siblings.push(format!(
                    "{} {} {}\n",
                    entry.file_name().to_string_lossy(),
                    metadata.len(),
                    modified_nanos(&metadata)
                ));
            }
        }
        siblings.sort();
        for sibling in siblings {
            key.update(sibling);
        }
        Ok(SourceIdentity {
            source: hex(&Sha256::digest(canonical.to_string_lossy().as_bytes())[..8]),
            key: hex(&key.finalize()[..16]),
        })
    }

    fn entry_name(&self) -> String {
        format!("{}-{}", self.source, self.key)
    }

    /// Removes the entries of this source's older versions, and temporary folders of conversions that died.
    /// Failures are ignored: a file still open elsewhere (Windows) is removed next time.
    fn remove_stale_entries(&self, root: &Path) {
        let Ok(entries) = fs::read_dir(root) else { return };
        let current = self.entry_name();
        let temporary_prefix = format!(".tmp-{}-", self.source);
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale_version = name.starts_with(&format!("{}-", self.source)) && name != current;
            let abandoned = name.starts_with(&temporary_prefix) && untouched_for(&entry.path(), ABANDONED_AFTER);
            if stale_version || abandoned {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn modified_nanos(metadata: &fs::Metadata) -> u128 {
    metadata.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos())
}

/// Whether nothing in `folder` (one level) was modified for `age`.
fn untouched_for(folder: &Path, age: Duration) -> bool {
    let Ok(entries) = fs::read_dir(folder) else { return false };
    let newest = entries
        .flatten()
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .chain(fs::metadata(folder).ok().and_then(|m| m.modified().ok()))
        .max();
    newest.and_then(|t| t.elapsed().ok()).is_some_and(|elapsed| elapsed > age)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A folder removed when dropped, unless kept.
struct TemporaryFolder {
    path: PathBuf,
    keep: bool,
}

impl TemporaryFolder {
    fn create(path: PathBuf) -> Result<TemporaryFolder> {
        fs::create_dir(&path).map_err(|e| write_error(&path, e))?;
        Ok(TemporaryFolder { path, keep: false })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TemporaryFolder {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn read_error(path: &Path, error: impl fmt::Display) -> EngineError {
    EngineError::ReadFile { path: path.to_path_buf(), reason: error.to_string() }
}

fn write_error(path: &Path, error: impl fmt::Display) -> EngineError {
    EngineError::WriteFile { path: path.to_path_buf(), reason: error.to_string() }
}
