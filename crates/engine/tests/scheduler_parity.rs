//! Every sampler against diffusers, step for step.
//!
//! The references in tests/fixtures/reference/schedulers/<id>.json come from scripts/fixtures/make_fixtures.py and
//! scripts/fixtures/make_sampler_fixtures.py (diffusers 0.42.1, torch 2.15): the scheduler's config, its timesteps and
//! init_noise_sigma, and for a [2, 4, 4, 4] (or [2, 4, 2, 2]) sample each model evaluation's scaled model input, the
//! model output fed to `step` and the resulting sample, plus one `add_noise`. Here each scheduler is built from the
//! file's own config object (so config parsing is under test too), fed the recorded model outputs, and compared on:
//!
//! - timesteps: one per model evaluation, as many as diffusers lists; integer ones exactly (the UNet sees them),
//!   fractional ones (Karras, exponential, midpoints) within 1e-4 ([`FRACTIONAL_TIMESTEP_TOLERANCE`]);
//! - init_noise_sigma, the seeded initial sample, every scaled input, every step's sample and add_noise:
//!   max |ours - diffusers| <= 1e-5 * max(1, max |diffusers|) per tensor. Both sides compute in float32; the
//!   differences left are single roundings (libm's exp/log/sqrt against torch's) carried through ten steps, so a
//!   looser bound would only hide a wrong formula.
//!
//! Stochastic samplers draw from generators seeded as the reference records (`step_generator_seeds`, one per image),
//! so their noise is the reference's too. DPM++ SDE's reference is diffusers with its Brownian-tree noise patched to
//! zero (`step_noise: "zero"`): it is run here on [`BatchNoise::zero`], which compares the deterministic part of every
//! step; its noise is checked by statistics in dpm_solver_sde.rs.
//!
//! Our own sample is carried from step to step (as in a real run), so errors would accumulate, not reset.

use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use pigment_engine::rng::TorchGenerator;
use pigment_engine::schedulers::{BatchNoise, SchedulerConfig, create_scheduler, known_sampler_names, parse_sampler};
use serde_json::Value;

/// Relative tolerance on every compared tensor, against max(1, the reference's largest magnitude).
const TOLERANCE: f64 = 1e-5;

/// Fractional timesteps come from `sigma_to_t`, which interpolates between float32 `log(sigmas)`: numpy's
/// vectorised float32 log and libm's differ by one ulp (2.4e-7 near log sigma 2) at some training steps, and that
/// moves a timestep by one ulp over the log-sigma spacing of neighbouring steps, up to 5e-5 where the spacing is
/// finest. 1e-4 of a training timestep is far below anything the UNet's time embedding resolves.
const FRACTIONAL_TIMESTEP_TOLERANCE: f64 = 1e-4;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/schedulers")
}

fn load(id: &str) -> Value {
    let path = fixture_dir().join(format!("{id}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!("scheduler reference {} is missing ({error}); run scripts/fixtures/make_fixtures.py", path.display())
    });
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn flatten(value: &Value, out: &mut Vec<f32>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        Value::Number(number) => out.push(number.as_f64().expect("a number") as f32),
        other => panic!("expected numbers, found {other}"),
    }
}

fn tensor(value: &Value, shape: &[usize]) -> ArrayD<f32> {
    let mut values = Vec::new();
    flatten(value, &mut values);
    ArrayD::from_shape_vec(shape.to_vec(), values).expect("reference tensor of the stated shape")
}

/// The largest difference seen so far: absolute, relative to its tensor's scale, and where.
#[derive(Default)]
struct Worst {
    abs: f64,
    relative: f64,
    at: String,
}

impl Worst {
    /// Asserts max |ours - reference| <= TOLERANCE * max(1, max |reference|) and records it.
    fn compare(&mut self, what: &str, ours: &ArrayD<f32>, reference: &ArrayD<f32>) {
        assert_eq!(ours.shape(), reference.shape(), "{what}: shape");
        let scale = reference.iter().fold(1.0f64, |max, &v| max.max((v as f64).abs()));
        let diff = ours.iter().zip(reference).fold(0.0f64, |max, (&a, &b)| max.max((a as f64 - b as f64).abs()));
        assert!(
            diff.is_finite() && diff <= TOLERANCE * scale,
            "{what}: max abs diff {diff:e} > {TOLERANCE:e} * {scale}"
        );
        self.abs = self.abs.max(diff);
        if diff / scale > self.relative {
            self.relative = diff / scale;
            self.at = what.to_string();
        }
    }
}

