//! The samplers by name: AUTOMATIC1111's names ("DPM++ 2M Karras"), snake-case ids (`dpmpp_2m_karras`), what
//! each takes and how it lays out its timesteps.
//!
//! Adding a sampler: a file with its [`super::Scheduler`] implementation, a [`Sampler`] variant with its id, display
//! name, the schedules it takes and its timestep layout, and an arm in `factory.rs`.

use std::str::FromStr;

use crate::error::{EngineError, Result};

/// An update rule, one per diffusers scheduler class (and configuration of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sampler {
    /// `EulerDiscreteScheduler`.
    Euler,
    /// `EulerAncestralDiscreteScheduler`.
    EulerAncestral,
    /// `HeunDiscreteScheduler`: two model evaluations per step.
    Heun,
    /// `LMSDiscreteScheduler`: linear multistep of order 4.
    Lms,
    /// `KDPM2DiscreteScheduler`: two model evaluations per step.
    Dpm2,
    /// `KDPM2AncestralDiscreteScheduler`: two model evaluations per step, then ancestral noise.
    Dpm2Ancestral,
    /// `DPMSolverSinglestepScheduler` with algorithm_type "sde-dpmsolver++", solver_order 2 (AUTOMATIC1111's
    /// "DPM++ 2S a" has no diffusers class; see dpm_solver_singlestep.rs for how this one compares).
    DpmPp2SAncestral,
    /// `DPMSolverMultistepScheduler`: dpmsolver++, order 2, midpoint, lower-order final step.
    DpmPp2M,
    /// `DPMSolverSDEScheduler`: two model evaluations per step; its Brownian-tree noise comes from [`BatchNoise`]
    /// here (see dpm_solver_sde.rs).
    ///
    /// [`BatchNoise`]: super::BatchNoise
    DpmPpSde,
    /// `DPMSolverMultistepScheduler` with algorithm_type "sde-dpmsolver++", order 2, midpoint.
    DpmPp2MSde,
    /// `DDIMScheduler` with eta 0.
    Ddim,
    /// `PNDMScheduler` with skip_prk_steps (pseudo linear multistep, AUTOMATIC1111's "PLMS").
    Plms,
    /// `UniPCMultistepScheduler`: bh2, order 2, predictor-corrector.
    UniPc,
    /// `DDPMScheduler`: ancestral sampling of the training chain ("fixed_small" variance).
    Ddpm,
    /// `LCMScheduler`: latent consistency sampling, for LCM-distilled models.
    Lcm,
}

/// The sigma schedule a sampler steps through: its scheduler's own (`Automatic`), Karras et al.'s or an exponential
/// one (AUTOMATIC1111's "Schedule type").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigmaSchedule {
    /// The diffusers scheduler's default: the model's timestep spacing, sigmas interpolated at those timesteps.
    #[default]
    Automatic,
    /// Karras et al. (2022), rho = 7 (`use_karras_sigmas=True`).
    Karras,
    /// Evenly spaced in log sigma (`use_exponential_sigmas=True`).
    Exponential,
}

/// How a sampler lays out its timesteps, one entry per model evaluation (the checks in [`check_timesteps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimestepLayout {
    /// One evaluation per step. Timesteps strictly decrease, unless `may_repeat`: DPM-Solver-family samplers make
    /// Karras and exponential timesteps integers, so from 25 to 50 steps the lowest ones repeat (their sigmas still
    /// decrease).
    OnePerStep { may_repeat: bool },
    /// Two evaluations per step but the last (2n - 1 entries): the step's own timestep at even indices, which
    /// decrease as above, and between two of them, give or take half a timestep, the timestep of the second
    /// evaluation: Heun's is the next step's, DPM2's and DPM++ SDE's a midpoint, DPM2 a's the next step's sigma (equal
    /// to the next timestep up to float32 rounding, either side of it). The half timestep is for rounded Karras
    /// timesteps, whose unrounded midpoints may lie just outside them.
    TwoPerStep { may_repeat: bool },
    /// PLMS: n + 1 entries for n steps, its second evaluation at the second timestep again.
    Plms,
}

