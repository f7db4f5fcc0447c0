//! The training noise schedule and the ways samplers pick from it: betas and alphas_cumprod, sigmas, timestep
//! spacings, Karras sigmas, sigma -> timestep.
//!
//! Each function mirrors the diffusers (0.42) or numpy/torch code named in its comment, including where that code
//! computes in float32 and where in float64, so that timesteps and sigmas come out bit for bit where it matters
//! (the UNet sees the timestep; every step multiplies by the sigmas).

use ndarray::{ArrayD, Zip};

use super::SigmaSchedule;
use super::config::{BetaSchedule, SchedulerConfig, TimestepSpacing};

/// Betas and their cumulative alpha product, as every diffusers scheduler's `__init__` builds them (float32).
pub(crate) struct NoiseSchedule {
    alphas_cumprod: Vec<f32>,
}

impl NoiseSchedule {
    pub(crate) fn new(config: &SchedulerConfig) -> Self {
        let n = config.num_train_timesteps;
        let mut betas: Vec<f32> = match (&config.trained_betas, config.beta_schedule) {
            // torch.tensor(trained_betas, dtype=torch.float32)
            (Some(betas), _) => betas.iter().map(|&beta| beta as f32).collect(),
            (None, BetaSchedule::Linear) => torch_linspace_f32(config.beta_start, config.beta_end, n),
            // torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float32) ** 2
            (None, BetaSchedule::ScaledLinear) => {
                torch_linspace_f32(config.beta_start.sqrt(), config.beta_end.sqrt(), n)
                    .into_iter()
                    .map(|root| root * root)
                    .collect()
            }
            (None, BetaSchedule::SquaredcosCapV2) => betas_for_alpha_bar_cosine(n),
        };
        if config.rescale_betas_zero_snr {
            betas = rescale_zero_terminal_snr(&betas);
        }
        let alphas: Vec<f32> = betas.iter().map(|&beta| 1.0 - beta).collect();
        let mut alphas_cumprod = torch_cumprod(&alphas);
        if config.rescale_betas_zero_snr {
            // A zero terminal alpha_cumprod would make sigma infinite; diffusers sets it to 2**-24.
            if let Some(last) = alphas_cumprod.last_mut() {
                *last = 2f32.powi(-24);
            }
        }
        NoiseSchedule { alphas_cumprod }
    }

    /// alphas_cumprod[t] for training timestep t (float32).
    pub(crate) fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// `((1 - alphas_cumprod) / alphas_cumprod) ** 0.5` in float32, indexed by training timestep (ascending).
    pub(crate) fn sigmas(&self) -> Vec<f32> {
        self.alphas_cumprod.iter().map(|&acp| sigma_of_alpha_cumprod(acp)).collect()
    }

    /// `np.log(sigmas)` in float32.
    pub(crate) fn log_sigmas(&self) -> Vec<f32> {
        self.sigmas().into_iter().map(f32::ln).collect()
    }
}

/// The VE noise level of a VP alpha_cumprod, in float32 as the schedulers compute it.
pub(crate) fn sigma_of_alpha_cumprod(alpha_cumprod: f32) -> f32 {
    ((1.0 - alpha_cumprod) / alpha_cumprod).sqrt()
}

/// `torch.linspace(start, end, n, dtype=torch.float32)` on the CPU: start and end rounded to float32, a float32
/// step, and each value `start + step * i` (first half) or `end - step * (n - 1 - i)` (second half), which torch's
/// kernel computes with a fused multiply-add.
pub(crate) fn torch_linspace_f32(start: f64, end: f64, n: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let halfway = n / 2;
    (0..n)
        .map(|i| if i < halfway { step.mul_add(i as f32, start) } else { (-step).mul_add((n - 1 - i) as f32, end) })
        .collect()
}

/// `torch.cumprod` of float32 values on the CPU: the running product is kept in double, each entry stored as float32.
fn torch_cumprod(values: &[f32]) -> Vec<f32> {
    let mut product = 1.0f64;
    values
        .iter()
        .map(|&value| {
            product *= value as f64;
            product as f32
        })
        .collect()
}

