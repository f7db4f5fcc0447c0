//! The conditioning the UNet sees for prompts with A1111's syntax, on the demo model's ONNX text encoder, against
//! what scripts/fixtures/make_prompt_fixtures.py computed from its torch twin with A1111's algorithm
//! (tests/fixtures/reference/prompts/conditioning.json): chunks of 75 with comma backtracking, weights applied
//! to the encoder's output with the mean restored, BREAK, embeddings, and the per-step texts of prompt editing.

mod common;

use ndarray::Array2;
use pigment_engine::model::LoadedModel;
use pigment_engine::pipeline::{ScheduledConditioning, encode_texts};
use pigment_engine::text::EmbeddingLibrary;
use serde_json::Value;

/// ONNX Runtime against torch, float32: the encoder alone agrees within ~1e-6; the weighting scales by up to 1.4.
const TOLERANCE: f32 = 1e-4;

fn model_with_embeddings() -> LoadedModel {
    let mut model = common::load_demo_model();
    let library = EmbeddingLibrary::load_folder(&common::fixtures().join("embeddings")).unwrap();
    model.set_embeddings(&common::runtime(), &library).unwrap();
    model
}

fn tensor(value: &Value) -> Array2<f32> {
    let shape: Vec<usize> = value["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let values: Vec<f32> = value["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    Array2::from_shape_vec((shape[0], shape[1]), values).unwrap()
}

fn max_difference(ours: &Array2<f32>, expected: &Array2<f32>) -> f32 {
    assert_eq!(ours.shape(), expected.shape());
    ours.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

#[test]
fn weighted_chunked_prompts_match_a1111_on_torch() {
    let reference = common::reference("prompts/conditioning.json");
    let mut model = model_with_embeddings();
    let texts = reference["texts"].as_object().unwrap();
    assert!(texts.contains_key("long_weighted"));
    for (name, case) in texts {
        let text = case["text"].as_str().unwrap();
        let expected = tensor(case);
        let ours = encode_texts(&model.tokenizer, &mut model.text_encoder, &[text]).unwrap().remove(0);
        let difference = max_difference(&ours, &expected);
        println!("{name}: {} tokens, max abs difference {difference:.2e}", ours.nrows());
        assert!(difference < TOLERANCE, "{name} ({text:?}): max abs difference {difference}");
    }
}

#[test]
fn the_100_token_weighted_prompt_is_two_chunks() {
    let reference = common::reference("prompts/conditioning.json");
    assert_eq!(reference["texts"]["long_weighted"]["shape"][0], 154);
    assert_eq!(reference["texts"]["negative"]["shape"][0], 77);
}

#[test]
fn a_plain_prompt_is_exactly_the_text_encoders_output() {
    let mut model = common::load_demo_model();
    let ids = model.tokenizer.encode("a photo of a cat").unwrap();
    let ids = Array2::from_shape_vec((1, ids.len()), ids.into_iter().map(i64::from).collect()).unwrap();
    let plain = model.text_encoder.encode(&ids).unwrap().index_axis_move(ndarray::Axis(0), 0);
    let ours = encode_texts(&model.tokenizer, &mut model.text_encoder, &["a photo of a cat"]).unwrap().remove(0);
    assert_eq!(ours, plain, "weights of 1 must leave the encoder's output untouched, bit for bit");
}

/// Prompt editing: each step gets the conditioning of the text A1111 uses at that step, all texts of the schedule
/// weighted as one batch.
#[test]
fn prompt_editing_switches_conditioning_at_a1111s_steps() {
    let reference = common::reference("prompts/conditioning.json");
    let mut model = model_with_embeddings();
    for case in reference["editing"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let steps = case["steps"].as_u64().unwrap() as usize;
        let schedule = case["schedule"].as_array().unwrap();
        let ours = ScheduledConditioning::encode(&model.tokenizer, &mut model.text_encoder, prompt, steps).unwrap();
        let ends: Vec<usize> = ours.schedule().iter().map(|e| e.end_at_step).collect();
        let expected_ends: Vec<usize> = schedule.iter().map(|e| e["end_at_step"].as_u64().unwrap() as usize).collect();
        assert_eq!(ends, expected_ends, "{prompt:?}");
        for step in 0..steps {
            // reconstruct_cond_batch: the first entry whose end is not before the 0-based step.
            let entry = schedule.iter().find(|e| step as u64 <= e["end_at_step"].as_u64().unwrap()).unwrap();
            let difference = max_difference(ours.at_step(step), &tensor(entry));
            assert!(difference < TOLERANCE, "{prompt:?} step {step}: max abs difference {difference}");
        }
        // The conditioning does change during sampling.
        assert_ne!(ours.at_step(0), ours.at_step(steps - 1), "{prompt:?}");
    }
}

#[test]
fn a_10000_character_prompt_is_encoded_in_chunks() {
    let mut model = common::load_demo_model();
    let phrase = "a (highly detailed:1.2) castle on a [misty] hill, ";
    let prompt: String = phrase.chars().cycle().take(10_000).collect();
    let started = std::time::Instant::now();
    let conditioning = encode_texts(&model.tokenizer, &mut model.text_encoder, &[prompt.as_str()]).unwrap().remove(0);
    let chunks = conditioning.nrows() / 77;
    println!(
        "10,000 characters: {chunks} chunks ({} positions) encoded in {:.0} ms",
        conditioning.nrows(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(conditioning.nrows() % 77, 0);
    assert!(chunks > 20, "{chunks} chunks");
    assert!(conditioning.iter().all(|v| v.is_finite()));
}
