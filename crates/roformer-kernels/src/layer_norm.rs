//! `LayerNorm(x + residual)` in one pass per row: HF `RoFormerSelfOutput` /
//! `RoFormerOutput` after their dense layer (BERT's post-LN residual block), and
//! `RoFormerEmbeddings` (word + token-type embeddings); plain `LayerNorm(x)` for the
//! masked-LM head's transform. burn's `LayerNorm` arithmetic (biased variance, `eps`
//! inside the square root); burn's own is ~9 tensor operations, each a serial pass on
//! burn-ndarray.
//!
//! On `Autodiff<NdArray>` the backward step is recorded, from the normalised rows `x̂` and
//! `1/σ` kept by the forward: with `ĝ = dy ⊙ γ`,
//! `d(x + residual) = (ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂)) / σ`, `dγ = Σ_rows dy ⊙ x̂`,
//! `dβ = Σ_rows dy`.

use burn::backend::NdArray;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_ndarray::NdArrayTensor;
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;

use crate::autodiff::{gradient_f32, record, tracked_f32};
use crate::ndarray_bridge::{array_from_f32, ndarray_f32, tensor_from_array};
use crate::vectorize::{self, multiversion};

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

/// `γ·(y − mean(y))/√(var(y) + eps) + β` for `y = x + residual`, over the last axis.
/// `x` and `residual` row-major of equal shape, `gamma`/`beta` `[d]` (no `beta`: 0). `None`
/// unless all are f32 tensors of burn-ndarray, or of `Autodiff<NdArray>` with a `beta`
/// (then the backward step is recorded).
pub fn add_layer_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    residual: &Tensor<B, D>,
    gamma: &Tensor<B, 1>,
    beta: Option<&Tensor<B, 1>>,
    epsilon: f64,
) -> Option<Tensor<B, D>> {
    normalised_tensor(x, Some(residual), gamma, beta, epsilon)
}

/// `γ·(x − mean(x))/√(var(x) + eps) + β` over the last axis of a row-major `x`: the same as
/// [`add_layer_norm`] without a residual, and with the same conditions.
pub fn layer_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    gamma: &Tensor<B, 1>,
    beta: Option<&Tensor<B, 1>>,
    epsilon: f64,
) -> Option<Tensor<B, D>> {
    normalised_tensor(x, None, gamma, beta, epsilon)
}

/// [`add_layer_norm`] with or without the residual.
fn normalised_tensor<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    residual: Option<&Tensor<B, D>>,
    gamma: &Tensor<B, 1>,
    beta: Option<&Tensor<B, 1>>,
    epsilon: f64,
) -> Option<Tensor<B, D>> {
    let epsilon = epsilon as f32;
    if let Some(x) = ndarray_f32(x) {
        let residual = match residual {
            Some(residual) => Some(ndarray_f32(residual)?),
            None => None,
        };
        let gamma = ndarray_f32(gamma)?;
        let beta = match beta {
            Some(beta) => ndarray_f32(beta)?,
            None => ArcArray::zeros(IxDyn(&[gamma.len()])),
        };
        let residual = residual.as_ref();
        let (output, _) = normalise(&x, residual, None, &gamma, &beta, epsilon, false)?;
        return Some(tensor_from_array(output));
    }
    let (tracked_x, x) = tracked_f32(x)?;
    let residual = match residual {
        Some(residual) => Some(tracked_f32(residual)?),
        None => None,
    };
    let (tracked_gamma, gamma) = tracked_f32(gamma)?;
    let (tracked_beta, beta) = tracked_f32(beta?)?;
    let residual_values = residual.as_ref().map(|(_, values)| values);
    let (output, kept) = normalise(&x, residual_values, None, &gamma, &beta, epsilon, true)?;
    let (normalised, inverse_std) = kept.expect("kept when asked");
    let saved = LayerNormSaved {
        normalised,
        inverse_std,
        gamma: gamma.as_standard_layout().iter().copied().collect(),
    };
    Some(match &residual {
        Some((tracked_residual, _)) => record(
            LayerNormBackward,
            saved,
            [&tracked_x, tracked_residual, &tracked_gamma, &tracked_beta],
            output,
        ),
        None => record(
            LayerNormBackward,
            saved,
            [&tracked_x, &tracked_gamma, &tracked_beta],
            output,
        ),
    })
}

