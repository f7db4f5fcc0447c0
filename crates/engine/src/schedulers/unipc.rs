//! UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework", Algorithms 2 and 3 with B(h) of
//! type bh2): diffusers' `UniPCMultistepScheduler` with its defaults, solver_order 2, predict_x0, lower_order_final,
//! the corrector on every step.
//!
//! Each step first corrects the sample it is given with the model output just computed there (UniC, using the last
//! step's prediction), then predicts the next sample (UniP) from the corrected one. Both work, like DPM-Solver++,
//! in x0 prediction and half-log-SNR lambda; the corrector costs no extra model evaluation.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use super::dpm_solver_multistep::{SolverSchedule, alpha_sigma, data_prediction, lambda_of};
use super::noise_schedule::noised;
use super::{BatchNoise, Scheduler, SigmaSchedule};

/// `solver_order`.
const ORDER: usize = 2;

pub(super) struct UniPcMultistep {
    schedule: SolverSchedule,
    prediction_type: PredictionType,
    /// The x0 predictions of the last step and the one before (`model_outputs[-1]`, `model_outputs[-2]`).
    previous: Option<ArrayD<f32>>,
    older: Option<ArrayD<f32>>,
    /// The (corrected) sample the last step predicted from, for this step's corrector (`last_sample`).
    last_sample: Option<ArrayD<f32>>,
    /// The predictor order the last step used; the corrector uses the same (`this_order`).
    last_order: usize,
    /// Steps taken so far, up to the solver order (`lower_order_nums`).
    lower_order_nums: usize,
}

/// The scalars a UniP or UniC update over one step needs, bh2 with predict_x0: `hh = -h`, `h phi_1(hh) = e^hh - 1`,
/// `B(h) = e^hh - 1` and the right-hand side `b` of the order conditions.
struct Update {
    alpha_t: f32,
    sample_scale: f32,
    h_phi_1: f32,
    b_h: f32,
    /// `b_1, b_2` (`b.append(h_phi_k * factorial_i / B_h)`).
    b: [f32; ORDER],
    h: f32,
    lambda_s0: f32,
}

impl Update {
    /// From sigma_s0 (where the step starts) to sigma_t.
    fn new(sigma_s0: f32, sigma_t: f32) -> Self {
        let (alpha_t, vp_sigma_t) = alpha_sigma(sigma_t);
        let (_, vp_sigma_s0) = alpha_sigma(sigma_s0);
        let lambda_s0 = lambda_of(sigma_s0);
        let h = lambda_of(sigma_t) - lambda_s0;
        let hh = -h;
        let h_phi_1 = hh.exp_m1();
        let b_h = hh.exp_m1();
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let mut factorial = 1.0f32;
        let mut b = [0.0f32; ORDER];
        for (i, b_i) in b.iter_mut().enumerate() {
            *b_i = h_phi_k * factorial / b_h;
            factorial *= (i + 2) as f32;
            h_phi_k = h_phi_k / hh - 1.0 / factorial;
        }
        Update { alpha_t, sample_scale: vp_sigma_t / vp_sigma_s0, h_phi_1, b_h, b, h, lambda_s0 }
    }

    /// `r_k = (lambda_si - lambda_s0) / h` for the step's earlier point at `sigma_si`.
    fn ratio(&self, sigma_si: f32) -> f32 {
        (lambda_of(sigma_si) - self.lambda_s0) / self.h
    }

    /// `sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0 - alpha_t * B(h) * residual`.
    fn apply(&self, x: &ArrayD<f32>, m0: &ArrayD<f32>, residual: &ArrayD<f32>) -> ArrayD<f32> {
        let (denoised_scale, residual_scale) = (self.alpha_t * self.h_phi_1, self.alpha_t * self.b_h);
        Zip::from(x)
            .and(m0)
            .and(residual)
            .map_collect(|&x, &m0, &r| (self.sample_scale * x - denoised_scale * m0) - residual_scale * r)
    }
}

/// `torch.linalg.solve` of `[[1, 1], [r, 1]] rho = b` in float32, as LAPACK's sgesv does it (LU with partial
/// pivoting).
fn solve_order_conditions(r: f32, b: [f32; 2]) -> [f32; 2] {
    let (mut rows, mut rhs) = ([[1.0f32, 1.0], [r, 1.0]], b);
    if r.abs() > 1.0 {
        rows.swap(0, 1);
        rhs.swap(0, 1);
    }
    let factor = rows[1][0] * (1.0 / rows[0][0]);
    let pivot2 = rows[1][1] - factor * rows[0][1];
    let y2 = rhs[1] - factor * rhs[0];
    let rho2 = y2 / pivot2;
    let rho1 = (rhs[0] - rows[0][1] * rho2) / rows[0][0];
    [rho1, rho2]
}

