//! Text to image with every sampler and sigma schedule the txt2img references do not cover, on the demo model,
//! against diffusers' `StableDiffusionPipeline` on its torch twin (tests/fixtures/reference/txt2img_samplers, made
//! by scripts/fixtures/make_sampler_fixtures.py): 64x64, 10 steps, seed 42, "a photo of a cat", CFG 7.5. Every pixel
//! within 3/255 and the mean difference under 0.5/255.
//!
//! DPM++ SDE is the exception: diffusers draws its noise from torchsde's Brownian tree, which no torch generator
//! reproduces (see schedulers/dpm_solver_sde.rs). Its deterministic part is compared with diffusers run on zero
//! noise, by running the same denoising loop here on zero noise (same 3/255 and 0.5/255); the pipeline's image, with
//! its noise from the seed's generator, is compared by statistics with diffusers' images for several Brownian seeds.

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock};

use common::{Collect, case_request, fixture_image, load_demo_model, txt2img};
use image::RgbImage;
use ndarray::{Array2, ArrayD, Axis, concatenate};
use pigment_engine::image::decoded_to_rgb;
use pigment_engine::model::LoadedModel;
use pigment_engine::rng::TorchGenerator;
use pigment_engine::schedulers::{BatchNoise, create_scheduler, parse_sampler};
use serde_json::Value;

const MAX_PIXEL_DIFFERENCE: i32 = 3;
const MAX_MEAN_DIFFERENCE: f64 = 0.5;

/// The demo model, loaded once for the tests of this file.
fn model() -> MutexGuard<'static, LoadedModel> {
    static MODEL: OnceLock<Mutex<LoadedModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| Mutex::new(load_demo_model()))
        .lock()
        // A test that panicked while holding the model leaves it usable: the sessions keep no state between runs.
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn cases() -> Vec<Value> {
    let reference = common::reference("txt2img_samplers/cases.json");
    reference["cases"].as_array().expect("cases").clone()
}

fn reference_image(file: &str) -> RgbImage {
    fixture_image(&format!("reference/txt2img_samplers/{file}"))
}

/// Whether diffusers' noise for this case came from the Brownian tree (DPM++ SDE).
fn brownian(case: &Value) -> bool {
    case.get("brownian_files").is_some()
}

/// The pipeline's image for `case`.
fn generate(case: &Value) -> RgbImage {
    let mut collect = Collect::default();
    txt2img(&mut model(), &case_request(case), &mut collect).unwrap();
    assert_eq!(collect.images.len(), 1);
    collect.images.remove(0).image
}

#[test]
fn every_sampler_and_schedule_matches_diffusers() {
    let cases = cases();
    assert!(cases.len() >= 30, "expected a case per sampler and schedule, found {}", cases.len());
    let mut failures = Vec::new();
    for case in cases.iter().filter(|case| !brownian(case)) {
        let name = case["name"].as_str().unwrap();
        let file = case["files"][0].as_str().unwrap();
        let (largest, mean) = common::difference(&generate(case), &reference_image(file));
        println!("{name:<26} max {largest}/255, mean {mean:.4}/255");
        if largest > MAX_PIXEL_DIFFERENCE || mean > MAX_MEAN_DIFFERENCE {
            failures.push(format!("{name}: max {largest}/255, mean {mean:.3}/255"));
        }
    }
    assert!(failures.is_empty(), "images differ from diffusers beyond tolerance:\n{}", failures.join("\n"));
}

