//! The ONNX protobuf messages (`ModelProto`, `GraphProto`, `TensorProto`, ...), generated at build time from
//! proto/onnx.proto (build.rs).

include!(concat!(env!("OUT_DIR"), "/onnx_proto/mod.rs"));