/// diffusers' `betas_for_alpha_bar(n, max_beta=0.999, alpha_transform_type="cosine")` (squaredcos_cap_v2): the
/// betas in Python floats, then a float32 tensor.
fn betas_for_alpha_bar_cosine(n: usize) -> Vec<f32> {
    let alpha_bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos().powi(2);
    (0..n)
        .map(|i| {
            let t1 = i as f64 / n as f64;
            let t2 = (i + 1) as f64 / n as f64;
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
        })
        .collect()
}

/// diffusers' `rescale_zero_terminal_snr` (Algorithm 1 of "Common Diffusion Noise Schedules and Sample Steps are
/// Flawed"), in float32 as there.
fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let alphas: Vec<f32> = betas.iter().map(|&beta| 1.0 - beta).collect();
    let mut roots: Vec<f32> = torch_cumprod(&alphas).into_iter().map(f32::sqrt).collect();
    let (first, last) = (roots[0], roots[roots.len() - 1]);
    // Shift so the last root is zero, then scale so the first is unchanged.
    let scale = first / (first - last);
    for root in roots.iter_mut() {
        *root = (*root - last) * scale;
    }
    let alphas_bar: Vec<f32> = roots.iter().map(|root| root * root).collect();
    let mut rescaled = Vec::with_capacity(betas.len());
    rescaled.push(1.0 - alphas_bar[0]);
    rescaled.extend(alphas_bar.windows(2).map(|pair| 1.0 - pair[1] / pair[0]));
    rescaled
}

/// `np.linspace(start, stop, n)` in float64: `i * step + start`, with the last value exactly `stop`.
pub(crate) fn numpy_linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut values: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    values[n - 1] = stop;
    values
}

/// `np.arange(start, 0, -step)` for a float step: `ceil(start / step)` values `start + i * delta`, where numpy's
/// fill uses `delta = (start - step) - start`.
fn numpy_arange_down_to_zero(start: f64, step: f64) -> Vec<f64> {
    let len = (-start / -step).ceil().max(0.0) as usize;
    let delta = (start - step) - start;
    (0..len).map(|i| start + i as f64 * delta).collect()
}

/// "leading" spacing: `(np.arange(0, count) * step_ratio).round()[::-1] + steps_offset`, with step_ratio
/// `num_train // steps` (Euler, Euler a, DDIM) or `num_train // (steps + 1)` (DPM-Solver). Integers, largest first.
pub(crate) fn leading_timesteps(step_ratio: usize, count: usize, steps_offset: usize) -> Vec<f64> {
    (0..count).rev().map(|i| (i * step_ratio + steps_offset) as f64).collect()
}

/// "trailing" spacing: `np.round(np.arange(start, 0, -num_train / steps)) - 1` (Euler, Euler a, DDIM with
/// start = num_train; DPM-Solver with its clipped last timestep). Integers, largest first.
///
/// For some step counts (61, 103, 121, ... of 1000) numpy's arange yields one value more, which rounds to 0 and
/// makes diffusers append a timestep of -1 (an index past the schedule); only the first `steps` are kept here.
pub(crate) fn trailing_timesteps(start: usize, num_train: usize, steps: usize) -> Vec<f64> {
    let step_ratio = num_train as f64 / steps as f64;
    numpy_arange_down_to_zero(start as f64, step_ratio)
        .into_iter()
        .take(steps)
        .map(|t| t.round_ties_even() - 1.0)
        .collect()
}

/// "linspace" spacing rounded to integers: `np.linspace(0, last, steps).round()[::-1]` (DDIM; DPM-Solver uses
/// `steps + 1` points and drops the final 0).
pub(crate) fn linspace_rounded_timesteps(last: f64, points: usize) -> Vec<f64> {
    let mut values: Vec<f64> = numpy_linspace(0.0, last, points).into_iter().map(f64::round_ties_even).collect();
    values.reverse();
    values
}

/// `signal * original + noise_scale * noise`: every sampler's `add_noise`, at the scales of its noise level
/// (sqrt(alpha_cumprod) and sqrt(1 - alpha_cumprod), or 1 and sigma).
pub(crate) fn noised(original: &ArrayD<f32>, noise: &ArrayD<f32>, signal: f32, noise_scale: f32) -> ArrayD<f32> {
    Zip::from(original).and(noise).map_collect(|&x, &n| signal * x + noise_scale * n)
}

