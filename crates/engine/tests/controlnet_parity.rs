//! ControlNet and T2I-Adapter against diffusers (tests/fixtures/reference/controlnet, made by
//! scripts/fixtures/make_controlnet_fixtures.py): `StableDiffusionControlNetPipeline` (one and two ControlNets,
//! weights, start/end fractions, guess mode, CFG 1), its img2img and inpaint variants, and
//! `StableDiffusionAdapterPipeline`, on the demo model's torch twin with tiny random ControlNets and an adapter.
//! Same tolerances as text to image: every pixel within 3/255, the mean under 0.5/255 (inside the mask for
//! inpainting, where Pigment composites the original back outside it). The ControlNets change these images by
//! ~16/255 on average and their control image alone (a Canny map against a black one) by ~10/255, the adapter by
//! ~6/255 (printed by the fixture script), so the tolerances tell a unit that acts, and a control image that is read
//! right, from one that does not.

mod common;

use common::{
    Collect, adapter_unit, case_request, control_model, control_spec, controlnet_unit, difference, difference_where,
    fixture_image, load_model, run, txt2img,
};
use image::{GrayImage, Luma, Rgb, RgbImage};
use pigment_engine::image::{InfoText, ResizeMode, resize_image};
use pigment_engine::pipeline::{
    ControlImage, ControlModels, ControlSpec, ControlUnitSpec, Generation, HiresFix, HiresUpscaler, ImageSource,
    InpaintArea, InpaintSource, Resources, Source, generate,
};

const MAX_PIXEL_DIFFERENCE: i32 = 3;
const MAX_MEAN_DIFFERENCE: f64 = 0.5;

fn reference_image(file: &str) -> RgbImage {
    fixture_image(&format!("reference/controlnet/{file}"))
}

#[test]
fn controlnet_pipelines_match_diffusers() {
    let reference = common::reference("controlnet/cases.json");
    let cases = reference["controlnet_cases"].as_array().expect("controlnet cases");
    assert!(cases.len() >= 8, "expected the ControlNet cases, found {}", cases.len());
    let mut model = load_model(&control_model());
    // Kept open across the cases, as the old shared handles were: each ControlNet and the residual UNet load once.
    let mut kept = ControlModels::default();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let units: Vec<ControlUnitSpec> = case["controls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| ControlUnitSpec {
                weight: c["weight"].as_f64().unwrap() as f32,
                start: c["start"].as_f64().unwrap(),
                end: c["end"].as_f64().unwrap(),
                ..controlnet_unit(
                    c["model"].as_str().unwrap(),
                    ControlImage::new(fixture_image(c["image"].as_str().unwrap())),
                )
            })
            .collect();
        let control = ControlSpec { guess_mode: case["guess_mode"].as_bool().unwrap(), ..control_spec(units) };
        let mut collect = Collect::default();
        let mask = case["mask"].as_str().map(|m| image::open(common::fixtures().join("images").join(m)).unwrap());
        let mask: Option<GrayImage> = mask.map(|m| m.to_luma8());
        let source = match case["pipeline"].as_str().unwrap() {
            "txt2img" => Source::Text,
            "img2img" => {
                let image = fixture_image(&format!("images/{}", case["image"].as_str().unwrap()));
                Source::Image(ImageSource { strength: case["strength"].as_f64().unwrap(), ..ImageSource::new(image) })
            }
            "inpaint" => {
                let image = fixture_image(&format!("images/{}", case["image"].as_str().unwrap()));
                let mut source = InpaintSource::new(image, mask.clone().unwrap());
                source.strength = case["strength"].as_f64().unwrap();
                source.mask_blur = 0;
                Source::Inpaint(source)
            }
            other => panic!("unknown pipeline {other}"),
        };
        let generation = Generation { control, ..Generation::from_source(case_request(case), source) };
        generate(Resources::new(&mut model).with_control_models(&mut kept), &generation, &mut collect)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let generated = &collect.images[0];
        let inside = |x: u32, y: u32| mask.as_ref().is_none_or(|m| m.get_pixel(x, y).0[0] >= 128);
        let file = case["file"].as_str().unwrap();
        let (largest, mean) = difference_where(&generated.image, &reference_image(file), inside);
        println!("controlnet {name}: max {largest}/255, mean {mean:.4}/255");
        if largest > MAX_PIXEL_DIFFERENCE || mean > MAX_MEAN_DIFFERENCE {
            failures.push(format!("{name}: max {largest}/255, mean {mean:.3}/255"));
        }
        assert!(collect.warnings.is_empty(), "{name}: {:?}", collect.warnings);
        // Every unit is in the PNG metadata, as A1111's ControlNet extension writes it, and reads back.
        let info = InfoText::parse(&generated.infotext.to_text()).unwrap();
        for (i, control) in case["controls"].as_array().unwrap().iter().enumerate() {
            let unit = info.get(&format!("ControlNet {i}")).unwrap_or_else(|| panic!("{name}: no ControlNet {i}"));
            assert!(unit.starts_with("Module: none, Model: "), "{name}: {unit}");
            assert!(unit.contains(&format!("Model: {}", control["model"].as_str().unwrap())), "{name}: {unit}");
            assert!(unit.contains(&format!("Guidance End: {}", control["end"].as_f64().unwrap())), "{name}: {unit}");
        }
    }
    assert!(failures.is_empty(), "ControlNet images differ from diffusers beyond tolerance:\n{}", failures.join("\n"));
}

