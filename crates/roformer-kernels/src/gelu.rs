//! GELU with the exact (erf) form, `x·½·(1 + erf(x/√2))` — HF `ACT2FN["gelu"]`, PyTorch
//! `nn.functional.gelu` — in one pass.
//!
//! erf is Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), the approximation PyTorch's
//! vectorised CPU kernels use (`Vectorized<float>::erf`), with a vectorisable `exp`;
//! burn-ndarray evaluates erf in f64 through `libm`, one element at a time.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use crate::exp::exp;
use ndarray::{ArcArray, IxDyn};

use crate::autodiff::{GeluBackward, record, tracked_f32};
use crate::ndarray_bridge::{array_from_f32, ndarray_f32, tensor_from_array};
use crate::vectorize::multiversion;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `gelu(x)` elementwise for an f32 tensor of burn-ndarray or of `Autodiff<NdArray>`
/// (where its backward step is recorded); `None` otherwise.
pub fn gelu<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Option<Tensor<B, D>> {
    if let Some(x) = ndarray_f32(x) {
        return Some(tensor_from_array(map(&x, None, gelu_slice)));
    }
    let (tracked, x) = tracked_f32(x)?;
    let output = map(&x, None, gelu_slice);
    Some(record(GeluBackward, x, [&tracked], output))
}

/// `gradient · gelu′(x)`, elementwise.
pub(crate) fn gelu_derivative_times(
    x: &ArcArray<f32, IxDyn>,
    gradient: &ArcArray<f32, IxDyn>,
) -> ArcArray<f32, IxDyn> {
    map(x, Some(gradient), |x, gradient, out| {
        gelu_derivative_slice(x, gradient.expect("passed"), out)
    })
}

/// Applies `kernel(x, second, out)` to row-major copies of `x` (and `second`, same shape)
/// in parallel chunks.
fn map(
    x: &ArcArray<f32, IxDyn>,
    second: Option<&ArcArray<f32, IxDyn>>,
    kernel: impl Fn(&[f32], Option<&[f32]>, &mut [f32]) + Sync,
) -> ArcArray<f32, IxDyn> {
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
    array_from_f32(out, x.shape())
}

multiversion! {
    fn gelu_slice(input: &[f32], _unused: Option<&[f32]>, out: &mut [f32]) {
        for (y, &x) in out.iter_mut().zip(input) {
            *y = 0.5 * x * (1.0 + erf(x * core::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

multiversion! {
    /// `out = gradient · (Φ(x) + x·φ(x))`, φ the standard normal density.
    fn gelu_derivative_slice(input: &[f32], gradient: &[f32], out: &mut [f32]) {
        // 1/√(2π)
        const DENSITY_SCALE: f32 = 0.398_942_3;
        for ((y, &x), &g) in out.iter_mut().zip(input).zip(gradient) {
            let cdf = 0.5 * (1.0 + erf(x * core::f32::consts::FRAC_1_SQRT_2));
            let density = DENSITY_SCALE * exp(-0.5 * x * x);
            *y = g * (cdf + x * density);
        }
    }
}

/// erf by Abramowitz & Stegun 7.1.26.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let magnitude = x.abs();
    let t = 1.0 / (1.0 + P * magnitude);
    let polynomial = A.iter().rev().fold(0.0, |accumulated, &coefficient| {
        accumulated * t + coefficient
    });
    let value = 1.0 - polynomial * t * exp(-magnitude * magnitude);
    value.copysign(x)
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

    /// Tolerance: A&S 7.1.26's bound (1.5e-7) plus f32 rounding in `1 − r·t·e^(−x²)`,
    /// which cancels to a few ulp of 1 near x = 0 (measured worst: 4.7e-7).
    #[test]
    fn erf_is_within_the_abramowitz_stegun_bound() {
        let mut worst: f64 = 0.0;
        for i in -8000..=8000 {
            let x = i as f64 / 1000.0;
            worst = worst.max((erf(x as f32) as f64 - reference_erf(x)).abs());
        }
        assert!(worst < 6e-7, "worst |erf - reference| = {worst:e}");
    }
}
