//! fp16 conversion at import (model::fp16), through the real ONNX Runtime on the CPU.
//!
//! Tolerances: an fp16 component's output against the fp32 one on the same inputs within 1e-2 of the fp32 output's
//! range (max |a - b| / (max a - min a)); fp16 keeps 11 significant bits (~5e-4 relative per value) and the errors of
//! a few dozen layers add up to a few 1e-3 on the demo model. Whole images within 2/255 mean absolute difference.

mod common;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::{Collect, copy_folder, load_model, txt2img};

use ndarray::{Array3, ArrayD};
use pigment_engine::EngineError;
use pigment_engine::model::fp16::{
    CONVERTER_VERSION, Fp16Problem, Fp32Reason, GRAPH_FILE, WEIGHTS_FILE, convert_to_fp16, fp16_variant,
};
use pigment_engine::model::{ElementType, LoadedModel};
use pigment_engine::pipeline::{Flow, GenerateRequest};
use pigment_engine::rng::TorchGenerator;
use pigment_engine::schedulers::parse_sampler;
use protobuf::Message;

mod onnx_proto {
    include!(concat!(env!("OUT_DIR"), "/onnx_proto/mod.rs"));
}
use onnx_proto::onnx;

const MAX_RELATIVE_ERROR: f32 = 1e-2;
const MAX_MEAN_PIXEL_DIFFERENCE: f64 = 2.0;

