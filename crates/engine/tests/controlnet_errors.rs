//! Bad ControlNet and adapter input: each case names the input and the bad value, and nothing is generated.

mod common;

use common::{Collect, control_model, controlnet, fixture_image, load_model, residual_unet};
use pigment_engine::model::{AdapterModel, ResidualKind, ResidualUnet};
use pigment_engine::pipeline::{
    AdapterUnit, ControlImage, ControlNetUnit, ControlRequest, GenerateRequest, Shared, txt2img,
};
use pigment_engine::schedulers::Sampler;

fn canny_image() -> ControlImage {
    ControlImage::new(fixture_image("reference/controlnet/canny_64_rgb.png"))
}

fn request(control: ControlRequest) -> GenerateRequest {
    GenerateRequest {
        prompt: "a house".into(),
        seed: Some(3),
        steps: 4,
        sampler: Sampler::Euler,
        width: 64,
        height: 64,
        control: Box::new(control),
        ..GenerateRequest::default()
    }
}

#[test]
fn a_controlnet_of_another_model_family_is_refused_naming_both() {
    let mut model = load_model(&control_model());
    let unit = ControlNetUnit::new(controlnet("tiny-wide"), canny_image());
    let control = ControlRequest {
        controlnets: vec![unit],
        unet: Some(residual_unet(ResidualKind::ControlNet)),
        ..ControlRequest::default()
    };
    let mut collect = Collect::default();
    let error = txt2img(&mut model, &request(control), &mut collect).unwrap_err().to_string();
    assert!(error.contains("ControlNet tiny-wide") && error.contains("48 wide"), "{error}");
    assert!(error.contains("model tiny-sd-control") && error.contains("32 wide"), "{error}");
    assert!(collect.images.is_empty());
}

#[test]
fn a_model_without_a_residual_unet_export_is_refused_with_the_export_it_needs() {
    let runtime = common::runtime();
    let error = ResidualUnet::open(&runtime, &common::demo_model(), ResidualKind::ControlNet).unwrap_err().to_string();
    assert!(error.contains("unet_controlnet/model.onnx") && error.contains("does not exist"), "{error}");
    assert!(error.contains("down_block_{i}_additional_residual"), "{error}");
    let error = ResidualUnet::open(&runtime, &common::demo_model(), ResidualKind::Adapter).unwrap_err().to_string();
    assert!(
        error.contains("unet_adapter/model.onnx") && error.contains("down_intrablock_additional_residual_"),
        "{error}"
    );

    // A unet_controlnet/ that holds the plain UNet: its inputs are listed.
    let folder = tempfile::tempdir().unwrap();
    let plain = folder.path().join("unet_controlnet");
    std::fs::create_dir(&plain).unwrap();
    for file in ["model.onnx", "model.onnx_data"] {
        std::fs::copy(common::demo_model().join("unet").join(file), plain.join(file)).unwrap();
    }
    let error = ResidualUnet::open(&runtime, folder.path(), ResidualKind::ControlNet).unwrap_err().to_string();
    assert!(error.contains("its inputs are sample, timestep, encoder_hidden_states"), "{error}");

    // A request with ControlNets but no residual UNet says which one to load.
    let mut model = load_model(&control_model());
    let control = ControlRequest {
        controlnets: vec![ControlNetUnit::new(controlnet("tiny-canny"), canny_image())],
        ..ControlRequest::default()
    };
    let error = txt2img(&mut model, &request(control), &mut Collect::default()).unwrap_err().to_string();
    assert!(error.contains("unet_controlnet/"), "{error}");
}

#[test]
fn a_control_image_of_another_size_is_resized_with_a_warning() {
    let mut model = load_model(&control_model());
    let wide = fixture_image("images/scene_96x64.png");
    let control = ControlRequest {
        controlnets: vec![ControlNetUnit::new(controlnet("tiny-canny"), ControlImage::new(wide))],
        unet: Some(residual_unet(ResidualKind::ControlNet)),
        ..ControlRequest::default()
    };
    let mut collect = Collect::default();
    txt2img(&mut model, &request(control), &mut collect).unwrap();
    assert_eq!(collect.images.len(), 1);
    assert_eq!(collect.warnings.len(), 1, "{:?}", collect.warnings);
    let warning = &collect.warnings[0];
    assert!(warning.contains("ControlNet 0 (tiny-canny)") && warning.contains("96x64") && warning.contains("64x64"));
}

#[test]
fn bad_unit_values_are_refused_with_their_names() {
    let mut model = load_model(&control_model());
    let unit = ControlNetUnit::new(controlnet("tiny-canny"), canny_image());
    let adapter =
        Shared::new(AdapterModel::open(&common::runtime(), &common::fixtures().join("adapter/tiny-adapter")).unwrap());
    let cases: Vec<(ControlRequest, &str)> = vec![
        (
            ControlRequest {
                controlnets: vec![ControlNetUnit { weight: f32::NAN, ..unit.clone() }],
                ..Default::default()
            },
            "control weight: NaN",
        ),
        (
            ControlRequest { controlnets: vec![ControlNetUnit { weight: 11.0, ..unit.clone() }], ..Default::default() },
            "control weight: 11",
        ),
        (
            ControlRequest { controlnets: vec![ControlNetUnit { start: -0.5, ..unit.clone() }], ..Default::default() },
            "control start: -0.5",
        ),
        (
            ControlRequest { controlnets: vec![ControlNetUnit { end: 1.5, ..unit.clone() }], ..Default::default() },
            "control end: 1.5",
        ),
        (
            ControlRequest {
                controlnets: vec![ControlNetUnit { start: 0.6, end: 0.4, ..unit.clone() }],
                ..Default::default()
            },
            "control start: 0.6",
        ),
        (
            ControlRequest {
                adapters: vec![AdapterUnit {
                    conditioning_factor: 2.0,
                    ..AdapterUnit::new(adapter.clone(), canny_image())
                }],
                ..Default::default()
            },
            "adapter conditioning factor: 2",
        ),
        (
            ControlRequest {
                controlnets: vec![unit.clone()],
                adapters: vec![AdapterUnit::new(adapter, canny_image())],
                ..Default::default()
            },
            "use one kind at a time",
        ),
    ];
    for (control, expected) in cases {
        let error = txt2img(&mut model, &request(control), &mut Collect::default()).unwrap_err().to_string();
        assert!(error.contains(expected), "{error:?} should contain {expected:?}");
    }
}
