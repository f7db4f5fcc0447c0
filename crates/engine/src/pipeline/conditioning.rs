//! Prompt text to the UNet's conditioning, as AUTOMATIC1111 makes it (modules/sd_hijack_clip.py `forward` and
//! `process_tokens`, modules/sd_emphasis.py `EmphasisOriginal`, modules/prompt_parser.py
//! `get_learned_conditioning`):
//!
//! - each text is cut into chunks of 77 ([`chunk_prompt`]); texts encoded together are padded with empty-prompt
//!   chunks to the same number of chunks, and each text's chunks are concatenated: `[77 * chunks, width]`;
//! - for each chunk position the text encoder's output is multiplied by each token's weight, then scaled so that
//!   its mean over the whole batch of texts is what it was before the weights ("Original" emphasis). The batch is
//!   A1111's: the texts of one prompt's schedule, so prompt editing shares one mean across its texts.
//!
//! With all weights 1 the output is exactly the text encoder's, so a prompt without emphasis gives what diffusers
//! gives.

use ndarray::{Array2, Axis, concatenate, s};

use crate::error::{EngineError, Result};
use crate::model::TextEncoderSession;
use crate::text::{
    ClipTokenizer, PromptChunk, ScheduledText, chunk_prompt, empty_chunk, prompt_schedule, text_at_step,
};

/// The conditioning `[77 * chunks, width]` of each of `texts`, encoded as one A1111 batch (see the module doc).
pub fn encode_texts(
    tokenizer: &ClipTokenizer,
    encoder: &mut TextEncoderSession,
    texts: &[&str],
) -> Result<Vec<Array2<f32>>> {
    // Each distinct text is tokenized and encoded once; repeats still count in the batch's mean, as in A1111.
    let mut distinct: Vec<&str> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut index_of = Vec::with_capacity(texts.len());
    for text in texts {
        let index = match distinct.iter().position(|d| d == text) {
            Some(index) => index,
            None => {
                distinct.push(text);
                counts.push(0);
                distinct.len() - 1
            }
        };
        counts[index] += 1;
        index_of.push(index);
    }
    let chunks: Vec<Vec<PromptChunk>> =
        distinct.iter().map(|text| chunk_prompt(tokenizer, text)).collect::<Result<_>>()?;
    let chunk_count = chunks.iter().map(Vec::len).max().unwrap_or(1);
    let empty = empty_chunk(tokenizer);
    let empty_hidden = match chunks.iter().any(|c| c.len() < chunk_count) {
        true => Some(encode_chunk(encoder, &empty)?),
        false => None,
    };
    let mut outputs: Vec<Vec<Array2<f32>>> = vec![Vec::with_capacity(chunk_count); distinct.len()];
    for position in 0..chunk_count {
        let mut hidden = Vec::with_capacity(distinct.len());
        for text_chunks in &chunks {
            let (raw, chunk) = match text_chunks.get(position) {
                Some(chunk) => (encode_chunk(encoder, chunk)?, chunk),
                None => match &empty_hidden {
                    Some(hidden) => (hidden.clone(), &empty),
                    None => encode_chunk(encoder, &empty).map(|hidden| (hidden, &empty))?,
                },
            };
            hidden.push((raw, chunk));
        }
        for (index, weighted) in emphasize(&hidden, &counts).into_iter().enumerate() {
            outputs[index].push(weighted);
        }
    }
    let concatenated: Vec<Array2<f32>> = outputs
        .iter()
        .map(|parts| {
            let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
            concatenate(Axis(0), &views).map_err(|e| EngineError::inference("text_encoder", format!("chunks: {e}")))
        })
        .collect::<Result<_>>()?;
    Ok(index_of.into_iter().map(|i| concatenated[i].clone()).collect())
}

/// The text encoder's hidden states `[77, width]` for one chunk.
fn encode_chunk(encoder: &mut TextEncoderSession, chunk: &PromptChunk) -> Result<Array2<f32>> {
    let ids = Array2::from_shape_fn((1, chunk.ids.len()), |(_, i)| i64::from(chunk.ids[i]));
    let hidden = encoder.encode(&ids)?;
    if hidden.shape()[1] != chunk.ids.len() {
        return Err(EngineError::inference(
            "text_encoder",
            format!("returned {} positions for {} tokens", hidden.shape()[1], chunk.ids.len()),
        ));
    }
    Ok(hidden.slice(s![0, .., ..]).to_owned())
}

