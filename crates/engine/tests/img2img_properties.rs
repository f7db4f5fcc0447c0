//! Properties of image to image, inpainting, outpainting, the hires fix and the VAE that hold whatever the model:
//! unmasked pixels kept exactly, strength 0 returns the picture, a white mask is image to image, an outpainted
//! picture keeps its original region, every image of a batch is its seed's image alone, the fp16 VAE overflow is
//! caught and retried with the fp32 decoder, tiled and untiled VAE agree within a stated tolerance, and bad input
//! is refused or handled with a warning.

mod common;

use common::{Collect, copy_folder_without, fixture_image, load_demo_model, load_model, run, txt2img};
use image::{GrayImage, Luma, RgbImage};
use pigment_engine::EngineError;
use pigment_engine::image::InfoText;
use pigment_engine::model::LoadedModel;
use pigment_engine::pipeline::{
    GenerateRequest, Generation, HiresFix, HiresUpscaler, ImageSource, InpaintArea, InpaintSource, MaskedContent,
    OutpaintSource, Resources, Source, Stage, VaeTiling, VaeTilingMode, generate,
};
use pigment_engine::schedulers::parse_sampler;

fn inpainting_model() -> LoadedModel {
    load_model(&common::fixtures().join("models/tiny-sd-inpaint"))
}

fn scene() -> RgbImage {
    fixture_image("images/scene_64.png")
}

fn scene_mask() -> GrayImage {
    image::open(common::fixtures().join("images/mask_64.png")).unwrap().to_luma8()
}

fn request(sampler: &str, seed: u64) -> GenerateRequest {
    let (sampler, schedule) = parse_sampler(sampler).unwrap();
    GenerateRequest {
        prompt: "a red house".into(),
        seed: Some(seed),
        steps: 6,
        sampler,
        schedule,
        width: 64,
        height: 64,
        ..GenerateRequest::default()
    }
}

fn run_inpaint(model: &mut LoadedModel, params: GenerateRequest, source: &InpaintSource) -> Collect {
    let mut collect = Collect::default();
    run(model, &Generation::from_source(params, Source::Inpaint(source.clone())), &mut collect).unwrap();
    collect
}

/// Image to image of `source` with `params`.
fn img2img(params: GenerateRequest, source: ImageSource) -> Generation {
    Generation::from_source(params, Source::Image(source))
}

/// Text to image of `params` with the hires fix `hires` (its upscaler model, when it needs one, comes apart).
fn hires_fix(params: GenerateRequest, hires: &HiresFix) -> Generation {
    Generation { hires: Some(hires.clone()), ..Generation::text(params) }
}

/// Every pixel where `mask` is 0 equals the original's.
fn assert_unmasked_kept(out: &RgbImage, original: &RgbImage, mask: &GrayImage, what: &str) {
    assert_eq!(out.dimensions(), original.dimensions(), "{what}");
    let mut changed_inside = 0;
    for (x, y, pixel) in out.enumerate_pixels() {
        if mask.get_pixel(x, y).0[0] == 0 {
            assert_eq!(pixel, original.get_pixel(x, y), "{what}: pixel ({x}, {y}) outside the mask changed");
        } else if pixel != original.get_pixel(x, y) {
            changed_inside += 1;
        }
    }
    assert!(changed_inside > 0, "{what}: nothing was repainted");
}

#[test]
fn strength_zero_returns_the_picture_and_a_strength_below_one_step_says_so() {
    let mut model = load_demo_model();
    let params = GenerateRequest { batch_size: 2, ..request("euler", 3) };
    let mut source = ImageSource::new(scene());
    source.strength = 0.0;
    let mut collect = Collect::default();
    let summary = run(&mut model, &img2img(params.clone(), source.clone()), &mut collect).unwrap();
    assert_eq!(summary.seeds, vec![3, 4]);
    assert!(collect.images.iter().all(|i| i.image == scene()));
    assert!(collect.warnings.is_empty(), "{:?}", collect.warnings);
    assert!(!collect.stages.contains(&Stage::Denoising));

    source.strength = 0.1; // int(6 * 0.1) = 0 steps
    let mut collect = Collect::default();
    run(&mut model, &img2img(params, source), &mut collect).unwrap();
    assert!(collect.images.iter().all(|i| i.image == scene()));
    assert!(collect.warnings[0].contains("no denoising step"), "{:?}", collect.warnings);
}

