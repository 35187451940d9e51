//! An affine map `x·W + b` as one strided GEMM: the output rows start as copies of the
//! bias and the product is accumulated onto them (`β = 1`), so there is no separate
//! broadcast add, and a `[batch, seq, in]` input is multiplied as one `[batch·seq, in]`
//! matrix (the GEMM splits it across rayon's threads) rather than batch by batch.
//!
//! burn's `Linear` (`y = x·W + b`, `W` stored `[d_in, d_out]`) and a tied output embedding
//! (`W` = `Eᵀ`, a transposed view) are both this. On `Autodiff<NdArray>` the backward step
//! is recorded too: `dX = dY·Wᵀ`, `dW = Xᵀ·dY`, `db = Σ_rows dY`, each product on the
//! arrays in place (burn's generic backward copies the transposed operands first).
//!
//! For inference (burn-ndarray without autodiff) two layers also take the bias in the pass
//! that follows the product instead: [`linear_gelu`] (HF `RoFormerIntermediate`: dense then
//! GELU) and [`linear_add_layer_norm`] (HF `RoFormerSelfOutput` / `RoFormerOutput`: dense,
//! then `LayerNorm(· + residual)`). The product then writes its output without reading it
//! (no bias rows filled first and read back), and the bias costs nothing in a pass that
//! reads every element anyway.

use burn::backend::NdArray;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_ndarray::NdArrayTensor;
use ndarray::{ArcArray, IxDyn};

use crate::autodiff::{gradient_f32, record, tracked_f32};
use crate::buffer::Unwritten;
use crate::gelu::gelu_with_bias_in_place;
use crate::gemm::{Threads, sgemm};
use crate::layer_norm::normalise;
use crate::ndarray_bridge::{array_from_f32, ndarray_f32, tensor_from_array};
use crate::parallel::SharedPtr;
use rayon::prelude::*;

/// `x·weight (+ bias)` over the last axis of `x` (`[..., d_in]`, row-major) with `weight`
/// `[d_in, d_out]` (any strides) and `bias` `[d_out]`. `None` unless all are f32 tensors of
/// burn-ndarray, or of `Autodiff<NdArray>` with a bias (then the backward step is recorded).
pub fn linear<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 2>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, D>> {
    if let Some(x) = ndarray_f32(x) {
        let weight = ndarray_f32(weight)?;
        let bias = match bias {
            Some(bias) => Some(ndarray_f32(bias)?),
            None => None,
        };
        return Some(tensor_from_array(affine(&x, &weight, bias.as_ref())?));
    }
    let (tracked_x, x) = tracked_f32(x)?;
    let (tracked_weight, weight) = tracked_f32(weight)?;
    let (tracked_bias, bias) = tracked_f32(bias?)?;
    let output = affine(&x, &weight, Some(&bias))?;
    Some(record(
        LinearBackward,
        (x, weight),
        [&tracked_x, &tracked_weight, &tracked_bias],
        output,
    ))
}

/// `gelu(x·weight + bias)` over the last axis, for inference: `None` unless all are f32
/// tensors of burn-ndarray (no autodiff) of the shapes [`linear`] takes.
pub fn linear_gelu<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 2>,
    bias: &Tensor<B, 1>,
) -> Option<Tensor<B, D>> {
    let (mut product, bias) = product_without_bias(x, weight, bias)?;
    let values = product.as_slice_mut().expect("a fresh row-major product");
    gelu_with_bias_in_place(values, &bias);
    Some(tensor_from_array(product))
}

/// `LayerNorm(x·weight + bias + residual)` over the last axis (`gamma`, `beta`, `epsilon`
/// as [`crate::add_layer_norm`]), for inference: `None` unless all are f32 tensors of
/// burn-ndarray (no autodiff) of the shapes [`linear`] and [`crate::add_layer_norm`] take.
pub fn linear_add_layer_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 2>,
    bias: &Tensor<B, 1>,
    residual: &Tensor<B, D>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    epsilon: f64,
) -> Option<Tensor<B, D>> {
    let (residual, gamma, beta) = (
        ndarray_f32(residual)?,
        ndarray_f32(gamma)?,
        ndarray_f32(beta)?,
    );
    let (product, bias) = product_without_bias(x, weight, bias)?;
    let (output, _) = normalise(
        &product,
        Some(&residual),
        Some(&bias),
        &gamma,
        &beta,
        epsilon as f32,
        false,
    )?;
    Some(tensor_from_array(output))
}

