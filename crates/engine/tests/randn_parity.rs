//! `TorchGenerator` against values torch printed (tests/fixtures/reference/randn.json, made by
//! scripts/fixtures/make_fixtures.py): same seed, same shapes drawn in order from one generator.

mod common;

use pigment_engine::rng::TorchGenerator;

/// torch's vectorised path computes log/sin/cos with SLEEF in float32 (1 ulp); ours uses the platform's libm, so
/// values may differ in the last bit or two. 2e-6 relative (about 16 ulp) is far below anything visible and far
/// above that difference; a wrong algorithm misses by orders of magnitude more.
const RELATIVE_TOLERANCE: f32 = 2e-6;

#[test]
fn randn_matches_torch_for_every_recorded_case() {
    let reference = common::reference("randn.json");
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 20, "the reference has too few cases: {}", cases.len());
    let mut compared = 0;
    for case in cases {
        let seed = case["seed"].as_u64().expect("seed");
        let mut generator = TorchGenerator::new(seed);
        let shapes = case["shapes"].as_array().expect("shapes");
        let values = case["values"].as_array().expect("values");
        for (shape, expected) in shapes.iter().zip(values) {
            let shape: Vec<usize> = shape.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            let drawn = generator.randn(&shape);
            let expected: Vec<f32> = expected.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            assert_eq!(drawn.len(), expected.len(), "seed {seed} shape {shape:?}");
            for (i, (got, want)) in drawn.iter().zip(&expected).enumerate() {
                let tolerance = RELATIVE_TOLERANCE * want.abs().max(1.0);
                assert!(
                    (got - want).abs() <= tolerance,
                    "seed {seed} shape {shape:?} element {i}: {got} vs torch {want}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 1000, "only {compared} values compared");
}
