//! The contract every sampler keeps, run over every sampler, every schedule it takes, every timestep spacing and a
//! few model configurations (diffusers' `SchedulerCommonTest` in spirit).

use ndarray::{ArrayD, Zip};

use super::noise_schedule::NoiseSchedule;
use super::{
    BatchNoise, BetaSchedule, PredictionType, Sampler, SchedulerConfig, SigmaSchedule, TimestepSpacing,
    create_scheduler,
};
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

/// Runs `sampler` from step `start` to the end on `sample`, with model outputs from `model`.
fn run(
    sampler: Sampler,
    schedule: SigmaSchedule,
    config: &SchedulerConfig,
    steps: usize,
    start: usize,
    sample: &ArrayD<f32>,
    model: &dyn Fn(&ArrayD<f32>, f64) -> ArrayD<f32>,
) -> ArrayD<f32> {
    let mut scheduler = create_scheduler(sampler, schedule, config, steps).unwrap();
    let timesteps = scheduler.timesteps().to_vec();
    let mut generators = generators();
    let mut x = sample.clone();
    for (index, &t) in timesteps.iter().enumerate().skip(start) {
        let scaled = scheduler.scale_model_input(&x, index);
        assert_eq!(scaled.shape(), x.shape());
        assert!(scaled.iter().all(|v| v.is_finite()), "scaled input at step {index} not finite");
        let output = model(&scaled, t);
        x = scheduler.step(&output, index, &x, &mut BatchNoise::new(&mut generators));
        assert_eq!(x.shape(), sample.shape());
        assert!(x.iter().all(|v| v.is_finite()), "sample after step {index} not finite");
    }
    x
}

fn max_abs(values: &ArrayD<f32>) -> f32 {
    values.iter().fold(0.0, |max, v| max.max(v.abs()))
}