/// `StableDiffusionPipeline.__call__` with `scheduler`'s noise replaced by zeros: the prompt and the empty negative
/// prompt encoded, the seed's latents, classifier-free guidance, the VAE.
fn denoise_without_noise(model: &mut LoadedModel, case: &Value) -> RgbImage {
    let (sampler, schedule) = parse_sampler(case["sampler"].as_str().unwrap()).unwrap();
    let steps = case["steps"].as_u64().unwrap() as usize;
    let cfg = case["cfg"].as_f64().unwrap() as f32;
    let (width, height) = (case["width"].as_u64().unwrap() as usize, case["height"].as_u64().unwrap() as usize);
    let mut encode = |text: &str| {
        let ids: Vec<i64> = model.tokenizer.encode(text).unwrap().into_iter().map(i64::from).collect();
        model.text_encoder.encode(&Array2::from_shape_vec((1, ids.len()), ids).unwrap()).unwrap()
    };
    let (uncond, cond) = (encode(case["negative_prompt"].as_str().unwrap()), encode(case["prompt"].as_str().unwrap()));
    let context = concatenate(Axis(0), &[uncond.view(), cond.view()]).unwrap();

    let mut scheduler = create_scheduler(sampler, schedule, &model.scheduler_config, steps).unwrap();
    let seed = case["seed"].as_u64().unwrap();
    let mut latents = TorchGenerator::new(seed).randn(&[1, 4, height / 8, width / 8]);
    latents.mapv_inplace(|v| v * scheduler.init_noise_sigma());
    let timesteps = scheduler.timesteps().to_vec();
    for (index, &t) in timesteps.iter().enumerate() {
        let scaled = scheduler.scale_model_input(&latents, index);
        let input = concatenate(Axis(0), &[scaled.view(), scaled.view()]).unwrap();
        let prediction = model.unet.predict(&input, t, &context).unwrap();
        let (uncond, cond) = (prediction.index_axis(Axis(0), 0), prediction.index_axis(Axis(0), 1));
        let guided: ArrayD<f32> =
            ndarray::Zip::from(&uncond).and(&cond).map_collect(|&u, &c| u + cfg * (c - u)).insert_axis(Axis(0));
        latents = scheduler.step(&guided, index, &latents, &mut BatchNoise::zero(1));
    }
    let scale = model.folder.vae_scaling_factor;
    let decoded = model.vae_decoder.decode(&latents.mapv(|v| v / scale)).unwrap();
    decoded_to_rgb(&decoded).unwrap().remove(0)
}

#[test]
fn dpmpp_sde_on_zero_noise_matches_diffusers_on_zero_noise() {
    let cases = cases();
    let brownian_cases: Vec<&Value> = cases.iter().filter(|case| brownian(case)).collect();
    assert_eq!(brownian_cases.len(), 3, "DPM++ SDE on the automatic, Karras and exponential schedules");
    let mut model = model();
    let mut failures = Vec::new();
    for case in brownian_cases {
        let name = case["name"].as_str().unwrap();
        let ours = denoise_without_noise(&mut model, case);
        let (largest, mean) = common::difference(&ours, &reference_image(case["zero_noise_file"].as_str().unwrap()));
        println!("{name:<26} zero noise: max {largest}/255, mean {mean:.4}/255");
        if largest > MAX_PIXEL_DIFFERENCE || mean > MAX_MEAN_DIFFERENCE {
            failures.push(format!("{name}: max {largest}/255, mean {mean:.3}/255"));
        }
    }
    assert!(failures.is_empty(), "zero-noise images differ from diffusers beyond tolerance:\n{}", failures.join("\n"));
}

/// The pipeline's DPM++ SDE image has its own noise, so it matches no diffusers image; what it must match is the
/// spread: its distance from diffusers' zero-noise image (how much noise the sampler adds, and where it acts) and
/// from each Brownian-noise image (how different two noise draws make the image) lie within the range diffusers'
/// own images show for different Brownian seeds, widened by a quarter. Too little noise brings the first distance
/// towards 0, too much or a wrong sampler pushes both up.
#[test]
fn dpmpp_sde_noise_spreads_the_image_as_diffusers_does() {
    for case in cases().iter().filter(|case| brownian(case)) {
        let name = case["name"].as_str().unwrap();
        let files: Vec<&str> = case["brownian_files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        let references: Vec<RgbImage> = files.iter().map(|file| reference_image(file)).collect();
        let zero_noise = reference_image(case["zero_noise_file"].as_str().unwrap());
        let range = |values: &[f64]| {
            let (low, high) = values.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            (0.75 * low, 1.25 * high)
        };
        let from_zero: Vec<f64> = references.iter().map(|image| common::difference(image, &zero_noise).1).collect();
        let mut pairwise = Vec::new();
        for (i, a) in references.iter().enumerate() {
            pairwise.extend(references[i + 1..].iter().map(|b| common::difference(a, b).1));
        }

        let ours = generate(case);
        let ours_from_zero = common::difference(&ours, &zero_noise).1;
        let ours_from_references: Vec<f64> =
            references.iter().map(|image| common::difference(&ours, image).1).collect();
        println!(
            "{name:<26} mean difference from zero noise {ours_from_zero:.2} (diffusers' seeds {from_zero:.2?}); \
             from diffusers' seeds {ours_from_references:.2?} (among them {pairwise:.2?})"
        );
        let (low, high) = range(&from_zero);
        assert!(
            (low..=high).contains(&ours_from_zero),
            "{name}: {ours_from_zero:.2} from zero noise, not in {low:.2}..{high:.2}"
        );
        let (low, high) = range(&pairwise);
        for (file, distance) in files.iter().zip(&ours_from_references) {
            assert!((low..=high).contains(distance), "{name}: {distance:.2} from {file}, not in {low:.2}..{high:.2}");
        }
    }
}