/// `sample / sqrt(sigma^2 + 1)`: the model input of the samplers on VE sigmas, whose samples have variance
/// sigma^2 + 1 where the model was trained on unit variance.
pub(crate) fn scaled_to_unit_variance(sample: &ArrayD<f32>, sigma: f32) -> ArrayD<f32> {
    let scale = (sigma * sigma + 1.0).sqrt();
    sample.mapv(|x| x / scale)
}

/// `np.interp(x, np.arange(len(values)), values)`: linear interpolation in float64 over integer abscissae,
/// clamped at both ends (numpy's `arr_interp`).
pub(crate) fn interp_at(x: f64, values: &[f32]) -> f64 {
    let last = values.len() - 1;
    if x.is_nan() {
        return x;
    }
    if x <= 0.0 {
        return values[0] as f64;
    }
    if x >= last as f64 {
        return values[last] as f64;
    }
    let j = x.floor() as usize;
    let (low, high) = (values[j] as f64, values[j + 1] as f64);
    if j as f64 == x {
        return low;
    }
    // The abscissae are one apart, so numpy's slope is the difference itself.
    (high - low) * (x - j as f64) + low
}

/// Karras et al. (2022), eq. 5 with rho = 7: `steps` sigmas from `sigma_max` down to `sigma_min` evenly spaced in
/// `sigma^(1/rho)` (diffusers' `_convert_to_karras`, in float64).
pub(crate) fn karras_sigmas(sigma_min: f64, sigma_max: f64, steps: usize) -> Vec<f64> {
    const RHO: f64 = 7.0;
    let min_inv_rho = sigma_min.powf(1.0 / RHO);
    let max_inv_rho = sigma_max.powf(1.0 / RHO);
    numpy_linspace(0.0, 1.0, steps)
        .into_iter()
        .map(|ramp| (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)).powf(RHO))
        .collect()
}

/// `steps` sigmas from `sigma_max` down to `sigma_min` evenly spaced in log sigma (diffusers'
/// `_convert_to_exponential`: `np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), steps))`, float64).
pub(crate) fn exponential_sigmas(sigma_min: f64, sigma_max: f64, steps: usize) -> Vec<f64> {
    numpy_linspace(sigma_max.ln(), sigma_min.ln(), steps).into_iter().map(f64::exp).collect()
}

/// Where a sigma-parameterised sampler's timesteps and sigmas come from before each casts them to its own precision:
/// the model's spacing (class default "linspace"), sigmas interpolated at those timesteps, and for Karras and
/// exponential schedules sigmas respaced over the same range with timesteps from `sigma_to_t` (the `set_timesteps` of
/// diffusers' Euler, Heun, LMS, KDPM2, KDPM2Ancestral and DPMSolverSDE schedulers).
pub(crate) struct SigmaSteps {
    /// Unrounded float64 timesteps, largest first.
    pub(crate) timesteps: Vec<f64>,
    /// One sigma per timestep (without the final 0), float64 as numpy leaves them.
    pub(crate) sigmas: Vec<f64>,
}

/// Whether the spaced timesteps are rounded to float32 before the sigmas are interpolated at them: numpy's
/// `linspace(..., dtype=np.float32)` in every class but DPMSolverSDE, which keeps float64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpacedTimesteps {
    Float32,
    Float64,
}

impl SigmaSteps {
    pub(crate) fn new(
        config: &SchedulerConfig,
        steps: usize,
        schedule: SigmaSchedule,
        precision: SpacedTimesteps,
    ) -> SigmaSteps {
        let num_train = config.num_train_timesteps;
        let mut timesteps = match config.spacing_or(TimestepSpacing::Linspace) {
            TimestepSpacing::Linspace => {
                let mut values = numpy_linspace(0.0, (num_train - 1) as f64, steps);
                values.reverse();
                values
            }
            TimestepSpacing::Leading => leading_timesteps(num_train / steps, steps, config.steps_offset),
            TimestepSpacing::Trailing => trailing_timesteps(num_train, num_train, steps),
        };
        if precision == SpacedTimesteps::Float32 {
            timesteps.iter_mut().for_each(|t| *t = *t as f32 as f64);
        }
        let noise_schedule = NoiseSchedule::new(config);
        let train_sigmas = noise_schedule.sigmas();
        // np.interp in float64 over the float32 training sigmas.
        let interpolated: Vec<f64> = timesteps.iter().map(|&t| interp_at(t, &train_sigmas)).collect();
        // The Karras and exponential ranges are those of the interpolated sigmas: for "leading" they start at
        // sigma(t = 901), not at the schedule's maximum.
        let (sigma_min, sigma_max) = (interpolated[interpolated.len() - 1], interpolated[0]);
        let sigmas = match schedule {
            SigmaSchedule::Automatic => return SigmaSteps { timesteps, sigmas: interpolated },
            SigmaSchedule::Karras => karras_sigmas(sigma_min, sigma_max, steps),
            SigmaSchedule::Exponential => exponential_sigmas(sigma_min, sigma_max, steps),
        };
        let log_sigmas = noise_schedule.log_sigmas();
        let timesteps = sigmas.iter().map(|&sigma| sigma_to_t(sigma, &log_sigmas)).collect();
        SigmaSteps { timesteps, sigmas }
    }
}