#[test]
fn a_controlnet_active_for_no_step_gives_exactly_the_plain_image() {
    let reference = common::reference("controlnet/cases.json");
    let case = reference["controlnet_cases"].as_array().unwrap().iter().find(|c| c["name"] == "inactive").unwrap();
    let mut model = load_model(&control_model());
    let plain_request = case_request(case);
    let mut plain = Collect::default();
    txt2img(&mut model, &plain_request, &mut plain).unwrap();
    let unit = ControlUnitSpec {
        start: 0.5,
        end: 0.55,
        ..controlnet_unit("tiny-canny", ControlImage::new(reference_image("canny_64_rgb.png")))
    };
    let request = Generation { control: control_spec(vec![unit]), ..Generation::text(case_request(case)) };
    let mut controlled = Collect::default();
    run(&mut model, &request, &mut controlled).unwrap();
    assert_eq!(controlled.images[0].image, plain.images[0].image, "10 steps, active from 0.5 to 0.55: no step");
    // The same unit active throughout changes the image.
    let active = Generation {
        control: ControlSpec {
            units: vec![ControlUnitSpec { start: 0.0, end: 1.0, ..request.control.units[0].clone() }],
            ..request.control.clone()
        },
        ..request.clone()
    };
    let mut changed = Collect::default();
    run(&mut model, &active, &mut changed).unwrap();
    let (_, mean) = difference(&changed.images[0].image, &plain.images[0].image);
    assert!(mean > 5.0, "an active ControlNet should change the image (mean difference {mean:.2}/255)");
}

#[test]
fn only_masked_inpainting_cuts_the_control_image_to_the_masked_region() {
    let reference = common::reference("controlnet/cases.json");
    let case = reference["controlnet_cases"].as_array().unwrap().iter().find(|c| c["name"] == "inactive").unwrap();
    let mut model = load_model(&control_model());
    // A 128x128 picture masked in its top-left corner: "only masked" works on the region around the mask (its box
    // plus 4 pixels of padding, within 4..44), brought to the 64x64 generation size.
    let picture = resize_image(&fixture_image("images/scene_64.png"), 128, 128, ResizeMode::Just);
    let mask =
        GrayImage::from_fn(128, 128, |x, y| Luma([if (8..40).contains(&x) && (8..40).contains(&y) { 255 } else { 0 }]));
    let control = resize_image(&reference_image("canny_64_rgb.png"), 128, 128, ResizeMode::Just);
    let inverted_where = |keep: &dyn Fn(u32, u32) -> bool| {
        RgbImage::from_fn(128, 128, |x, y| {
            let Rgb(c) = *control.get_pixel(x, y);
            if keep(x, y) { Rgb(c) } else { Rgb([255 - c[0], 255 - c[1], 255 - c[2]]) }
        })
    };
    let mut inpaint = |control_image: RgbImage| {
        let unit = controlnet_unit("tiny-canny", ControlImage::new(control_image));
        let mut source = InpaintSource::new(picture.clone(), mask.clone());
        source.area = InpaintArea::OnlyMasked { padding: 4 };
        source.mask_blur = 0;
        let generation = Generation {
            control: control_spec(vec![unit]),
            ..Generation::from_source(case_request(case), Source::Inpaint(source))
        };
        let mut collect = Collect::default();
        run(&mut model, &generation, &mut collect).unwrap();
        assert!(collect.warnings.is_empty(), "{:?}", collect.warnings);
        collect.images.remove(0).image
    };
    let plain = inpaint(control.clone());
    // Outside the region the control image does not matter...
    let changed_outside = inpaint(inverted_where(&|x, y| x < 64 && y < 64));
    assert_eq!(changed_outside, plain, "a control image changed outside the masked region changed the result");
    // ...inside it, it does.
    let changed_inside = inpaint(inverted_where(&|x, y| !(x < 48 && y < 48)));
    let in_mask = |x: u32, y: u32| mask.get_pixel(x, y).0[0] > 127;
    let (_, mean) = difference_where(&changed_inside, &plain, in_mask);
    assert!(mean > 5.0, "a control image changed inside the region should change the result ({mean:.3}/255)");
}

