//! `pigment generate --embeddings DIR` as a user runs it: embeddings used by name, an unknown one named with
//! `embedding:` warned about on stderr, one of the wrong width refused in one line before anything is written.

mod common;

use std::process::{Command, Output};

fn generate(prompt: &str, embeddings: &str, out: &std::path::Path) -> Output {
    let embeddings = common::fixtures().join(embeddings);
    Command::new(env!("CARGO_BIN_EXE_pigment"))
        .args(["generate", "--prompt", prompt, "--embeddings", embeddings.to_str().unwrap()])
        .args(["--width", "64", "--height", "64", "--steps", "2", "--seed", "5", "--device", "cpu"])
        .args(["--output", out.to_str().unwrap()])
        .output()
        .expect("pigment runs")
}

#[test]
fn embeddings_are_used_by_name_and_unknown_ones_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let output = generate("a (tiny-style:1.2) house, embedding:missing", "embeddings", dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: unknown embedding \"missing\"; known embeddings: tiny-style, tiny-token"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn an_embedding_of_the_wrong_width_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = generate("a house", "embeddings-wrong-width", dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("wide.pt") && stderr.contains("48") && stderr.contains("32"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