/// The output and, when `keep`, the normalised rows `x̂` and each row's `1/σ`.
#[allow(clippy::type_complexity)]
pub(crate) fn normalise(
    x: &ArcArray<f32, IxDyn>,
    residual: Option<&ArcArray<f32, IxDyn>>,
    bias: Option<&[f32]>,
    gamma: &ArcArray<f32, IxDyn>,
    beta: &ArcArray<f32, IxDyn>,
    epsilon: f32,
    keep: bool,
) -> Option<(ArcArray<f32, IxDyn>, Option<(Vec<f32>, Vec<f32>)>)> {
    let shape = x.shape().to_vec();
    let d = *shape.last()?;
    let residual_fits = residual.is_none_or(|r| r.shape() == shape.as_slice());
    let bias_fits = bias.is_none_or(|b| b.len() == d);
    if !residual_fits || !bias_fits || gamma.shape() != [d] || beta.shape() != [d] || d == 0 {
        return None;
    }
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
    let output = array_from_f32(out, &shape);
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

/// What the forward keeps for the backward step.
#[derive(Clone)]
struct LayerNormSaved {
    normalised: Vec<f32>,
    inverse_std: Vec<f32>,
    gamma: Vec<f32>,
}

impl core::fmt::Debug for LayerNormSaved {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LayerNormSaved")
            .field("rows", &self.inverse_std.len())
            .field("width", &self.gamma.len())
            .finish()
    }
}

/// Records the gradients of the inputs (x and the residual, or x alone: the first `N − 2`
/// parents, which all get the same gradient), γ and β.
#[derive(Debug)]
struct LayerNormBackward;

impl<const N: usize> Backward<NdArray, N> for LayerNormBackward {
    type State = LayerNormSaved;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let saved = ops.state;
        let gradient = grads.consume::<NdArray>(&ops.node);
        let gradient = gradient_f32(gradient);
        let shape = gradient.shape().to_vec();
        let gradient = gradient.as_standard_layout();
        let d_y = gradient.as_slice().expect("standard layout");
        let d = saved.gamma.len();
        let mut d_input = vec![0f32; d_y.len()];
        let chunk = ROWS_PER_TASK * d;
        d_input
            .par_chunks_mut(chunk)
            .zip(saved.inverse_std.par_chunks(ROWS_PER_TASK))
            .enumerate()
            .for_each(|(task, (d_input, inverse_std))| {
                let range = task * chunk..task * chunk + d_input.len();
                input_gradient_rows(
                    &d_y[range.clone()],
                    &saved.normalised[range],
                    &saved.gamma,
                    inverse_std,
                    d_input,
                );
            });
        let (mut d_gamma, mut d_beta) = (vec![0f32; d], vec![0f32; d]);
        for (g, n) in d_y.chunks_exact(d).zip(saved.normalised.chunks_exact(d)) {
            for (((dg, db), &g), &n) in d_gamma.iter_mut().zip(d_beta.iter_mut()).zip(g).zip(n) {
                *dg += g * n;
                *db += g;
            }
        }
        let d_input = array_from_f32(d_input, &shape);
        let (d_gamma, d_beta) = (array_from_f32(d_gamma, &[d]), array_from_f32(d_beta, &[d]));
        for (index, parent) in ops.parents.into_iter().enumerate() {
            let Some(node) = parent else { continue };
            let gradient = match N - index {
                2 => d_gamma.clone(),
                1 => d_beta.clone(),
                _ => d_input.clone(),
            };
            grads.register::<NdArray>(node.id, NdArrayTensor::from(gradient));
        }
    }
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
