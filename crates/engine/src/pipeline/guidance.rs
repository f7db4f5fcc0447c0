//! Classifier-free guidance with AUTOMATIC1111's prompt syntax: the prompts encoded once per generation (every
//! text their prompt editing and alternation turn into, weighted and chunked: [`ScheduledConditioning`]), and the
//! guided noise prediction for each step from the conditionings that step uses.
//!
//! The UNet sees `[negative x batch; part 1 x batch; ...]` in one call (diffusers' order) and the prediction is
//! A1111's composable-diffusion formula `uncond + sum_i w_i * cfg * (cond_i - uncond)`
//! (sd_samplers_cfg_denoiser.py `combine_denoised`), which for one part of weight 1 is diffusers'
//! `uncond + cfg * (cond - uncond)`. At CFG 1 or below a prompt without `AND` runs alone, as in diffusers.
//! Conditionings of different lengths are made equal as A1111 does: `AND` parts repeat their last vector
//! (`stack_conds`), then the shorter of prompt and negative prompt gets empty-prompt chunks (`pad_cond_uncond`).

use std::collections::BTreeSet;

use ndarray::{Array2, Array3, ArrayD, ArrayView2, Axis, concatenate};

use super::GenerateRequest;
use super::conditioning::{ScheduledConditioning, encode_texts};
use super::control::NoisePredictor;
use crate::error::{EngineError, Result};
use crate::model::TextEncoderSession;
use crate::text::{ClipTokenizer, resolve_embedding_references, split_and};

/// One part of a prompt split at `AND`, with its weight.
struct Part {
    weight: f64,
    conditioning: ScheduledConditioning,
}

pub(crate) struct Guidance {
    parts: Vec<Part>,
    /// The negative prompt's conditioning, when an unconditional pass runs.
    negative: Option<ScheduledConditioning>,
    /// The empty prompt's conditioning (one chunk), when conditionings of different lengths meet.
    empty: Option<Array2<f32>>,
    cfg_scale: f32,
    batch_size: usize,
    /// The sampling steps the schedules were made for (the request's steps).
    steps: usize,
    warnings: Vec<String>,
}

impl Guidance {
    pub(crate) fn new(
        tokenizer: &ClipTokenizer,
        text_encoder: &mut TextEncoderSession,
        request: &GenerateRequest,
    ) -> Result<Guidance> {
        let mut warnings = Vec::new();
        let prompt = resolve_embedding_references(&request.prompt, tokenizer, &mut warnings);
        let negative_prompt = resolve_embedding_references(&request.negative_prompt, tokenizer, &mut warnings);
        let steps = request.steps;
        let sub_prompts = split_and(&prompt);
        let mut parts: Vec<Part> = Vec::with_capacity(sub_prompts.len());
        for sub in &sub_prompts {
            // A part written twice is encoded once (get_multicond_prompt_list).
            let same_text = sub_prompts.iter().position(|other| other.text == sub.text).filter(|&i| i < parts.len());
            let conditioning = match same_text {
                Some(i) => parts[i].conditioning.clone(),
                None => ScheduledConditioning::encode(tokenizer, text_encoder, &sub.text, steps)?,
            };
            parts.push(Part { weight: sub.weight, conditioning });
        }
        let composable = parts.len() > 1 || parts[0].weight != 1.0;
        let negative = if request.uses_guidance() || composable {
            Some(ScheduledConditioning::encode(tokenizer, text_encoder, &negative_prompt, steps)?)
        } else {
            None
        };
        let lengths: BTreeSet<usize> = parts
            .iter()
            .map(|p| &p.conditioning)
            .chain(negative.as_ref())
            .flat_map(|c| c.conditionings().iter().map(Array2::nrows))
            .collect();
        let empty = if lengths.len() > 1 { encode_texts(tokenizer, text_encoder, &[""])?.pop() } else { None };
        Ok(Guidance {
            parts,
            negative,
            empty,
            cfg_scale: request.cfg_scale,
            batch_size: request.batch_size,
            steps,
            warnings,
        })
    }

