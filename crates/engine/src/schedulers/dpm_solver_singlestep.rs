//! DPM++ 2S a: diffusers' `DPMSolverSinglestepScheduler` with algorithm_type "sde-dpmsolver++", solver_order 2,
//! solver_type "midpoint" (lower_order_final, forced by final_sigmas_type "zero").
//!
//! AUTOMATIC1111's "DPM++ 2S a" is k-diffusion's `sample_dpmpp_2s_ancestral`, which no diffusers class implements:
//! each of its steps evaluates the model at the start and at a midpoint off the schedule (2n - 1 evaluations for n
//! steps), takes the DPM-Solver++(2S) step to the ancestral sigma_down and adds noise of sigma_up. diffusers' own
//! advice for that name is this scheduler, and its SDE variant is the one that matches the "a": its first-order update
//! is exactly an ancestral Euler step (to sigma_down = sigma_next^2 / sigma with noise of sigma_up, eta 1), its
//! second-order one is DPM-Solver++(2S) from two steps back with the intermediate point on the schedule, plus the
//! same kind of noise. So here n steps are n evaluations, alternating a first-order step and a second-order one
//! that restarts from the sample before it.

use ndarray::{ArrayD, Zip};

use super::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use super::dpm_solver_multistep::{SdeScales, SolverSchedule, alpha_sigma, data_prediction, half_log_snr, lambda_of};
use super::noise_schedule::noised;
use super::{BatchNoise, Scheduler, SigmaSchedule};

pub(super) struct DpmSolverSinglestep {
    schedule: SolverSchedule,
    prediction_type: PredictionType,
    /// The solver order of each step (`get_order_list`).
    orders: Vec<usize>,
    /// The previous step's x0 prediction (`model_outputs[-2]` once this step's is in).
    previous_denoised: Option<ArrayD<f32>>,
    /// The sample at the last first-order step, where a second-order step restarts (`self.sample`).
    start: Option<ArrayD<f32>>,
}

impl DpmSolverSinglestep {
    /// `DPMSolverSinglestepScheduler.set_timesteps(steps)`: "linspace" timesteps whatever the model's spacing (the
    /// class has no timestep_spacing), Karras timesteps rounded.
    pub(super) fn new(config: &SchedulerConfig, steps: usize, schedule: SigmaSchedule) -> Self {
        let schedule = SolverSchedule::new(config, steps, schedule, TimestepSpacing::Linspace, f64::round_ties_even);
        DpmSolverSinglestep {
            schedule,
            prediction_type: config.prediction_type,
            orders: order_list(steps),
            previous_denoised: None,
            start: None,
        }
    }
}

/// `get_order_list(steps)` for solver_order 2 with lower_order_final: 1, 2, 1, 2, ..., ending on first order.
fn order_list(steps: usize) -> Vec<usize> {
    let mut orders: Vec<usize> = (0..steps).map(|i| if i % 2 == 0 { 1 } else { 2 }).collect();
    if steps.is_multiple_of(2) && steps >= 2 {
        orders[steps - 2] = 1;
    }
    // final_sigmas_type "zero": the last step is first order.
    if let Some(last) = orders.last_mut() {
        *last = 1;
    }
    orders
}

impl Scheduler for DpmSolverSinglestep {
    fn timesteps(&self) -> &[f64] {
        &self.schedule.timesteps
    }

    /// Noise is drawn on every step, the last included (where its scale is 0), as diffusers does.
    fn step(
        &mut self,
        model_output: &ArrayD<f32>,
        step_index: usize,
        sample: &ArrayD<f32>,
        noise: &mut BatchNoise<'_>,
    ) -> ArrayD<f32> {
        let sigmas = &self.schedule.sigmas;
        let m0 = data_prediction(self.prediction_type, model_output, sample, sigmas[step_index]);
        let m1 = self.previous_denoised.take();
        let fresh = noise.randn(model_output.shape());
        let (alpha_t, sigma_t) = alpha_sigma(sigmas[step_index + 1]);
        let lambda_t = half_log_snr(alpha_t, sigma_t);
        // From a later first index (img2img) the first step has no history: first order, as in diffusers.
        let next = match (self.orders[step_index], &m1, &self.start) {
            // singlestep_dpm_solver_second_order_update, sde-dpmsolver++, midpoint: from the start two steps back,
            // with h over both steps, D0 = m1 and D1 = (m0 - m1) / r0.
            (2, Some(m1), Some(start)) => {
                let (_, sigma_s1) = alpha_sigma(sigmas[step_index - 1]);
                let lambda_s1 = lambda_of(sigmas[step_index - 1]);
                let lambda_s0 = lambda_of(sigmas[step_index]);
                let (h, h_0) = (lambda_t - lambda_s1, lambda_s0 - lambda_s1);
                let inverse_r0 = 1.0 / (h_0 / h);
                let scales = SdeScales::new(h, alpha_t, sigma_t, sigma_s1);
                let half_scale = 0.5 * scales.denoised;
                Zip::from(start).and(m1).and(&m0).and(&fresh).map_collect(|&x, &m1, &m0, &z| {
                    let d1 = inverse_r0 * (m0 - m1);
                    ((scales.sample * x + scales.denoised * m1) + half_scale * d1) + scales.noise * z
                })
            }
            // dpm_solver_first_order_update, sde-dpmsolver++; a later second-order step restarts from here.
            _ => {
                self.start = Some(sample.clone());
                let (_, sigma_s) = alpha_sigma(sigmas[step_index]);
                let h = lambda_t - lambda_of(sigmas[step_index]);
                let scales = SdeScales::new(h, alpha_t, sigma_t, sigma_s);
                Zip::from(sample)
                    .and(&m0)
                    .and(&fresh)
                    .map_collect(|&x, &d0, &z| (scales.sample * x + scales.denoised * d0) + scales.noise * z)
            }
        };
        self.previous_denoised = Some(m0);
        next
    }

    /// `alpha_t * original + sigma_t * noise` at the step's sigma (`DPMSolverSinglestepScheduler.add_noise`).
    fn add_noise(&self, original: &ArrayD<f32>, noise: &ArrayD<f32>, step_index: usize) -> ArrayD<f32> {
        let (alpha, sigma) = alpha_sigma(self.schedule.sigmas[step_index]);
        noised(original, noise, alpha, sigma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_alternate_and_end_on_first_order() {
        assert_eq!(order_list(1), vec![1]);
        assert_eq!(order_list(2), vec![1, 1]);
        assert_eq!(order_list(5), vec![1, 2, 1, 2, 1]);
        assert_eq!(order_list(10), vec![1, 2, 1, 2, 1, 2, 1, 2, 1, 1]);
    }

    #[test]
    fn spacing_is_always_linspace() {
        let leading =
            SchedulerConfig { timestep_spacing: Some(TimestepSpacing::Leading), ..SchedulerConfig::default() };
        let dpm = DpmSolverSinglestep::new(&leading, 10, SigmaSchedule::Automatic);
        assert_eq!(dpm.schedule.timesteps, vec![999., 899., 799., 699., 599., 500., 400., 300., 200., 100.]);
    }
}
