//! A generation's parameters (prompt, sampler, seed, size, batch) and their validation: every bad value is refused
//! before a model runs, with the parameter's name and the value.

use crate::error::{EngineError, Result};
use crate::schedulers::{Sampler, SigmaSchedule};

/// Largest width or height accepted: a 4096x4096 image already needs a 512x512 latent.
pub const MAX_DIMENSION: u32 = 4096;
pub const MAX_STEPS: usize = 1000;
pub const MAX_BATCH_SIZE: usize = 64;

/// What every mode takes: the prompts, sampler and schedule, seed, size and batch.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    pub prompt: String,
    pub negative_prompt: String,
    /// `None` picks a random seed; the one used is recorded in each image.
    pub seed: Option<u64>,
    pub steps: usize,
    pub cfg_scale: f32,
    pub sampler: Sampler,
    pub schedule: SigmaSchedule,
    pub width: u32,
    pub height: u32,
    pub batch_size: usize,
    pub batch_count: usize,
}

impl Default for GenerateRequest {
    fn default() -> Self {
        GenerateRequest {
            prompt: String::new(),
            negative_prompt: String::new(),
            seed: None,
            steps: 20,
            cfg_scale: 7.0,
            sampler: Sampler::EulerAncestral,
            schedule: SigmaSchedule::Automatic,
            width: 512,
            height: 512,
            batch_size: 1,
            batch_count: 1,
        }
    }
}

impl GenerateRequest {
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [("width", self.width), ("height", self.height)] {
            if value == 0 || value % 8 != 0 {
                return Err(EngineError::parameter(name, value, "must be a positive multiple of 8"));
            }
            if value > MAX_DIMENSION {
                return Err(EngineError::parameter(name, value, format!("must be at most {MAX_DIMENSION}")));
            }
        }
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(EngineError::parameter("steps", self.steps, format!("must be between 1 and {MAX_STEPS}")));
        }
        if !self.cfg_scale.is_finite() || self.cfg_scale < 0.0 {
            return Err(EngineError::parameter("cfg scale", self.cfg_scale, "must be a number of 0 or more"));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(EngineError::parameter(
                "batch size",
                self.batch_size,
                format!("must be between 1 and {MAX_BATCH_SIZE}"),
            ));
        }
        if self.batch_count == 0 {
            return Err(EngineError::parameter("batch count", self.batch_count, "must be at least 1"));
        }
        if !self.sampler.supports(self.schedule) {
            return Err(EngineError::parameter(
                "schedule",
                format!("{:?}", self.schedule),
                format!("sampler {} does not take this schedule", self.sampler.display_name()),
            ));
        }
        let images = self.batch_size.saturating_mul(self.batch_count) as u64;
        if let Some(seed) = self.seed
            && seed.checked_add(images).is_none()
        {
            return Err(EngineError::parameter(
                "seed",
                seed,
                "too large for the number of images (seed + image index overflows)",
            ));
        }
        Ok(())
    }

    /// Classifier-free guidance runs only above 1, as in diffusers (`guidance_scale > 1`).
    pub fn uses_guidance(&self) -> bool {
        self.cfg_scale > 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(change: impl FnOnce(&mut GenerateRequest)) -> String {
        let mut request = GenerateRequest::default();
        change(&mut request);
        request.validate().expect_err("the request must be refused").to_string()
    }

    #[test]
    fn the_default_request_is_valid() {
        GenerateRequest::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_refused_with_their_name_and_value() {
        for (message, expected) in [
            (error_of(|r| r.width = 100), "width: 100"),
            (error_of(|r| r.height = 4104), "height: 4104"),
            (error_of(|r| r.height = 0), "height: 0"),
            (error_of(|r| r.steps = 0), "steps: 0"),
            (error_of(|r| r.steps = 1001), "steps: 1001"),
            (error_of(|r| r.cfg_scale = -1.0), "cfg scale: -1"),
            (error_of(|r| r.cfg_scale = f32::NAN), "cfg scale: NaN"),
            (error_of(|r| r.batch_size = 0), "batch size: 0"),
            (error_of(|r| r.batch_count = 0), "batch count: 0"),
            (error_of(|r| r.seed = Some(u64::MAX)), "seed: 18446744073709551615"),
        ] {
            assert!(message.contains(expected), "{message:?} should contain {expected:?}");
        }
    }

    #[test]
    fn an_empty_prompt_is_allowed() {
        let request = GenerateRequest { prompt: String::new(), ..GenerateRequest::default() };
        request.validate().unwrap();
    }
}