impl UniPcMultistep {
    /// `UniPCMultistepScheduler.set_timesteps(steps)`, whose default spacing is "linspace"; Karras timesteps rounded.
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        let spacing = config.spacing_or(TimestepSpacing::Linspace);
        UniPcMultistep {
            schedule: SolverSchedule::new(config, steps, schedule, spacing, f64::round_ties_even),
            prediction_type: config.prediction_type,
            previous: None,
            older: None,
            last_sample: None,
            last_order: 1,
            lower_order_nums: 0,
        }
    }

    /// `multistep_uni_c_bh_update`: `sample` at step `step_index` corrected with `denoised`, the x0 prediction there,
    /// from the last step's sample and predictions.
    fn correct(&self, step_index: usize, denoised: &ArrayD<f32>, last_sample: &ArrayD<f32>) -> Option<ArrayD<f32>> {
        let sigmas = &self.schedule.sigmas;
        let m0 = self.previous.as_ref()?;
        let update = Update::new(sigmas[step_index - 1], sigmas[step_index]);
        let d1_t = Zip::from(denoised).and(m0).map_collect(|&model_t, &m0| model_t - m0);
        let residual = match (self.last_order, &self.older) {
            (2, Some(m1)) => {
                let rk = update.ratio(sigmas[step_index - 2]);
                let [rho_1, rho_t] = solve_order_conditions(rk, update.b);
                Zip::from(m1).and(m0).and(&d1_t).map_collect(|&m1, &m0, &d1_t| {
                    let d1 = (m1 - m0) / rk;
                    rho_1 * d1 + rho_t * d1_t
                })
            }
            // Order 1: rho = 0.5.
            _ => d1_t.mapv(|d| 0.5 * d),
        };
        Some(update.apply(last_sample, m0, &residual))
    }
}

impl Scheduler for UniPcMultistep {
    fn timesteps(&self) -> &[f64] {
        &self.schedule.timesteps
    }

    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        _noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let sigmas = &self.schedule.sigmas;
        let denoised = data_prediction(self.prediction_type, model_output, sample, sigmas[step_index]);
        // The corrector runs from the second step taken on (it needs the last step's sample).
        let corrected = match (&self.last_sample, step_index) {
            (Some(last_sample), 1..) => self.correct(step_index, &denoised, last_sample),
            _ => None,
        };
        let sample = corrected.unwrap_or_else(|| sample.clone());
        // lower_order_final: order 1 on the last step; warm-up: at most one more than the steps taken.
        let steps_left = self.schedule.timesteps.len() - step_index;
        let order = ORDER.min(steps_left).min(self.lower_order_nums + 1);

        // multistep_uni_p_bh_update from the (corrected) sample; for order 2, rho_p = 0.5 on D1 = (m1 - m0) / r1.
        let update = Update::new(sigmas[step_index], sigmas[step_index + 1]);
        let m1 = self.previous.take();
        let next = match (&m1, order) {
            (Some(m1), 2) => {
                let rk = update.ratio(sigmas[step_index - 1]);
                let residual = Zip::from(m1).and(&denoised).map_collect(|&m1, &m0| 0.5 * ((m1 - m0) / rk));
                update.apply(&sample, &denoised, &residual)
            }
            _ => {
                let (denoised_scale, sample_scale) = (update.alpha_t * update.h_phi_1, update.sample_scale);
                Zip::from(&sample).and(&denoised).map_collect(|&x, &m0| sample_scale * x - denoised_scale * m0)
            }
        };
        self.older = m1;
        self.previous = Some(denoised);
        self.last_sample = Some(sample);
        self.last_order = order;
        self.lower_order_nums = (self.lower_order_nums + 1).min(ORDER);
        next
    }

    /// `alpha_t * original + sigma_t * noise` at the step's sigma (`UniPCMultistepScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let (alpha, sigma) = alpha_sigma(self.schedule.sigmas[step_index]);
        noised(original, noise, alpha, sigma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_conditions_are_solved() {
        for (r, b) in [(-0.8f32, [0.3f32, -1.2f32]), (-1.7, [2.0, 0.5]), (0.4, [1.0, 1.0])] {
            let [rho1, rho2] = solve_order_conditions(r, b);
            assert!((rho1 + rho2 - b[0]).abs() < 1e-5 && (r * rho1 + rho2 - b[1]).abs() < 1e-5, "{r} {b:?}");
        }
    }

    #[test]
    fn linspace_timesteps_match_dpm_solver() {
        let unipc = UniPcMultistep::new(&SchedulerConfig::default(), 10, SigmaSchedule::Automatic);
        assert_eq!(unipc.schedule.timesteps, vec![999., 899., 799., 699., 599., 500., 400., 300., 200., 100.]);
    }
}
