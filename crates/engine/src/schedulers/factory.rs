//! The one place that turns a [`Sampler`] and a [`SigmaSchedule`] into the scheduler that runs them.

use super::Scheduler;
use super::config::{PredictionType, SchedulerConfig};
use super::ddim::Ddim;
use super::ddpm::Ddpm;
use super::dpm_solver_multistep::{DpmSolverMultistep, MultistepAlgorithm};
use super::dpm_solver_sde::DpmSolverSde;
use super::dpm_solver_singlestep::DpmSolverSinglestep;
use super::euler::EulerDiscrete;
use super::euler_ancestral::EulerAncestralDiscrete;
use super::heun::HeunDiscrete;
use super::k_dpm_2::KDpm2Discrete;
use super::k_dpm_2_ancestral::KDpm2AncestralDiscrete;
use super::lcm::Lcm;
use super::lms::LmsDiscrete;
use super::pndm::Plms;
use super::sampler::{Sampler, SigmaSchedule, check_timesteps, does_not_combine};
use super::unipc::UniPcMultistep;
use crate::error::{EngineError, Result};

/// Builds `sampler` on `schedule` for `steps` model steps on a model with `config`.
pub fn create_scheduler(
    sampler: Sampler,
    schedule: SigmaSchedule,
    config: &SchedulerConfig,
    steps: usize,
) -> Result<Box<dyn Scheduler>> {
    if !sampler.supports(schedule) {
        return Err(EngineError::parameter("schedule", schedule.display_name(), does_not_combine(sampler, schedule)));
    }
    // The fields are public: a config built in code has not been through deserialization's checks.
    config.validate().map_err(|reason| EngineError::parameter("scheduler config", "(in code)", reason))?;
    if steps == 0 || steps > config.num_train_timesteps {
        return Err(EngineError::parameter(
            "steps",
            steps,
            format!("must be between 1 and the model's {} training timesteps", config.num_train_timesteps),
        ));
    }
    if config.prediction_type == PredictionType::Sample && !sampler.takes_sample_prediction() {
        // Its diffusers class raises for it.
        return Err(EngineError::parameter(
            "sampler",
            sampler.display_name(),
            "takes only epsilon or v_prediction models (this model's prediction_type is sample)",
        ));
    }
    let without_zero_snr;
    let config = if sampler.takes_zero_snr() || !config.rescale_betas_zero_snr {
        config
    } else {
        without_zero_snr = SchedulerConfig { rescale_betas_zero_snr: false, ..config.clone() };
        &without_zero_snr
    };
    let scheduler: Box<dyn Scheduler> = match sampler {
        Sampler::Euler => Box::new(EulerDiscrete::new(config, steps, schedule)),
        Sampler::EulerAncestral => Box::new(EulerAncestralDiscrete::new(config, steps)),
        Sampler::Heun => Box::new(HeunDiscrete::new(config, steps, schedule)),
        Sampler::Lms => Box::new(LmsDiscrete::new(config, steps, schedule)),
        Sampler::Dpm2 => Box::new(KDpm2Discrete::new(config, steps, schedule)),
        Sampler::Dpm2Ancestral => Box::new(KDpm2AncestralDiscrete::new(config, steps, schedule)),
        Sampler::DpmPp2SAncestral => Box::new(DpmSolverSinglestep::new(config, steps, schedule)),
        Sampler::DpmPp2M => Box::new(DpmSolverMultistep::new(config, steps, schedule, MultistepAlgorithm::DpmSolverPp)),
        Sampler::DpmPpSde => Box::new(DpmSolverSde::new(config, steps, schedule)),
        Sampler::DpmPp2MSde => {
            Box::new(DpmSolverMultistep::new(config, steps, schedule, MultistepAlgorithm::SdeDpmSolverPp))
        }
        Sampler::Ddim => Box::new(Ddim::new(config, steps)?),
        Sampler::Plms => Box::new(Plms::new(config, steps)?),
        Sampler::UniPc => Box::new(UniPcMultistep::new(config, steps, schedule)),
        Sampler::Ddpm => Box::new(Ddpm::new(config, steps)?),
        Sampler::Lcm => Box::new(Lcm::new(config, steps)?),
    };
    check_timesteps(scheduler.timesteps(), sampler.layout(schedule), steps)?;
    debug_assert_eq!(scheduler.timesteps().len(), sampler.model_evaluations(steps), "{sampler:?}");
    Ok(scheduler)
}