#[test]
fn the_hires_fix_runs_its_control_units_in_both_passes() {
    let reference = common::reference("controlnet/cases.json");
    let case = reference["controlnet_cases"].as_array().unwrap().iter().find(|c| c["name"] == "inactive").unwrap();
    let mut model = load_model(&control_model());
    // 10 steps at 64x64, then 20 at 96x96 of which strength 0.6 runs the last 12.
    let hires = HiresFix { scale: 1.5, strength: 0.6, upscaler: HiresUpscaler::Lanczos, steps: Some(20) };
    let mut hires_fix = |control: ControlSpec| {
        let mut collect = Collect::default();
        let generation = Generation { hires: Some(hires.clone()), control, ..Generation::text(case_request(case)) };
        run(&mut model, &generation, &mut collect).unwrap();
        // The second pass takes the control image stretched to its 96x96 without a warning.
        assert!(collect.warnings.is_empty(), "{:?}", collect.warnings);
        collect.images.remove(0)
    };
    let plain = hires_fix(ControlSpec::default());
    let unit = |start, end| ControlUnitSpec {
        start,
        end,
        ..controlnet_unit("tiny-canny", ControlImage::new(reference_image("canny_64_rgb.png")))
    };
    let with = |unit| control_spec(vec![unit]);
    // Active for no step of either pass: exactly the plain hires image.
    let inactive = hires_fix(with(unit(0.5, 0.52)));
    assert_eq!(inactive.image, plain.image);
    // From 0.91 on: no step of the first pass (its last starts at 9/10), the last of the second (at 11/12 or 19/20
    // of its steps): the first pass is the plain one, so the change comes from the second pass's control.
    let second_only = hires_fix(with(unit(0.91, 1.0)));
    let (_, mean) = difference(&second_only.image, &plain.image);
    assert!(mean > 0.1, "the second pass's ControlNet should change the image ({mean:.3}/255)");
    let controlled = hires_fix(with(unit(0.0, 1.0)));
    assert_eq!(controlled.image.dimensions(), (96, 96));
    let info = InfoText::parse(&controlled.infotext.to_text()).unwrap();
    assert!(info.get("ControlNet 0").is_some_and(|unit| unit.contains("Model: tiny-canny")), "{info:?}");
    assert_eq!(info.get("Hires upscale"), Some("1.5"));
}

#[test]
fn adapter_pipeline_matches_diffusers() {
    let reference = common::reference("controlnet/cases.json");
    let cases = reference["adapter_cases"].as_array().expect("adapter cases");
    assert!(cases.len() >= 2);
    let mut model = load_model(&control_model());
    let mut kept = ControlModels::default();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let unit = ControlUnitSpec {
            weight: case["weight"].as_f64().unwrap() as f32,
            ..adapter_unit("tiny-adapter", ControlImage::new(fixture_image(case["image"].as_str().unwrap())))
        };
        let control =
            ControlSpec { adapter_factor: case["conditioning_factor"].as_f64().unwrap(), ..control_spec(vec![unit]) };
        let generation = Generation { control, ..Generation::text(case_request(case)) };
        let mut collect = Collect::default();
        generate(Resources::new(&mut model).with_control_models(&mut kept), &generation, &mut collect).unwrap();
        let (largest, mean) = difference(&collect.images[0].image, &reference_image(case["file"].as_str().unwrap()));
        println!("adapter {name}: max {largest}/255, mean {mean:.4}/255");
        if largest > MAX_PIXEL_DIFFERENCE || mean > MAX_MEAN_DIFFERENCE {
            failures.push(format!("{name}: max {largest}/255, mean {mean:.3}/255"));
        }
        let info = InfoText::parse(&collect.images[0].infotext.to_text()).unwrap();
        let unit = info.get("ControlNet 0").unwrap();
        assert!(unit.contains("Model: tiny-adapter"), "{unit}");
    }
    assert!(failures.is_empty(), "adapter images differ from diffusers beyond tolerance:\n{}", failures.join("\n"));
}
