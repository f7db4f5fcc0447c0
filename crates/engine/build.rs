//! Generates the ONNX protobuf messages (`ModelProto`, `TensorProto`, ...) that the fp16 converter reads and writes
//! (src/model/fp16.rs), from the vendored proto/onnx.proto with rust-protobuf's pure-Rust parser: no `protoc`.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    protobuf_codegen::Codegen::new()
        .pure()
        .include("proto")
        .input("proto/onnx.proto")
        .cargo_out_dir("onnx_proto")
        .run_from_script();
}