#[test]
fn an_all_white_mask_is_image_to_image() {
    // Euler draws no noise per step, so inpainting's extra (dropped) draw changes nothing.
    let mut model = load_demo_model();
    let mut img = ImageSource::new(scene());
    img.strength = 0.6;
    let mut collect = Collect::default();
    run(&mut model, &img2img(request("euler", 21), img), &mut collect).unwrap();
    let white = GrayImage::from_pixel(64, 64, Luma([255]));
    let mut paint = InpaintSource::new(scene(), white);
    paint.strength = 0.6;
    paint.mask_blur = 0;
    let inpainted = run_inpaint(&mut model, request("euler", 21), &paint);
    assert_eq!(inpainted.images[0].image, collect.images[0].image);
}

#[test]
fn every_masked_content_blur_and_invert_keeps_the_unmasked_pixels() {
    for (name, mut model) in [("regular", load_demo_model()), ("inpainting", inpainting_model())] {
        let mut results = Vec::new();
        for content in MaskedContent::ALL {
            for invert in [false, true] {
                let mut paint = InpaintSource::new(scene(), scene_mask());
                paint.strength = 0.8;
                paint.mask_blur = 4;
                paint.masked_content = content;
                paint.invert_mask = invert;
                let collect = run_inpaint(&mut model, request("euler_a", 8), &paint);
                let out = &collect.images[0].image;
                // Where the blurred mask is 0 nothing may change.
                let binary = pigment_engine::image::mask::binarize(&scene_mask(), invert);
                let soft = pigment_engine::image::mask::blur(&binary, 4);
                assert_unmasked_kept(out, &scene(), &soft, &format!("{name} {content} invert {invert}"));
                let info = InfoText::parse(&collect.images[0].infotext.to_text()).unwrap();
                assert_eq!(info.get("Masked content"), Some(content.display_name()));
                assert_eq!(info.get("Mask blur"), Some("4"));
                assert_eq!(info.get("Mask mode"), invert.then_some("Inpaint not masked"));
                if !invert {
                    results.push(out.clone());
                }
            }
        }
        // At strength 0.8 what the masked area starts from shows.
        for i in 0..results.len() {
            for j in i + 1..results.len() {
                assert_ne!(results[i], results[j], "{name}: masked content {i} and {j} gave the same image");
            }
        }
    }
}

#[test]
fn an_empty_mask_returns_the_picture_and_a_mask_of_another_size_is_resized() {
    let mut model = load_demo_model();
    let empty = InpaintSource::new(scene(), GrayImage::new(64, 64));
    let collect = run_inpaint(&mut model, request("euler", 1), &empty);
    assert_eq!(collect.images[0].image, scene());
    assert!(collect.warnings.iter().any(|w| w.contains("mask is empty")), "{:?}", collect.warnings);

    let big_mask = image::imageops::resize(&scene_mask(), 128, 96, image::imageops::FilterType::Nearest);
    let mut paint = InpaintSource::new(scene(), big_mask);
    paint.mask_blur = 0;
    let collect = run_inpaint(&mut model, request("euler", 1), &paint);
    assert!(collect.warnings.iter().any(|w| w.contains("128x96") && w.contains("resized")), "{:?}", collect.warnings);
    assert_eq!(collect.images[0].image.dimensions(), (64, 64));
}

#[test]
fn only_masked_works_on_the_region_and_pastes_it_back() {
    let mut model = inpainting_model();
    let wide = fixture_image("images/scene_96x64.png");
    let mask =
        GrayImage::from_fn(96, 64, |x, y| Luma([if (60..76).contains(&x) && (20..36).contains(&y) { 255 } else { 0 }]));
    let mut paint = InpaintSource::new(wide.clone(), mask.clone());
    paint.mask_blur = 2;
    paint.area = InpaintArea::OnlyMasked { padding: 8 };
    let collect = run_inpaint(&mut model, request("euler", 5), &paint);
    let out = &collect.images[0].image;
    assert_eq!(out.dimensions(), (96, 64), "only masked keeps the picture's size");
    let soft = pigment_engine::image::mask::blur(&mask, 2);
    assert_unmasked_kept(out, &wide, &soft, "only masked");
    let info = InfoText::parse(&collect.images[0].infotext.to_text()).unwrap();
    assert_eq!(info.get("Inpaint area"), Some("Only masked"));
    assert_eq!(info.get("Masked area padding"), Some("8"));
}