impl Sampler {
    pub const ALL: [Sampler; 15] = [
        Sampler::Euler,
        Sampler::EulerAncestral,
        Sampler::Heun,
        Sampler::Lms,
        Sampler::Dpm2,
        Sampler::Dpm2Ancestral,
        Sampler::DpmPp2SAncestral,
        Sampler::DpmPp2M,
        Sampler::DpmPpSde,
        Sampler::DpmPp2MSde,
        Sampler::Ddim,
        Sampler::Plms,
        Sampler::UniPc,
        Sampler::Ddpm,
        Sampler::Lcm,
    ];

    /// Snake-case id, as the CLI and JSON take it (PLMS keeps the name of its diffusers class, `pndm`; "plms" parses
    /// too, as the display name).
    pub fn id(self) -> &'static str {
        match self {
            Sampler::Euler => "euler",
            Sampler::EulerAncestral => "euler_a",
            Sampler::Heun => "heun",
            Sampler::Lms => "lms",
            Sampler::Dpm2 => "dpm2",
            Sampler::Dpm2Ancestral => "dpm2_a",
            Sampler::DpmPp2SAncestral => "dpmpp_2s_a",
            Sampler::DpmPp2M => "dpmpp_2m",
            Sampler::DpmPpSde => "dpmpp_sde",
            Sampler::DpmPp2MSde => "dpmpp_2m_sde",
            Sampler::Ddim => "ddim",
            Sampler::Plms => "pndm",
            Sampler::UniPc => "unipc",
            Sampler::Ddpm => "ddpm",
            Sampler::Lcm => "lcm",
        }
    }

    /// AUTOMATIC1111's name.
    pub fn display_name(self) -> &'static str {
        match self {
            Sampler::Euler => "Euler",
            Sampler::EulerAncestral => "Euler a",
            Sampler::Heun => "Heun",
            Sampler::Lms => "LMS",
            Sampler::Dpm2 => "DPM2",
            Sampler::Dpm2Ancestral => "DPM2 a",
            Sampler::DpmPp2SAncestral => "DPM++ 2S a",
            Sampler::DpmPp2M => "DPM++ 2M",
            Sampler::DpmPpSde => "DPM++ SDE",
            Sampler::DpmPp2MSde => "DPM++ 2M SDE",
            Sampler::Ddim => "DDIM",
            Sampler::Plms => "PLMS",
            Sampler::UniPc => "UniPC",
            Sampler::Ddpm => "DDPM",
            Sampler::Lcm => "LCM",
        }
    }

    /// Whether diffusers' scheduler for this sampler takes `schedule` (`use_karras_sigmas`,
    /// `use_exponential_sigmas`): Euler a, DDIM, PLMS, DDPM and LCM have neither.
    pub fn supports(self, schedule: SigmaSchedule) -> bool {
        match schedule {
            SigmaSchedule::Automatic => true,
            SigmaSchedule::Karras | SigmaSchedule::Exponential => {
                !matches!(self, Sampler::EulerAncestral | Sampler::Ddim | Sampler::Plms | Sampler::Ddpm | Sampler::Lcm)
            }
        }
    }

    /// How many times the model runs for `steps` steps: `timesteps().len()` of the built scheduler.
    pub fn model_evaluations(self, steps: usize) -> usize {
        match self.layout(SigmaSchedule::Automatic) {
            TimestepLayout::OnePerStep { .. } => steps,
            TimestepLayout::TwoPerStep { .. } => 2 * steps - 1,
            // The second timestep runs twice, once there are two.
            TimestepLayout::Plms => steps + usize::from(steps > 1),
        }
    }

    pub(crate) fn layout(self, schedule: SigmaSchedule) -> TimestepLayout {
        // KDPM2's classes round Karras timesteps to integers; the DPM-Solver family keeps integer timesteps on the
        // Karras and exponential schedules too (rounded or truncated).
        let karras = schedule == SigmaSchedule::Karras;
        let respaced = schedule != SigmaSchedule::Automatic;
        match self {
            Sampler::Heun | Sampler::DpmPpSde => TimestepLayout::TwoPerStep { may_repeat: false },
            Sampler::Dpm2 | Sampler::Dpm2Ancestral => TimestepLayout::TwoPerStep { may_repeat: karras },
            Sampler::Plms => TimestepLayout::Plms,
            Sampler::DpmPp2M | Sampler::DpmPp2MSde | Sampler::DpmPp2SAncestral | Sampler::UniPc => {
                TimestepLayout::OnePerStep { may_repeat: respaced }
            }
            Sampler::Euler | Sampler::EulerAncestral | Sampler::Lms | Sampler::Ddim | Sampler::Ddpm | Sampler::Lcm => {
                TimestepLayout::OnePerStep { may_repeat: false }
            }
        }
    }

    /// Whether the diffusers class takes `prediction_type` "sample" (the others raise for it).
    pub(super) fn takes_sample_prediction(self) -> bool {
        !matches!(
            self,
            Sampler::EulerAncestral | Sampler::Dpm2 | Sampler::Dpm2Ancestral | Sampler::DpmPpSde | Sampler::Plms
        )
    }

    /// Whether the diffusers class has `rescale_betas_zero_snr`. Those without it ignore the key in a model's config
    /// and use the betas as they are; so do we, to match them.
    pub(crate) fn takes_zero_snr(self) -> bool {
        !matches!(
            self,
            Sampler::Heun
                | Sampler::Lms
                | Sampler::Plms
                | Sampler::Dpm2
                | Sampler::Dpm2Ancestral
                | Sampler::DpmPp2SAncestral
                | Sampler::DpmPpSde
        )
    }
}

