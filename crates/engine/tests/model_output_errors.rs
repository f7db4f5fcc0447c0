//! Models whose outputs have unexpected shapes: each is a typed error naming the model or output and the bad shape,
//! never a panic and never an image. The models are tests/fixtures/broken (made by
//! scripts/fixtures/make_broken_model_fixtures.py): the tiny ControlNet, adapter and annotator fixtures with one
//! output changed, run through ONNX Runtime on the CPU like any model.

mod common;

use std::path::PathBuf;

use common::{Collect, control_model, control_spec, controlnet_unit, fixture_image, load_model, run};
use image::RgbImage;
use pigment_engine::EngineError;
use pigment_engine::image::control::depth::depth_control;
use pigment_engine::image::control::openpose::{body_input, openpose_control};
use pigment_engine::model::{AdapterModel, ControlNetModel, DepthModel, PoseModel, ResidualKind};
use pigment_engine::pipeline::{
    ControlImage, ControlSpec, ControlUnitSpec, Flow, GenerateRequest, Generation, Progress,
};
use pigment_engine::schedulers::Sampler;

fn broken(name: &str) -> PathBuf {
    common::fixtures().join("broken").join(name)
}

fn canny_image() -> ControlImage {
    ControlImage::new(fixture_image("reference/controlnet/canny_64_rgb.png"))
}

fn scene() -> RgbImage {
    fixture_image("images/scene_64.png")
}

fn request(control: ControlSpec) -> Generation {
    let params = GenerateRequest {
        prompt: "a house".into(),
        seed: Some(3),
        steps: 2,
        sampler: Sampler::Euler,
        width: 64,
        height: 64,
        ..GenerateRequest::default()
    };
    Generation { control, ..Generation::text(params) }
}

fn never_cancel(_: &Progress) -> Flow {
    Flow::Continue
}

/// Runs `request` on the control model: it must fail without an image; the error is returned.
fn generate_error(request: &Generation) -> EngineError {
    let mut model = load_model(&control_model());
    let mut collect = Collect::default();
    let error = run(&mut model, request, &mut collect).expect_err("the broken model must be refused");
    assert!(collect.images.is_empty(), "no image may come out: {error}");
    error
}

fn padded_controlnet() -> ControlUnitSpec {
    let folder = broken("controlnet-padded-residual");
    // Its outputs have the names and ranks a ControlNet has: the model opens, its residuals are wrong only when run.
    ControlNetModel::open(&common::runtime(), &folder).unwrap_or_else(|e| panic!("opens: {e}"));
    common::control_unit(ResidualKind::ControlNet, folder, canny_image())
}

fn controlnet(name: &str) -> ControlUnitSpec {
    controlnet_unit(name, canny_image())
}

fn controlnet_request(controlnets: Vec<ControlUnitSpec>) -> Generation {
    request(control_spec(controlnets))
}

#[test]
fn a_controlnet_whose_residual_is_not_at_a_latent_size_is_refused_naming_it_alone_or_with_another() {
    // 64x64: latents 8x8, so residual sides are 8, 4, 2 or 1; the padded mid-block residual is 5x5. Alone, first or
    // second beside a well-made ControlNet, the error names the padded one (before the UNet would fail to add it).
    for nets in [
        vec![padded_controlnet()],
        vec![padded_controlnet(), controlnet("tiny-canny")],
        vec![controlnet("tiny-canny"), padded_controlnet()],
    ] {
        let error = generate_error(&controlnet_request(nets));
        let message = error.to_string();
        let EngineError::IncompatibleComponents { folder, detail } = error else { panic!("{message}") };
        assert!(folder.ends_with("broken/controlnet-padded-residual"), "{message}");
        assert_eq!(
            detail,
            "ControlNet controlnet-padded-residual returned mid_block_additional_residual [2, 64, 5, 5] for latents \
             [2, 4, 8, 8]; a residual is [2, channels, height, width] at the latents' size or a halving of it (8x8, \
             4x4, 2x2, 1x1)"
        );
    }
}

fn adapter_request(adapters: &[&str], cfg_scale: f32, batch_size: usize) -> Generation {
    let units = adapters
        .iter()
        .map(|folder| {
            let path = common::fixtures().join(folder);
            // Each opens: the bad feature shows only when it runs.
            AdapterModel::open(&common::runtime(), &path).unwrap_or_else(|e| panic!("{folder} opens: {e}"));
            common::control_unit(ResidualKind::Adapter, path, canny_image())
        })
        .collect();
    let mut generation = request(control_spec(units));
    generation.params = GenerateRequest { cfg_scale, batch_size, ..generation.params };
    generation
}

