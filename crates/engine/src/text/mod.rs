//! Text: the CLIP tokenizer (prompt syntax, weights and long-prompt chunking build on it in a later issue).

mod tokenizer;

pub use tokenizer::ClipTokenizer;
