//! `LayerNorm(x + residual)` in one pass per row: HF `RoFormerSelfOutput` /
//! `RoFormerOutput` after their dense layer (BERT's post-LN residual block), and
//! `RoFormerEmbeddings` (word + token-type embeddings); plain `LayerNorm(x)` for the
//! masked-LM head's transform. burn's `LayerNorm` arithmetic (biased variance, `eps`
//! inside the square root); burn's own is ~9 tensor operations, each a serial pass on
//! burn-ndarray.
//!
//! [`layer_norm_backward`] is its gradient, from the normalised rows `x̂` and `1/σ` kept by
//! the forward: with `ĝ = dy ⊙ γ`,
//! `d(x + residual) = (ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂)) / σ`, `dγ = Σ_rows dy ⊙ x̂`,
//! `dβ = Σ_rows dy`.

use rayon::prelude::*;

use crate::dispatch::{self, Kernel};
use crate::vectorize::{self, multiversion};
use crate::{Array, row_major};

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

/// What [`layer_norm`] returns.
#[derive(Debug)]
pub struct LayerNormOutput {
    /// `γ·x̂ + β`, shaped like x.
    pub output: Array,
    /// The normalised rows `x̂`, when asked for (training).
    pub normalised: Option<Array>,
    /// Each row's `1/σ`, shaped like x with a last axis of 1, when asked for.
    pub inverse_std: Option<Array>,
}

/// `γ·(y − mean(y))/√(var(y) + eps) + β` over the last axis, for `y = x (+ residual)`
/// (residual shaped like x), `gamma`/`beta` `[d]` (no `beta`: 0), any strides. With
/// `keep`, `x̂` and `1/σ` are returned for [`layer_norm_backward`]. `None` when the shapes
/// do not fit.
pub fn layer_norm(
    x: &Array,
    residual: Option<&Array>,
    gamma: &Array,
    beta: Option<&Array>,
    epsilon: f32,
    keep: bool,
) -> Option<LayerNormOutput> {
    let (output, kept) = normalise(x, residual, None, gamma, beta, epsilon, keep)?;
    dispatch::record(Kernel::LayerNorm);
    let (normalised, inverse_std) = match kept {
        Some((normalised, inverse_std)) => {
            let mut std_shape = x.shape().to_vec();
            *std_shape.last_mut()? = 1;
            (
                Some(row_major(normalised, x.shape())),
                Some(row_major(inverse_std, &std_shape)),
            )
        }
        None => (None, None),
    };
    Some(LayerNormOutput {
        output,
        normalised,
        inverse_std,
    })
}

/// The output and, when `keep`, the normalised rows `x̂` and each row's `1/σ`.
#[allow(clippy::type_complexity)]
pub(crate) fn normalise(
    x: &Array,
    residual: Option<&Array>,
    bias: Option<&[f32]>,
    gamma: &Array,
    beta: Option<&Array>,
    epsilon: f32,
    keep: bool,
) -> Option<(Array, Option<(Vec<f32>, Vec<f32>)>)> {
    let shape = x.shape().to_vec();
    let d = *shape.last()?;
    let residual_fits = residual.is_none_or(|r| r.shape() == shape.as_slice());
    let bias_fits = bias.is_none_or(|b| b.len() == d);
    let beta_fits = beta.is_none_or(|b| b.shape() == [d]);
    if !residual_fits || !bias_fits || gamma.shape() != [d] || !beta_fits || d == 0 {
        return None;
    }
    let zeros;
    let beta = match beta {
        Some(beta) => beta,
        None => {
            zeros = Array::zeros(ndarray::IxDyn(&[d]));
            &zeros
        }
    };
    let x = x.as_standard_layout();
    let residual = residual.map(|r| r.as_standard_layout());
    let xs = x.as_slice()?;
    let rs = match &residual {
        Some(residual) => Some(residual.as_slice()?),
        None => None,
    };
    let (gamma, beta) = (gamma.as_standard_layout(), beta.as_standard_layout());
    let (gamma, beta) = (gamma.as_slice()?, beta.as_slice()?);
    let rows = xs.len() / d;
    let mut out = vec![0f32; xs.len()];
    let mut normalised = if keep {
        vec![0f32; xs.len()]
    } else {
        Vec::new()
    };
    let mut inverse_std = vec![0f32; rows];
    let chunk = ROWS_PER_TASK * d;
    out.par_chunks_mut(chunk)
        .zip(inverse_std.par_chunks_mut(ROWS_PER_TASK))
        .enumerate()
        .for_each(|(task, (out, inverse_std))| {
            let range = task * chunk..task * chunk + out.len();
            let residual = rs.map(|rs| &rs[range.clone()]);
            normalise_rows(&xs[range], residual, bias, d, epsilon, out, inverse_std);
        });
    if keep {
        normalised.copy_from_slice(&out);
    }
    scale_shift_rows(&mut out, gamma, beta);
    let output = row_major(out, &shape);
    Some((output, keep.then_some((normalised, inverse_std))))
}

