//! The samplers by name: AUTOMATIC1111's names ("DPM++ 2M Karras"), snake-case ids (`dpmpp_2m_karras`), and the
//! factory that builds each one.
//!
//! Adding a sampler: a file with its [`Scheduler`] implementation, a [`Sampler`] variant with its id, display name
//! and the schedules it takes, and an arm in [`create`].

use std::str::FromStr;

use super::Scheduler;
use super::config::SchedulerConfig;
use super::ddim::Ddim;
use super::dpm_solver_multistep::DpmSolverMultistep;
use super::euler::EulerDiscrete;
use super::euler_ancestral::EulerAncestralDiscrete;
use crate::error::{EngineError, Result};

/// An update rule, one per diffusers scheduler class (and configuration of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sampler {
    /// `EulerDiscreteScheduler`.
    Euler,
    /// `EulerAncestralDiscreteScheduler`.
    EulerAncestral,
    /// `DDIMScheduler` with eta 0.
    Ddim,
    /// `DPMSolverMultistepScheduler`: dpmsolver++, order 2, midpoint, lower-order final step.
    DpmPp2M,
}

/// The sigma schedule a sampler steps through: its scheduler's own (`Automatic`) or Karras et al.'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigmaSchedule {
    /// The diffusers scheduler's default: the model's timestep spacing, sigmas interpolated at those timesteps.
    #[default]
    Automatic,
    /// Karras et al. (2022), rho = 7 (`use_karras_sigmas=True`).
    Karras,
}

impl Sampler {
    pub const ALL: [Sampler; 4] = [Sampler::Euler, Sampler::EulerAncestral, Sampler::Ddim, Sampler::DpmPp2M];

    /// Snake-case id, as the CLI and JSON take it.
    pub fn id(self) -> &'static str {
        match self {
            Sampler::Euler => "euler",
            Sampler::EulerAncestral => "euler_a",
            Sampler::Ddim => "ddim",
            Sampler::DpmPp2M => "dpmpp_2m",
        }
    }

    /// AUTOMATIC1111's name.
    pub fn display_name(self) -> &'static str {
        match self {
            Sampler::Euler => "Euler",
            Sampler::EulerAncestral => "Euler a",
            Sampler::Ddim => "DDIM",
            Sampler::DpmPp2M => "DPM++ 2M",
        }
    }

    /// Whether diffusers' scheduler for this sampler takes `schedule` (DDIM and Euler a have no Karras option).
    pub fn supports(self, schedule: SigmaSchedule) -> bool {
        match schedule {
            SigmaSchedule::Automatic => true,
            SigmaSchedule::Karras => matches!(self, Sampler::Euler | Sampler::DpmPp2M),
        }
    }

    /// Whether the timesteps this sampler evaluates may repeat. DPM-Solver rounds Karras timesteps to integers, so
    /// from about 50 steps the lowest ones repeat (its sigmas still strictly decrease).
    fn may_repeat_timesteps(self, schedule: SigmaSchedule) -> bool {
        matches!((self, schedule), (Sampler::DpmPp2M, SigmaSchedule::Karras))
    }
}

impl SigmaSchedule {
    pub const ALL: [SigmaSchedule; 2] = [SigmaSchedule::Automatic, SigmaSchedule::Karras];

    pub fn id(self) -> &'static str {
        match self {
            SigmaSchedule::Automatic => "automatic",
            SigmaSchedule::Karras => "karras",
        }
    }

    /// AUTOMATIC1111's "Schedule type" name.
    pub fn display_name(self) -> &'static str {
        match self {
            SigmaSchedule::Automatic => "Automatic",
            SigmaSchedule::Karras => "Karras",
        }
    }
}

impl FromStr for SigmaSchedule {
    type Err = EngineError;

    /// "automatic" or "karras", case-insensitive.
    fn from_str(name: &str) -> Result<Self> {
        let wanted = name.trim().to_lowercase();
        SigmaSchedule::ALL.into_iter().find(|schedule| schedule.id() == wanted).ok_or_else(|| {
            let known: Vec<&str> = SigmaSchedule::ALL.iter().map(|schedule| schedule.id()).collect();
            EngineError::parameter("schedule", name, format!("expected one of {}", known.join(", ")))
        })
    }
}

