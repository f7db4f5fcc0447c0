//! The Rust Canny against OpenCV's `cv2.Canny` on the test pictures (tests/fixtures/reference/controlnet, made by
//! scripts/fixtures/make_controlnet_fixtures.py with opencv-python-headless): the same integer arithmetic, so at
//! least 99.9% of the pixels must agree (measured: all of them), and the edge counts within 0.5%.

mod common;

use pigment_engine::image::control::{Preprocessor, canny};

const MIN_AGREEMENT: f64 = 0.999;

#[test]
fn canny_matches_opencv() {
    let reference = common::reference("controlnet/cases.json");
    let cases = reference["canny_cases"].as_array().expect("canny cases");
    assert!(cases.len() >= 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let picture =
            image::open(common::fixtures().join("images").join(case["image"].as_str().unwrap())).unwrap().to_rgb8();
        let expected =
            image::open(common::fixtures().join("reference/controlnet").join(case["file"].as_str().unwrap()))
                .unwrap()
                .to_luma8();
        let ours = canny(&picture, case["low"].as_f64().unwrap() as f32, case["high"].as_f64().unwrap() as f32, 0);
        let agree = ours.as_raw().iter().zip(expected.as_raw()).filter(|(a, b)| a == b).count();
        let agreement = agree as f64 / ours.as_raw().len() as f64;
        let edges = ours.as_raw().iter().filter(|&&v| v == 255).count();
        let expected_edges = case["edge_pixels"].as_u64().unwrap() as usize;
        println!("canny {name}: {agreement:.5} of pixels agree, {edges} edge pixels (OpenCV {expected_edges})");
        assert!(agreement >= MIN_AGREEMENT, "{name}: only {agreement:.5} of the pixels agree with OpenCV");
        assert!(edges.abs_diff(expected_edges) as f64 <= 0.005 * expected_edges as f64, "{name}: {edges} edges");
        assert!(ours.as_raw().iter().all(|&v| v == 0 || v == 255), "{name}: edges are 0 or 255");
    }
}

#[test]
fn the_canny_preprocessor_gives_an_rgb_control_image_at_the_generation_size() {
    let picture = image::open(common::fixtures().join("images/scene_96x64.png")).unwrap().to_rgb8();
    let (control, info) = Preprocessor::Canny { low: 50.0, high: 150.0 }.apply(&picture, 64, 64).unwrap();
    assert_eq!(control.image.dimensions(), (64, 64));
    assert!(control.image.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    assert!(control.image.pixels().any(|p| p.0[0] == 255), "some edges");
    assert_eq!(info.module, "canny");
    assert_eq!(info.params, [("Threshold A".into(), "50".into()), ("Threshold B".into(), "150".into())]);
}
