//! Image to image and inpainting against diffusers (tests/fixtures/reference/img2img, made by
//! scripts/fixtures/make_img2img_fixtures.py): `StableDiffusionImg2ImgPipeline` on the demo model, and
//! `StableDiffusionInpaintPipeline` on the demo model (4-channel UNet, the legacy blending path) and on the
//! 9-channel inpainting model. Same tolerances as text to image: every pixel within 3/255, the mean under 0.5/255.
//! For inpainting (mask blur 0) the pixels inside the mask are compared with diffusers' output, and the pixels
//! outside must equal the input exactly (diffusers leaves the VAE's version there; Pigment composites the
//! original back, as A1111).

mod common;

use image::{GrayImage, RgbImage};
use pigment_engine::Result;
use pigment_engine::image::InfoText;
use pigment_engine::model::LoadedModel;
use pigment_engine::pipeline::{
    Control, GenerateRequest, GeneratedImage, GenerationObserver, Img2ImgRequest, InpaintRequest, Progress, img2img,
    inpaint,
};
use pigment_engine::schedulers::parse_sampler;

const MAX_PIXEL_DIFFERENCE: i32 = 3;
const MAX_MEAN_DIFFERENCE: f64 = 0.5;

#[derive(Default)]
struct Collect {
    images: Vec<GeneratedImage>,
    warnings: Vec<String>,
}

impl GenerationObserver for Collect {
    fn progress(&mut self, _: &Progress) -> Control {
        Control::Continue
    }
    fn image(&mut self, image: GeneratedImage) -> Result<()> {
        self.images.push(image);
        Ok(())
    }
    fn warning(&mut self, message: &str) {
        self.warnings.push(message.to_string());
    }
}

fn generate_request(case: &serde_json::Value) -> GenerateRequest {
    let (sampler, schedule) = parse_sampler(case["sampler"].as_str().unwrap()).unwrap();
    GenerateRequest {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative_prompt"].as_str().unwrap().into(),
        seed: Some(case["seed"].as_u64().unwrap()),
        steps: case["steps"].as_u64().unwrap() as usize,
        cfg_scale: case["cfg"].as_f64().unwrap() as f32,
        sampler,
        schedule,
        width: case["width"].as_u64().unwrap() as u32,
        height: case["height"].as_u64().unwrap() as u32,
        batch_size: case["batch_size"].as_u64().unwrap_or(1) as usize,
        ..GenerateRequest::default()
    }
}

fn picture(name: &str) -> RgbImage {
    image::open(common::fixtures().join("images").join(name)).unwrap().to_rgb8()
}

fn reference_image(file: &str) -> RgbImage {
    image::open(common::fixtures().join("reference/img2img").join(file)).unwrap().to_rgb8()
}

/// (largest per-channel difference, mean absolute difference) over the pixels `include` selects, in 8-bit steps.
fn difference(ours: &RgbImage, reference: &RgbImage, include: impl Fn(u32, u32) -> bool) -> (i32, f64) {
    assert_eq!(ours.dimensions(), reference.dimensions());
    let (mut largest, mut sum, mut count) = (0, 0u64, 0u64);
    for (x, y, pixel) in ours.enumerate_pixels() {
        if !include(x, y) {
            continue;
        }
        for (a, b) in pixel.0.iter().zip(reference.get_pixel(x, y).0) {
            let d = (*a as i32 - b as i32).abs();
            largest = largest.max(d);
            sum += d as u64;
            count += 1;
        }
    }
    (largest, sum as f64 / count.max(1) as f64)
}

#[test]
fn img2img_matches_diffusers() {
    let reference = common::reference("img2img/cases.json");
    let cases = reference["img2img"].as_array().expect("img2img cases");
    assert!(cases.len() >= 8, "expected the img2img cases, found {}", cases.len());
    let mut model = LoadedModel::open(&common::runtime(), &common::demo_model()).unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut request = Img2ImgRequest::new(generate_request(case), picture(case["image"].as_str().unwrap()));
        request.strength = case["strength"].as_f64().unwrap();
        let mut collect = Collect::default();
        let summary = img2img(&mut model, &request, &mut collect).unwrap();
        let seeds: Vec<u64> = case["seeds"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
        assert_eq!(summary.seeds, seeds, "{name}");
        for (generated, file) in collect.images.iter().zip(case["files"].as_array().unwrap()) {
            let file = file.as_str().unwrap();
            let (largest, mean) = difference(&generated.image, &reference_image(file), |_, _| true);
            println!("img2img {file}: max {largest}/255, mean {mean:.4}/255");
            if largest > MAX_PIXEL_DIFFERENCE || mean > MAX_MEAN_DIFFERENCE {
                failures.push(format!("{file}: max {largest}/255, mean {mean:.3}/255"));
            }
            let info = InfoText::parse(&generated.infotext.to_text()).unwrap();
            assert_eq!(info.get("Denoising strength"), Some(request.strength.to_string().as_str()), "{name}");
            assert_eq!(info.get("Seed"), Some(generated.seed.to_string().as_str()), "{name}");
        }
        assert!(collect.warnings.is_empty(), "{name}: {:?}", collect.warnings);
    }
    assert!(failures.is_empty(), "img2img differs from diffusers beyond tolerance:\n{}", failures.join("\n"));
}

#[test]
fn inpainting_matches_diffusers_inside_the_mask_and_keeps_the_input_outside() {
    let reference = common::reference("img2img/cases.json");
    let cases = reference["inpaint"].as_array().expect("inpaint cases");
    assert!(cases.len() >= 8, "expected the inpaint cases, found {}", cases.len());
    let runtime = common::runtime();
    let mut demo = LoadedModel::open(&runtime, &common::demo_model()).unwrap();
    let mut nine = LoadedModel::open(&runtime, &common::fixtures().join("models/tiny-sd-inpaint")).unwrap();
    assert_eq!(nine.unet.in_channels(), Some(9));
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let model = if case["model"] == "inpaint" { &mut nine } else { &mut demo };
        let image = picture(case["image"].as_str().unwrap());
        let mask: GrayImage =
            image::open(common::fixtures().join("images").join(case["mask"].as_str().unwrap())).unwrap().to_luma8();
        let mut request = InpaintRequest::new(generate_request(case), image.clone(), mask.clone());
        request.strength = case["strength"].as_f64().unwrap();
        request.mask_blur = 0;
        let mut collect = Collect::default();
        inpaint(model, &request, &mut collect).unwrap();
        let generated = &collect.images[0].image;
        let file = case["files"][0].as_str().unwrap();
        let inside = |x: u32, y: u32| mask.get_pixel(x, y).0[0] >= 128;
        let (largest, mean) = difference(generated, &reference_image(file), inside);
        println!("inpaint {file} (inside the mask): max {largest}/255, mean {mean:.4}/255");
        if largest > MAX_PIXEL_DIFFERENCE || mean > MAX_MEAN_DIFFERENCE {
            failures.push(format!("{file}: max {largest}/255, mean {mean:.3}/255"));
        }
        let (outside, _) = difference(generated, &image, |x, y| !inside(x, y));
        assert_eq!(outside, 0, "{name}: a pixel outside the mask changed");
        let info = InfoText::parse(&collect.images[0].infotext.to_text()).unwrap();
        assert_eq!(info.get("Mask blur"), Some("0"), "{name}");
        assert_eq!(info.get("Masked content"), Some("original"), "{name}");
        assert_eq!(info.get("Inpaint area"), Some("Whole picture"), "{name}");
    }
    assert!(failures.is_empty(), "inpainting differs from diffusers beyond tolerance:\n{}", failures.join("\n"));
}
