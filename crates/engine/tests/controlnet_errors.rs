//! Bad ControlNet and adapter input: each case names the input and the bad value, and nothing is generated.

mod common;

use common::{Collect, adapter_unit, control_model, control_spec, controlnet_unit, fixture_image, load_model, run};
use pigment_engine::model::{ResidualKind, ResidualUnet};
use pigment_engine::pipeline::{ControlImage, ControlSpec, ControlUnitSpec, GenerateRequest, Generation};
use pigment_engine::schedulers::Sampler;

fn canny_image() -> ControlImage {
    ControlImage::new(fixture_image("reference/controlnet/canny_64_rgb.png"))
}

fn request(control: ControlSpec) -> Generation {
    let params = GenerateRequest {
        prompt: "a house".into(),
        seed: Some(3),
        steps: 4,
        sampler: Sampler::Euler,
        width: 64,
        height: 64,
        ..GenerateRequest::default()
    };
    Generation { control, ..Generation::text(params) }
}

#[test]
fn a_controlnet_of_another_model_family_is_refused_naming_both() {
    let mut model = load_model(&control_model());
    let control = control_spec(vec![controlnet_unit("tiny-wide", canny_image())]);
    let mut collect = Collect::default();
    let error = run(&mut model, &request(control), &mut collect).unwrap_err().to_string();
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

    // ControlNets on a model without the residual UNet export: the error says which one to add.
    let mut model = common::load_demo_model();
    let control = control_spec(vec![controlnet_unit("tiny-canny", canny_image())]);
    let error = run(&mut model, &request(control), &mut Collect::default()).unwrap_err().to_string();
    assert!(error.contains("unet_controlnet/"), "{error}");
}

#[test]
fn a_control_image_of_another_size_is_resized_with_a_warning() {
    let mut model = load_model(&control_model());
    let wide = fixture_image("images/scene_96x64.png");
    let control = control_spec(vec![controlnet_unit("tiny-canny", ControlImage::new(wide))]);
    let mut collect = Collect::default();
    run(&mut model, &request(control), &mut collect).unwrap();
    assert_eq!(collect.images.len(), 1);
    assert_eq!(collect.warnings.len(), 1, "{:?}", collect.warnings);
    let warning = &collect.warnings[0];
    assert!(warning.contains("ControlNet 0 (tiny-canny)") && warning.contains("96x64") && warning.contains("64x64"));
}

#[test]
fn bad_unit_values_are_refused_with_their_names() {
    let mut model = load_model(&control_model());
    let unit = controlnet_unit("tiny-canny", canny_image());
    let adapter = adapter_unit("tiny-adapter", canny_image());
    let cases: Vec<(ControlSpec, &str)> = vec![
        (control_spec(vec![ControlUnitSpec { weight: f32::NAN, ..unit.clone() }]), "control weight: NaN"),
        (control_spec(vec![ControlUnitSpec { weight: 11.0, ..unit.clone() }]), "control weight: 11"),
        (control_spec(vec![ControlUnitSpec { start: -0.5, ..unit.clone() }]), "control start: -0.5"),
        (control_spec(vec![ControlUnitSpec { end: 1.5, ..unit.clone() }]), "control end: 1.5"),
        (control_spec(vec![ControlUnitSpec { start: 0.6, end: 0.4, ..unit.clone() }]), "control start: 0.6"),
        (ControlSpec { adapter_factor: 2.0, ..control_spec(vec![adapter.clone()]) }, "adapter conditioning factor: 2"),
        (control_spec(vec![unit.clone(), adapter]), "use one kind at a time"),
    ];
    for (control, expected) in cases {
        let error = run(&mut model, &request(control), &mut Collect::default()).unwrap_err().to_string();
        assert!(error.contains(expected), "{error:?} should contain {expected:?}");
    }
}