/// AUTOMATIC1111's name for `sampler` on `schedule`, as PNG metadata and other tools write it ("DPM++ 2M Karras").
pub fn sampler_label(sampler: Sampler, schedule: SigmaSchedule) -> String {
    match schedule {
        SigmaSchedule::Automatic => sampler.display_name().to_string(),
        _ => format!("{} {}", sampler.display_name(), schedule.display_name()),
    }
}

/// The snake-case id of `sampler` on `schedule` ("dpmpp_2m_karras").
fn sampler_id(sampler: Sampler, schedule: SigmaSchedule) -> String {
    match schedule {
        SigmaSchedule::Automatic => sampler.id().to_string(),
        _ => format!("{}_{}", sampler.id(), schedule.id()),
    }
}

/// Every (sampler, schedule) pair that combines, in display order.
fn supported_pairs() -> impl Iterator<Item = (Sampler, SigmaSchedule)> {
    Sampler::ALL.into_iter().flat_map(|sampler| {
        SigmaSchedule::ALL
            .into_iter()
            .filter(move |&schedule| sampler.supports(schedule))
            .map(move |schedule| (sampler, schedule))
    })
}

/// The names [`parse_sampler`] accepts: AUTOMATIC1111's names, then the snake-case ids.
pub fn known_sampler_names() -> Vec<String> {
    let labels = supported_pairs().map(|(sampler, schedule)| sampler_label(sampler, schedule));
    let ids = supported_pairs().map(|(sampler, schedule)| sampler_id(sampler, schedule));
    labels.chain(ids).collect()
}

/// A sampler and schedule from AUTOMATIC1111's name ("DPM++ 2M Karras") or the id ("dpmpp_2m_karras"),
/// case-insensitive, surrounding whitespace ignored. A name without a schedule means [`SigmaSchedule::Automatic`].
pub fn parse_sampler(name: &str) -> Result<(Sampler, SigmaSchedule)> {
    let wanted = name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    for sampler in Sampler::ALL {
        for schedule in SigmaSchedule::ALL {
            let label = sampler_label(sampler, schedule).to_lowercase();
            if wanted != label && wanted != sampler_id(sampler, schedule) {
                continue;
            }
            if !sampler.supports(schedule) {
                return Err(EngineError::parameter(
                    "sampler",
                    name.trim(),
                    format!("{} does not take the {} schedule", sampler.display_name(), schedule.display_name()),
                ));
            }
            return Ok((sampler, schedule));
        }
    }
    Err(EngineError::UnknownSampler { name: name.trim().to_string(), known: known_sampler_names().join(", ") })
}