#[test]
fn an_adapter_feature_of_two_rows_for_one_control_image_is_refused_naming_the_adapter_and_the_output() {
    // adapter_feature_1 is [2, 64, 4, 4] where one control image gives one row: refused whatever rows the UNet
    // runs (4 with guidance and a batch of 2, 1 without guidance, 2 with guidance and one image, where it would
    // broadcast), alone or beside a well-made adapter.
    let cases: [(&[&str], f32, usize); 4] = [
        (&["broken/adapter-two-rows"], 7.0, 2),
        (&["broken/adapter-two-rows"], 1.0, 1),
        (&["broken/adapter-two-rows"], 7.0, 1),
        (&["adapter/tiny-adapter", "broken/adapter-two-rows"], 7.0, 1),
    ];
    for (adapters, cfg_scale, batch_size) in cases {
        let error = generate_error(&adapter_request(adapters, cfg_scale, batch_size));
        let message = error.to_string();
        let EngineError::IncompatibleComponents { folder, detail } = error else { panic!("{message}") };
        assert!(folder.ends_with("broken/adapter-two-rows"), "{message}");
        assert_eq!(
            detail,
            "adapter adapter-two-rows returned adapter_feature_1 [2, 64, 4, 4] for one control image; a feature is \
             [1, channels, height, width]"
        );
    }
}

#[test]
fn a_second_adapter_whose_features_have_another_shape_is_refused_naming_it_and_both_shapes() {
    let error = generate_error(&adapter_request(&["adapter/tiny-adapter", "broken/adapter-half-channels"], 7.0, 1));
    let message = error.to_string();
    let EngineError::IncompatibleComponents { folder, detail } = error else { panic!("{message}") };
    assert!(folder.ends_with("broken/adapter-half-channels"), "{message}");
    assert_eq!(
        detail,
        "adapter adapter-half-channels's feature 1 [1, 32, 4, 4] does not match the other adapters' [1, 64, 4, 4]"
    );
}

fn depth_error(name: &str) -> (EngineError, String) {
    let folder = broken(name);
    // The declared output is a depth map ([batch, height, width] or [batch, channels, height, width]): it opens.
    let mut model = DepthModel::open(&common::runtime(), &folder).unwrap_or_else(|e| panic!("{name} opens: {e}"));
    let error = depth_control(&mut model, &scene(), 64, 64, &mut never_cancel).expect_err("a wrong depth map");
    let message = error.to_string();
    (error, message)
}

#[test]
fn a_depth_model_returning_two_maps_is_refused_naming_the_output_and_its_shape() {
    // Depth Anything's config: the 64x64 picture goes in at 42x42.
    let (error, message) = depth_error("depth-two-maps");
    let EngineError::UnsupportedModelIo { component, name, detail } = error else { panic!("{message}") };
    assert_eq!((component, name.as_str()), ("depth annotator", "predicted_depth"), "{message}");
    assert!(detail.contains("for an input of [1, 3, 42, 42] the model returned [2, 42, 42]"), "{message}");
    assert!(detail.contains("depth-two-maps"), "{message}");
}

#[test]
fn a_depth_model_returning_two_channels_is_refused_naming_the_output_and_its_shape() {
    let (error, message) = depth_error("depth-two-channels");
    let EngineError::UnsupportedModelIo { component, name, detail } = error else { panic!("{message}") };
    assert_eq!((component, name.as_str()), ("depth annotator", "predicted_depth"), "{message}");
    assert!(detail.contains("for an input of [1, 3, 42, 42] the model returned [1, 2, 42, 42]"), "{message}");
    assert!(detail.contains("depth-two-channels"), "{message}");
}

fn pose_error(name: &str) -> EngineError {
    // The declared outputs are [1, 38, rows, columns] and [1, 19, rows, columns]: it opens.
    let mut model = PoseModel::open(&common::runtime(), &broken(name)).unwrap_or_else(|e| panic!("{name} opens: {e}"));
    openpose_control(&mut model, &scene(), 64, 64, &mut never_cancel).expect_err("wrong pose maps")
}

/// The size of the body model's maps for the 64x64 scene: its input's, divided by 8.
fn pose_map_size() -> (usize, usize) {
    let (input, _) = body_input(&scene());
    (input.shape()[2] / 8, input.shape()[3] / 8)
}

#[test]
fn a_pose_model_returning_18_heatmaps_is_refused_naming_the_output_and_its_shape() {
    let error = pose_error("openpose-18-heatmaps");
    let message = error.to_string();
    let EngineError::UnsupportedModelIo { component, name, detail } = error else { panic!("{message}") };
    assert_eq!((component, name.as_str()), ("openpose annotator", "heatmaps"), "{message}");
    let (rows, columns) = pose_map_size();
    let folder = broken("openpose-18-heatmaps");
    assert_eq!(
        detail,
        format!("returned [1, 18, {rows}, {columns}], not [1, 19, height, width] ({})", folder.display())
    );
}

#[test]
fn a_pose_model_whose_heatmaps_and_fields_differ_in_size_is_refused_with_both_shapes() {
    let error = pose_error("openpose-small-heatmaps");
    let message = error.to_string();
    let EngineError::UnsupportedModelIo { component, name, detail } = error else { panic!("{message}") };
    assert_eq!((component, name.as_str()), ("openpose annotator", "heatmaps"), "{message}");
    let (rows, columns) = pose_map_size();
    assert_eq!(
        detail,
        format!(
            "heatmaps [19, {}, {columns}] and part affinity fields [38, {rows}, {columns}] differ in size ({})",
            rows - 1,
            broken("openpose-small-heatmaps").display()
        )
    );
}
