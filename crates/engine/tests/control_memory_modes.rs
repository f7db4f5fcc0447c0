//! ControlNets, T2I-Adapters and the UNet with residual inputs are sessions like the model's parts: in low-VRAM mode
//! they take turns with the text encoder, UNet and VAE (one part on the device at a time), and with fixed
//! dimensions (DirectML) their sessions are made for the shapes they run. The annotators (depth, openpose) take
//! turns with the text encoder and VAE in low and medium modes, and keep their optimized graphs as the parts do.
//! Checked on the CPU: the images must not change (exactly in low-VRAM mode, where the same kernels run; within
//! rounding with fixed dimensions).

mod common;

use common::{Collect, adapter_unit, control_model, control_spec, controlnet_unit, fixture_image};
use pigment_engine::model::{AnnotatorKind, LoadedModel};
use pigment_engine::pipeline::{
    Annotator, ControlImage, ControlModels, ControlSpec, ControlUnitSpec, Flow, GenerateRequest, Generation, Resources,
};
use pigment_engine::runtime::LowVramChoice;
use pigment_engine::schedulers::parse_sampler;

fn control_image() -> ControlImage {
    ControlImage::new(fixture_image("reference/controlnet/canny_64_rgb.png"))
}

fn request(control: ControlSpec) -> Generation {
    let (sampler, schedule) = parse_sampler("Euler").unwrap();
    let params = GenerateRequest {
        prompt: "a house by a lake".into(),
        negative_prompt: "blurry".into(),
        seed: Some(11),
        steps: 4,
        cfg_scale: 7.0,
        sampler,
        schedule,
        width: 64,
        height: 64,
        ..GenerateRequest::default()
    };
    Generation { control, ..Generation::text(params) }
}

/// A ControlNet active for the first half of the steps: the residual UNet runs, then the plain one.
fn controlnet_request() -> Generation {
    request(control_spec(vec![ControlUnitSpec { end: 0.5, ..controlnet_unit("tiny-canny", control_image()) }]))
}

fn adapter_request() -> Generation {
    request(control_spec(vec![adapter_unit("tiny-adapter", control_image())]))
}

/// One image of `request` on `model`, its control models taken from (and left open in) `kept`.
fn generate_with(model: &mut LoadedModel, kept: &mut ControlModels, request: &Generation) -> Collect {
    let mut collect = Collect::default();
    pigment_engine::pipeline::generate(Resources::new(model).with_control_models(kept), request, &mut collect).unwrap();
    assert_eq!(collect.images.len(), 1);
    collect
}

/// One image of `request` on `model`, its control models opened for it alone (on the model's runtime).
fn generate(model: &mut LoadedModel, request: &Generation) -> Collect {
    generate_with(model, &mut ControlModels::default(), request)
}

#[test]
fn controlnets_and_adapters_take_turns_in_low_vram_mode_and_the_images_do_not_change() {
    let runtime = common::runtime();
    let mut full = LoadedModel::open(&runtime.with_low_vram(LowVramChoice::Off), &control_model()).unwrap();
    let mut low = LoadedModel::open(&runtime.with_low_vram(LowVramChoice::On), &control_model()).unwrap();
    // One ControlNet (and residual UNet) kept open and handed from one model to the other, as the app keeps them.
    let mut kept = ControlModels::default();
    let canny = common::fixtures().join("controlnet/tiny-canny");
    let loaded = |kept: &ControlModels| kept.inspect_controlnet(&canny, |net| net.is_loaded());

    let expected = generate_with(&mut full, &mut kept, &controlnet_request());
    assert_eq!(loaded(&kept), Some(true), "with a fully loaded model the ControlNet stays loaded");
    let got = generate_with(&mut low, &mut kept, &controlnet_request());
    assert!(expected.pictures() == got.pictures(), "the low-VRAM ControlNet image differs from the fully loaded one");
    assert_eq!(loaded(&kept), Some(false), "in low-VRAM mode the ControlNet gave the device to the VAE");
    assert_eq!(low.loaded_parts(), ["vae_decoder"], "one part on the device: the VAE decoded last");
    // The same ControlNet back with the fully loaded model leaves the turns and gives the same image again.
    let again = generate_with(&mut full, &mut kept, &controlnet_request());
    assert!(again.pictures() == expected.pictures());
    assert_eq!(loaded(&kept), Some(true));

    let expected = generate(&mut full, &adapter_request());
    let got = generate(&mut low, &adapter_request());
    assert!(expected.pictures() == got.pictures(), "the low-VRAM adapter image differs from the fully loaded one");
    assert_eq!(low.loaded_parts(), ["vae_decoder"]);
}

