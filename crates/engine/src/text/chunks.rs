//! Long prompts in chunks of 75 tokens, as AUTOMATIC1111's `FrozenCLIPEmbedderWithCustomWords.tokenize_line`
//! (modules/sd_hijack_clip.py): each emphasis run is tokenized on its own; when a chunk is full and a comma came
//! within its last 20 tokens, the words after that comma move to the next chunk (`comma_padding_backtrack`);
//! `BREAK` ends a chunk; a textual-inversion embedding's vectors never straddle two chunks. Each chunk is then
//! `BOS + 75 tokens (padded) + EOS`, 77 positions, with one weight per position.

use super::attention::parse_attention;
use super::tokenizer::ClipTokenizer;
use crate::error::Result;

/// A1111's default `comma_padding_backtrack`: how far back from a chunk's end a comma may be to cut there.
const COMMA_PADDING_BACKTRACK: usize = 20;

/// Weights are multiplied into float32 hidden states: beyond this, absurd nesting (1.1^1000) would overflow to
/// infinity and make the image NaN. A1111 has no limit (and draws a broken image there); 1.1^145 nested brackets
/// reach it.
pub const MAX_WEIGHT: f32 = 1e6;

/// One chunk, ready for the text encoder: `BOS, tokens, EOS, padding` and each position's weight.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptChunk {
    pub ids: Vec<u32>,
    pub multipliers: Vec<f32>,
}

/// The chunks of `text` (after prompt editing and `AND` are resolved): always at least one.
pub fn chunk_prompt(tokenizer: &ClipTokenizer, text: &str) -> Result<Vec<PromptChunk>> {
    let mut builder = ChunkBuilder::new(tokenizer);
    for run in parse_attention(text) {
        if run.is_break() {
            builder.next_chunk();
            continue;
        }
        let tokens = tokenizer.tokenize(&run.text)?;
        let weight = run.weight;
        let mut position = 0;
        while position < tokens.len() {
            let token = tokens[position];
            if Some(token) == tokenizer.comma_id() {
                builder.last_comma = Some(builder.tokens.len());
            } else if let Some(comma) = builder.last_comma
                && builder.tokens.len() == builder.length
                && builder.tokens.len() - comma <= COMMA_PADDING_BACKTRACK
            {
                builder.move_after_comma_to_next_chunk(comma);
            }
            if builder.tokens.len() == builder.length {
                builder.next_chunk();
            }
            match tokenizer.embedding_at(&tokens, position) {
                None => {
                    builder.push(token, weight);
                    position += 1;
                }
                Some(embedding) => {
                    if builder.tokens.len() + embedding.ids.len() > builder.length {
                        builder.next_chunk();
                    }
                    for &id in &embedding.ids {
                        builder.push(id, weight);
                    }
                    position += embedding.name_ids.len();
                }
            }
        }
    }
    if !builder.tokens.is_empty() || builder.chunks.is_empty() {
        builder.next_chunk();
    }
    Ok(builder.chunks)
}

/// The chunk of an empty prompt: what shorter prompts are padded with.
pub fn empty_chunk(tokenizer: &ClipTokenizer) -> PromptChunk {
    let mut builder = ChunkBuilder::new(tokenizer);
    builder.next_chunk();
    builder.chunks.remove(0)
}

struct ChunkBuilder<'a> {
    tokenizer: &'a ClipTokenizer,
    /// Tokens per chunk between BOS and EOS (75 for CLIP).
    length: usize,
    tokens: Vec<u32>,
    multipliers: Vec<f64>,
    last_comma: Option<usize>,
    chunks: Vec<PromptChunk>,
}

impl<'a> ChunkBuilder<'a> {
    fn new(tokenizer: &'a ClipTokenizer) -> ChunkBuilder<'a> {
        ChunkBuilder {
            tokenizer,
            length: tokenizer.max_length() - 2,
            tokens: Vec::new(),
            multipliers: Vec::new(),
            last_comma: None,
            chunks: Vec::new(),
        }
    }

    fn push(&mut self, id: u32, weight: f64) {
        self.tokens.push(id);
        self.multipliers.push(weight);
    }

    fn move_after_comma_to_next_chunk(&mut self, comma: usize) {
        let moved_tokens = self.tokens.split_off(comma + 1);
        let moved_multipliers = self.multipliers.split_off(comma + 1);
        self.next_chunk();
        self.tokens = moved_tokens;
        self.multipliers = moved_multipliers;
    }

    /// Closes the current chunk: padded with EOS to its length, then BOS and EOS around it; a tokenizer whose
    /// padding is not EOS (SD 2.x) pads everything after the first EOS (sd_hijack_clip `process_tokens`).
    fn next_chunk(&mut self) {
        let eos = self.tokenizer.eos_id();
        let mut ids = Vec::with_capacity(self.length + 2);
        ids.push(self.tokenizer.bos_id());
        ids.append(&mut self.tokens);
        ids.resize(self.length + 1, eos);
        ids.push(eos);
        let pad = self.tokenizer.pad_id();
        if pad != eos
            && let Some(first_eos) = ids.iter().position(|&id| id == eos)
        {
            ids[first_eos + 1..].fill(pad);
        }
        let mut multipliers = Vec::with_capacity(self.length + 2);
        multipliers.push(1.0);
        // float32 as torch.asarray makes the Python floats; clamped (see MAX_WEIGHT).
        multipliers.extend(self.multipliers.drain(..).map(clamp_weight));
        multipliers.resize(self.length + 2, 1.0);
        self.last_comma = None;
        self.chunks.push(PromptChunk { ids, multipliers });
    }
}

/// A weight as the float32 the hidden states are multiplied by, within [`MAX_WEIGHT`]. NaN (an infinite weight
/// times a zero one, from thousands of nested brackets) is 0.
fn clamp_weight(weight: f64) -> f32 {
    if weight.is_nan() { 0.0 } else { (weight as f32).clamp(-MAX_WEIGHT, MAX_WEIGHT) }
}
