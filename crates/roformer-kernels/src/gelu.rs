//! GELU with the exact (erf) form, `x·½·(1 + erf(x/√2))` — HF `ACT2FN["gelu"]`, PyTorch
//! `nn.functional.gelu` — in one pass.
//!
//! erf is a rational approximation (Eigen's, absolute error ≤ 3.4e-7 here, see [`erf`]);
//! burn-ndarray evaluates erf in f64 through `libm`, one element at a time. For inference
//! the activation overwrites its input when no one else holds it (the output of the
//! intermediate linear layer), which saves allocating and first-touching a buffer the size
//! of the FFN activations.

use rayon::prelude::*;

use crate::dispatch::{self, Kernel};
use crate::exp::exp;
use crate::vectorize::multiversion;
use crate::{Array, row_major};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `gelu(x)` elementwise, in place when `x` holds the only reference to its buffer.
pub fn gelu(x: Array) -> Array {
    dispatch::record(Kernel::Gelu);
    map_in_place(x, gelu_in_place)
}

/// `gradient · gelu′(x)`, elementwise: the gradient of [`gelu`]. `None` when the shapes
/// differ.
pub fn gelu_backward(x: &Array, gradient: &Array) -> Option<Array> {
    if x.shape() != gradient.shape() {
        return None;
    }
    dispatch::record(Kernel::GeluBackward);
    Some(map(x, Some(gradient), |x, gradient, out| {
        gelu_derivative_slice(x, gradient.expect("passed"), out)
    }))
}

/// Applies `kernel(x, second, out)` to row-major copies of `x` (and `second`, same shape)
/// in parallel chunks.
fn map(
    x: &Array,
    second: Option<&Array>,
    kernel: impl Fn(&[f32], Option<&[f32]>, &mut [f32]) + Sync,
) -> Array {
    let x = x.as_standard_layout();
    let second = second.map(|s| s.as_standard_layout());
    let input = x.as_slice().expect("standard layout");
    let second = second
        .as_ref()
        .map(|s| s.as_slice().expect("standard layout"));
    let mut out = vec![0f32; input.len()];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(task, out)| {
            let range = task * CHUNK..task * CHUNK + out.len();
            kernel(&input[range.clone()], second.map(|s| &s[range]), out)
        });
    row_major(out, x.shape())
}

/// Applies `kernel` to the values of `array` in parallel chunks, in place unless the
/// buffer is shared or strided (then on a row-major copy).
fn map_in_place(mut array: Array, kernel: impl Fn(&mut [f32]) + Sync) -> Array {
    if !array.is_standard_layout() {
        array = array.as_standard_layout().into_shared();
    }
    // Copy-on-write: a shared buffer is copied here, a unique one is written in place.
    let values = array.as_slice_mut().expect("standard layout");
    values.par_chunks_mut(CHUNK).for_each(&kernel);
    array
}

/// `values ← gelu(values + bias)` row by row (`bias` is one row), in parallel: the
/// activation of a product written without its bias ([`crate::linear_gelu`]).
pub(crate) fn gelu_with_bias_in_place(values: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        return;
    }
    let rows_per_task = (CHUNK / bias.len()).max(1);
    values
        .par_chunks_mut(rows_per_task * bias.len())
        .for_each(|rows| add_bias_gelu_rows(rows, bias));
}

multiversion! {
    fn add_bias_gelu_rows(rows: &mut [f32], bias: &[f32]) {
        for row in rows.chunks_exact_mut(bias.len()) {
            for (x, &b) in row.iter_mut().zip(bias) {
                let y = *x + b;
                *x = y * normal_cdf(y);
            }
        }
    }
}

/// Φ(x), the standard normal distribution function.
#[inline(always)]
fn normal_cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * core::f32::consts::FRAC_1_SQRT_2))
}

multiversion! {
    fn gelu_in_place(values: &mut [f32]) {
        for x in values.iter_mut() {
            *x *= normal_cdf(*x);
        }
    }
}

multiversion! {
    /// `out = gradient · (Φ(x) + x·φ(x))`, φ the standard normal density.
    fn gelu_derivative_slice(input: &[f32], gradient: &[f32], out: &mut [f32]) {
        // 1/√(2π)
        const DENSITY_SCALE: f32 = 0.398_942_3;
        for ((y, &x), &g) in out.iter_mut().zip(input).zip(gradient) {
            let cdf = normal_cdf(x);
            let density = DENSITY_SCALE * exp(-0.5 * x * x);
            *y = g * (cdf + x * density);
        }
    }
}

/// erf as a rational function, `x·P(x²)/Q(x²)` on `x` clamped to [−4, 4] (beyond, erf is
/// ±1 in f32): Eigen's `generic_fast_erf_float`, which TensorFlow and XLA use. One division
/// and no `exp`, cheaper than Abramowitz & Stegun 7.1.26 (the form PyTorch's vectorised
/// kernel evaluates) and as accurate.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -1.609_603_3e-2,
        -2.954_6e-3,
        -7.349_906_3e-4,
        -5.692_506_4e-5,
        -2.101_024e-6,
        2.770_681_4e-8,
        -2.726_142_3e-10,
    ];
    const BETA: [f32; 5] = [
        -1.426_473_9e-2,
        -7.373_329e-3,
        -1.682_827e-3,
        -2.133_740_6e-4,
        -1.456_607_2e-5,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = ALPHA.iter().rev().fold(0.0, |acc, &a| acc * x2 + a);
    let q = BETA.iter().rev().fold(0.0, |acc, &b| acc * x2 + b);
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::erf;

    /// erf in f64: Taylor series for |x| ≤ 3, the asymptotic series of erfc beyond.
    fn reference_erf(x: f64) -> f64 {
        let a = x.abs();
        let value = if a <= 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-18 {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / core::f64::consts::PI.sqrt()
        } else {
            let inverse_square = 1.0 / (a * a);
            let series = 1.0 - inverse_square / 2.0 + 0.75 * inverse_square.powi(2)
                - 1.875 * inverse_square.powi(3);
            1.0 - (-a * a).exp() / (a * core::f64::consts::PI.sqrt()) * series
        };
        value.copysign(x)
    }

    /// Tolerance: f32 rounding of the rational function (worst over this grid: 3.4e-7
    /// absolute, near |x| ≈ 1 where erf's slope is largest), with margin; A&S 7.1.26 reaches
    /// 4.7e-7 on the same grid.
    #[test]
    fn erf_is_within_five_e_minus_seven_of_the_series() {
        let grid: Vec<f64> = (-8000..=8000).map(|i| i as f64 / 1000.0).collect();
        let got: Vec<f32> = grid.iter().map(|&x| erf(x as f32)).collect();
        let expected: Vec<f64> = grid.iter().map(|&x| reference_erf(x)).collect();
        roformer_testing::assert_close("erf", &got, &expected, 5e-7);
    }
}
