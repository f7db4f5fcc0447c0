//! PLMS, the pseudo linear multistep method (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models",
//! eq. 9 and 12): diffusers' `PNDMScheduler` with skip_prk_steps, AUTOMATIC1111's "PLMS".
//!
//! Each step moves along DDIM's transfer function with a combination of the last (up to) four noise predictions.
//! The second step has no history yet: the model runs again at the second timestep and the first step is redone
//! with the mean of the two predictions (a pseudo improved Euler step), so n steps take n + 1 evaluations.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig};
use super::noise_schedule::{NoiseSchedule, noised};
use super::training_timesteps::{check_within_training, final_alpha_cumprod, spaced_timesteps};
use super::{BatchNoise, Scheduler};
use crate::error::Result;

pub(super) struct Plms {
    /// Integer training timesteps: `[t0, t1, t1, t2, ..., t(n-1)]`.
    timesteps: Vec<f64>,
    alphas_cumprod: Vec<f32>,
    /// alpha_cumprod below timestep 0: 1, or that of training step 0 (`set_alpha_to_one`).
    final_alpha_cumprod: f32,
    /// `num_train_timesteps // steps`: diffusers steps from t to t - this, whatever the spacing.
    step_ratio: usize,
    prediction_type: PredictionType,
    /// Steps taken (diffusers' `counter`), which picks the update.
    counter: usize,
    /// The last (up to) four noise predictions, oldest first (`ets`).
    history: Vec<ArrayD<f32>>,
    /// The sample the first step started from, for its redo in the second.
    first_sample: Option<ArrayD<f32>>,
}

impl Plms {
    /// `PNDMScheduler.set_timesteps(steps)` with skip_prk_steps, whose default spacing is "leading".
    pub(super) fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        let step_ratio = config.num_train_timesteps / steps;
        let spaced = spaced_timesteps(config, steps);
        // concatenate([ts[:-1], ts[-2:-1], ts[-1:]])[::-1] of the ascending ts: the second timestep twice.
        let mut timesteps = spaced.clone();
        if steps > 1 {
            timesteps.insert(2, spaced[1]);
        }
        // The redo of the first step reads alphas_cumprod at the second timestep plus the step ratio.
        let redo_timestep = spaced.get(1).map_or(0.0, |t| t + step_ratio as f64);
        check_within_training("PLMS", config, steps, timesteps.iter().copied().chain([redo_timestep]))?;
        let alphas_cumprod = NoiseSchedule::new(config).alphas_cumprod().to_vec();
        let final_alpha_cumprod = final_alpha_cumprod(config, &alphas_cumprod);
        Ok(Plms {
            timesteps,
            alphas_cumprod,
            final_alpha_cumprod,
            step_ratio,
            prediction_type: config.prediction_type,
            counter: 0,
            history: Vec::with_capacity(4),
            first_sample: None,
        })
    }

    fn alpha_cumprod_at(&self, timestep: i64) -> f32 {
        usize::try_from(timestep).map_or(self.final_alpha_cumprod, |t| self.alphas_cumprod[t])
    }

    /// x at `prev` from x at `timestep` and the noise prediction `epsilon` (`_get_prev_sample`, the paper's eq. 9).
    fn transfer(&self, sample: &ArrayD<f32>, timestep: i64, prev: i64, model_output: &ArrayD<f32>) -> ArrayD<f32> {
        let alpha_prod = self.alpha_cumprod_at(timestep);
        let alpha_prod_prev = self.alpha_cumprod_at(prev);
        let (beta_prod, beta_prod_prev) = (1.0 - alpha_prod, 1.0 - alpha_prod_prev);
        let epsilon = match self.prediction_type {
            // v -> epsilon: sqrt(a) v + sqrt(1 - a) x
            PredictionType::VPrediction => {
                let (v_scale, x_scale) = (alpha_prod.sqrt(), beta_prod.sqrt());
                Zip::from(model_output).and(sample).map_collect(|&v, &x| v_scale * v + x_scale * x)
            }
            PredictionType::Epsilon | PredictionType::Sample => model_output.clone(),
        };
        let sample_coeff = (alpha_prod_prev / alpha_prod).sqrt();
        let denominator = alpha_prod * beta_prod_prev.sqrt() + (alpha_prod * beta_prod * alpha_prod_prev).sqrt();
        let difference = alpha_prod_prev - alpha_prod;
        Zip::from(sample).and(&epsilon).map_collect(|&x, &eps| sample_coeff * x - difference * eps / denominator)
    }
}