#[test]
fn outpainting_keeps_the_original_region_exactly() {
    for (name, mut model) in [("regular", load_demo_model()), ("inpainting", inpainting_model())] {
        // 10 + 64 = 74 wide and 64 + 12 = 76 high: the canvas works at 80 x 80 and is cropped back.
        let mut source = OutpaintSource::new(scene());
        source.left = 10;
        source.bottom = 12;
        let generation = Generation::from_source(request("dpmpp_2m", 2), Source::Outpaint(source));
        let mut collect = Collect::default();
        run(&mut model, &generation, &mut collect).unwrap();
        let out = &collect.images[0].image;
        assert_eq!(out.dimensions(), (74, 76), "{name}");
        for (x, y, pixel) in scene().enumerate_pixels() {
            assert_eq!(out.get_pixel(x + 10, y), pixel, "{name}: original pixel ({x}, {y}) changed");
        }
        // The new area is painted, not left black.
        let new_area: Vec<_> = (0..76).map(|y| out.get_pixel(3, y).0).collect();
        assert!(new_area.iter().any(|p| p.iter().any(|&v| v > 20)), "{name}: {new_area:?}");
        let info = InfoText::parse(&collect.images[0].infotext.to_text()).unwrap();
        assert_eq!(info.get("Outpaint"), Some("left 10, bottom 12"));
        assert_eq!(info.size(), Some((74, 76)));
    }
}

#[test]
fn image_i_of_a_batch_is_its_seed_alone_in_every_pipeline() {
    let mut model = inpainting_model();
    let mut paint = InpaintSource::new(scene(), scene_mask());
    paint.strength = 0.7;
    let together = run_inpaint(&mut model, GenerateRequest { batch_size: 2, ..request("euler_a", 40) }, &paint);
    let single = run_inpaint(&mut model, GenerateRequest { batch_size: 1, ..request("euler_a", 41) }, &paint);
    assert_eq!(together.images[1].image, single.images[0].image, "inpainting");

    let mut model = load_demo_model();
    let hires = HiresFix { scale: 2.0, strength: 0.6, upscaler: HiresUpscaler::Lanczos, steps: Some(4) };
    let base = GenerateRequest { width: 48, height: 32, ..request("euler_a", 70) };
    let mut together = Collect::default();
    run(&mut model, &hires_fix(GenerateRequest { batch_size: 2, ..base.clone() }, &hires), &mut together).unwrap();
    let mut single = Collect::default();
    run(&mut model, &hires_fix(GenerateRequest { seed: Some(71), ..base }, &hires), &mut single).unwrap();
    assert_eq!(together.images[1].image, single.images[0].image, "hires fix");
}

#[test]
fn hires_fix_upscales_and_records_its_parameters() {
    let mut model = load_demo_model();
    let upscaler_path = common::fixtures().join("models/tiny-esrgan-x2");
    let mut upscaler = pigment_engine::model::UpscalerSession::open(&common::runtime(), &upscaler_path).unwrap();
    for (kind, name) in [
        (HiresUpscaler::Latent, "Latent"),
        (HiresUpscaler::Lanczos, "Lanczos"),
        (HiresUpscaler::Model, "tiny-esrgan-x2"),
    ] {
        let hires = HiresFix { scale: 2.0, strength: 0.5, upscaler: kind, steps: None };
        let mut collect = Collect::default();
        let model_upscaler = (kind == HiresUpscaler::Model).then_some(&mut upscaler);
        let resources = Resources::new(&mut model).with_upscaler(model_upscaler);
        generate(resources, &hires_fix(request("euler", 9), &hires), &mut collect).unwrap();
        let image = &collect.images[0];
        assert_eq!(image.image.dimensions(), (128, 128), "{name}");
        let info = InfoText::parse(&image.infotext.to_text()).unwrap();
        assert_eq!(info.get("Hires upscale"), Some("2"), "{name}");
        assert_eq!(info.get("Hires upscaler"), Some(name));
        assert_eq!(info.get("Denoising strength"), Some("0.5"));
        assert_eq!(info.size(), Some((64, 64)), "A1111 records the first pass's size");
        if kind == HiresUpscaler::Model {
            assert!(collect.stages.contains(&Stage::Upscaling));
        }
    }
    let too_big = HiresFix { scale: 100.0, ..HiresFix::default() };
    let error = run(&mut model, &hires_fix(request("euler", 9), &too_big), &mut Collect::default()).unwrap_err();
    assert!(error.to_string().contains("hires scale: 100"), "{error}");
}

#[test]
fn an_overflowing_fp16_vae_is_retried_with_the_fp32_decoder_or_reported() {
    let folder = common::fixtures().join("models/tiny-sd-fp16-vae");
    let mut fp16 = load_model(&folder);
    assert!(fp16.vae_decoder.is_fp16());
    let mut collect = Collect::default();
    txt2img(&mut fp16, &request("euler", 4), &mut collect).unwrap();
    assert!(collect.warnings.iter().any(|w| w.contains("fp32")), "{:?}", collect.warnings);
    // The UNet and the fp32 decoder are the demo model's: the same image.
    let mut reference = Collect::default();
    txt2img(&mut load_demo_model(), &request("euler", 4), &mut reference).unwrap();
    assert_eq!(collect.images[0].image, reference.images[0].image);

    let without = tempfile::tempdir().unwrap();
    copy_folder_without(&folder, without.path(), &["vae_decoder_fp32"]);
    let mut fp16_only = load_model(without.path());
    let error = txt2img(&mut fp16_only, &request("euler", 4), &mut Collect::default()).unwrap_err();
    assert!(matches!(error, EngineError::NonFinite { .. }), "{error}");
    assert!(error.to_string().contains("vae_decoder_fp32"), "{error}");
}