/// Runs one reference and prints the largest differences.
fn check(id: &str) {
    let doc = load(id);
    let config: SchedulerConfig =
        serde_json::from_value(doc["config"].clone()).unwrap_or_else(|error| panic!("{id}: config: {error}"));
    let (sampler, schedule) = parse_sampler(doc["sampler"].as_str().expect("sampler id")).unwrap();
    let steps = doc["num_inference_steps"].as_u64().expect("num_inference_steps") as usize;
    let shape: Vec<usize> =
        doc["shape"].as_array().expect("shape").iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let mut scheduler = create_scheduler(sampler, schedule, &config, steps).unwrap();

    let reference_timesteps: Vec<f64> =
        doc["timesteps"].as_array().expect("timesteps").iter().map(|t| t.as_f64().unwrap()).collect();
    assert_eq!(scheduler.timesteps().len(), reference_timesteps.len(), "{id}: timesteps {:?}", scheduler.timesteps());
    assert_eq!(scheduler.timesteps().len(), sampler.model_evaluations(steps), "{id}: model evaluations");
    let mut timestep_diff = 0.0f64;
    for (index, (&ours, &reference)) in scheduler.timesteps().iter().zip(&reference_timesteps).enumerate() {
        assert!(same_timestep(ours, reference), "{id}: timestep {index}: {ours} vs diffusers' {reference}");
        timestep_diff = timestep_diff.max((ours - reference).abs());
    }

    let init_sigma = doc["init_noise_sigma"].as_f64().expect("init_noise_sigma");
    let init_diff = (scheduler.init_noise_sigma() as f64 - init_sigma).abs();
    assert!(
        init_diff <= TOLERANCE * init_sigma.max(1.0),
        "{id}: init_noise_sigma {} vs {init_sigma}",
        scheduler.init_noise_sigma()
    );
    let mut worst = Worst::default();

    // The initial sample from the same seeds, one generator per image.
    let seeds: Vec<u64> = doc["sample0_seeds"].as_array().expect("seeds").iter().map(|s| s.as_u64().unwrap()).collect();
    let mut latent_generators: Vec<TorchGenerator> = seeds.iter().map(|&s| TorchGenerator::new(s)).collect();
    let sample0 = BatchNoise::new(&mut latent_generators).randn(&shape).mapv(|x| x * scheduler.init_noise_sigma());
    let reference_sample0 = tensor(&doc["sample0"], &shape);
    // Kept apart in the report: this is the generator's difference (rng.rs), not the scheduler's.
    let mut noise_worst = Worst::default();
    noise_worst.compare(&format!("{id}: sample0"), &sample0, &reference_sample0);

    // Deterministic samplers record no step seeds; their generators are never drawn from.
    let step_seeds: Vec<u64> = match doc["step_generator_seeds"].as_array() {
        Some(seeds) => seeds.iter().map(|s| s.as_u64().unwrap()).collect(),
        None => vec![0; shape[0]],
    };
    let mut generators: Vec<TorchGenerator> = step_seeds.iter().map(|&s| TorchGenerator::new(s)).collect();
    let zero_noise = doc["step_noise"].as_str() == Some("zero");
    let mut sample = reference_sample0;
    let recorded = doc["steps"].as_array().expect("steps");
    assert_eq!(recorded.len(), reference_timesteps.len(), "{id}: one record per model evaluation");
    for (index, record) in recorded.iter().enumerate() {
        assert_eq!(record["t"].as_f64(), Some(reference_timesteps[index]), "{id}: step {index} t");
        let scaled = scheduler.scale_model_input(&sample, index);
        worst.compare(&format!("{id}: step {index} scaled"), &scaled, &tensor(&record["scaled"], &shape));
        let model_output = tensor(&record["model_output"], &shape);
        let mut noise = if zero_noise { BatchNoise::zero(shape[0]) } else { BatchNoise::new(&mut generators) };
        sample = scheduler.step(&model_output, index, &sample, &mut noise);
        let reference = tensor(&record["prev_sample"], &shape);
        worst.compare(&format!("{id}: step {index} prev_sample"), &sample, &reference);
    }

    // add_noise on a fresh scheduler at the recorded timestep (the first).
    let add_noise = &doc["add_noise"];
    let t = add_noise["timesteps"][0].as_f64().expect("add_noise timestep");
    let fresh = create_scheduler(sampler, schedule, &config, steps).unwrap();
    let index =
        fresh.timesteps().iter().position(|&s| same_timestep(s, t)).expect("add_noise timestep in the schedule");
    let noised = fresh.add_noise(&tensor(&add_noise["original"], &shape), &tensor(&add_noise["noise"], &shape), index);
    worst.compare(&format!("{id}: add_noise"), &noised, &tensor(&add_noise["result"], &shape));

    println!(
        "{id:<26} timesteps max diff {timestep_diff:.1e}; init_noise_sigma diff {init_diff:.1e}; seeded sample0 max \
         abs diff {:.2e}; steps and add_noise: max abs diff {:.2e}, max relative {:.2e} ({})",
        noise_worst.abs, worst.abs, worst.relative, worst.at
    );
}

