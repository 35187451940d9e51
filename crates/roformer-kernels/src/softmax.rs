//! The attention softmax over rows of scores, with the key bias added in the same pass as
//! the maximum, and `exp` and its sum in one pass: HF `RoFormerSelfAttention.forward`'s
//! `scores + attention_mask` then `softmax(dim=-1)`.
//!
//! Two passes per row, where separate tensor operations make one each of bias, max, exp, sum
//! and normalise. When the probabilities themselves are not needed (inference), the division
//! by the row sum is left to the caller, which applies it to the much smaller
//! `probabilities·v` rows.

use crate::exp::exp;
use crate::vectorize::multiversion;

/// Unnormalised probabilities `e^(s − max)` below this are stored as 0. Such a key changes no
/// f32 sum it enters (the row's largest is 1), but products with it go subnormal, and slow.
const NEGLIGIBLE: f32 = 1e-30;

/// Lanes of the row loops (one AVX-512 register).
const LANES: usize = 16;

/// What [`softmax_rows`] leaves in the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Normalise {
    /// Probabilities: each row divided by its sum.
    Rows,
    /// `e^(s − max)` only; the reciprocal of each row's sum goes to `inverse_sums`.
    Later,
}

multiversion! {
    /// Softmax of each row of `width` scores after adding `bias` (`width` values, or empty
    /// for none). With [`Normalise::Later`], `inverse_sums[i]` receives `1/Σ` of row `i`.
    pub(crate) fn softmax_rows(
        rows: &mut [f32],
        width: usize,
        bias: &[f32],
        normalise: Normalise,
        inverse_sums: &mut [f32],
    ) {
        for (i, row) in rows.chunks_exact_mut(width).enumerate() {
            let max = if bias.is_empty() { max(row) } else { add_and_max(row, bias) };
            let inverse = 1.0 / exp_and_sum(row, max);
            match normalise {
                Normalise::Rows => row.iter_mut().for_each(|x| *x *= inverse),
                Normalise::Later => inverse_sums[i] = inverse,
            }
        }
    }
}

/// `row += bias`, returning the new maximum (−∞ for an empty row).
#[inline(always)]
fn add_and_max(row: &mut [f32], bias: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    let mut bias_chunks = bias.chunks_exact(LANES);
    for (chunk, bias) in (&mut chunks).zip(&mut bias_chunks) {
        for ((lane, x), &b) in lanes.iter_mut().zip(chunk).zip(bias) {
            *x += b;
            *lane = lane.max(*x);
        }
    }
    let mut max = lanes.into_iter().fold(f32::NEG_INFINITY, f32::max);
    for (x, &b) in chunks
        .into_remainder()
        .iter_mut()
        .zip(bias_chunks.remainder())
    {
        *x += b;
        max = max.max(*x);
    }
    max
}

/// The maximum of `row` (−∞ when empty).
#[inline(always)]
fn max(row: &[f32]) -> f32 {
    crate::vectorize::max(row)
}

/// `x ← e^(x − max)` (0 when under [`NEGLIGIBLE`]), returning the sum of the new values.
#[inline(always)]
fn exp_and_sum(row: &mut [f32], max: f32) -> f32 {
    let shifted = |x: f32| {
        let e = exp(x - max);
        if e < NEGLIGIBLE { 0.0 } else { e }
    };
    let mut lanes = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *x = shifted(*x);
            *lane += *x;
        }
    }
    let mut sum = lanes.iter().sum::<f32>();
    for x in chunks.into_remainder() {
        *x = shifted(*x);
        sum += *x;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::{Normalise, softmax_rows};

    /// f64 softmax of `scores + bias`.
    fn reference(scores: &[f32], bias: &[f32]) -> Vec<f64> {
        let shifted: Vec<f64> = scores
            .iter()
            .enumerate()
            .map(|(j, &s)| s as f64 + bias.get(j).map_or(0.0, |&b| b as f64))
            .collect();
        let max = shifted.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = shifted.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.iter().map(|e| e / sum).collect()
    }

    /// Both modes against f64, 37 keys (two full lanes and a tail), one key masked by
    /// `f32::MIN` as the encoder's padding bias; tolerance 1e-6 absolute on probabilities.
    #[test]
    fn both_modes_match_f64_softmax_with_bias() {
        let width = 37;
        let scores: Vec<f32> = (0..2 * width)
            .map(|i| ((i * 7919) % 101) as f32 / 10.0 - 5.0)
            .collect();
        let mut bias: Vec<f32> = (0..width).map(|j| (j % 3) as f32 * 0.5).collect();
        bias[36] = f32::MIN;
        for normalise in [Normalise::Rows, Normalise::Later] {
            let mut rows = scores.clone();
            let mut inverse_sums = [0f32; 2];
            softmax_rows(&mut rows, width, &bias, normalise, &mut inverse_sums);
            for (i, row) in rows.chunks_exact(width).enumerate() {
                let expected = reference(&scores[i * width..(i + 1) * width], &bias);
                let scale = match normalise {
                    Normalise::Rows => 1.0,
                    Normalise::Later => inverse_sums[i],
                };
                for (p, e) in row.iter().zip(&expected) {
                    assert!(
                        ((p * scale) as f64 - e).abs() < 1e-6,
                        "{normalise:?}: {p} vs {e}"
                    );
                }
                assert_eq!(row[36], 0.0, "the masked key has no weight");
            }
        }
        // Without a bias.
        let mut rows = scores.clone();
        softmax_rows(&mut rows, width, &[], Normalise::Rows, &mut []);
        let expected = reference(&scores[..width], &[]);
        for (p, e) in rows.iter().zip(&expected) {
            assert!((*p as f64 - e).abs() < 1e-6);
        }
    }
}
