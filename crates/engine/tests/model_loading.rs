//! Model folders: what loads (external weights, int32 ids, fp16 IO, rank-0 int64 timesteps) and the error a user
//! sees for each broken folder: the message names the file or the mismatch.

mod common;

use std::path::Path;

use common::{Collect, copy_folder, txt2img};

use pigment_engine::EngineError;
use pigment_engine::model::{ElementType, LoadedModel, ModelFolder};
use pigment_engine::pipeline::GenerateRequest;

/// A writable copy of the demo model to break.
fn demo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_folder(&common::demo_model(), dir.path());
    dir
}

fn load_error(folder: &Path) -> String {
    match LoadedModel::open(&common::runtime(), folder) {
        Ok(_) => panic!("{} should not load", folder.display()),
        Err(error) => error.to_string(),
    }
}

#[test]
fn the_demo_model_loads_with_external_unet_weights() {
    let folder = ModelFolder::open(common::demo_model()).unwrap();
    assert_eq!(folder.unet.external_data.len(), 1, "the demo UNet keeps its weights in model.onnx_data");
    let model = LoadedModel::load(&common::runtime(), folder).unwrap();
    let info = model.info();
    assert_eq!(info.unet_in_channels, Some(4));
    assert!(!info.inpainting);
    assert_eq!(info.context_width, Some(32));
    let ids = info.text_encoder.inputs.iter().find(|s| s.name == "input_ids").unwrap();
    assert_eq!(ids.dtype, ElementType::Int64);
    assert_eq!(model.hash.len(), 10);
}

#[test]
fn int32_ids_fp16_io_and_a_scalar_int64_timestep_load_and_generate() {
    let folder = common::fixtures().join("models/tiny-sd-int32-fp16");
    let mut model = common::load_model(&folder);
    let info = model.info();
    let dtype_of = |specs: &[pigment_engine::model::TensorSpec], name: &str| {
        specs.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name}")).clone()
    };
    assert_eq!(dtype_of(&info.text_encoder.inputs, "input_ids").dtype, ElementType::Int32);
    let timestep = dtype_of(&info.unet.inputs, "timestep");
    assert_eq!((timestep.dtype, timestep.shape.len()), (ElementType::Int64, 0));
    assert_eq!(dtype_of(&info.unet.inputs, "sample").dtype, ElementType::Float16);
    assert_eq!(dtype_of(&info.vae_decoder.inputs, "latent_sample").dtype, ElementType::Float16);

    // The same seed through the fp32 demo model: fp16 rounding and integer timesteps move pixels a little, a
    // wrong conversion (bytes reinterpreted, ids wrapped) would give an unrelated image.
    let request = GenerateRequest {
        prompt: "a photo of a cat".into(),
        seed: Some(5),
        steps: 8,
        width: 64,
        height: 64,
        ..GenerateRequest::default()
    };
    let mut half = Collect::default();
    txt2img(&mut model, &request, &mut half).unwrap();
    let mut full = Collect::default();
    txt2img(&mut common::load_demo_model(), &request, &mut full).unwrap();
    let (a, b) = (half.images[0].image.as_raw(), full.images[0].image.as_raw());
    let mean = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.len() as f64;
    println!("fp16/int variant vs fp32: mean difference {mean:.2}/255");
    assert!(mean < 12.0, "fp16 variant differs from fp32 by {mean:.2}/255 on average");
}

#[test]
fn a_missing_folder_is_named() {
    let error = load_error(Path::new("/no/such/model"));
    assert!(error.contains("/no/such/model") && error.contains("does not exist"), "{error}");
}

#[test]
fn a_missing_component_is_named() {
    for component in ["unet", "text_encoder", "vae_decoder"] {
        let dir = demo_copy();
        std::fs::remove_dir_all(dir.path().join(component)).unwrap();
        let error = load_error(dir.path());
        assert!(error.contains(&format!("has no {component}")), "{error}");
        assert!(error.contains(&format!("{component}/model.onnx")), "{error}");
    }
    let dir = demo_copy();
    std::fs::remove_dir_all(dir.path().join("tokenizer")).unwrap();
    assert!(load_error(dir.path()).contains("has no tokenizer"));
}

#[test]
fn a_truncated_model_file_is_named() {
    let dir = demo_copy();
    let path = dir.path().join("text_encoder/model.onnx");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let error = load_error(dir.path());
    assert!(error.contains("text_encoder/model.onnx") && error.contains("could not be loaded"), "{error}");
}

#[test]
fn truncated_external_weights_are_named() {
    let dir = demo_copy();
    let path = dir.path().join("unet/model.onnx_data");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let error = load_error(dir.path());
    assert!(error.contains("unet/model.onnx_data"), "{error}");
}

#[test]
fn a_file_that_is_not_onnx_is_named() {
    let dir = demo_copy();
    std::fs::write(dir.path().join("vae_decoder/model.onnx"), "this is not a model").unwrap();
    let error = load_error(dir.path());
    assert!(error.contains("vae_decoder/model.onnx") && error.contains("does not start like an ONNX model"), "{error}");
    std::fs::write(dir.path().join("vae_decoder/model.onnx"), "").unwrap();
    assert!(load_error(dir.path()).contains("empty"));
}

#[test]
fn a_unet_expecting_other_embeddings_than_the_text_encoder_gives_is_refused() {
    let error = load_error(&common::fixtures().join("models/tiny-sd-mismatch"));
    assert!(error.contains("32") && error.contains("48") && error.contains("encoder_hidden_states"), "{error}");
}

#[test]
fn a_bad_scheduler_config_is_named() {
    let dir = demo_copy();
    std::fs::write(dir.path().join("scheduler/scheduler_config.json"), "{\"beta_schedule\": 5").unwrap();
    let error = load_error(dir.path());
    assert!(error.contains("scheduler_config.json"), "{error}");
}

#[test]
fn the_error_type_names_the_component() {
    let dir = demo_copy();
    std::fs::remove_dir_all(dir.path().join("unet")).unwrap();
    match LoadedModel::open(&common::runtime(), dir.path()) {
        Err(EngineError::MissingComponent { component, .. }) => assert_eq!(component, "unet"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a model without a UNet loaded"),
    }
}