/// Integer timesteps exactly; fractional ones within [`FRACTIONAL_TIMESTEP_TOLERANCE`].
fn same_timestep(ours: f64, reference: f64) -> bool {
    if reference.fract() == 0.0 { ours == reference } else { (ours - reference).abs() <= FRACTIONAL_TIMESTEP_TOLERANCE }
}

macro_rules! parity {
    ($($name:ident => $id:literal,)*) => {
        $(
            #[test]
            fn $name() {
                check($id);
            }
        )*

        /// Every sampler id has a reference checked here, and every reference file is checked here.
        #[test]
        fn every_sampler_has_a_reference() {
            let checked = [$($id),*];
            assert!(fixture_dir().is_dir(), "scheduler references missing: {}", fixture_dir().display());
            for name in known_sampler_names() {
                // The snake-case ids; the AUTOMATIC1111 names carry capitals or spaces.
                if name.chars().any(|c| c.is_uppercase() || c == ' ') {
                    continue;
                }
                assert!(fixture_dir().join(format!("{name}.json")).is_file(), "no reference for sampler {name}");
                assert!(checked.contains(&name.as_str()), "reference {name} is not checked here");
            }
            for entry in std::fs::read_dir(fixture_dir()).unwrap() {
                let file = entry.unwrap().file_name().into_string().unwrap();
                let id = file.strip_suffix(".json").unwrap_or(&file);
                assert!(checked.contains(&id), "reference {file} is not checked here");
            }
        }
    };
}

parity! {
    euler => "euler",
    euler_karras => "euler_karras",
    euler_exponential => "euler_exponential",
    euler_v_prediction => "euler__v_prediction",
    euler_trailing => "euler__trailing",
    euler_linspace => "euler__linspace",
    euler_a => "euler_a",
    heun => "heun",
    heun_karras => "heun_karras",
    heun_exponential => "heun_exponential",
    heun_v_prediction => "heun__v_prediction",
    heun_linspace => "heun__linspace",
    heun_trailing => "heun__trailing",
    lms => "lms",
    lms_karras => "lms_karras",
    lms_exponential => "lms_exponential",
    lms_v_prediction => "lms__v_prediction",
    lms_linspace => "lms__linspace",
    dpm2 => "dpm2",
    dpm2_karras => "dpm2_karras",
    dpm2_exponential => "dpm2_exponential",
    dpm2_linspace => "dpm2__linspace",
    dpm2_a => "dpm2_a",
    dpm2_a_karras => "dpm2_a_karras",
    dpm2_a_exponential => "dpm2_a_exponential",
    dpm2_a_v_prediction => "dpm2_a__v_prediction",
    dpm2_a_trailing => "dpm2_a__trailing",
    dpmpp_2s_a => "dpmpp_2s_a",
    dpmpp_2s_a_karras => "dpmpp_2s_a_karras",
    dpmpp_2s_a_exponential => "dpmpp_2s_a_exponential",
    dpmpp_2s_a_v_prediction => "dpmpp_2s_a__v_prediction",
    dpmpp_2m => "dpmpp_2m",
    dpmpp_2m_karras => "dpmpp_2m_karras",
    dpmpp_2m_exponential => "dpmpp_2m_exponential",
    dpmpp_sde => "dpmpp_sde",
    dpmpp_sde_karras => "dpmpp_sde_karras",
    dpmpp_sde_exponential => "dpmpp_sde_exponential",
    dpmpp_sde_v_prediction => "dpmpp_sde__v_prediction",
    dpmpp_sde_linspace => "dpmpp_sde__linspace",
    dpmpp_2m_sde => "dpmpp_2m_sde",
    dpmpp_2m_sde_karras => "dpmpp_2m_sde_karras",
    dpmpp_2m_sde_exponential => "dpmpp_2m_sde_exponential",
    dpmpp_2m_sde_v_prediction => "dpmpp_2m_sde__v_prediction",
    dpmpp_2m_sde_trailing => "dpmpp_2m_sde__trailing",
    ddim => "ddim",
    ddim_v_prediction => "ddim__v_prediction",
    ddim_trailing => "ddim__trailing",
    pndm => "pndm",
    pndm_v_prediction => "pndm__v_prediction",
    pndm_linspace => "pndm__linspace",
    pndm_trailing => "pndm__trailing",
    unipc => "unipc",
    unipc_karras => "unipc_karras",
    unipc_exponential => "unipc_exponential",
    unipc_v_prediction => "unipc__v_prediction",
    unipc_linspace => "unipc__linspace",
    unipc_trailing => "unipc__trailing",
    ddpm => "ddpm",
    ddpm_v_prediction => "ddpm__v_prediction",
    ddpm_linspace => "ddpm__linspace",
    ddpm_trailing => "ddpm__trailing",
    lcm => "lcm",
    lcm_v_prediction => "lcm__v_prediction",
}