/// A copy of the demo model whose named parts are replaced by the given converted graphs (with their weights).
fn demo_with(parts: &[(&str, &Path)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_folder(&common::demo_model(), dir.path());
    for (part, graph) in parts {
        let folder = dir.path().join(part);
        std::fs::remove_dir_all(&folder).unwrap();
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(graph, folder.join(GRAPH_FILE)).unwrap();
        std::fs::copy(graph.with_file_name(WEIGHTS_FILE), folder.join(WEIGHTS_FILE)).unwrap();
    }
    dir
}

fn no_progress(_: u64, _: u64) -> Flow {
    Flow::Continue
}

/// max |a - b| relative to the range of `reference`.
fn relative_error(reference: &ArrayD<f32>, other: &ArrayD<f32>) -> f32 {
    assert_eq!(reference.shape(), other.shape());
    assert!(other.iter().all(|v| v.is_finite()), "the fp16 output has non-finite values");
    let max = reference.iter().copied().fold(f32::MIN, f32::max);
    let min = reference.iter().copied().fold(f32::MAX, f32::min);
    let worst = reference.iter().zip(other).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    worst / (max - min)
}

fn read_model(path: &Path) -> onnx::ModelProto {
    onnx::ModelProto::parse_from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

fn elem_type(value: &onnx::ValueInfoProto) -> i32 {
    match value.type_.value.as_ref().unwrap() {
        onnx::type_proto::Value::TensorType(tensor) => tensor.elem_type(),
        other => panic!("{} is not a tensor: {other:?}", value.name()),
    }
}

const FLOAT: i32 = 1;
const FLOAT16: i32 = 10;

fn conversion_error(result: pigment_engine::Result<impl std::fmt::Debug>) -> (PathBuf, Fp16Problem, String) {
    match result {
        Err(error @ EngineError::Fp16Conversion { .. }) => {
            let message = error.to_string();
            let EngineError::Fp16Conversion { path, problem } = error else { unreachable!() };
            (path, problem, message)
        }
        other => panic!("expected an fp16 conversion error, got {other:?}"),
    }
}

#[test]
fn the_unet_converts_to_fp16_and_predicts_like_fp32() {
    let source = common::demo_model().join("unet").join(GRAPH_FILE);
    let out = tempfile::tempdir().unwrap();
    let destination = out.path().join("unet-fp16");
    let summary = convert_to_fp16(&source, &destination, no_progress).unwrap();
    println!("{summary:#?}");

    // Weights: every float32 initializer is now float16, in the weights file, which is half the source's.
    let converted = destination.join(GRAPH_FILE);
    let model = read_model(&converted);
    let graph = model.graph.as_ref().unwrap();
    assert!(graph.initializer.iter().all(|t| t.data_type() != FLOAT), "float32 initializers left");
    assert!(summary.fp16_tensors >= graph.initializer.len() && summary.fp32_tensors == 0);
    let source_weights = std::fs::metadata(source.with_file_name("model.onnx_data")).unwrap().len();
    let fp16_weights = std::fs::metadata(destination.join(WEIGHTS_FILE)).unwrap().len();
    let ratio = fp16_weights as f64 / source_weights as f64;
    println!("weights: {source_weights} bytes fp32 -> {fp16_weights} bytes fp16 ({ratio:.3})");
    assert!((0.49..=0.51).contains(&ratio), "fp16 weights are {ratio} of the fp32 ones");
    assert_eq!(summary.weights_file_bytes, fp16_weights);
    assert!(model.metadata_props.iter().any(|p| p.value() == CONVERTER_VERSION.to_string()));

    // IO: still float32, as the pipeline feeds it.
    for value in graph.input.iter().chain(&graph.output) {
        assert_eq!(elem_type(value), FLOAT, "{} changed type", value.name());
    }
    // The timestep embedding stays fp32 (Sin, Cos and the nodes computing their argument).
    let sinusoid: Vec<&str> = summary
        .fp32_nodes
        .iter()
        .filter(|n| n.reason == Fp32Reason::SinusoidalEmbedding)
        .map(|n| n.op_type.as_str())
        .collect();
    for op in ["Sin", "Cos", "Mul", "Cast"] {
        assert!(sinusoid.contains(&op), "{op} of the timestep embedding runs in fp16 ({sinusoid:?})");
    }

    let fp16_folder = demo_with(&[("unet", &converted)]);
    let runtime = common::runtime();
    let mut fp32 = LoadedModel::open(&runtime, &common::demo_model()).unwrap();
    let mut fp16 = LoadedModel::open(&runtime, fp16_folder.path()).unwrap();
    let info = fp16.info();
    assert!(info.unet.inputs.iter().chain(&info.unet.outputs).all(|s| s.dtype == ElementType::Float32));

    let mut generator = TorchGenerator::new(7);
    let sample = generator.randn(&[2, 4, 8, 8]);
    let context: Array3<f32> = generator.randn(&[2, 77, 32]).into_dimensionality().unwrap();
    // Integer and fractional timesteps (Karras schedules give fractional ones), high and low.
    for timestep in [999.0, 987.6543, 500.5, 20.25, 1.0] {
        let expected = fp32.unet.predict(&sample, timestep, &context).unwrap();
        let actual = fp16.unet.predict(&sample, timestep, &context).unwrap();
        let error = relative_error(&expected, &actual);
        println!("unet, timestep {timestep}: max error {error:.2e} of the output's range");
        assert!(error < MAX_RELATIVE_ERROR, "timestep {timestep}: {error}");
    }
}

#[test]
fn a_vae_decoder_with_weights_inside_its_graph_converts_to_external_fp16_weights() {
    let source = common::demo_model().join("vae_decoder").join(GRAPH_FILE);
    let out = tempfile::tempdir().unwrap();
    let destination = out.path().join("vae-fp16");
    let summary = convert_to_fp16(&source, &destination, no_progress).unwrap();
    let converted = destination.join(GRAPH_FILE);
    let graph_size = std::fs::metadata(&converted).unwrap().len();
    let weights_size = std::fs::metadata(destination.join(WEIGHTS_FILE)).unwrap().len();
    let source_size = std::fs::metadata(&source).unwrap().len();
    println!("vae_decoder: {source_size} bytes fp32 in the graph -> graph {graph_size} + weights {weights_size} bytes");
    assert!(graph_size < source_size / 4, "the weights should have left the graph");
    assert!(weights_size > source_size * 2 / 5 && weights_size < source_size / 2 + 1024);
    assert!(summary.fp32_tensors == 0);

    let fp16_folder = demo_with(&[("vae_decoder", &converted)]);
    let runtime = common::runtime();
    let mut fp32 = LoadedModel::open(&runtime, &common::demo_model()).unwrap();
    let mut fp16 = LoadedModel::open(&runtime, fp16_folder.path()).unwrap();
    let latents = TorchGenerator::new(11).randn(&[1, 4, 8, 8]);
    let expected = fp32.vae_decoder.decode(&latents).unwrap();
    let actual = fp16.vae_decoder.decode(&latents).unwrap();
    let error = relative_error(&expected, &actual);
    println!("vae_decoder: max error {error:.2e} of the output's range");
    assert!(error < MAX_RELATIVE_ERROR, "{error}");
}

fn generate(folder: &Path) -> image::RgbImage {
    let (sampler, schedule) = parse_sampler("dpmpp_2m_karras").unwrap();
    let request = GenerateRequest {
        prompt: "a lighthouse on a cliff at dusk".into(),
        negative_prompt: "blurry".into(),
        seed: Some(1234),
        steps: 12,
        sampler,
        schedule,
        width: 64,
        height: 64,
        ..GenerateRequest::default()
    };
    let mut collect = Collect::default();
    txt2img(&mut load_model(folder), &request, &mut collect).unwrap();
    collect.images.remove(0).image
}

/// (mean, largest) absolute difference in 8-bit steps.
fn pixel_difference(a: &image::RgbImage, b: &image::RgbImage) -> (f64, u8) {
    let diffs: Vec<u8> = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).collect();
    (diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64, diffs.iter().copied().max().unwrap())
}

#[test]
fn txt2img_with_fp16_parts_gives_the_fp32_image() {
    let cache = tempfile::tempdir().unwrap();
    let demo = common::demo_model();
    let unet = fp16_variant(&demo.join("unet").join(GRAPH_FILE), cache.path(), no_progress).unwrap();
    let reference = generate(&demo);

    let unet_only = demo_with(&[("unet", &unet)]);
    let (mean, largest) = pixel_difference(&reference, &generate(unet_only.path()));
    println!("fp16 UNet: mean difference {mean:.3}/255, largest {largest}/255");
    assert!(mean < MAX_MEAN_PIXEL_DIFFERENCE, "{mean}");

    let mut parts = vec![("unet", unet.clone())];
    for part in ["text_encoder", "vae_decoder", "vae_encoder"] {
        parts.push((part, fp16_variant(&demo.join(part).join(GRAPH_FILE), cache.path(), no_progress).unwrap()));
    }
    let parts: Vec<(&str, &Path)> = parts.iter().map(|(name, path)| (*name, path.as_path())).collect();
    let all = demo_with(&parts);
    let (mean, largest) = pixel_difference(&reference, &generate(all.path()));
    println!("every part fp16: mean difference {mean:.3}/255, largest {largest}/255");
    assert!(mean < MAX_MEAN_PIXEL_DIFFERENCE, "{mean}");
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn the_cache_answers_the_second_call_and_follows_the_source() {
    let source_folder = tempfile::tempdir().unwrap();
    copy_folder(&common::demo_model().join("unet"), source_folder.path());
    let source = source_folder.path().join(GRAPH_FILE);
    let cache = tempfile::tempdir().unwrap();

    let mut reports = Vec::new();
    let first = fp16_variant(&source, cache.path(), |done, total| {
        reports.push((done, total));
        Flow::Continue
    })
    .unwrap();
    assert!(first.starts_with(cache.path()) && first.is_file());
    let (done, total) = *reports.last().unwrap();
    assert_eq!(done, total);
    assert_eq!(total, std::fs::metadata(source.with_file_name("model.onnx_data")).unwrap().len());
    assert!(reports.windows(2).all(|w| w[0].0 <= w[1].0), "progress goes forward");
    let written = (modified(&first), modified(&first.with_file_name(WEIGHTS_FILE)));

    // Second call: the same files, not rewritten, no conversion.
    let second = fp16_variant(&source, cache.path(), |_, _| panic!("the cache should answer")).unwrap();
    assert_eq!(second, first);
    assert_eq!((modified(&second), modified(&second.with_file_name(WEIGHTS_FILE))), written);

    // New weights (same size, same graph): a new entry, and the old one is gone.
    let weights = source.with_file_name("model.onnx_data");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[0..4].copy_from_slice(&0.5f32.to_le_bytes());
    std::fs::write(&weights, &bytes).unwrap();
    let third = fp16_variant(&source, cache.path(), no_progress).unwrap();
    assert_ne!(third, first);
    assert!(!first.exists(), "the entry of the old source should be removed");
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("fp16")).unwrap().collect();
    assert_eq!(entries.len(), 1, "one entry per source, no temporary folders left");
}

#[test]
fn cancelling_leaves_nothing_behind() {
    let source = common::demo_model().join("unet").join(GRAPH_FILE);
    let cache = tempfile::tempdir().unwrap();
    let mut calls = 0;
    let result = fp16_variant(&source, cache.path(), |_, _| {
        calls += 1;
        if calls == 5 { Flow::Cancel } else { Flow::Continue }
    });
    assert!(matches!(result, Err(EngineError::Cancelled)), "{result:?}");
    assert_eq!(calls, 5);
    let left: Vec<_> = std::fs::read_dir(cache.path().join("fp16")).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_sources_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");

    // Not ONNX at all, and an empty file.
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xff\xff\xff this is not a protobuf").unwrap();
    let (path, problem, message) = conversion_error(convert_to_fp16(&garbage, &out, no_progress));
    assert_eq!(path, garbage);
    assert!(matches!(problem, Fp16Problem::NotOnnx { .. }), "{problem:?}");
    assert!(message.contains("garbage.onnx") && message.contains("not an ONNX model"), "{message}");
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let (path, problem, _) = conversion_error(convert_to_fp16(&empty, &out, no_progress));
    assert_eq!(path, empty);
    assert!(matches!(problem, Fp16Problem::NotOnnx { .. }), "{problem:?}");

    // Weights file cut short: the error names it and the tensor.
    let truncated = dir.path().join("truncated");
    copy_folder(&common::demo_model().join("unet"), &truncated);
    let weights = truncated.join("model.onnx_data");
    let length = std::fs::metadata(&weights).unwrap().len();
    std::fs::File::options().write(true).open(&weights).unwrap().set_len(length / 2).unwrap();
    let (_, problem, message) = conversion_error(convert_to_fp16(&truncated.join(GRAPH_FILE), &out, no_progress));
    match &problem {
        Fp16Problem::ExternalData { file, .. } => assert_eq!(file, &weights),
        other => panic!("expected an external data error, got {other:?}"),
    }
    assert!(message.contains("model.onnx_data"), "{message}");
    assert!(!out.exists(), "nothing is left after a failed conversion");

    // Already fp16: a converted graph, and the fp16 fixture.
    let converted = dir.path().join("converted");
    convert_to_fp16(&common::demo_model().join("vae_decoder").join(GRAPH_FILE), &converted, no_progress).unwrap();
    let (_, problem, message) = conversion_error(convert_to_fp16(&converted.join(GRAPH_FILE), &out, no_progress));
    assert_eq!(problem, Fp16Problem::AlreadyFp16, "{message}");
    let fixture = common::fixtures().join("models/tiny-sd-int32-fp16/unet").join(GRAPH_FILE);
    let (path, problem, _) = conversion_error(convert_to_fp16(&fixture, &out, no_progress));
    assert_eq!((path, problem), (fixture, Fp16Problem::AlreadyFp16));

    // An existing destination is never overwritten.
    let (_, problem, _) = conversion_error(convert_to_fp16(
        &common::demo_model().join("vae_decoder").join(GRAPH_FILE),
        &converted,
        no_progress,
    ));
    assert!(matches!(problem, Fp16Problem::DestinationExists { .. }), "{problem:?}");

    // Subgraphs (If, Loop, Scan bodies) are refused, naming the node.
    let mut branch = onnx::GraphProto::new();
    branch.set_name("then".into());
    let mut then_branch = onnx::AttributeProto::new();
    then_branch.set_name("then_branch".into());
    then_branch.type_ = Some(protobuf::EnumOrUnknown::new(onnx::attribute_proto::AttributeType::GRAPH));
    then_branch.g = protobuf::MessageField::some(branch);
    let mut condition = node("If", &["condition"], "chosen", None);
    condition.attribute.push(then_branch);
    let mut graph = onnx::GraphProto::new();
    graph.node.push(condition);
    graph.initializer.push(float_tensor("weight", &[2], &[1.0, 2.0]));
    let mut model = onnx::ModelProto::new();
    model.set_ir_version(8);
    model.graph = protobuf::MessageField::some(graph);
    let with_if = dir.path().join("if.onnx");
    std::fs::write(&with_if, model.write_to_bytes().unwrap()).unwrap();
    let (path, problem, message) = conversion_error(convert_to_fp16(&with_if, &out, no_progress));
    assert_eq!(path, with_if);
    assert_eq!(problem, Fp16Problem::Subgraph { node: "/chosen/If".into(), op_type: "If".into() }, "{message}");

    // A missing source is a read error naming it.
    let missing = dir.path().join("missing/model.onnx");
    match fp16_variant(&missing, dir.path(), no_progress) {
        Err(EngineError::ReadFile { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected a read error, got {other:?}"),
    }
}

// A UNet stand-in whose output is a LayerNorm decomposed as torch exports it below opset 17, on activations in
// the thousands: (x - mean)² overflows fp16 (> 65504) unless the variance chain stays fp32.

fn dim(value: &str) -> onnx::tensor_shape_proto::Dimension {
    let mut dimension = onnx::tensor_shape_proto::Dimension::new();
    dimension.value = Some(match value.parse::<i64>() {
        Ok(number) => onnx::tensor_shape_proto::dimension::Value::DimValue(number),
        Err(_) => onnx::tensor_shape_proto::dimension::Value::DimParam(value.into()),
    });
    dimension
}

fn float_value(name: &str, dims: &[&str]) -> onnx::ValueInfoProto {
    let mut tensor = onnx::type_proto::Tensor::new();
    tensor.set_elem_type(FLOAT);
    tensor.shape.mut_or_insert_default().dim = dims.iter().map(|d| dim(d)).collect();
    let mut value = onnx::ValueInfoProto::new();
    value.set_name(name.into());
    value.type_.mut_or_insert_default().value = Some(onnx::type_proto::Value::TensorType(tensor));
    value
}

fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> onnx::TensorProto {
    let mut tensor = onnx::TensorProto::new();
    tensor.set_name(name.into());
    tensor.set_data_type(FLOAT);
    tensor.dims = dims.to_vec();
    tensor.float_data = values.to_vec();
    tensor
}

fn node(op: &str, inputs: &[&str], output: &str, axes: Option<i64>) -> onnx::NodeProto {
    let mut node = onnx::NodeProto::new();
    node.set_op_type(op.into());
    node.set_name(format!("/{output}/{op}"));
    node.input = inputs.iter().map(|s| s.to_string()).collect();
    node.output = vec![output.into()];
    if let Some(axis) = axes {
        let mut attribute = onnx::AttributeProto::new();
        attribute.set_name("axes".into());
        attribute.type_ = Some(protobuf::EnumOrUnknown::new(onnx::attribute_proto::AttributeType::INTS));
        attribute.ints = vec![axis];
        node.attribute.push(attribute);
    }
    node
}

fn write_layer_norm_unet(folder: &Path) {
    let mut graph = onnx::GraphProto::new();
    graph.set_name("layer_norm_unet".into());
    graph.input = vec![
        float_value("sample", &["batch", "4", "8", "8"]),
        float_value("timestep", &["1"]),
        float_value("encoder_hidden_states", &["batch", "77", "32"]),
    ];
    graph.output = vec![float_value("out_sample", &["batch", "4", "8", "8"])];
    let gamma: Vec<f32> = (0..8).map(|i| 0.5 + i as f32 / 8.0).collect();
    let beta: Vec<f32> = (0..8).map(|i| i as f32 / 16.0 - 0.25).collect();
    // Enough weight bytes to be worth converting (float_data inline, as small exports store them).
    let spread: Vec<f32> = (0..256).map(|i| 1000.0 + i as f32).collect();
    graph.initializer = vec![
        float_tensor("spread", &[4, 8, 8], &spread),
        float_tensor("two", &[], &[2.0]),
        float_tensor("epsilon", &[], &[1e-5]),
        float_tensor("gamma", &[8], &gamma),
        float_tensor("beta", &[8], &beta),
    ];
    graph.node = vec![
        node("Mul", &["sample", "spread"], "x", None),
        node("ReduceMean", &["x"], "mean", Some(-1)),
        node("Sub", &["x", "mean"], "centered", None),
        node("Pow", &["centered", "two"], "squared", None),
        node("ReduceMean", &["squared"], "variance", Some(-1)),
        node("Add", &["variance", "epsilon"], "variance_epsilon", None),
        node("Sqrt", &["variance_epsilon"], "deviation", None),
        node("Div", &["centered", "deviation"], "normalized", None),
        node("Mul", &["normalized", "gamma"], "scaled", None),
        node("Add", &["scaled", "beta"], "shifted", None),
        node("Constant", &[], "one", None),
        node("Mul", &["shifted", "one"], "out_sample", None),
    ];
    // A scalar Constant as value_float (converted to an fp16 `value` tensor), and declared intermediate types
    // (value_info) that must follow the conversion: `x` becomes float16, `squared` stays float32.
    let mut one = onnx::AttributeProto::new();
    one.set_name("value_float".into());
    one.type_ = Some(protobuf::EnumOrUnknown::new(onnx::attribute_proto::AttributeType::FLOAT));
    one.set_f(1.0);
    graph.node[10].attribute.push(one);
    graph.value_info =
        vec![float_value("x", &["batch", "4", "8", "8"]), float_value("squared", &["batch", "4", "8", "8"])];
    let mut model = onnx::ModelProto::new();
    model.set_ir_version(8);
    let mut opset = onnx::OperatorSetIdProto::new();
    opset.set_version(17);
    model.opset_import.push(opset);
    model.graph = protobuf::MessageField::some(graph);
    std::fs::create_dir_all(folder).unwrap();
    std::fs::write(folder.join(GRAPH_FILE), model.write_to_bytes().unwrap()).unwrap();
}

#[test]
fn the_variance_of_a_decomposed_layer_norm_stays_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let fp32_folder = dir.path().join("fp32");
    copy_folder(&common::demo_model(), &fp32_folder);
    std::fs::remove_dir_all(fp32_folder.join("unet")).unwrap();
    write_layer_norm_unet(&fp32_folder.join("unet"));

    let destination = dir.path().join("unet-fp16");
    let summary = convert_to_fp16(&fp32_folder.join("unet").join(GRAPH_FILE), &destination, no_progress).unwrap();
    let chain: Vec<&str> = summary
        .fp32_nodes
        .iter()
        .filter(|n| n.reason == Fp32Reason::VarianceChain)
        .map(|n| n.op_type.as_str())
        .collect();
    assert_eq!(chain, ["Pow", "ReduceMean", "Add", "Sqrt"]);

    let converted = read_model(&destination.join(GRAPH_FILE));
    let declared: Vec<(String, i32)> =
        converted.graph.value_info.iter().map(|v| (v.name().to_string(), elem_type(v))).collect();
    assert_eq!(declared, [("x".to_string(), FLOAT16), ("squared".to_string(), FLOAT)]);

    let fp16_folder = dir.path().join("fp16");
    copy_folder(&fp32_folder, &fp16_folder);
    std::fs::remove_dir_all(fp16_folder.join("unet")).unwrap();
    copy_folder(&destination, &fp16_folder.join("unet"));

    let runtime = common::runtime();
    let mut fp32 = LoadedModel::open(&runtime, &fp32_folder).unwrap();
    let mut fp16 = LoadedModel::open(&runtime, &fp16_folder).unwrap();
    let sample = TorchGenerator::new(3).randn(&[1, 4, 8, 8]);
    let context = Array3::<f32>::zeros((1, 77, 32));
    let expected = fp32.unet.predict(&sample, 10.0, &context).unwrap();
    let largest = (&sample * 1255.0).iter().fold(0f32, |m, v| m.max(v.abs()));
    println!("activations up to {largest:.0}: squares up to {:.1e}, fp16 max 65504", largest * largest);
    let actual = fp16.unet.predict(&sample, 10.0, &context).unwrap();
    let error = relative_error(&expected, &actual);
    println!("decomposed LayerNorm: max error {error:.2e} of the output's range");
    assert!(error < MAX_RELATIVE_ERROR, "{error}");
}

/// Peak resident memory of this process, in bytes (Linux).
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// A 3.4 GB fp32 model (SD 1.5's UNet size, over protobuf's 2 GiB limit) converts with its weights streamed: the
/// process never holds more than a few chunks of them. Ignored by default (5 GB of disk, a minute); run with
/// `cargo test -p pigment-engine --test fp16_conversion -- --ignored --nocapture`.
#[test]
#[ignore]
fn a_model_of_sd15_unet_size_converts_in_bounded_memory() {
    const WIDTH: usize = 4096;
    const LAYERS: usize = 52; // 52 × 4096² × 4 bytes = 3.49 GB
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("big");
    std::fs::create_dir_all(&folder).unwrap();
    let mut data = std::io::BufWriter::new(std::fs::File::create(folder.join("model.onnx_data")).unwrap());
    let mut graph = onnx::GraphProto::new();
    graph.set_name("big".into());
    graph.input = vec![float_value("sample", &["1", "4096"])];
    graph.output = vec![float_value("out", &["1", "4096"])];
    let row: Vec<u8> = (0..WIDTH).flat_map(|i| ((i % 97) as f32 / 97.0 - 0.5).to_le_bytes()).collect();
    let mut previous = "sample".to_string();
    for layer in 0..LAYERS {
        let name = format!("weight_{layer}");
        let mut tensor = onnx::TensorProto::new();
        tensor.set_name(name.clone());
        tensor.set_data_type(FLOAT);
        tensor.dims = vec![WIDTH as i64, WIDTH as i64];
        let entry = |key: &str, value: String| {
            let mut entry = onnx::StringStringEntryProto::new();
            entry.set_key(key.into());
            entry.set_value(value);
            entry
        };
        let length = (WIDTH * WIDTH * 4) as u64;
        tensor.external_data = vec![
            entry("location", "model.onnx_data".into()),
            entry("offset", (layer as u64 * length).to_string()),
            entry("length", length.to_string()),
        ];
        tensor.data_location = Some(protobuf::EnumOrUnknown::new(onnx::tensor_proto::DataLocation::EXTERNAL));
        for _ in 0..WIDTH {
            std::io::Write::write_all(&mut data, &row).unwrap();
        }
        graph.initializer.push(tensor);
        let output = if layer + 1 == LAYERS { "out".to_string() } else { format!("hidden_{layer}") };
        graph.node.push(node("MatMul", &[&previous, &name], &output, None));
        previous = output;
    }
    std::io::Write::flush(&mut data).unwrap();
    drop(data);
    let mut model = onnx::ModelProto::new();
    model.set_ir_version(8);
    let mut opset = onnx::OperatorSetIdProto::new();
    opset.set_version(17);
    model.opset_import.push(opset);
    model.graph = protobuf::MessageField::some(graph);
    std::fs::write(folder.join(GRAPH_FILE), model.write_to_bytes().unwrap()).unwrap();

    let before = peak_resident_bytes().unwrap_or(0);
    let started = std::time::Instant::now();
    let summary = convert_to_fp16(&folder.join(GRAPH_FILE), &dir.path().join("fp16"), no_progress).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak_resident_bytes().unwrap_or(0);
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!(
        "{:.0} MiB fp32 -> {:.0} MiB fp16 in {seconds:.1} s; peak resident memory {:.0} MiB (before: {:.0} MiB)",
        mib(summary.source_weight_bytes),
        mib(summary.weights_file_bytes),
        mib(peak),
        mib(before)
    );
    assert_eq!(summary.weights_file_bytes * 2, summary.source_weight_bytes);
    assert!(peak < 256 << 20, "peak resident memory {} MiB", mib(peak));
}