/// `EmphasisOriginal.after_transformers` over one chunk position of the batch: `z * weights`, scaled by
/// `mean(z) / mean(z * weights)`, the means taken over the whole batch (each distinct text `counts` times).
fn emphasize(hidden: &[(Array2<f32>, &PromptChunk)], counts: &[usize]) -> Vec<Array2<f32>> {
    let mut original_sum = 0.0f64;
    let mut weighted_sum = 0.0f64;
    let mut elements = 0usize;
    let weighted: Vec<Array2<f32>> = hidden
        .iter()
        .zip(counts)
        .map(|((z, chunk), &count)| {
            let mut weighted = z.clone();
            for (mut row, &multiplier) in weighted.axis_iter_mut(Axis(0)).zip(&chunk.multipliers) {
                row.mapv_inplace(|v| v * multiplier);
            }
            original_sum += count as f64 * z.iter().map(|&v| f64::from(v)).sum::<f64>();
            weighted_sum += count as f64 * weighted.iter().map(|&v| f64::from(v)).sum::<f64>();
            elements += count * z.len();
            weighted
        })
        .collect();
    let original_mean = (original_sum / elements as f64) as f32;
    let weighted_mean = (weighted_sum / elements as f64) as f32;
    let ratio = original_mean / weighted_mean;
    // A weighted mean of exactly 0 would make every value infinite (A1111 draws NaN there): leave it unscaled.
    let ratio = if ratio.is_finite() { ratio } else { 1.0 };
    weighted.into_iter().map(|w| w.mapv_into(|v| v * ratio)).collect()
}

/// A prompt's conditioning over the sampling steps: its schedule ([`prompt_schedule`]) with one conditioning per
/// distinct text, all encoded as one batch (`get_learned_conditioning`).
#[derive(Debug, Clone)]
pub struct ScheduledConditioning {
    schedule: Vec<ScheduledText>,
    /// For each schedule entry, its conditioning in `conditionings`.
    entry_conditioning: Vec<usize>,
    conditionings: Vec<Array2<f32>>,
}

impl ScheduledConditioning {
    pub fn encode(
        tokenizer: &ClipTokenizer,
        encoder: &mut TextEncoderSession,
        prompt: &str,
        steps: usize,
    ) -> Result<ScheduledConditioning> {
        let schedule = prompt_schedule(prompt, steps);
        let texts: Vec<&str> = schedule.iter().map(|entry| entry.text.as_str()).collect();
        let encoded = encode_texts(tokenizer, encoder, &texts)?;
        let mut distinct: Vec<&str> = Vec::new();
        let mut conditionings = Vec::new();
        let mut entry_conditioning = Vec::with_capacity(texts.len());
        for (text, conditioning) in texts.iter().zip(encoded) {
            match distinct.iter().position(|d| d == text) {
                Some(index) => entry_conditioning.push(index),
                None => {
                    distinct.push(text);
                    conditionings.push(conditioning);
                    entry_conditioning.push(conditionings.len() - 1);
                }
            }
        }
        Ok(ScheduledConditioning { schedule, entry_conditioning, conditionings })
    }

    /// The conditioning for the 0-based sampling `step`.
    pub fn at_step(&self, step: usize) -> &Array2<f32> {
        &self.conditionings[self.entry_conditioning[text_at_step(&self.schedule, step)]]
    }

    /// The texts and the last step of each.
    pub fn schedule(&self) -> &[ScheduledText] {
        &self.schedule
    }

    /// The distinct conditionings, in schedule order.
    pub fn conditionings(&self) -> &[Array2<f32>] {
        &self.conditionings
    }

    /// The most tokens any of its conditionings has.
    pub fn max_tokens(&self) -> usize {
        self.conditionings.iter().map(|c| c.nrows()).max().unwrap_or(0)
    }
}
