//! Classifier-free guidance: the prompts encoded once per generation, and the guided noise prediction for each
//! step. With guidance the UNet sees `[negative; positive]` in one batch (diffusers' order) and the prediction is
//! `uncond + cfg * (cond - uncond)`; at CFG 1 or below only the prompt runs, as in diffusers.

use ndarray::{Array2, Array3, ArrayD, Axis, concatenate};

use super::GenerateRequest;
use crate::error::Result;
use crate::model::{TextEncoderSession, UnetSession};
use crate::text::ClipTokenizer;

pub(crate) struct Guidance {
    /// `[negative x batch; positive x batch]` with guidance, `[positive x batch]` without.
    context: Array3<f32>,
    cfg_scale: f32,
    batch_size: usize,
    guided: bool,
}

impl Guidance {
    pub(crate) fn new(
        tokenizer: &ClipTokenizer,
        text_encoder: &mut TextEncoderSession,
        request: &GenerateRequest,
    ) -> Result<Guidance> {
        let guided = request.uses_guidance();
        let mut texts = Vec::with_capacity(2);
        if guided {
            texts.push(request.negative_prompt.as_str());
        }
        texts.push(request.prompt.as_str());
        let mut halves = Vec::with_capacity(texts.len());
        for text in texts {
            let ids = tokenizer.encode(text)?;
            let ids = Array2::from_shape_vec((1, ids.len()), ids.into_iter().map(i64::from).collect())
                .expect("one row of token ids");
            let hidden = text_encoder.encode(&ids)?;
            // The same embedding for every image of the batch, as diffusers' `repeat` for num_images_per_prompt.
            let views = vec![hidden.view(); request.batch_size];
            halves.push(concatenate(Axis(0), &views).expect("equal shapes"));
        }
        let views: Vec<_> = halves.iter().map(|h| h.view()).collect();
        let context = concatenate(Axis(0), &views).expect("equal shapes");
        Ok(Guidance { context, cfg_scale: request.cfg_scale, batch_size: request.batch_size, guided })
    }

    /// The guided noise prediction for the scaled latents `sample` at `timestep`, the `step`-th (0-based) of
    /// `steps` model evaluations (prompt editing will change the conditioning with the step).
    pub(crate) fn predict(
        &self,
        unet: &mut UnetSession,
        sample: &ArrayD<f32>,
        timestep: f64,
        _step: usize,
        _steps: usize,
    ) -> Result<ArrayD<f32>> {
        if !self.guided {
            return unet.predict(sample, timestep, &self.context);
        }
        let input = concatenate(Axis(0), &[sample.view(), sample.view()]).expect("equal shapes");
        let prediction = unet.predict(&input, timestep, &self.context)?;
        let batch = self.batch_size;
        let uncond = prediction.slice_axis(Axis(0), (0..batch).into());
        let cond = prediction.slice_axis(Axis(0), (batch..2 * batch).into());
        let cfg = self.cfg_scale;
        let mut guided = uncond.to_owned();
        guided.zip_mut_with(&cond, |u, &c| *u += cfg * (c - *u));
        Ok(guided)
    }
}
