//! IO binding: the UNet and ControlNets run with the text embeddings bound to the device once per generation (and
//! again when prompt editing changes them) and their outputs bound to host memory. On the CPU the same kernels run
//! either way, so forcing it on must give exactly the images of plain runs.

mod common;

use common::{Collect, control_model, control_spec, controlnet_unit, fixture_image, run};
use pigment_engine::model::LoadedModel;
use pigment_engine::pipeline::{ControlImage, ControlUnitSpec, GenerateRequest, Generation};
use pigment_engine::runtime::IoBindingChoice;
use pigment_engine::schedulers::parse_sampler;

fn request(prompt: &str) -> GenerateRequest {
    let (sampler, schedule) = parse_sampler("DPM++ 2M").unwrap();
    GenerateRequest {
        // Prompt editing changes the text embeddings at step 3: the binding must follow.
        prompt: prompt.into(),
        negative_prompt: "blurry".into(),
        seed: Some(5),
        steps: 6,
        cfg_scale: 7.0,
        sampler,
        schedule,
        width: 64,
        height: 64,
        batch_size: 2,
        ..GenerateRequest::default()
    }
}

fn generate(model: &mut LoadedModel, generation: &Generation) -> Collect {
    let mut collect = Collect::default();
    run(model, generation, &mut collect).unwrap();
    assert_eq!(collect.images.len(), generation.params.batch_size);
    collect
}

/// A ControlNet generation; the engine opens the ControlNet and the residual UNet on the model's runtime.
fn controlnet_request() -> Generation {
    let image = ControlImage::new(fixture_image("reference/controlnet/canny_64_rgb.png"));
    let unit = ControlUnitSpec { weight: 0.8, ..controlnet_unit("tiny-canny", image) };
    Generation { control: control_spec(vec![unit]), ..Generation::text(request("a [red:blue:3] house")) }
}

#[test]
fn bound_runs_give_exactly_the_images_of_plain_runs() {
    let runtime = common::runtime();
    assert!(!runtime.io_binding(), "auto does not bind IO until measured on a GPU");
    let bound_runtime = runtime.with_io_binding(IoBindingChoice::On);
    assert!(bound_runtime.io_binding());

    let mut plain = common::load_demo_model();
    let mut bound = LoadedModel::open(&bound_runtime, &common::demo_model()).unwrap();
    assert!(bound.bound_parts().is_empty(), "nothing is bound before a run");
    for prompt in ["a [red:blue:3] boat", "a lighthouse"] {
        let expected = generate(&mut plain, &Generation::text(request(prompt)));
        let got = generate(&mut bound, &Generation::text(request(prompt)));
        assert!(expected.pictures() == got.pictures(), "{prompt}: bound runs changed the images");
    }
    assert_eq!(bound.bound_parts(), ["unet"], "the UNet ran bound; the parts that run once per image did not");
    assert!(plain.bound_parts().is_empty());

    let mut plain = LoadedModel::open(&runtime, &control_model()).unwrap();
    let mut bound = LoadedModel::open(&bound_runtime, &control_model()).unwrap();
    let expected = generate(&mut plain, &controlnet_request());
    let got = generate(&mut bound, &controlnet_request());
    assert!(expected.pictures() == got.pictures(), "bound ControlNet runs changed the images");
}

#[test]
fn a_bad_io_binding_choice_is_refused_with_its_name() {
    let error = "sometimes".parse::<IoBindingChoice>().unwrap_err().to_string();
    assert!(error.contains("io-binding") && error.contains("sometimes"), "{error}");
    assert_eq!("ON".parse::<IoBindingChoice>().unwrap(), IoBindingChoice::On);
}