/// The contract:
///
/// 1. `steps` timesteps inside the training range that strictly decrease; DPM++ 2M Karras's may repeat (diffusers
///    rounds them to integers; its sigmas still decrease).
/// 2. A positive finite `init_noise_sigma`; `scale_model_input` and `step` take every index, from the first and
///    from halfway (img2img), and everything stays finite.
/// 3. `add_noise` at step 0 with zero noise scales the input by the signal level diffusers uses: 1 for the
///    sigma-parameterised samplers (Euler, Euler a: x + sigma * noise), sqrt(alphas_cumprod[t0]) for DDIM and
///    DPM-Solver (alpha_t * x + sigma_t * noise), whose Karras schedule starts at the last training step's.
/// 4. Zero model output with an epsilon model ("the sample holds no noise"): the predicted clean sample never
///    changes, so each update is x -> c * x (+ the ancestral noise, which does not depend on x), and the run ends at
///    c_total * x. Checked as final(2x) - final(x) = c_total * x with c_total = signal_end / signal_start: 1 for
///    Euler and Euler a; 1 / sqrt(alphas_cumprod[t0]) for DPM++ 2M (ends at sigma 0); for DDIM
///    sqrt(final alpha_cumprod / alphas_cumprod[t0]) when its timesteps are `num_train // steps` apart (diffusers
///    steps by that amount whatever the spacing; otherwise only c_total's constancy over the elements is checked).
#[test]
fn every_sampler_keeps_the_contract() {
    let pattern = pattern();
    let mut checked = 0;
    for (name, config) in configs() {
        let alphas_cumprod = NoiseSchedule::new(&config).alphas_cumprod().to_vec();
        for sampler in Sampler::ALL {
            for schedule in SigmaSchedule::ALL.into_iter().filter(|&schedule| sampler.supports(schedule)) {
                for steps in STEP_COUNTS {
                    let case = format!("{sampler:?} {schedule:?} {name} {:?} {steps} steps", config.timestep_spacing);
                    let scheduler = create_scheduler(sampler, schedule, &config, steps).unwrap();

                    // 1. timesteps
                    let timesteps = scheduler.timesteps().to_vec();
                    assert_eq!(timesteps.len(), steps, "{case}");
                    let may_repeat = (sampler, schedule) == (Sampler::DpmPp2M, SigmaSchedule::Karras);
                    for pair in timesteps.windows(2) {
                        assert!(pair[0] > pair[1] || (may_repeat && pair[0] == pair[1]), "{case}: {timesteps:?}");
                    }
                    let top = (config.num_train_timesteps + config.steps_offset) as f64;
                    assert!(timesteps.iter().all(|&t| (0.0..top).contains(&t)), "{case}: {timesteps:?}");

                    // 2. initial noise, every index, from the start and from halfway
                    let init_sigma = scheduler.init_noise_sigma();
                    assert!(init_sigma.is_finite() && init_sigma > 0.0, "{case}: {init_sigma}");
                    let sample = TorchGenerator::new(11).randn(&SHAPE).mapv(|x| x * init_sigma);
                    let model = |scaled: &ArrayD<f32>, t: f64| fake_model(scaled, t, &pattern);
                    run(sampler, schedule, &config, steps, 0, &sample, &model);
                    let start = steps / 2;
                    let noised = scheduler.add_noise(&pattern, &TorchGenerator::new(12).randn(&SHAPE), start);
                    run(sampler, schedule, &config, steps, start, &noised, &model);

                    // 3. add_noise's signal scale
                    let signal_start = match (sampler, schedule) {
                        (Sampler::Euler | Sampler::EulerAncestral, _) => 1.0,
                        // DPM-Solver's Karras sigmas start at the schedule's largest sigma, whatever its (rounded,
                        // for squaredcos_cap_v2 truncated) first timestep says.
                        (Sampler::DpmPp2M, SigmaSchedule::Karras) => alphas_cumprod[alphas_cumprod.len() - 1].sqrt(),
                        (Sampler::Ddim | Sampler::DpmPp2M, _) => alphas_cumprod[timesteps[0] as usize].sqrt(),
                    };
                    let scaled = scheduler.add_noise(&pattern, &ArrayD::zeros(SHAPE.to_vec()), 0);
                    let tolerance = match sampler {
                        Sampler::Euler | Sampler::EulerAncestral | Sampler::Ddim => 0.0,
                        // alpha from the sigma, 1 / sqrt(sigma^2 + 1), is sqrt(alphas_cumprod) up to float32 rounding.
                        Sampler::DpmPp2M => 1e-6,
                    };
                    for (got, x) in scaled.iter().zip(pattern.iter()) {
                        assert!((got - x * signal_start).abs() <= tolerance * x.abs(), "{case}: {got} vs {x}");
                    }

                    // 4. zero epsilon
                    if config.prediction_type != PredictionType::Epsilon {
                        continue;
                    }
                    let zero = |scaled: &ArrayD<f32>, _t: f64| ArrayD::zeros(scaled.shape());
                    let once = run(sampler, schedule, &config, steps, 0, &sample, &zero);
                    let twice = run(sampler, schedule, &config, steps, 0, &sample.mapv(|x| 2.0 * x), &zero);
                    let difference = &twice - &once;
                    let ratios: Vec<f32> = difference.iter().zip(sample.iter()).map(|(d, x)| d / x).collect();
                    let telescopes = timesteps
                        .windows(2)
                        .all(|pair| pair[0] - pair[1] == (config.num_train_timesteps / steps) as f64);
                    let expected = match sampler {
                        Sampler::Euler | Sampler::EulerAncestral => Some(1.0),
                        Sampler::DpmPp2M => Some(1.0 / signal_start),
                        Sampler::Ddim if telescopes => {
                            let end = if config.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
                            Some((end / alphas_cumprod[timesteps[0] as usize]).sqrt())
                        }
                        Sampler::Ddim => None,
                    };
                    let reference = expected.unwrap_or(ratios[0]);
                    assert!(reference.is_finite() && reference > 0.0, "{case}: c_total {reference}");
                    // Ancestral noise rounds in both runs: allow 1e-5 of the largest value.
                    let slack = 1e-5 * max_abs(&once).max(max_abs(&twice));
                    for (d, x) in difference.iter().zip(sample.iter()) {
                        assert!(
                            (d - reference * x).abs() <= 1e-4 * (reference * x).abs() + slack,
                            "{case}: final(2x) - final(x) = {d}, expected {reference} * {x}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} zero-output runs");
}