/// The fractional training timestep of `sigma`, interpolating linearly in log-sigma between the two neighbouring
/// training steps (diffusers' `_sigma_to_t`). `log_sigmas` is ascending float32, as `np.log(sigmas)`; the distances
/// are float64 but the bracket width is float32, as numpy 2 promotes there.
pub(crate) fn sigma_to_t(sigma: f64, log_sigmas: &[f32]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    // `np.cumsum(dists >= 0).argmax()`: the first position where the count of log_sigmas <= log_sigma peaks.
    let mut count = 0usize;
    let mut best = (0usize, 0usize);
    for (i, &log) in log_sigmas.iter().enumerate() {
        if log_sigma - log as f64 >= 0.0 {
            count += 1;
        }
        if count > best.1 {
            best = (i, count);
        }
    }
    let low_idx = best.0.min(log_sigmas.len() - 2);
    let high_idx = low_idx + 1;
    let (low, high) = (log_sigmas[low_idx], log_sigmas[high_idx]);
    let w = ((low as f64 - log_sigma) / (low - high) as f64).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * high_idx as f64
}

/// [`sigma_to_t`] as diffusers' KDPM2 schedulers run it on float32 torch tensors (their interpolated midpoints):
/// every quantity float32.
pub(crate) fn sigma_to_t_f32(sigma: f32, log_sigmas: &[f32]) -> f32 {
    let log_sigma = sigma.max(1e-10).ln();
    // log_sigmas ascend, so the entries at or below log_sigma are a prefix; cumsum's argmax is its last index.
    let low_idx = log_sigmas.iter().rposition(|&log| log_sigma - log >= 0.0).unwrap_or(0).min(log_sigmas.len() - 2);
    let (low, high) = (log_sigmas[low_idx], log_sigmas[low_idx + 1]);
    let w = ((low - log_sigma) / (low - high)).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f32 + w * (low_idx + 1) as f32
}

/// `torch.lerp(start, end, 0.5)` in float32: torch computes `end - (end - start) * 0.5` for weights from 0.5 up.
pub(crate) fn torch_lerp_half(start: f32, end: f32) -> f32 {
    end - (end - start) * 0.5
}

