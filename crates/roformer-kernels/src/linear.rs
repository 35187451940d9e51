//! An affine map `x·W + b` as one strided GEMM: the output rows start as copies of the
//! bias and the product is accumulated onto them (`β = 1`), so there is no separate
//! broadcast add, and a `[batch, seq, in]` input is multiplied as one `[batch·seq, in]`
//! matrix (the GEMM splits it across rayon's threads) rather than batch by batch.
//!
//! burn's `Linear` (`y = x·W + b`, `W` stored `[d_in, d_out]`) and a tied output embedding
//! (`W` = `Eᵀ`, a transposed view) are both this. [`affine_backward`] is its gradient:
//! `dX = dY·Wᵀ`, `dW = Xᵀ·dY`, `db = Σ_rows dY`, each product on the arrays in place
//! (burn's generic backward copies the transposed operands first).
//!
//! For inference two layers also take the bias in the pass that follows the product
//! instead: [`affine_gelu`] (HF `RoFormerIntermediate`: dense then
//! GELU) and [`affine_add_layer_norm`] (HF `RoFormerSelfOutput` / `RoFormerOutput`: dense,
//! then `LayerNorm(· + residual)`). The product then writes its output without reading it
//! (no bias rows filled first and read back), and the bias costs nothing in a pass that
//! reads every element anyway.

use rayon::prelude::*;

use crate::buffer::Unwritten;
use crate::dispatch::{self, Kernel};
use crate::gelu::gelu_with_bias_in_place;
use crate::gemm::{Threads, sgemm};
use crate::layer_norm::normalise;
use crate::{Array, row_major};

/// `x·weight (+ bias)` over the last axis of `x` (`[..., d_in]`) with `weight`
/// `[d_in, d_out]` and `bias` `[d_out]` (any strides). `None` when the shapes do not fit.
pub fn affine(x: &Array, weight: &Array, bias: Option<&Array>) -> Option<Array> {
    let output = product(x, weight, bias)?;
    dispatch::record(Kernel::Affine);
    Some(output)
}

/// `gelu(x·weight + bias)` over the last axis (shapes as [`affine`]).
pub fn affine_gelu(x: &Array, weight: &Array, bias: &Array) -> Option<Array> {
    let (mut product, bias) = product_without_bias(x, weight, bias)?;
    dispatch::record(Kernel::AffineGelu);
    let values = product.as_slice_mut().expect("a fresh row-major product");
    gelu_with_bias_in_place(values, &bias);
    Some(product)
}

/// `LayerNorm(x·weight + bias + residual)` over the last axis (`gamma`, `beta`, `epsilon`
/// as [`crate::layer_norm`]; shapes as [`affine`], `residual` shaped like the output).
#[allow(clippy::too_many_arguments)]
pub fn affine_add_layer_norm(
    x: &Array,
    weight: &Array,
    bias: &Array,
    residual: &Array,
    gamma: &Array,
    beta: &Array,
    epsilon: f32,
) -> Option<Array> {
    let (product, bias) = product_without_bias(x, weight, bias)?;
    let (output, _) = normalise(
        &product,
        Some(residual),
        Some(&bias),
        gamma,
        Some(beta),
        epsilon,
        false,
    )?;
    dispatch::record(Kernel::AffineAddLayerNorm);
    Some(output)
}

/// `x·weight` (written without reading the output) and the bias values, for the
/// epilogues: `None` unless `bias` is `[d_out]` and the product's shapes fit.
fn product_without_bias(x: &Array, weight: &Array, bias: &Array) -> Option<(Array, Vec<f32>)> {
    if weight.ndim() != 2 || bias.shape() != [weight.shape()[1]] {
        return None;
    }
    Some((product(x, weight, None)?, bias.iter().copied().collect()))
}