impl SigmaSchedule {
    pub const ALL: [SigmaSchedule; 3] = [SigmaSchedule::Automatic, SigmaSchedule::Karras, SigmaSchedule::Exponential];

    pub fn id(self) -> &'static str {
        match self {
            SigmaSchedule::Automatic => "automatic",
            SigmaSchedule::Karras => "karras",
            SigmaSchedule::Exponential => "exponential",
        }
    }

    /// AUTOMATIC1111's "Schedule type" name.
    pub fn display_name(self) -> &'static str {
        match self {
            SigmaSchedule::Automatic => "Automatic",
            SigmaSchedule::Karras => "Karras",
            SigmaSchedule::Exponential => "Exponential",
        }
    }
}

impl FromStr for SigmaSchedule {
    type Err = EngineError;

    /// "automatic", "karras" or "exponential", case-insensitive.
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
                return Err(EngineError::parameter("sampler", name.trim(), does_not_combine(sampler, schedule)));
            }
            return Ok((sampler, schedule));
        }
    }
    Err(EngineError::UnknownSampler { name: name.trim().to_string(), known: known_sampler_names().join(", ") })
}

/// A sampler named with a schedule chosen apart, resolved as A1111 does (`sd_samplers.get_sampler_and_scheduler`):
/// a schedule the name carries ("DPM++ 2M Karras") wins; otherwise the schedule given, where "Automatic" or none
/// leaves the sampler's own. The one rule of every front end, so the same request means the same in each.
pub fn choose_sampler(name: &str, schedule: Option<&str>) -> Result<(Sampler, SigmaSchedule)> {
    let (sampler, named) = parse_sampler(name)?;
    if named != SigmaSchedule::Automatic {
        return Ok((sampler, named));
    }
    let chosen = match schedule.map(str::trim).filter(|s| !s.is_empty()) {
        Some(schedule) => schedule.parse::<SigmaSchedule>()?,
        None => SigmaSchedule::Automatic,
    };
    if !sampler.supports(chosen) {
        return Err(EngineError::parameter("schedule", chosen.display_name(), does_not_combine(sampler, chosen)));
    }
    Ok((sampler, chosen))
}

