//! Fixed dimensions, as DirectML needs them: each session is made for the shapes it runs (its free dimensions
//! fixed by the model's names for them) and made again when a size changes. Checked on the CPU, where the same
//! mechanism can be turned on: the images must not change, and the sessions must carry the sizes they ran.

mod common;

use common::{Collect, txt2img};
use pigment_engine::model::LoadedModel;
use pigment_engine::pipeline::GenerateRequest;
use pigment_engine::schedulers::parse_sampler;

fn request(width: u32, height: u32) -> GenerateRequest {
    let (sampler, schedule) = parse_sampler("Euler").unwrap();
    GenerateRequest {
        prompt: "a boat".into(),
        seed: Some(3),
        steps: 4,
        cfg_scale: 7.0,
        sampler,
        schedule,
        width,
        height,
        batch_size: 2,
        batch_count: 1,
        ..GenerateRequest::default()
    }
}

fn dimensions_of(model: &LoadedModel, part: &str) -> Vec<(String, i64)> {
    model.fixed_dimensions().into_iter().find(|(name, _)| *name == part).map(|(_, dims)| dims).unwrap_or_default()
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(name, size)| (name.to_string(), *size)).collect()
}

#[test]
fn sessions_are_made_for_the_shapes_they_run_and_the_images_do_not_change() {
    let runtime = common::runtime();
    assert!(!runtime.fixed_dimensions(), "the CPU runs free dimensions unless asked");
    let mut free = LoadedModel::open(&runtime, &common::demo_model()).unwrap();
    let mut fixed = LoadedModel::open(&runtime.with_fixed_dimensions(true), &common::demo_model()).unwrap();
    assert!(fixed.fixed_dimensions().iter().all(|(_, dims)| dims.is_empty()), "nothing is fixed before a run");

    for (width, height) in [(64, 64), (96, 64)] {
        let (mut expected, mut got) = (Collect::default(), Collect::default());
        txt2img(&mut free, &request(width, height), &mut expected).unwrap();
        txt2img(&mut fixed, &request(width, height), &mut got).unwrap();
        assert_eq!(got.images.len(), 2);
        // Kernels chosen for known shapes may sum in another order: the same image within rounding.
        for (ours, reference) in got.pictures().into_iter().zip(expected.pictures()) {
            let (max, mean) = common::difference(ours, reference);
            assert!(
                max <= 1 && mean <= 0.05,
                "{width}x{height}: fixed dimensions changed the image: max {max}, mean {mean}"
            );
        }
        // Classifier-free guidance runs the UNet on batch 2 x 2 (negative and positive).
        let (latent_width, latent_height) = (i64::from(width) / 8, i64::from(height) / 8);
        assert_eq!(
            dimensions_of(&fixed, "unet"),
            pairs(&[("batch", 4), ("height", latent_height), ("sequence", 77), ("width", latent_width)])
        );
        assert_eq!(
            dimensions_of(&fixed, "vae_decoder"),
            pairs(&[("batch", 1), ("height", latent_height), ("width", latent_width)])
        );
        assert!(dimensions_of(&free, "unet").is_empty());
    }
}
