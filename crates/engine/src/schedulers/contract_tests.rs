//! The contract every sampler keeps, run over every sampler, every schedule it takes, every timestep spacing and a
//! few model configurations (diffusers' `SchedulerCommonTest` in spirit).

use ndarray::{ArrayD, Zip};

use super::noise_schedule::NoiseSchedule;
use super::sampler::{TimestepLayout, timesteps_follow};
use super::{
    BatchNoise, BetaSchedule, PredictionType, Sampler, SchedulerConfig, SigmaSchedule, TimestepSpacing,
    create_scheduler,
};
use crate::error::EngineError;
use crate::rng::TorchGenerator;

const SHAPE: [usize; 4] = [2, 4, 4, 4];
const SEEDS: [u64; 2] = [21, 22];
const STEP_COUNTS: [usize; 8] = [1, 2, 3, 7, 10, 25, 50, 61];

fn configs() -> Vec<(&'static str, SchedulerConfig)> {
    let sd15 = SchedulerConfig::default();
    let mut configs = vec![("sd15", sd15.clone())];
    for spacing in [TimestepSpacing::Leading, TimestepSpacing::Trailing, TimestepSpacing::Linspace] {
        configs.push(("sd15 spacing", SchedulerConfig { timestep_spacing: Some(spacing), ..sd15.clone() }));
    }
    configs.push((
        "sd2 v-prediction zero-snr trailing",
        SchedulerConfig {
            prediction_type: PredictionType::VPrediction,
            rescale_betas_zero_snr: true,
            timestep_spacing: Some(TimestepSpacing::Trailing),
            ..sd15.clone()
        },
    ));
    configs.push(("linear", SchedulerConfig { beta_schedule: BetaSchedule::Linear, ..sd15.clone() }));
    configs.push(("cosine", SchedulerConfig { beta_schedule: BetaSchedule::SquaredcosCapV2, ..sd15 }));
    configs
}

fn generators() -> Vec<TorchGenerator> {
    SEEDS.iter().map(|&seed| TorchGenerator::new(seed)).collect()
}

fn pattern() -> ArrayD<f32> {
    TorchGenerator::new(99).randn(&SHAPE)
}

/// A deterministic stand-in for the UNet that depends on the input and the timestep, as the diffusers references use.
fn fake_model(scaled: &ArrayD<f32>, t: f64, pattern: &ArrayD<f32>) -> ArrayD<f32> {
    let weight = 0.2 * (t / 100.0).cos() as f32;
    Zip::from(scaled).and(pattern).map_collect(|&x, &p| 0.3 * x + weight * p)
}

/// One sampler on one schedule, config and step count.
struct Case<'a> {
    label: String,
    sampler: Sampler,
    schedule: SigmaSchedule,
    config: &'a SchedulerConfig,
    steps: usize,
}

/// Runs the case's sampler from timestep index `start` to the end on `sample`, with model outputs from `model`;
/// returns the final sample and how many times the model ran.
fn run(
    case: &Case<'_>,
    start: usize,
    sample: &ArrayD<f32>,
    model: &dyn Fn(&ArrayD<f32>, f64) -> ArrayD<f32>,
) -> (ArrayD<f32>, usize) {
    let label = &case.label;
    let mut scheduler = create_scheduler(case.sampler, case.schedule, case.config, case.steps).unwrap();
    let timesteps = scheduler.timesteps().to_vec();
    let mut generators = generators();
    let mut x = sample.clone();
    let mut model_calls = 0;
    for (index, &t) in timesteps.iter().enumerate().skip(start) {
        let scaled = scheduler.scale_model_input(&x, index);
        assert_eq!(scaled.shape(), x.shape());
        assert!(scaled.iter().all(|v| v.is_finite()), "{label}: scaled input at step {index} not finite");
        let output = model(&scaled, t);
        model_calls += 1;
        x = scheduler.step(&output, index, &x, &mut BatchNoise::new(&mut generators));
        assert_eq!(x.shape(), sample.shape());
        assert!(x.iter().all(|v| v.is_finite()), "{label}: sample after step {index} not finite");
    }
    (x, model_calls)
}

fn max_abs(values: &ArrayD<f32>) -> f32 {
    values.iter().fold(0.0, |max, v| max.max(v.abs()))
}

/// How `add_noise` and the whole run scale a sample: by sigma (the sigma-parameterised samplers), by
/// sqrt(alphas_cumprod) at integer timesteps (DDIM, PLMS, DDPM, LCM), or by alpha from sigma (the DPM-Solver family).
#[derive(PartialEq)]
enum Parameterisation {
    Sigma,
    AlphaAtTimestep,
    AlphaFromSigma,
}

