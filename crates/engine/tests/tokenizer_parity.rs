//! The CLIP tokenizer against transformers' `CLIPTokenizer` on the reference corpus (punctuation, unicode,
//! Chinese, emoji, prompts over 77 tokens), from tokenizer.json and from vocab.json + merges.txt alone.

mod common;

use pigment_engine::text::ClipTokenizer;

fn corpus() -> Vec<(String, Vec<u32>)> {
    let reference = common::reference("tokenizer.json");
    reference["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let ids = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            (case["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

fn assert_matches_reference(tokenizer: &ClipTokenizer) {
    let corpus = corpus();
    assert!(corpus.len() >= 25, "corpus too small: {}", corpus.len());
    for (text, expected) in corpus {
        assert_eq!(tokenizer.encode(&text).unwrap(), expected, "ids for {text:?}");
    }
}

#[test]
fn tokenizer_json_gives_transformers_ids() {
    let tokenizer = ClipTokenizer::from_folder(&common::demo_model().join("tokenizer")).unwrap();
    assert_eq!(tokenizer.max_length(), 77);
    assert_matches_reference(&tokenizer);
}

#[test]
fn vocab_and_merges_alone_give_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let source = common::demo_model().join("tokenizer");
    for name in ["vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"] {
        std::fs::copy(source.join(name), dir.path().join(name)).unwrap();
    }
    let tokenizer = ClipTokenizer::from_folder(dir.path()).unwrap();
    assert_matches_reference(&tokenizer);
}

#[test]
fn the_pad_token_comes_from_the_tokenizer_config() {
    // SD 2.x tokenizers pad with "!" (id 0) instead of <|endoftext|>.
    let dir = tempfile::tempdir().unwrap();
    let source = common::demo_model().join("tokenizer");
    for name in ["vocab.json", "merges.txt"] {
        std::fs::copy(source.join(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("tokenizer_config.json"), r#"{"pad_token": "!", "model_max_length": 77}"#).unwrap();
    let tokenizer = ClipTokenizer::from_folder(dir.path()).unwrap();
    let ids = tokenizer.encode("a cat").unwrap();
    assert_eq!(&ids[..4], &[49406, 320, 2368, 49407]);
    assert!(ids[4..].iter().all(|&id| id == 0), "{ids:?}");
}

#[test]
fn a_broken_tokenizer_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), "{ not json").unwrap();
    let error = ClipTokenizer::from_folder(dir.path()).unwrap_err().to_string();
    assert!(error.contains("tokenizer.json"), "{error}");
}