impl Scheduler for Plms {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// `PNDMScheduler.step_plms`: Adams-Bashforth combinations of the noise predictions, of order 1 to 4.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        _noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let ratio = self.step_ratio as i64;
        let mut timestep = self.timesteps[step_index] as i64;
        let mut prev = timestep - ratio;
        if self.counter == 1 {
            // The redo of the first step: from the first timestep to this one.
            prev = timestep;
            timestep += ratio;
        } else {
            if self.history.len() > 3 {
                self.history.remove(0);
            }
            self.history.push(model_output.clone());
        }
        let mut start = sample.clone();
        let history = &self.history;
        let combined = match (history.len(), self.counter) {
            (1, 0) => {
                self.first_sample = Some(sample.clone());
                model_output.clone()
            }
            (1, _) => {
                if let Some(first) = self.first_sample.take() {
                    start = first;
                }
                (model_output + &history[0]) / 2.0
            }
            (2, _) => Zip::from(&history[1]).and(&history[0]).map_collect(|&e1, &e2| (3.0 * e1 - e2) / 2.0),
            (3, _) => Zip::from(&history[2])
                .and(&history[1])
                .and(&history[0])
                .map_collect(|&e1, &e2, &e3| (23.0 * e1 - 16.0 * e2 + 5.0 * e3) / 12.0),
            _ => {
                let scale = (1.0f64 / 24.0) as f32;
                Zip::from(&history[3])
                    .and(&history[2])
                    .and(&history[1])
                    .and(&history[0])
                    .map_collect(|&e1, &e2, &e3, &e4| scale * (55.0 * e1 - 59.0 * e2 + 37.0 * e3 - 9.0 * e4))
            }
        };
        let next = self.transfer(&start, timestep, prev, &combined);
        self.counter += 1;
        next
    }

    /// `sqrt(a_t) * original + sqrt(1 - a_t) * noise` (`PNDMScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let alpha_prod = self.alphas_cumprod[self.timesteps[step_index] as usize];
        noised(original, noise, alpha_prod.sqrt(), (1.0 - alpha_prod).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;
    use crate::schedulers::TimestepSpacing;

    fn config(spacing: Option<TimestepSpacing>) -> SchedulerConfig {
        SchedulerConfig { timestep_spacing: spacing, ..SchedulerConfig::default() }
    }

    #[test]
    fn the_second_timestep_runs_twice() {
        // PNDMScheduler(SD 1.5, skip_prk_steps=True).set_timesteps(...) in diffusers 0.42.1.
        let plms = Plms::new(&config(None), 10).unwrap();
        assert_eq!(plms.timesteps, vec![901., 801., 801., 701., 601., 501., 401., 301., 201., 101., 1.]);
        assert_eq!(Plms::new(&config(None), 1).unwrap().timesteps, vec![1.]);
        assert_eq!(Plms::new(&config(None), 2).unwrap().timesteps, vec![501., 1., 1.]);
        let trailing = Plms::new(&config(Some(TimestepSpacing::Trailing)), 4).unwrap();
        assert_eq!(trailing.timesteps, vec![999., 749., 749., 499., 249.]);
    }

    #[test]
    fn timesteps_past_the_schedule_are_refused() {
        assert!(matches!(Plms::new(&config(None), 1000), Err(EngineError::InvalidParameter { name: "steps", .. })));
    }

    #[test]
    fn exact_epsilon_keeps_the_clean_sample() {
        // x_t = sqrt(a) x0 + sqrt(1 - a) eps with the true eps lands on the same x0 at every level, whatever
        // combination of (equal) predictions a step makes.
        let config = SchedulerConfig { set_alpha_to_one: true, ..config(None) };
        let mut plms = Plms::new(&config, 6).unwrap();
        let x0 = ArrayD::from_shape_vec(vec![2], vec![0.5f32, -1.0]).unwrap();
        let eps = ArrayD::from_shape_vec(vec![2], vec![1.0f32, 0.3]).unwrap();
        let mut x = plms.add_noise(&x0, &eps, 0);
        let mut noise = BatchNoise::zero(2);
        for index in 0..plms.timesteps.len() {
            x = plms.step(&eps, index, &x, &mut noise);
        }
        for (got, want) in x.iter().zip(x0.iter()) {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
    }
}