fn parameterisation(sampler: Sampler) -> Parameterisation {
    match sampler {
        Sampler::Euler
        | Sampler::EulerAncestral
        | Sampler::Heun
        | Sampler::Lms
        | Sampler::Dpm2
        | Sampler::Dpm2Ancestral
        | Sampler::DpmPpSde => Parameterisation::Sigma,
        Sampler::Ddim | Sampler::Plms | Sampler::Ddpm | Sampler::Lcm => Parameterisation::AlphaAtTimestep,
        Sampler::DpmPp2M | Sampler::DpmPp2MSde | Sampler::DpmPp2SAncestral | Sampler::UniPc => {
            Parameterisation::AlphaFromSigma
        }
    }
}

/// The contract:
///
/// 1. The timesteps: one per model evaluation, `Sampler::model_evaluations(steps)` of them (n for most samplers,
///    2n - 1 for Heun, DPM2, DPM2 a and DPM++ SDE, n + 1 for PLMS), laid out as `TimestepLayout` states: strictly
///    decreasing, except the repeats each layout names (Heun's second evaluations, PLMS's second timestep, Karras
///    timesteps rounded to integers) and the midpoints of two-evaluation samplers, which lie between their step's
///    timestep and the next (DPM2 a's on the next, up to rounding). All inside the training range. `order()` is 2
///    exactly for the two-evaluation samplers.
/// 2. A positive finite `init_noise_sigma`; `scale_model_input` and `step` take every index, from the first and from
///    the start of the middle step (img2img starts at `order * skipped_steps`); the model runs once per timestep
///    from there; everything stays finite.
/// 3. `add_noise` at step 0 with zero noise scales the input by the signal level diffusers uses: 1 for the
///    sigma-parameterised samplers (x + sigma * noise), sqrt(alphas_cumprod[t0]) for DDIM, PLMS, DDPM and LCM, and
///    alpha_t from the first sigma for the DPM-Solver family (whose Karras and exponential schedules start at the
///    last training step's sigma, whatever their rounded first timestep says).
/// 4. Zero model output with an epsilon model ("the sample holds no noise"): each update is affine in x (the
///    stochastic samplers' noise does not depend on x), so final(2x) - final(x) = c_total * x, with c_total =
///    signal_end / signal_start: 1 for the sigma-parameterised samplers; 1 / signal_start for the DPM-Solver family
///    and DDPM (they end at alpha 1); for DDIM and PLMS sqrt(final alpha_cumprod / alphas_cumprod[t0]) when their
///    timesteps are `num_train // steps` apart (both step by that amount whatever the spacing). Otherwise (LCM,
///    whose boundary condition mixes x and x0, and the irregular DDIM/PLMS spacings) only c_total's constancy over
///    the elements is checked.
#[test]
fn every_sampler_keeps_the_contract() {
    let pattern = pattern();
    let mut checked = 0;
    for (name, config) in configs() {
        for sampler in Sampler::ALL {
            // Samplers whose diffusers class has no rescale_betas_zero_snr use the betas as they are.
            let effective = SchedulerConfig {
                rescale_betas_zero_snr: config.rescale_betas_zero_snr && sampler.takes_zero_snr(),
                ..config.clone()
            };
            let alphas_cumprod = NoiseSchedule::new(&effective).alphas_cumprod().to_vec();
            for schedule in SigmaSchedule::ALL.into_iter().filter(|&schedule| sampler.supports(schedule)) {
                for steps in STEP_COUNTS {
                    let label = format!("{sampler:?} {schedule:?} {name} {:?} {steps} steps", config.timestep_spacing);
                    let case = Case { label, sampler, schedule, config: &config, steps };
                    let label = case.label.as_str();
                    if sampler == Sampler::Lcm && steps > 50 {
                        // LCM's timesteps come from its 50-step distillation schedule.
                        let refused = create_scheduler(sampler, schedule, &config, steps);
                        assert!(matches!(refused, Err(EngineError::InvalidParameter { name: "steps", .. })), "{label}");
                        continue;
                    }
                    let scheduler = create_scheduler(sampler, schedule, &config, steps)
                        .unwrap_or_else(|error| panic!("{label}: {error}"));

                    // 1. timesteps
                    let timesteps = scheduler.timesteps().to_vec();
                    assert_eq!(timesteps.len(), sampler.model_evaluations(steps), "{label}");
                    let layout = sampler.layout(schedule);
                    assert!(timesteps_follow(&timesteps, layout), "{label}: {layout:?} {timesteps:?}");
                    let top = (config.num_train_timesteps + config.steps_offset) as f64;
                    assert!(timesteps.iter().all(|&t| (0.0..top).contains(&t)), "{label}: {timesteps:?}");
                    let two_per_step = matches!(layout, TimestepLayout::TwoPerStep { .. });
                    assert_eq!(scheduler.order(), if two_per_step { 2 } else { 1 }, "{label}");

                    // 2. initial noise, every index, from the start and from the middle step
                    let init_sigma = scheduler.init_noise_sigma();
                    assert!(init_sigma.is_finite() && init_sigma > 0.0, "{label}: {init_sigma}");
                    let sample = TorchGenerator::new(11).randn(&SHAPE).mapv(|x| x * init_sigma);
                    let model = |scaled: &ArrayD<f32>, t: f64| fake_model(scaled, t, &pattern);
                    let (_, calls) = run(&case, 0, &sample, &model);
                    assert_eq!(calls, timesteps.len(), "{label}: model calls");
                    let start = scheduler.order() * (steps / 2);
                    let noised = scheduler.add_noise(&pattern, &TorchGenerator::new(12).randn(&SHAPE), start);
                    let (_, calls) = run(&case, start, &noised, &model);
                    assert_eq!(calls, timesteps.len() - start, "{label}: model calls from step {start}");

                    // 3. add_noise's signal scale
                    let parameterisation = parameterisation(sampler);
                    let signal_start = match parameterisation {
                        Parameterisation::Sigma => 1.0,
                        Parameterisation::AlphaFromSigma if schedule != SigmaSchedule::Automatic => {
                            alphas_cumprod[alphas_cumprod.len() - 1].sqrt()
                        }
                        _ => alphas_cumprod[timesteps[0] as usize].sqrt(),
                    };
                    let scaled = scheduler.add_noise(&pattern, &ArrayD::zeros(SHAPE.to_vec()), 0);
                    // alpha from the sigma, 1 / sqrt(sigma^2 + 1), is sqrt(alphas_cumprod) up to float32 rounding.
                    let tolerance = if parameterisation == Parameterisation::AlphaFromSigma { 1e-6 } else { 0.0 };
                    for (got, x) in scaled.iter().zip(pattern.iter()) {
                        assert!((got - x * signal_start).abs() <= tolerance * x.abs(), "{label}: {got} vs {x}");
                    }

                    // 4. zero epsilon
                    if config.prediction_type != PredictionType::Epsilon {
                        continue;
                    }
                    let zero = |scaled: &ArrayD<f32>, _t: f64| ArrayD::zeros(scaled.shape());
                    let (once, _) = run(&case, 0, &sample, &zero);
                    let (twice, _) = run(&case, 0, &sample.mapv(|x| 2.0 * x), &zero);
                    let difference = &twice - &once;
                    let ratios: Vec<f32> = difference.iter().zip(sample.iter()).map(|(d, x)| d / x).collect();
                    let mut distinct = timesteps.clone();
                    distinct.dedup();
                    let telescopes = distinct
                        .windows(2)
                        .all(|pair| pair[0] - pair[1] == (config.num_train_timesteps / steps) as f64);
                    let expected = match sampler {
                        _ if parameterisation == Parameterisation::Sigma => Some(1.0),
                        _ if parameterisation == Parameterisation::AlphaFromSigma => Some(1.0 / signal_start),
                        Sampler::Ddpm => Some(1.0 / signal_start),
                        Sampler::Ddim | Sampler::Plms if telescopes => {
                            let end = if config.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
                            Some((end / alphas_cumprod[timesteps[0] as usize]).sqrt())
                        }
                        _ => None,
                    };
                    let reference = expected.unwrap_or(ratios[0]);
                    assert!(reference.is_finite() && reference > 0.0, "{label}: c_total {reference}");
                    // Stochastic noise rounds in both runs: allow 1e-5 of the largest value.
                    let slack = 1e-5 * max_abs(&once).max(max_abs(&twice));
                    for (d, x) in difference.iter().zip(sample.iter()) {
                        assert!(
                            (d - reference * x).abs() <= 1e-4 * (reference * x).abs() + slack,
                            "{label}: final(2x) - final(x) = {d}, expected {reference} * {x}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 500, "only {checked} zero-output runs");
}