/// Stated tolerances of a tiled VAE against the whole picture on the demo model, as mean absolute differences in
/// 8-bit levels (measured: 3.2 for the decode, 9.2 for image to image through a tiled encode and decode). Tiles see
/// less context: the VAE's mid-block attention and GroupNorm statistics are per tile, and these tiles are small
/// (16 latents, 128 pixels; the default is 64). For scale: the demo model's random VAE does not reconstruct, so a
/// picture and its image to image at strength 0.3 differ by 38.
const TILED_DECODE_MEAN_TOLERANCE: f64 = 5.0;
const TILED_ENCODE_DECODE_MEAN_TOLERANCE: f64 = 12.0;

#[test]
fn a_tiled_vae_decode_and_encode_match_the_whole_picture_within_tolerance() {
    let mut model = load_demo_model();
    let request = GenerateRequest { width: 256, height: 192, ..request("euler", 12) };
    let tiled_with = |mode| VaeTiling { mode, tile: 16, overlap: 8 };
    let mut whole = Collect::default();
    let generation = Generation { vae_tiling: tiled_with(VaeTilingMode::Never), ..Generation::text(request.clone()) };
    run(&mut model, &generation, &mut whole).unwrap();
    let generation = Generation { vae_tiling: tiled_with(VaeTilingMode::Always), ..Generation::text(request.clone()) };
    let mut tiled = Collect::default();
    run(&mut model, &generation, &mut tiled).unwrap();
    let mean = mean_difference(&whole.images[0].image, &tiled.images[0].image);
    println!("tiled VAE decode (tiles of 16 latents, overlap 8) vs whole: mean {mean:.3}/255");
    assert!(mean < TILED_DECODE_MEAN_TOLERANCE, "tiled decode differs by {mean}");

    // Encoding: image to image of the same picture with a tiled and an untiled encoder (decoder untiled).
    let picture = whole.images[0].image.clone();
    let mut img = ImageSource::new(picture);
    img.strength = 0.3;
    let mut results = Vec::new();
    for tiling in [VaeTilingMode::Never, VaeTilingMode::Always] {
        let generation = Generation { vae_tiling: tiled_with(tiling), ..img2img(request.clone(), img.clone()) };
        let mut collect = Collect::default();
        run(&mut model, &generation, &mut collect).unwrap();
        results.push(collect.images.remove(0).image);
    }
    let mean = mean_difference(&results[0], &results[1]);
    println!("img2img with tiled VAE (encode and decode) vs whole: mean {mean:.3}/255");
    assert!(mean < TILED_ENCODE_DECODE_MEAN_TOLERANCE, "tiled encode differs by {mean}");
    let unrelated = mean_difference(&whole.images[0].image, &results[0]);
    println!("for scale, the picture vs its img2img at strength 0.3: mean {unrelated:.3}/255");
}

fn mean_difference(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as i64 - *y as i64).unsigned_abs()).sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn image_to_image_needs_a_vae_encoder_and_grey_pictures_work() {
    let no_encoder = common::fixtures().join("models/tiny-sd-int32-fp16");
    let mut model = load_model(&no_encoder);
    let error = run(&mut model, &img2img(request("euler", 1), ImageSource::new(scene())), &mut Collect::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("vae_encoder"), "{error}");

    // A grey picture of another size, brought to 64x64 by each resize mode.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grey.png");
    GrayImage::from_fn(80, 40, |x, _| Luma([(x * 3) as u8])).save(&path).unwrap();
    let grey = pigment_engine::image::load_image(&path).unwrap().image;
    let mut model = load_demo_model();
    for mode in pigment_engine::image::ResizeMode::ALL {
        let mut img = ImageSource::new(grey.clone());
        img.resize_mode = mode;
        let mut collect = Collect::default();
        run(&mut model, &img2img(request("euler", 1), img), &mut collect).unwrap();
        assert_eq!(collect.images[0].image.dimensions(), (64, 64));
        let info = InfoText::parse(&collect.images[0].infotext.to_text()).unwrap();
        assert_eq!(info.get("Resize mode"), Some(mode.display_name()));
    }
}
