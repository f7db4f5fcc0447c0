//! AUTOMATIC1111's prompt syntax against the references that scripts/fixtures/make_prompt_fixtures.py computed
//! with A1111's algorithms (tests/fixtures/reference/prompts/parsing.json): emphasis weights, the schedules of
//! prompt editing and alternation (lark's parse of A1111's grammar), `AND` parts, and the token chunks of long
//! prompts (comma backtracking, BREAK, embeddings).

mod common;

use pigment_engine::model::LoadedModel;
use pigment_engine::text::{EmbeddingLibrary, chunk_prompt, parse_attention, prompt_schedule, split_and};
use serde_json::Value;

fn parsing() -> Value {
    common::reference("prompts/parsing.json")
}

#[test]
fn emphasis_matches_a1111_exactly() {
    let reference = parsing();
    let cases = reference["attention"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<(String, f64)> = case["parsed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| (pair[0].as_str().unwrap().to_string(), pair[1].as_f64().unwrap()))
            .collect();
        let ours = parse_attention(text);
        // The same float64 multiplications in the same order; serde_json may read the reference's shortest
        // decimal one unit in the last place off, hence the 1e-15.
        let same = ours.len() == expected.len()
            && ours.iter().zip(&expected).all(|(w, (t, e))| &w.text == t && (w.weight - e).abs() <= 1e-15 * e.abs());
        assert!(same, "parse_attention({text:?}): ours {ours:?}, A1111 {expected:?}");
    }
}

#[test]
fn the_documented_example_gives_a1111s_weights() {
    let parsed = parse_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).");
    let weight = |text: &str| parsed.iter().find(|w| w.text == text).map(|w| w.weight).unwrap();
    assert_eq!((weight("house") * 1000.0).round() / 1000.0, 1.573);
    assert_eq!(weight("on"), 1.0);
    assert_eq!(weight(" "), 1.1);
    assert_eq!(weight("hill"), 0.55);
    assert_eq!((weight("sky") * 10000.0).round() / 10000.0, 1.4641);
}

#[test]
fn schedules_match_lark_on_a1111s_grammar() {
    let reference = parsing();
    let cases = reference["schedules"].as_array().unwrap();
    assert!(cases.len() >= 100);
    let mut failures = Vec::new();
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let steps = case["steps"].as_u64().unwrap() as usize;
        let expected: Vec<(usize, String)> = case["schedule"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e[0].as_u64().unwrap() as usize, e[1].as_str().unwrap().to_string()))
            .collect();
        let ours: Vec<(usize, String)> =
            prompt_schedule(prompt, steps).into_iter().map(|e| (e.end_at_step, e.text)).collect();
        if ours != expected {
            failures.push(format!("{prompt:?} ({steps} steps):\n  ours   {ours:?}\n  A1111  {expected:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} schedules differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn and_parts_match_a1111() {
    let reference = parsing();
    for case in reference["and"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let expected: Vec<(String, f64)> = case["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_f64().unwrap()))
            .collect();
        let ours: Vec<(String, f64)> = split_and(prompt).into_iter().map(|p| (p.text, p.weight)).collect();
        assert_eq!(ours, expected, "split_and({prompt:?})");
    }
}

/// Chunks need the tokenizer and, for the embedding cases, the embeddings: the demo model with the fixture's.
#[test]
fn chunks_match_a1111s_tokenize_line() {
    let reference = parsing();
    let mut model = common::load_demo_model();
    let library = EmbeddingLibrary::load_folder(&common::fixtures().join("embeddings")).unwrap();
    model.set_embeddings(&common::runtime(), &library).unwrap();
    let embedding_ids: Vec<(String, Vec<u32>)> =
        model.tokenizer.embeddings().iter().map(|e| (e.name.clone(), embedding_ids(&model, &e.name))).collect();
    let cases = reference["chunks"].as_array().unwrap();
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let ours = chunk_prompt(&model.tokenizer, prompt).unwrap();
        let expected = case["chunks"].as_array().unwrap();
        assert_eq!(ours.len(), expected.len(), "number of chunks of {prompt:?}");
        for (index, (chunk, want)) in ours.iter().zip(expected).enumerate() {
            // A1111 writes 0 where an embedding's vectors go and names them in "fixes"; here they are the
            // embedding's own ids.
            let mut want_ids: Vec<u32> =
                want["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            for fix in want["fixes"].as_array().unwrap() {
                let offset = fix[0].as_u64().unwrap() as usize;
                let name = fix[1].as_str().unwrap();
                let ids = &embedding_ids.iter().find(|(n, _)| n == name).unwrap().1;
                want_ids[offset..offset + ids.len()].copy_from_slice(ids);
            }
            assert_eq!(chunk.ids, want_ids, "ids of chunk {index} of {prompt:?}");
            let want_multipliers: Vec<f32> =
                want["multipliers"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            assert_eq!(chunk.multipliers, want_multipliers, "weights of chunk {index} of {prompt:?}");
        }
    }
}

/// The ids the tokenizer gives an embedding's vectors, found by chunking its bare name.
fn embedding_ids(model: &LoadedModel, name: &str) -> Vec<u32> {
    let chunk = chunk_prompt(&model.tokenizer, name).unwrap().remove(0);
    let count = chunk.ids.iter().skip(1).take_while(|&&id| id != model.tokenizer.eos_id()).count();
    chunk.ids[1..1 + count].to_vec()
}

#[test]
fn long_and_malformed_prompts_parse_in_bounded_time() {
    // 10,000 characters of everything at once: weights, unbalanced and deep brackets, editing, alternation.
    let piece = "a ((castle:1.2)) on [a hill|the sea], [[[deep [mist:fog:0.3] (((((light))))) \\( ] ) | ";
    let prompt: String = piece.chars().cycle().take(10_000).collect();
    let started = std::time::Instant::now();
    let parsed = parse_attention(&prompt);
    let schedule = prompt_schedule(&prompt, 30);
    let parts = split_and(&prompt);
    println!(
        "10,000-character prompt: {} emphasis runs, {} schedule entries, {} parts in {:.1} ms",
        parsed.len(),
        schedule.len(),
        parts.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert!(!parsed.is_empty() && !schedule.is_empty());
}