/// Why `sampler` and `schedule` do not combine, naming both and the samplers that take the schedule.
pub(super) fn does_not_combine(sampler: Sampler, schedule: SigmaSchedule) -> String {
    let takers: Vec<&str> =
        Sampler::ALL.into_iter().filter(|other| other.supports(schedule)).map(Sampler::display_name).collect();
    format!(
        "{} does not take the {} schedule; the samplers that do: {}",
        sampler.display_name(),
        schedule.display_name(),
        takers.join(", ")
    )
}

/// Whether `timesteps` are laid out as `layout` says (see [`TimestepLayout`]). Near num_train_timesteps steps, some
/// spacings make timesteps collide (DPM-Solver's "leading" at 1000 steps has a step ratio of 1000 // 1001 = 0);
/// diffusers would run such a schedule, but it is not the one the user asked for.
pub(crate) fn timesteps_follow(timesteps: &[f64], layout: TimestepLayout) -> bool {
    let decreasing = |values: &[f64], may_repeat: bool| {
        values.iter().all(|t| t.is_finite())
            && values.windows(2).all(|pair| pair[0] > pair[1] || (may_repeat && pair[0] == pair[1]))
    };
    match layout {
        TimestepLayout::OnePerStep { may_repeat } => decreasing(timesteps, may_repeat),
        TimestepLayout::TwoPerStep { may_repeat } => {
            let starts: Vec<f64> = timesteps.iter().step_by(2).copied().collect();
            let middles_between = timesteps
                .iter()
                .skip(1)
                .step_by(2)
                .zip(starts.windows(2))
                .all(|(middle, pair)| middle.is_finite() && *middle <= pair[0] + 0.5 && *middle >= pair[1] - 0.5);
            timesteps.len() % 2 == 1 && decreasing(&starts, may_repeat) && middles_between
        }
        TimestepLayout::Plms => match timesteps {
            [first, second, third, rest @ ..] => {
                second == third && decreasing(&[&[*first, *third], rest].concat(), false)
            }
            _ => timesteps.len() == 1 && timesteps[0].is_finite(),
        },
    }
}