/// Asserts `got` is within `ulps` float32 units in the last place of `want` (a value torch computed).
#[cfg(test)]
pub(crate) fn assert_ulps(got: f32, want: f64, ulps: u32) {
    let want = want as f32;
    let apart = (got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs();
    assert!(got.signum() == want.signum() && apart <= ulps as u64, "{got} is {apart} ulps from {want}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// alphas_cumprod of SD 1.x as diffusers 0.42.1 / torch 2.15 compute them (float32 values at t = 0, 1, 499,
    /// 998, 999).
    #[test]
    fn sd1_alphas_cumprod_match_torch() {
        let schedule = NoiseSchedule::new(&SchedulerConfig::default());
        let acp = schedule.alphas_cumprod();
        assert_eq!(acp.len(), 1000);
        assert_eq!(acp[0] as f64, 0.999_149_978_160_858_2);
        assert_eq!(acp[1] as f64, 0.998_296_022_415_161_1);
        // torch's float32 sqrt (MKL VML) is not always correctly rounded: sigma(t = 0) is one ulp apart.
        let sigmas = schedule.sigmas();
        assert_ulps(sigmas[999], 14.614_646_911_621_094, 1);
        assert_ulps(sigmas[0], 0.029_167_534_783_482_55, 1);
    }

    #[test]
    fn torch_linspace_endpoints_and_monotonic() {
        let values = torch_linspace_f32(0.1, 0.9, 7);
        assert_eq!(values[0], 0.1f32);
        assert_eq!(values[6], 0.9f32);
        assert!(values.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(torch_linspace_f32(0.5, 1.0, 1), vec![0.5]);
    }

    #[test]
    fn spacings_match_diffusers() {
        assert_eq!(leading_timesteps(100, 10, 1), vec![901., 801., 701., 601., 501., 401., 301., 201., 101., 1.]);
        assert_eq!(trailing_timesteps(1000, 1000, 10), vec![999., 899., 799., 699., 599., 499., 399., 299., 199., 99.]);
        // 1000/7 = 142.857...: round(1000 - i*142.857) - 1.
        assert_eq!(trailing_timesteps(1000, 1000, 7), vec![999., 856., 713., 570., 428., 285., 142.]);
        // numpy's arange gives 62 values for 61 steps; the 62nd (-1) is dropped.
        let t61 = trailing_timesteps(1000, 1000, 61);
        assert_eq!(t61.len(), 61);
        assert_eq!(t61[60], 15.0);
        assert_eq!(linspace_rounded_timesteps(999.0, 4), vec![999., 666., 333., 0.]);
        // np.linspace(0, 999, 20, dtype=np.float32)[::-1][1] = 946.4210815429688; in float64 (DPMSolverSDE)
        // 946.421052631579.
        let config =
            SchedulerConfig { timestep_spacing: Some(TimestepSpacing::Linspace), ..SchedulerConfig::default() };
        let f32_steps = SigmaSteps::new(&config, 20, SigmaSchedule::Automatic, SpacedTimesteps::Float32);
        assert_eq!(f32_steps.timesteps[1], 946.421_081_542_968_8);
        let f64_steps = SigmaSteps::new(&config, 20, SigmaSchedule::Automatic, SpacedTimesteps::Float64);
        assert_eq!(f64_steps.timesteps[1], 946.421_052_631_579);
    }

    #[test]
    fn interp_matches_numpy() {
        let values = [1.0f32, 3.0, 4.0];
        assert_eq!(interp_at(0.5, &values), 2.0);
        assert_eq!(interp_at(1.0, &values), 3.0);
        assert_eq!(interp_at(-1.0, &values), 1.0);
        assert_eq!(interp_at(5.0, &values), 4.0);
    }

    #[test]
    fn sigma_to_t_inverts_the_training_sigmas() {
        let schedule = NoiseSchedule::new(&SchedulerConfig::default());
        let (sigmas, logs) = (schedule.sigmas(), schedule.log_sigmas());
        for t in [0usize, 1, 250, 500, 998, 999] {
            assert!((sigma_to_t(sigmas[t] as f64, &logs) - t as f64).abs() < 1e-4, "t {t}");
        }
        // Beyond the schedule: clamped.
        assert_eq!(sigma_to_t(100.0, &logs), 999.0);
        assert_eq!(sigma_to_t(1e-3, &logs), 0.0);
        // Halfway in log space between two steps.
        let mid = ((logs[10] as f64 + logs[11] as f64) / 2.0).exp();
        assert!((sigma_to_t(mid, &logs) - 10.5).abs() < 1e-3);
    }

    #[test]
    fn karras_runs_from_max_to_min() {
        let sigmas = karras_sigmas(0.03, 14.6, 10);
        assert!((sigmas[0] - 14.6).abs() < 1e-12 && (sigmas[9] - 0.03).abs() < 1e-12);
        assert!(sigmas.windows(2).all(|pair| pair[0] > pair[1]));
        assert_eq!(karras_sigmas(0.03, 14.6, 1).len(), 1);
    }

    #[test]
    fn zero_terminal_snr_and_cosine_schedules_are_finite() {
        let config = SchedulerConfig { rescale_betas_zero_snr: true, ..SchedulerConfig::default() };
        let acp = NoiseSchedule::new(&config).alphas_cumprod().to_vec();
        assert_eq!(acp[999], 2f32.powi(-24));
        assert!(acp.windows(2).all(|pair| pair[0] > pair[1]));
        let config = SchedulerConfig { beta_schedule: BetaSchedule::SquaredcosCapV2, ..SchedulerConfig::default() };
        let sigmas = NoiseSchedule::new(&config).sigmas();
        assert!(sigmas.iter().all(|s| s.is_finite() && *s > 0.0));
    }
}
