//! Image to image and inpainting against diffusers (tests/fixtures/reference/img2img, made by
//! scripts/fixtures/make_img2img_fixtures.py): `StableDiffusionImg2ImgPipeline` on the demo model, and
//! `StableDiffusionInpaintPipeline` on the demo model (4-channel UNet, the legacy blending path) and on the
//! 9-channel inpainting model. Same tolerances as text to image: every pixel within 3/255, the mean under 0.5/255.
//! For inpainting (mask blur 0) the pixels inside the mask are compared with diffusers' output, and the pixels
//! outside must equal the input exactly (diffusers leaves the VAE's version there; Pigment composites the
//! original back, as A1111).

mod common;

use common::{Collect, case_request, difference, difference_where, fixture_image, load_demo_model, load_model, run};
use image::{GrayImage, RgbImage};
use pigment_engine::image::InfoText;
use pigment_engine::pipeline::{Generation, ImageSource, InpaintSource, Source};

const MAX_PIXEL_DIFFERENCE: i32 = 3;
const MAX_MEAN_DIFFERENCE: f64 = 0.5;

fn picture(name: &str) -> RgbImage {
    fixture_image(&format!("images/{name}"))
}

fn reference_image(file: &str) -> RgbImage {
    fixture_image(&format!("reference/img2img/{file}"))
}

#[test]
fn img2img_matches_diffusers() {
    let reference = common::reference("img2img/cases.json");
    let cases = reference["img2img"].as_array().expect("img2img cases");
    assert!(cases.len() >= 8, "expected the img2img cases, found {}", cases.len());
    let mut model = load_demo_model();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut source = ImageSource::new(picture(case["image"].as_str().unwrap()));
        source.strength = case["strength"].as_f64().unwrap();
        let strength = source.strength;
        let generation = Generation::from_source(case_request(case), Source::Image(source));
        let mut collect = Collect::default();
        let summary = run(&mut model, &generation, &mut collect).unwrap();
        let seeds: Vec<u64> = case["seeds"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
        assert_eq!(summary.seeds, seeds, "{name}");
        for (generated, file) in collect.images.iter().zip(case["files"].as_array().unwrap()) {
            let file = file.as_str().unwrap();
            let (largest, mean) = difference(&generated.image, &reference_image(file));
            println!("img2img {file}: max {largest}/255, mean {mean:.4}/255");
            if largest > MAX_PIXEL_DIFFERENCE || mean > MAX_MEAN_DIFFERENCE {
                failures.push(format!("{file}: max {largest}/255, mean {mean:.3}/255"));
            }
            let info = InfoText::parse(&generated.infotext.to_text()).unwrap();
            assert_eq!(info.get("Denoising strength"), Some(strength.to_string().as_str()), "{name}");
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
    let mut demo = load_demo_model();
    let mut nine = load_model(&common::fixtures().join("models/tiny-sd-inpaint"));
    assert_eq!(nine.unet.in_channels(), Some(9));
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let model = if case["model"] == "inpaint" { &mut nine } else { &mut demo };
        let image = picture(case["image"].as_str().unwrap());
        let mask: GrayImage =
            image::open(common::fixtures().join("images").join(case["mask"].as_str().unwrap())).unwrap().to_luma8();
        let mut source = InpaintSource::new(image.clone(), mask.clone());
        source.strength = case["strength"].as_f64().unwrap();
        source.mask_blur = 0;
        let generation = Generation::from_source(case_request(case), Source::Inpaint(source));
        let mut collect = Collect::default();
        run(model, &generation, &mut collect).unwrap();
        let generated = &collect.images[0].image;
        let file = case["files"][0].as_str().unwrap();
        let inside = |x: u32, y: u32| mask.get_pixel(x, y).0[0] >= 128;
        let (largest, mean) = difference_where(generated, &reference_image(file), inside);
        println!("inpaint {file} (inside the mask): max {largest}/255, mean {mean:.4}/255");
        if largest > MAX_PIXEL_DIFFERENCE || mean > MAX_MEAN_DIFFERENCE {
            failures.push(format!("{file}: max {largest}/255, mean {mean:.3}/255"));
        }
        let (outside, _) = difference_where(generated, &image, |x, y| !inside(x, y));
        assert_eq!(outside, 0, "{name}: a pixel outside the mask changed");
        let info = InfoText::parse(&collect.images[0].infotext.to_text()).unwrap();
        assert_eq!(info.get("Mask blur"), Some("0"), "{name}");
        assert_eq!(info.get("Masked content"), Some("original"), "{name}");
        assert_eq!(info.get("Inpaint area"), Some("Whole picture"), "{name}");
    }
    assert!(failures.is_empty(), "inpainting differs from diffusers beyond tolerance:\n{}", failures.join("\n"));
}