    /// What the user should know about the prompts (unknown embeddings), to be shown once per generation.
    pub(crate) fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The guided noise prediction for the scaled latents `sample` at `timestep`, the `step`-th (0-based) of
    /// `steps` model evaluations. Prompt editing switches at the step A1111 switches at when `steps` is the
    /// request's; a sampler that evaluates the model more often (second-order ones) maps its evaluations onto
    /// the request's steps proportionally.
    pub(crate) fn predict(
        &self,
        unet: &mut dyn NoisePredictor,
        sample: &ArrayD<f32>,
        timestep: f64,
        step: usize,
        steps: usize,
    ) -> Result<ArrayD<f32>> {
        let step = if steps == self.steps || steps == 0 { step } else { step * self.steps / steps };
        let conds: Vec<&Array2<f32>> = self.parts.iter().map(|p| p.conditioning.at_step(step)).collect();
        let Some(negative) = &self.negative else {
            return unet.predict(sample, timestep, &self.context(&[conds[0].view()])?, 0);
        };
        // stack_conds, then pad_cond_uncond.
        let part_tokens = conds.iter().map(|c| c.nrows()).max().unwrap_or(0);
        let uncond = negative.at_step(step);
        let tokens = part_tokens.max(uncond.nrows());
        let mut rows = Vec::with_capacity(conds.len() + 1);
        rows.push(self.pad_with_empty(uncond.clone(), tokens)?);
        for cond in conds {
            rows.push(self.pad_with_empty(repeat_last_vector(cond, part_tokens)?, tokens)?);
        }
        let context = self.context(&rows.iter().map(|row| row.view()).collect::<Vec<_>>())?;
        let views = vec![sample.view(); rows.len()];
        let input = concatenate(Axis(0), &views).map_err(|e| EngineError::inference("unet", e))?;
        let prediction = unet.predict(&input, timestep, &context, self.batch_size)?;
        let batch = self.batch_size;
        let uncond = prediction.slice_axis(Axis(0), (0..batch).into());
        let mut guided = uncond.to_owned();
        for (i, part) in self.parts.iter().enumerate() {
            let cond = prediction.slice_axis(Axis(0), ((i + 1) * batch..(i + 2) * batch).into());
            // weight * cfg in double precision, then float32, as torch multiplies a tensor by a Python float.
            let scale = (part.weight * f64::from(self.cfg_scale)) as f32;
            ndarray::Zip::from(&mut guided).and(&cond).and(&uncond).for_each(|g, &c, &u| *g += (c - u) * scale);
        }
        Ok(guided)
    }

    /// `[row 1 x batch; row 2 x batch; ...]`.
    fn context(&self, rows: &[ArrayView2<'_, f32>]) -> Result<Array3<f32>> {
        let views: Vec<_> =
            rows.iter().flat_map(|row| std::iter::repeat_n(row.view().insert_axis(Axis(0)), self.batch_size)).collect();
        stacked(&views)
    }

    /// `cond` with empty-prompt chunks appended up to `tokens` positions (CFGDenoiser.pad_cond_uncond).
    fn pad_with_empty(&self, cond: Array2<f32>, tokens: usize) -> Result<Array2<f32>> {
        let Some(empty) = self.empty.as_ref().filter(|_| cond.nrows() < tokens) else { return Ok(cond) };
        let mut views = vec![cond.view()];
        views.extend(std::iter::repeat_n(empty.view(), (tokens - cond.nrows()) / empty.nrows()));
        stacked(&views)
    }
}

/// `cond` with its last vector repeated up to `tokens` positions (prompt_parser.py `stack_conds`).
fn repeat_last_vector(cond: &Array2<f32>, tokens: usize) -> Result<Array2<f32>> {
    if cond.nrows() >= tokens {
        return Ok(cond.clone());
    }
    let last = cond.slice_axis(Axis(0), (cond.nrows() - 1..cond.nrows()).into());
    let mut views = vec![cond.view()];
    views.extend(std::iter::repeat_n(last, tokens - cond.nrows()));
    stacked(&views)
}

/// The conditionings one after the other on the first axis. They all come from one text encoder, so their widths
/// agree; a mismatch would be a broken export, reported rather than a panic.
fn stacked<D: ndarray::RemoveAxis>(views: &[ndarray::ArrayView<'_, f32, D>]) -> Result<ndarray::Array<f32, D>> {
    concatenate(Axis(0), views).map_err(|e| EngineError::inference("text_encoder", format!("conditionings: {e}")))
}
