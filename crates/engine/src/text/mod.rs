//! Text: the CLIP tokenizer and AUTOMATIC1111's prompt syntax on top of it: emphasis and weights
//! ([`parse_attention`]), prompt editing, alternation and `AND` ([`prompt_schedule`], [`split_and`]), chunks of 75
//! tokens for long prompts ([`chunk_prompt`]), the weighted conditioning the UNet sees ([`encode_texts`],
//! [`ScheduledConditioning`]), and textual-inversion embeddings ([`EmbeddingLibrary`]).

mod attention;
mod chunks;
mod conditioning;
mod embeddings;
mod schedule;
mod tokenizer;

pub use attention::{WeightedText, parse_attention};
pub use chunks::{MAX_WEIGHT, PromptChunk, chunk_prompt, empty_chunk};
pub use conditioning::{ScheduledConditioning, encode_texts};
pub use embeddings::{Embedding, EmbeddingLibrary, EmbeddingTokens, resolve_embedding_references};
pub use schedule::{ScheduledText, SubPrompt, prompt_schedule, split_and, text_at_step};
pub use tokenizer::ClipTokenizer;