multiversion! {
    /// `out = (y − mean(y))/σ` for `y = x (+ residual) (+ bias)`, and each row's `1/σ`.
    fn normalise_rows(
        x: &[f32],
        residual: Option<&[f32]>,
        bias: Option<&[f32]>,
        d: usize,
        epsilon: f32,
        out: &mut [f32],
        inverse_std: &mut [f32],
    ) {
        let rows = out.chunks_exact_mut(d).zip(x.chunks_exact(d)).enumerate();
        for ((row, (y, x)), inverse) in rows.zip(inverse_std.iter_mut()) {
            match residual {
                Some(residual) => {
                    let r = &residual[row * d..(row + 1) * d];
                    for ((y, &x), &r) in y.iter_mut().zip(x).zip(r) {
                        *y = x + r;
                    }
                }
                None => y.copy_from_slice(x),
            }
            if let Some(bias) = bias {
                for (y, &b) in y.iter_mut().zip(bias) {
                    *y += b;
                }
            }
            let mean = vectorize::sum(y) / d as f32;
            for y in y.iter_mut() {
                *y -= mean;
            }
            let variance = vectorize::sum_of_squares(y) / d as f32;
            *inverse = 1.0 / (variance + epsilon).sqrt();
            for y in y.iter_mut() {
                *y *= *inverse;
            }
        }
    }
}

multiversion! {
    /// `out = out ⊙ γ + β` row by row.
    fn scale_shift_rows(out: &mut [f32], gamma: &[f32], beta: &[f32]) {
        for row in out.chunks_exact_mut(gamma.len()) {
            for ((y, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
                *y = *y * g + b;
            }
        }
    }
}

/// The gradients of [`layer_norm`]'s input (x, and the residual: the same), γ and β.
#[derive(Debug)]
pub struct LayerNormGradients {
    pub input: Array,
    pub gamma: Array,
    pub beta: Array,
}

/// The gradients of [`layer_norm`] from the output gradient `d_y` and what the forward
/// kept (`x̂`, `1/σ`) with its `gamma`. `None` when the shapes do not fit.
pub fn layer_norm_backward(
    d_y: &Array,
    normalised: &Array,
    inverse_std: &Array,
    gamma: &Array,
) -> Option<LayerNormGradients> {
    let shape = d_y.shape().to_vec();
    let d = *shape.last()?;
    let rows = d_y.len() / d.max(1);
    if normalised.shape() != shape.as_slice() || gamma.shape() != [d] || inverse_std.len() != rows {
        return None;
    }
    dispatch::record(Kernel::LayerNormBackward);
    let gradient = d_y.as_standard_layout();
    let d_y = gradient.as_slice().expect("standard layout");
    let normalised = normalised.as_standard_layout();
    let normalised = normalised.as_slice().expect("standard layout");
    let inverse_std = inverse_std.as_standard_layout();
    let inverse_std = inverse_std.as_slice().expect("standard layout");
    let gamma = gamma.as_standard_layout();
    let gamma = gamma.as_slice().expect("standard layout");
    let mut d_input = vec![0f32; d_y.len()];
    let chunk = ROWS_PER_TASK * d;
    d_input
        .par_chunks_mut(chunk)
        .zip(inverse_std.par_chunks(ROWS_PER_TASK))
        .enumerate()
        .for_each(|(task, (d_input, inverse_std))| {
            let range = task * chunk..task * chunk + d_input.len();
            input_gradient_rows(
                &d_y[range.clone()],
                &normalised[range],
                gamma,
                inverse_std,
                d_input,
            );
        });
    let (mut d_gamma, mut d_beta) = (vec![0f32; d], vec![0f32; d]);
    for (g, n) in d_y.chunks_exact(d).zip(normalised.chunks_exact(d)) {
        for (((dg, db), &g), &n) in d_gamma.iter_mut().zip(d_beta.iter_mut()).zip(g).zip(n) {
            *dg += g * n;
            *db += g;
        }
    }
    Some(LayerNormGradients {
        input: row_major(d_input, &shape),
        gamma: row_major(d_gamma, &[d]),
        beta: row_major(d_beta, &[d]),
    })
}

multiversion! {
    /// `(ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂)) / σ` row by row, `ĝ = dy ⊙ γ`.
    fn input_gradient_rows(
        d_y: &[f32],
        normalised: &[f32],
        gamma: &[f32],
        inverse_std: &[f32],
        out: &mut [f32],
    ) {
        let d = gamma.len();
        let rows = out.chunks_exact_mut(d).zip(d_y.chunks_exact(d)).zip(normalised.chunks_exact(d));
        for (((out, g), n), &inverse) in rows.zip(inverse_std) {
            for ((o, &g), &w) in out.iter_mut().zip(g).zip(gamma) {
                *o = g * w;
            }
            let mean_g = vectorize::sum(out) / d as f32;
            let mean_gn = vectorize::dot(out, n) / d as f32;
            for (o, &n) in out.iter_mut().zip(n) {
                *o = (*o - mean_g - n * mean_gn) * inverse;
            }
        }
    }
}
