//! Seeded noise identical to PyTorch's CPU generator: `torch.Generator("cpu").manual_seed(s)` then
//! `torch.randn(shape)` in float32, so a seed from a diffusers script reproduces here
//! (ARCHITECTURE.md, "Noise and seeds").
//!
//! PyTorch's CPU generator is a plain MT19937 (aten/src/ATen/core/MT19937RNGEngine.h) seeded with the low 32 bits
//! of the seed. `randn` on a float32 tensor of 16 or more elements draws all uniforms first, then turns each block
//! of 16 into normals with Box-Muller, pairing element j with j+8; when the size is not a multiple of 16 the last 16
//! elements are drawn again and recomputed (aten/src/ATen/native/cpu/DistributionTemplates.h, `normal_fill`).
//! Smaller tensors go element by element through the double-precision `normal_distribution`, which keeps the
//! spare sine value in the generator for the next draw.

use ndarray::{ArrayD, IxDyn};

const STATE_LEN: usize = 624;
const SHIFT: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// MT19937 as PyTorch seeds and steps it.
#[derive(Clone)]
struct Mt19937 {
    state: [u32; STATE_LEN],
    index: usize,
}

impl Mt19937 {
    fn new(seed: u64) -> Self {
        let mut state = [0u32; STATE_LEN];
        // PyTorch's init_with_uint32: only the low 32 bits of a 64-bit seed matter.
        state[0] = seed as u32;
        for i in 1..STATE_LEN {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { state, index: STATE_LEN }
    }

    fn twist(&mut self) {
        for i in 0..STATE_LEN {
            let y = (self.state[i] & UPPER_MASK) | (self.state[(i + 1) % STATE_LEN] & LOWER_MASK);
            let mut next = self.state[(i + SHIFT) % STATE_LEN] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= MATRIX_A;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= STATE_LEN {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }
}

/// A generator that draws the same numbers as `torch.Generator("cpu").manual_seed(seed)`.
#[derive(Clone)]
pub struct TorchGenerator {
    engine: Mt19937,
    /// The spare normal of the double-precision Box-Muller path (`next_double_normal_sample` in PyTorch).
    spare_normal: Option<f64>,
    seed: u64,
}

impl TorchGenerator {
    pub fn new(seed: u64) -> Self {
        TorchGenerator { engine: Mt19937::new(seed), spare_normal: None, seed }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// `uniform_real_distribution<float>`: 24 random bits scaled to [0, 1).
    fn uniform_f32(&mut self) -> f32 {
        (self.engine.next_u32() & ((1 << 24) - 1)) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// `uniform_real_distribution<double>`: 53 bits of a 64-bit draw (first 32-bit draw is the high word).
    fn uniform_f64(&mut self) -> f64 {
        let high = self.engine.next_u32() as u64;
        let low = self.engine.next_u32() as u64;
        let bits = (high << 32) | low;
        (bits & ((1u64 << 53) - 1)) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn normal_f64(&mut self) -> f64 {
        if let Some(spare) = self.spare_normal.take() {
            return spare;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let radius = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.spare_normal = Some(radius * theta.sin());
        radius * theta.cos()
    }

    /// Fills `out` as `torch.randn(out.len())` would.
    pub fn fill_randn(&mut self, out: &mut [f32]) {
        let size = out.len();
        if size < 16 {
            for value in out.iter_mut() {
                *value = self.normal_f64() as f32;
            }
            return;
        }
        for value in out.iter_mut() {
            *value = self.uniform_f32();
        }
        for start in (0..=size - 16).step_by(16) {
            box_muller_16(&mut out[start..start + 16]);
        }
        if !size.is_multiple_of(16) {
            let tail = &mut out[size - 16..];
            for value in tail.iter_mut() {
                *value = self.uniform_f32();
            }
            box_muller_16(tail);
        }
    }

    /// `torch.randn(shape, generator=g, dtype=torch.float32)`.
    pub fn randn(&mut self, shape: &[usize]) -> ArrayD<f32> {
        let mut values = vec![0.0f32; shape.iter().product()];
        self.fill_randn(&mut values);
        ArrayD::from_shape_vec(IxDyn(shape), values).expect("shape matches the number of values drawn")
    }
}

/// `normal_fill_16`: element j and j+8 of a block of 16 uniforms become a pair of normals, in float32.
fn box_muller_16(block: &mut [f32]) {
    for j in 0..8 {
        let u1 = 1.0 - block[j];
        let u2 = block[j + 8];
        let radius = (-2.0 * u1.ln()).sqrt();
        let theta = (2.0 * std::f64::consts::PI * u2 as f64) as f32;
        block[j] = radius * theta.cos();
        block[j + 8] = radius * theta.sin();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_reference_sequence() {
        // The C++ standard fixes the 10000th output of std::mt19937 with the default seed 5489.
        let mut engine = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = engine.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn only_the_low_32_bits_of_the_seed_matter() {
        let mut a = TorchGenerator::new(5);
        let mut b = TorchGenerator::new((1u64 << 32) + 5);
        assert_eq!(a.randn(&[40]), b.randn(&[40]));
    }

    #[test]
    fn spare_normal_carries_over_between_small_draws() {
        let mut split = TorchGenerator::new(3);
        let first = split.randn(&[1]);
        let second = split.randn(&[1]);
        let mut joint = TorchGenerator::new(3);
        let both = joint.randn(&[2]);
        assert_eq!(first[[0]], both[[0]]);
        assert_eq!(second[[0]], both[[1]]);
    }
}