/// `x·weight` (written without reading the output) and the bias values, for the
/// epilogues: `None` unless all are f32 tensors of burn-ndarray and `bias` is `[d_out]`.
fn product_without_bias<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 2>,
    bias: &Tensor<B, 1>,
) -> Option<(ArcArray<f32, IxDyn>, Vec<f32>)> {
    let (x, weight, bias) = (ndarray_f32(x)?, ndarray_f32(weight)?, ndarray_f32(bias)?);
    if weight.ndim() != 2 || bias.shape() != [weight.shape()[1]] {
        return None;
    }
    Some((affine(&x, &weight, None)?, bias.iter().copied().collect()))
}

/// The forward product on arrays.
fn affine(
    x: &ArcArray<f32, IxDyn>,
    weight: &ArcArray<f32, IxDyn>,
    bias: Option<&ArcArray<f32, IxDyn>>,
) -> Option<ArcArray<f32, IxDyn>> {
    if weight.ndim() != 2 {
        return None;
    }
    let (d_in, d_out) = (weight.shape()[0], weight.shape()[1]);
    let mut shape = x.shape().to_vec();
    if shape.last() != Some(&d_in) || !x.is_standard_layout() || d_in == 0 {
        return None;
    }
    let rows = x.len() / d_in;
    let bias = match bias {
        Some(bias) if bias.shape() != [d_out] => return None,
        Some(bias) => Some(bias.as_standard_layout()),
        None => None,
    };
    let mut out = Unwritten::new(rows * d_out);
    if let Some(bias) = &bias {
        let bias = bias.as_slice()?;
        // Filled in parallel: for the vocabulary projection this buffer is tens of MB, and
        // its first touch (page faults) is a sizeable serial cost otherwise.
        let start = SharedPtr(out.as_mut_ptr());
        (0..rows).into_par_iter().for_each(|row| {
            // SAFETY: row `row` of `rows·d_out` elements, written by this task alone.
            let row =
                unsafe { core::slice::from_raw_parts_mut(start.at((row * d_out) as isize), d_out) };
            row.copy_from_slice(bias);
        });
    }
    // With a bias the product is added onto its rows (beta = 1); without, it is written
    // without reading the destination (beta = 0).
    let beta = if bias.is_some() { 1.0 } else { 0.0 };
    // SAFETY: `x` is row-major `[rows, d_in]`, `weight` is `[d_in, d_out]` with its own
    // strides, `out` holds `rows·d_out` elements; all outlive the call.
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
    Some(array_from_f32(out, &shape))
}

/// Records the gradients of x, the weight and the bias.
#[derive(Debug)]
struct LinearBackward;

impl Backward<NdArray, 3> for LinearBackward {
    /// The forward's `x` (row-major) and weight.
    type State = (ArcArray<f32, IxDyn>, ArcArray<f32, IxDyn>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (x, weight) = ops.state;
        let gradient = grads.consume::<NdArray>(&ops.node);
        let gradient = gradient_f32(gradient);
        let gradient = gradient.as_standard_layout();
        let d_y = gradient.as_slice().expect("standard layout");
        let (d_in, d_out) = (weight.shape()[0], weight.shape()[1]);
        let rows = x.len() / d_in;
        let [x_parent, weight_parent, bias_parent] = ops.parents;
        // SAFETY (all products): `d_y` is row-major `[rows, d_out]`, `x` row-major
        // `[rows, d_in]`, `weight` `[d_in, d_out]` with its own strides, outputs sized to
        // their products; all outlive the calls.
        if let Some(node) = x_parent {
            let mut d_x = Unwritten::new(rows * d_in);
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
            let d_x = array_from_f32(unsafe { d_x.assume_written() }, x.shape());
            grads.register::<NdArray>(node.id, NdArrayTensor::from(d_x));
        }
        if let Some(node) = weight_parent {
            let mut d_weight = Unwritten::new(d_in * d_out);
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
            let d_weight = array_from_f32(unsafe { d_weight.assume_written() }, &[d_in, d_out]);
            grads.register::<NdArray>(node.id, NdArrayTensor::from(d_weight));
        }
        if let Some(node) = bias_parent {
            let mut d_bias = vec![0f32; d_out];
            for row in d_y.chunks_exact(d_out) {
                for (sum, &g) in d_bias.iter_mut().zip(row) {
                    *sum += g;
                }
            }
            let d_bias = array_from_f32(d_bias, &[d_out]);
            grads.register::<NdArray>(node.id, NdArrayTensor::from(d_bias));
        }
    }
}
