//! Text: the CLIP tokenizer and AUTOMATIC1111's prompt syntax on top of it: emphasis and weights
//! ([`parse_attention`]), prompt editing, alternation and `AND` ([`prompt_schedule`], [`split_and`]), chunks of 75
//! tokens for long prompts ([`chunk_prompt`]), and textual-inversion embeddings ([`EmbeddingLibrary`]). The text
//! encoder turns them into conditioning in `pipeline` (`pipeline::encode_texts`).

mod attention;
mod chunks;
mod embeddings;
mod schedule;
mod tokenizer;

pub use attention::{WeightedText, parse_attention};
pub use chunks::{MAX_WEIGHT, PromptChunk, chunk_prompt, empty_chunk};
pub use embeddings::{Embedding, EmbeddingLibrary, resolve_embedding_references};
pub use schedule::{ScheduledText, SubPrompt, prompt_schedule, split_and, text_at_step};
pub use tokenizer::{ClipTokenizer, EmbeddingTokens};