pub(super) fn check_timesteps(timesteps: &[f64], layout: TimestepLayout, steps: usize) -> Result<()> {
    if timesteps_follow(timesteps, layout) {
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
    use crate::schedulers::{PredictionType, SchedulerConfig, create_scheduler as create};

    #[test]
    fn a_schedule_in_the_name_wins_and_automatic_defers_to_the_name() {
        let chosen = |name, schedule| choose_sampler(name, schedule).unwrap();
        assert_eq!(chosen("DPM++ 2M Karras", None), (Sampler::DpmPp2M, SigmaSchedule::Karras));
        assert_eq!(chosen("DPM++ 2M Karras", Some("Exponential")), (Sampler::DpmPp2M, SigmaSchedule::Karras));
        assert_eq!(chosen("DPM++ 2M", Some("Exponential")), (Sampler::DpmPp2M, SigmaSchedule::Exponential));
        assert_eq!(chosen("DPM++ 2M", Some(" automatic ")), (Sampler::DpmPp2M, SigmaSchedule::Automatic));
        assert_eq!(chosen("DPM++ 2M", Some("")), (Sampler::DpmPp2M, SigmaSchedule::Automatic));
        let error = choose_sampler("DPM++ 2M", Some("sometimes")).unwrap_err().to_string();
        assert!(error.contains("sometimes"), "{error}");
        let error = choose_sampler("DDIM", Some("Karras")).unwrap_err().to_string();
        assert!(error.contains("schedule: Karras") && error.contains("DDIM"), "{error}");
    }

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
            ("Heun", (Sampler::Heun, SigmaSchedule::Automatic)),
            ("LMS Karras", (Sampler::Lms, SigmaSchedule::Karras)),
            ("PLMS", (Sampler::Plms, SigmaSchedule::Automatic)),
            ("plms", (Sampler::Plms, SigmaSchedule::Automatic)),
            ("pndm", (Sampler::Plms, SigmaSchedule::Automatic)),
            ("DPM2", (Sampler::Dpm2, SigmaSchedule::Automatic)),
            ("DPM2 a Karras", (Sampler::Dpm2Ancestral, SigmaSchedule::Karras)),
            ("dpm2_a_exponential", (Sampler::Dpm2Ancestral, SigmaSchedule::Exponential)),
            ("DPM++ 2S a", (Sampler::DpmPp2SAncestral, SigmaSchedule::Automatic)),
            ("DPM++ 2M SDE", (Sampler::DpmPp2MSde, SigmaSchedule::Automatic)),
            ("DPM++ 2M SDE Karras", (Sampler::DpmPp2MSde, SigmaSchedule::Karras)),
            ("dpmpp_2m_sde_exponential", (Sampler::DpmPp2MSde, SigmaSchedule::Exponential)),
            ("DPM++ SDE Karras", (Sampler::DpmPpSde, SigmaSchedule::Karras)),
            ("dpmpp_sde", (Sampler::DpmPpSde, SigmaSchedule::Automatic)),
            ("UniPC", (Sampler::UniPc, SigmaSchedule::Automatic)),
            ("unipc exponential", (Sampler::UniPc, SigmaSchedule::Exponential)),
            ("DDPM", (Sampler::Ddpm, SigmaSchedule::Automatic)),
            ("LCM", (Sampler::Lcm, SigmaSchedule::Automatic)),
            ("Euler Exponential", (Sampler::Euler, SigmaSchedule::Exponential)),
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
        assert_eq!(sampler_label(Sampler::DpmPp2MSde, SigmaSchedule::Exponential), "DPM++ 2M SDE Exponential");
        assert_eq!(sampler_label(Sampler::Plms, SigmaSchedule::Automatic), "PLMS");
        // Every sampler, and each of the 10 that take them with Karras and exponential schedules.
        assert_eq!(known_sampler_names().len(), 2 * (15 + 2 * 10));
    }

    #[test]
    fn model_evaluations_per_sampler() {
        let one_per_step = [
            Sampler::Euler,
            Sampler::EulerAncestral,
            Sampler::Lms,
            Sampler::DpmPp2SAncestral,
            Sampler::DpmPp2M,
            Sampler::DpmPp2MSde,
            Sampler::Ddim,
            Sampler::UniPc,
            Sampler::Ddpm,
            Sampler::Lcm,
        ];
        for sampler in Sampler::ALL {
            let expected = match sampler {
                Sampler::Heun | Sampler::Dpm2 | Sampler::Dpm2Ancestral | Sampler::DpmPpSde => 19,
                Sampler::Plms => 11,
                _ => 10,
            };
            assert_eq!(sampler.model_evaluations(10), expected, "{sampler:?}");
            assert_eq!(one_per_step.contains(&sampler), expected == 10, "{sampler:?}");
            assert_eq!(sampler.model_evaluations(1), 1, "{sampler:?}");
        }
    }

    #[test]
    fn sample_prediction_is_refused_where_diffusers_refuses_it() {
        let config = SchedulerConfig { prediction_type: PredictionType::Sample, ..SchedulerConfig::default() };
        for sampler in Sampler::ALL {
            let result = create(sampler, SigmaSchedule::Automatic, &config, 10);
            match sampler {
                Sampler::EulerAncestral
                | Sampler::Dpm2
                | Sampler::Dpm2Ancestral
                | Sampler::DpmPpSde
                | Sampler::Plms => match result {
                    Err(EngineError::InvalidParameter { name: "sampler", value, reason }) => {
                        assert_eq!(value, sampler.display_name());
                        assert!(reason.contains("prediction_type is sample"), "{reason}");
                    }
                    other => panic!("{sampler:?}: expected InvalidParameter, got {:?}", other.err()),
                },
                _ => assert!(result.is_ok(), "{sampler:?}"),
            }
        }
    }

    #[test]
    fn zero_terminal_snr_applies_where_diffusers_takes_it() {
        // HeunDiscrete, LMSDiscrete, PNDM, KDPM2, KDPM2Ancestral, DPMSolverSinglestep and DPMSolverSDE have no
        // rescale_betas_zero_snr: a model config's key leaves them as they are.
        let plain = SchedulerConfig::default();
        let zero_snr = SchedulerConfig { rescale_betas_zero_snr: true, ..plain.clone() };
        let (zeros, ones) = (ndarray::ArrayD::zeros(vec![1]), ndarray::ArrayD::ones(vec![1]));
        for sampler in Sampler::ALL {
            let noise_level = |config: &SchedulerConfig| {
                create(sampler, SigmaSchedule::Automatic, config, 10).unwrap().add_noise(&zeros, &ones, 0)[[0]]
            };
            let ignored = !matches!(
                sampler,
                Sampler::Euler
                    | Sampler::EulerAncestral
                    | Sampler::DpmPp2M
                    | Sampler::DpmPp2MSde
                    | Sampler::Ddim
                    | Sampler::UniPc
                    | Sampler::Ddpm
                    | Sampler::Lcm
            );
            assert_eq!(noise_level(&plain) == noise_level(&zero_snr), ignored, "{sampler:?}");
        }
    }

    #[test]
    fn layouts_are_checked() {
        let two = TimestepLayout::TwoPerStep { may_repeat: false };
        assert!(timesteps_follow(&[901., 801., 801., 701., 701.], two));
        assert!(timesteps_follow(&[901., 852.8, 801., 752.7, 701.], two));
        // DPM2 a's midpoint just below the next timestep.
        assert!(timesteps_follow(&[901., 800.999_94, 801., 700.999_94, 701.], two));
        assert!(!timesteps_follow(&[901., 950., 801.], two));
        assert!(!timesteps_follow(&[901., 790., 801.], two));
        assert!(!timesteps_follow(&[901., 801., 801., 801., 801.], two));
        assert!(!timesteps_follow(&[901., 801.], two));
        assert!(timesteps_follow(&[901., 801., 801., 701., 601.], TimestepLayout::Plms));
        assert!(!timesteps_follow(&[901., 801., 701., 601.], TimestepLayout::Plms));
        assert!(timesteps_follow(&[1.], TimestepLayout::Plms));
        assert!(timesteps_follow(&[9., 7., 7., 0.], TimestepLayout::OnePerStep { may_repeat: true }));
        assert!(!timesteps_follow(&[9., 7., 7., 0.], TimestepLayout::OnePerStep { may_repeat: false }));
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
        for (name, sampler, schedule) in [
            ("Euler a Karras", "Euler a", "Karras"),
            ("ddim_karras", "DDIM", "Karras"),
            ("PLMS Exponential", "PLMS", "Exponential"),
            ("lcm_karras", "LCM", "Karras"),
            ("ddpm exponential", "DDPM", "Exponential"),
        ] {
            match parse_sampler(name) {
                Err(EngineError::InvalidParameter { name: "sampler", reason, .. }) => {
                    assert!(
                        reason.starts_with(&format!("{sampler} does not take the {schedule} schedule")),
                        "{reason}"
                    );
                    assert!(reason.contains("DPM++ 2M SDE"), "lists the samplers that do: {reason}");
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
        assert_eq!("EXPONENTIAL".parse::<SigmaSchedule>().unwrap(), SigmaSchedule::Exponential);
        assert!(matches!(
            "uniform".parse::<SigmaSchedule>(),
            Err(EngineError::InvalidParameter { name: "schedule", .. })
        ));
        assert_eq!(SigmaSchedule::Karras.display_name(), "Karras");
        assert_eq!(SigmaSchedule::Exponential.display_name(), "Exponential");
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