#[test]
fn controlnet_sessions_are_made_for_the_shapes_they_run_and_the_images_do_not_change() {
    let runtime = common::runtime();
    let fixed_runtime = runtime.with_fixed_dimensions(true);
    let mut free = LoadedModel::open(&runtime, &control_model()).unwrap();
    let mut fixed = LoadedModel::open(&fixed_runtime, &control_model()).unwrap();

    // The engine opens each ControlNet on its model's runtime: the fixed model's with fixed dimensions.
    let (mut free_kept, mut fixed_kept) = (ControlModels::default(), ControlModels::default());
    let expected = generate_with(&mut free, &mut free_kept, &controlnet_request());
    let got = generate_with(&mut fixed, &mut fixed_kept, &controlnet_request());
    let (max, mean) = common::difference(got.pictures()[0], expected.pictures()[0]);
    assert!(max <= 1 && mean <= 0.05, "fixed dimensions changed the ControlNet image: max {max}, mean {mean}");
    // Classifier-free guidance: batch 2. The export names both the latents' and the control image's sides
    // "height" and "width": sizes that differ between inputs cannot be fixed by name and stay free.
    let canny = common::fixtures().join("controlnet/tiny-canny");
    let fixed_dimensions = |kept: &ControlModels| kept.inspect_controlnet(&canny, |net| net.fixed_dimensions());
    let pairs = |list: &[(&str, i64)]| list.iter().map(|(n, s)| (n.to_string(), *s)).collect::<Vec<_>>();
    assert_eq!(fixed_dimensions(&fixed_kept), Some(pairs(&[("batch", 2), ("sequence", 77)])));
    assert_eq!(fixed_dimensions(&free_kept), Some(Vec::new()));

    let expected = generate(&mut free, &adapter_request());
    let got = generate(&mut fixed, &adapter_request());
    let (max, mean) = common::difference(got.pictures()[0], expected.pictures()[0]);
    assert!(max <= 1 && mean <= 0.05, "fixed dimensions changed the adapter image: max {max}, mean {mean}");
}

/// The depth and openpose annotators, run on the canny fixture picture at 64x64.
fn annotate(annotator: &mut Annotator) -> image::RgbImage {
    let picture = fixture_image("reference/controlnet/canny_64_rgb.png");
    annotator.apply(&picture, 64, 64, &mut |_| Flow::Continue).unwrap().0.image
}

fn annotator_folder(kind: AnnotatorKind) -> std::path::PathBuf {
    kind.find(&common::fixtures()).unwrap()
}

#[test]
fn annotators_take_turns_with_the_text_encoder_and_vae_in_low_and_medium_modes() {
    let runtime = common::runtime();
    for kind in [AnnotatorKind::Depth, AnnotatorKind::Openpose] {
        let expected = annotate(&mut Annotator::open(&runtime, kind, &annotator_folder(kind)).unwrap());
        // Which of the model's parts are still on the device after the annotator ran beside them.
        for (choice, left_loaded) in [
            (LowVramChoice::On, vec![]),
            (LowVramChoice::Medium, vec!["unet"]),
            (LowVramChoice::Off, vec!["text_encoder", "unet", "vae_decoder", "vae_encoder"]),
        ] {
            let mut model = LoadedModel::open(&runtime.with_low_vram(choice), &control_model()).unwrap();
            generate(&mut model, &request(ControlSpec::default()));
            assert!(model.loaded_parts().contains(&"vae_decoder"), "{choice:?}: the VAE decoded last");
            let mut annotator = Annotator::open(&runtime, kind, &annotator_folder(kind)).unwrap();
            annotator.share_device_with(&model).unwrap();
            assert!(annotate(&mut annotator) == expected, "{kind} {choice:?}: the annotator's picture changed");
            assert_eq!(model.loaded_parts(), left_loaded, "{kind} {choice:?}: parts left on the device");
            // The model takes the device back for the next image, which does not change either.
            generate(&mut model, &request(ControlSpec::default()));
        }
    }
}

#[test]
fn annotator_graphs_are_cached_like_the_models_parts() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = common::runtime().with_cache_dir(Some(cache.path().to_path_buf()));
    let graphs = || std::fs::read_dir(cache.path().join("graphs")).map(|entries| entries.count()).unwrap_or(0);
    let folder = annotator_folder(AnnotatorKind::Depth);
    let uncached = annotate(&mut Annotator::open(&common::runtime(), AnnotatorKind::Depth, &folder).unwrap());
    let first = annotate(&mut Annotator::open(&runtime, AnnotatorKind::Depth, &folder).unwrap());
    let entries = graphs();
    assert!(entries > 0, "the optimized graph is kept in {}", cache.path().display());
    let second = annotate(&mut Annotator::open(&runtime, AnnotatorKind::Depth, &folder).unwrap());
    assert_eq!(graphs(), entries, "the second open reads the kept graph");
    assert!(first == second);
    let (max, _) = common::difference(&first, &uncached);
    assert!(max <= 1, "the optimized graph's depth map differs from the model's by {max}/255");
}
