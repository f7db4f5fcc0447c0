//! Low-VRAM mode: the text encoder, UNet and VAE take turns (at most one loaded at a time) and the VAE works in
//! tiles, and the images are the same as with every part loaded. On the CPU the cuDNN settings do not apply, so
//! the pixels must match exactly.

mod common;

use common::{Collect, run, txt2img};
use pigment_engine::model::LoadedModel;
use pigment_engine::pipeline::{GenerateRequest, Generation, ImageSource, Source};
use pigment_engine::runtime::{LowVramChoice, MemoryMode};
use pigment_engine::schedulers::parse_sampler;

fn load(low_vram: LowVramChoice) -> LoadedModel {
    LoadedModel::open(&common::runtime().with_low_vram(low_vram), &common::demo_model()).unwrap()
}

fn request() -> GenerateRequest {
    let (sampler, schedule) = parse_sampler("Euler a").unwrap();
    GenerateRequest {
        prompt: "a lighthouse".into(),
        negative_prompt: "fog".into(),
        seed: Some(7),
        steps: 6,
        cfg_scale: 7.0,
        sampler,
        schedule,
        width: 64,
        height: 64,
        batch_size: 2,
        batch_count: 2,
    }
}

#[test]
fn parts_take_turns_and_the_images_do_not_change() {
    let mut full = load(LowVramChoice::Off);
    let mut low = load(LowVramChoice::On);
    assert_eq!(full.info().precision.memory, MemoryMode::Full);
    assert_eq!(low.info().precision.memory, MemoryMode::Low, "{}", low.info().precision.reason);
    assert_eq!(full.loaded_parts(), ["text_encoder", "unet", "vae_decoder", "vae_encoder"]);
    assert!(low.loaded_parts().is_empty(), "nothing stays loaded after the load: {:?}", low.loaded_parts());
    assert!(low.tiles_vae_always());

    let (mut expected, mut got) = (Collect::default(), Collect::default());
    txt2img(&mut full, &request(), &mut expected).unwrap();
    txt2img(&mut low, &request(), &mut got).unwrap();
    assert_eq!(got.images.len(), 4);
    assert!(expected.pictures() == got.pictures(), "low-VRAM txt2img differs from the fully loaded model");
    assert_eq!(low.loaded_parts(), ["vae_decoder"], "the VAE decoded last and is the only part loaded");

    // Image to image uses the fourth part, the VAE encoder, and the same turns.
    let picture = got.images[0].image.clone();
    let edit = Generation::from_source(
        GenerateRequest { batch_count: 1, ..request() },
        Source::Image(ImageSource { strength: 0.6, ..ImageSource::new(picture) }),
    );
    let (mut expected, mut got) = (Collect::default(), Collect::default());
    run(&mut full, &edit, &mut expected).unwrap();
    run(&mut low, &edit, &mut got).unwrap();
    assert!(
        !got.images.is_empty() && expected.pictures() == got.pictures(),
        "low-VRAM img2img differs from the fully loaded model"
    );
    assert_eq!(low.loaded_parts().len(), 1, "{:?}", low.loaded_parts());
}

#[test]
fn in_medium_mode_the_unet_stays_loaded_and_the_images_do_not_change() {
    let mut full = load(LowVramChoice::Off);
    let mut medium = load(LowVramChoice::Medium);
    let decision = medium.info().precision;
    assert_eq!(decision.memory, MemoryMode::Medium, "{}", decision.reason);
    assert_eq!(medium.loaded_parts(), ["unet"], "only the UNet is loaded ahead of use");
    assert!(!medium.tiles_vae_always() && !full.tiles_vae_always(), "medium mode does not tile the VAE");

    let (mut expected, mut got) = (Collect::default(), Collect::default());
    txt2img(&mut full, &request(), &mut expected).unwrap();
    txt2img(&mut medium, &request(), &mut got).unwrap();
    assert_eq!(got.images.len(), 4);
    assert!(expected.pictures() == got.pictures(), "medium-VRAM txt2img differs from the fully loaded model");
    assert_eq!(medium.loaded_parts(), ["unet", "vae_decoder"], "the UNet beside the part that ran last");
}