/// The forward product on arrays.
fn product(x: &Array, weight: &Array, bias: Option<&Array>) -> Option<Array> {
    if weight.ndim() != 2 {
        return None;
    }
    let (d_in, d_out) = (weight.shape()[0], weight.shape()[1]);
    let mut shape = x.shape().to_vec();
    if shape.last() != Some(&d_in) || d_in == 0 {
        return None;
    }
    let bias = match bias {
        Some(bias) if bias.shape() != [d_out] => return None,
        Some(bias) => Some(bias.as_standard_layout()),
        None => None,
    };
    let x = x.as_standard_layout();
    let rows = x.len() / d_in;
    let mut out = Unwritten::new(rows * d_out);
    if let Some(bias) = &bias {
        let bias = bias.as_slice()?;
        // Filled in parallel: for the vocabulary projection this buffer is tens of MB, and
        // its first touch (page faults) is a sizeable serial cost otherwise.
        out.slots().par_chunks_mut(d_out).for_each(|row| {
            for (slot, &b) in row.iter_mut().zip(bias) {
                slot.write(b);
            }
        });
    }
    // With a bias the product is added onto its rows (beta = 1); without, it is written
    // without reading the destination (beta = 0).
    let beta = if bias.is_some() { 1.0 } else { 0.0 };
    // SAFETY: `x` is row-major `[rows, d_in]`, `weight` is `[d_in, d_out]` with its own
    // strides, `out` holds `rows·d_out` elements (read only with beta = 1, after the bias
    // rows wrote them all); all outlive the call.
    unsafe {
        sgemm(
            rows,
            d_in,
            d_out,
            1.0,
            x.as_ptr(),
            d_in as isize,
            1,
            weight.as_ptr(),
            weight.strides()[0],
            weight.strides()[1],
            beta,
            out.as_mut_ptr(),
            d_out as isize,
            1,
            Threads::All,
        );
    }
    // SAFETY: the bias rows or the product (beta = 0) wrote every element.
    let out = unsafe { out.assume_written() };
    *shape.last_mut()? = d_out;
    Some(row_major(out, &shape))
}

/// The gradients [`affine_backward`] was asked for.
#[derive(Debug, Default)]
pub struct AffineGradients {
    /// `dY·Wᵀ`, shaped like x.
    pub x: Option<Array>,
    /// `Xᵀ·dY`, `[d_in, d_out]`.
    pub weight: Option<Array>,
    /// `Σ_rows dY`, `[d_out]`.
    pub bias: Option<Array>,
}

/// The gradients of [`affine`]'s x, weight and bias (each when its flag in `wanted` is set)
/// from the output gradient `d_y` (shaped like the output). `None` when shapes do not fit.
pub fn affine_backward(
    x: &Array,
    weight: &Array,
    d_y: &Array,
    wanted: [bool; 3],
) -> Option<AffineGradients> {
    if weight.ndim() != 2 {
        return None;
    }
    let (d_in, d_out) = (weight.shape()[0], weight.shape()[1]);
    let mut output_shape = x.shape().to_vec();
    *output_shape.last_mut()? = d_out;
    if x.shape().last() != Some(&d_in) || d_y.shape() != output_shape.as_slice() {
        return None;
    }
    dispatch::record(Kernel::AffineBackward);
    let x = x.as_standard_layout();
    let d_y = d_y.as_standard_layout();
    let d_y = d_y.as_slice().expect("standard layout");
    let rows = x.len() / d_in.max(1);
    let mut gradients = AffineGradients::default();
    if wanted[0] {
        let mut d_x = Unwritten::new(rows * d_in);
        // SAFETY: `d_y` is row-major `[rows, d_out]`, `weight` `[d_in, d_out]` with its own
        // strides (read transposed), `d_x` holds `rows·d_in` elements; all outlive the call.
        unsafe {
            sgemm(
                rows,
                d_out,
                d_in,
                1.0,
                d_y.as_ptr(),
                d_out as isize,
                1,
                weight.as_ptr(),
                weight.strides()[1],
                weight.strides()[0],
                0.0,
                d_x.as_mut_ptr(),
                d_in as isize,
                1,
                Threads::All,
            );
        }
        // SAFETY: the product (beta = 0) wrote all `rows·d_in` elements.
        gradients.x = Some(row_major(unsafe { d_x.assume_written() }, x.shape()));
    }
    if wanted[1] {
        let mut d_weight = Unwritten::new(d_in * d_out);
        // SAFETY: `x` is row-major `[rows, d_in]` (read transposed), `d_y` row-major
        // `[rows, d_out]`, `d_weight` holds `d_in·d_out` elements; all outlive the call.
        unsafe {
            sgemm(
                d_in,
                rows,
                d_out,
                1.0,
                x.as_ptr(),
                1,
                d_in as isize,
                d_y.as_ptr(),
                d_out as isize,
                1,
                0.0,
                d_weight.as_mut_ptr(),
                d_out as isize,
                1,
                Threads::All,
            );
        }
        // SAFETY: the product (beta = 0) wrote all `d_in·d_out` elements.
        gradients.weight = Some(row_major(
            unsafe { d_weight.assume_written() },
            &[d_in, d_out],
        ));
    }
    if wanted[2] {
        let mut d_bias = vec![0f32; d_out];
        for row in d_y.chunks_exact(d_out) {
            for (sum, &g) in d_bias.iter_mut().zip(row) {
                *sum += g;
            }
        }
        gradients.bias = Some(row_major(d_bias, &[d_out]));
    }
    Some(gradients)
}