/// Builds `sampler` on `schedule` for `steps` model steps of a model with `config`.
pub(crate) fn create(
    sampler: Sampler,
    schedule: SigmaSchedule,
    config: &SchedulerConfig,
    steps: usize,
) -> Result<Box<dyn Scheduler>> {
    if !sampler.supports(schedule) {
        return Err(EngineError::parameter(
            "schedule",
            schedule.display_name(),
            format!("{} does not take this schedule", sampler.display_name()),
        ));
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
    let scheduler: Box<dyn Scheduler> = match sampler {
        Sampler::Euler => Box::new(EulerDiscrete::new(config, steps, schedule)),
        Sampler::EulerAncestral => Box::new(EulerAncestralDiscrete::new(config, steps)?),
        Sampler::Ddim => Box::new(Ddim::new(config, steps)?),
        Sampler::DpmPp2M => Box::new(DpmSolverMultistep::new(config, steps, schedule)),
    };
    check_timesteps(scheduler.timesteps(), steps, sampler.may_repeat_timesteps(schedule))?;
    Ok(scheduler)
}

/// Near num_train_timesteps steps, some spacings make timesteps collide (DPM-Solver's "leading" at 1000 steps has a
/// step ratio of 1000 // 1001 = 0); diffusers would run such a schedule, but it is not the one the user asked for.
fn check_timesteps(timesteps: &[f64], steps: usize, may_repeat: bool) -> Result<()> {
    let ordered = timesteps.iter().all(|t| t.is_finite())
        && timesteps.windows(2).all(|pair| pair[0] > pair[1] || (may_repeat && pair[0] == pair[1]));
    if ordered {
        Ok(())
    } else {
        Err(EngineError::parameter(
            "steps",
            steps,
            "too many for this model's timestep spacing: timesteps repeat; use fewer steps",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a1111_names_and_ids_case_insensitively() {
        let cases = [
            ("Euler", (Sampler::Euler, SigmaSchedule::Automatic)),
            ("euler", (Sampler::Euler, SigmaSchedule::Automatic)),
            ("Euler Karras", (Sampler::Euler, SigmaSchedule::Karras)),
            ("  Euler a ", (Sampler::EulerAncestral, SigmaSchedule::Automatic)),
            ("EULER_A", (Sampler::EulerAncestral, SigmaSchedule::Automatic)),
            ("ddim", (Sampler::Ddim, SigmaSchedule::Automatic)),
            ("DPM++ 2M", (Sampler::DpmPp2M, SigmaSchedule::Automatic)),
            ("dpm++  2m karras", (Sampler::DpmPp2M, SigmaSchedule::Karras)),
            ("dpmpp_2m_karras", (Sampler::DpmPp2M, SigmaSchedule::Karras)),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_sampler(name).unwrap(), expected, "{name:?}");
        }
    }

    #[test]
    fn every_known_name_round_trips() {
        for name in known_sampler_names() {
            let (sampler, schedule) = parse_sampler(&name).unwrap();
            assert!(sampler.supports(schedule));
            let label = sampler_label(sampler, schedule);
            assert!(label == name || sampler_id(sampler, schedule) == name, "{name} -> {label}");
        }
        assert_eq!(sampler_label(Sampler::DpmPp2M, SigmaSchedule::Karras), "DPM++ 2M Karras");
        assert_eq!(sampler_label(Sampler::EulerAncestral, SigmaSchedule::Automatic), "Euler a");
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        match parse_sampler(" Heun2 ") {
            Err(EngineError::UnknownSampler { name, known }) => {
                assert_eq!(name, "Heun2");
                assert!(known.contains("DPM++ 2M Karras") && known.contains("euler_a"), "{known}");
            }
            other => panic!("expected UnknownSampler, got {other:?}"),
        }
    }

    #[test]
    fn pairs_that_do_not_combine_are_invalid_parameters() {
        for name in ["Euler a Karras", "ddim_karras"] {
            match parse_sampler(name) {
                Err(EngineError::InvalidParameter { name: "sampler", reason, .. }) => {
                    assert!(reason.contains("Karras"), "{reason}");
                }
                other => panic!("{name}: expected InvalidParameter, got {other:?}"),
            }
        }
        let config = SchedulerConfig::default();
        assert!(matches!(
            create(Sampler::Ddim, SigmaSchedule::Karras, &config, 10),
            Err(EngineError::InvalidParameter { name: "schedule", .. })
        ));
    }

    #[test]
    fn schedules_parse_and_name() {
        assert_eq!(" Karras ".parse::<SigmaSchedule>().unwrap(), SigmaSchedule::Karras);
        assert_eq!("automatic".parse::<SigmaSchedule>().unwrap(), SigmaSchedule::Automatic);
        assert!(matches!(
            "exponential".parse::<SigmaSchedule>(),
            Err(EngineError::InvalidParameter { name: "schedule", .. })
        ));
        assert_eq!(SigmaSchedule::Karras.display_name(), "Karras");
    }

    #[test]
    fn configs_built_in_code_are_checked() {
        let config = SchedulerConfig { num_train_timesteps: 0, ..SchedulerConfig::default() };
        assert!(matches!(
            create(Sampler::Euler, SigmaSchedule::Automatic, &config, 10),
            Err(EngineError::InvalidParameter { name: "scheduler config", .. })
        ));
    }

    #[test]
    fn step_counts_out_of_range_are_rejected() {
        let config = SchedulerConfig::default();
        for sampler in Sampler::ALL {
            for steps in [0, 1001] {
                assert!(
                    matches!(
                        create(sampler, SigmaSchedule::Automatic, &config, steps),
                        Err(EngineError::InvalidParameter { name: "steps", .. })
                    ),
                    "{sampler:?} {steps}"
                );
            }
        }
        // DPM-Solver's "leading" at 1000 steps has a step ratio of 1000 // 1001 = 0: every timestep is the same.
        let leading = SchedulerConfig {
            timestep_spacing: Some(super::super::TimestepSpacing::Leading),
            ..SchedulerConfig::default()
        };
        assert!(matches!(
            create(Sampler::DpmPp2M, SigmaSchedule::Automatic, &leading, 1000),
            Err(EngineError::InvalidParameter { name: "steps", .. })
        ));
        assert!(create(Sampler::DpmPp2M, SigmaSchedule::Automatic, &leading, 150).is_ok());
    }
}
