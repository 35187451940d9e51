//! Fused CPU kernels for RoFormer's operations, on strided f32 arrays.
//!
//! This crate knows nothing of burn: its inputs and outputs are `ndarray` arrays (shared
//! buffers with any strides, the layout burn-ndarray keeps its tensors in), so the same code
//! serves any host-memory backend. `roformer-rope` and `roformer` implement their backend
//! extension traits for burn-ndarray on top of it (their `ndarray` features).
//!
//! burn-ndarray evaluates a model one tensor operation at a time, and any operand that is
//! not in row-major order (the head split `[b, s, h, d] → [b, h, s, d]`, a transposed key,
//! the pair swap of a rotary embedding) is first copied element by element through
//! ndarray's dynamic-rank iterator. For RoFormer's attention that copying, and the extra
//! passes over memory of composite operations, take time comparable to the matrix products
//! themselves. The kernels here do the same arithmetic in one pass over the data:
//!
//! - [`rotate`]: `x·cos + partner(x)·signed_sin` (Su et al. 2021, eq. 34), any input strides;
//! - [`attention`] / [`attention_backward`]: `softmax(q·kᵀ·scale + bias)·v` with dropout,
//!   the heads merged on output, with the products by the `gemm` crate on strided views;
//! - [`gelu`] / [`gelu_backward`]: `x·Φ(x)` with a rational erf approximation;
//! - [`affine`] / [`affine_backward`]: `x·W + b` as one GEMM accumulating onto the bias
//!   rows; for inference [`affine_gelu`] and [`affine_add_layer_norm`] add the bias in the
//!   pass after the product;
//! - [`layer_norm`] / [`layer_norm_backward`]: `LayerNorm(x (+ residual))` in one pass per
//!   row;
//! - [`reshaped`]: a new shape for a row-major array without copying it;
//! - [`gather_rows`] / [`scatter_rows`]: the real tokens of a padded batch picked out, and
//!   put back among zero rows;
//! - [`cross_entropy`] / [`cross_entropy_backward`]: the masked-LM loss and accuracy count
//!   in one pass per row;
//! - [`adamw`]: an AdamW update of a parameter and its moments in one pass, in place.
//!
//! Each kernel returns `None` when its arrays' shapes do not fit together (the caller's
//! error); any strides are accepted. [`dispatch`] counts the calls, so tests can check that
//! a fast path was taken.

mod adamw;
mod attention;
mod attention_backward;
mod buffer;
mod cross_entropy;
pub mod dispatch;
mod exp;
mod gelu;
mod gemm;
mod layer_norm;
mod linear;
mod parallel;
mod reshape;
mod rotary;
mod rows;
mod softmax;
mod vectorize;

/// The arrays the kernels read and write: f32, any rank, any strides, shared buffers.
pub type Array = ndarray::ArcArray<f32, ndarray::IxDyn>;

/// A row-major array of `shape` over `values` (as many as the shape holds).
pub fn row_major(values: Vec<f32>, shape: &[usize]) -> Array {
    Array::from_shape_vec(ndarray::IxDyn(shape), values)
        .expect("kernel output length matches its shape")
}

pub use adamw::{AdamWMoments, AdamWStep, adamw};
pub use attention::{AttentionOutput, Dropout, attention};
pub use attention_backward::{AttentionGradients, attention_backward};
pub use cross_entropy::{CrossEntropyRows, cross_entropy, cross_entropy_backward};
pub use gelu::{gelu, gelu_backward};
pub use layer_norm::{LayerNormGradients, LayerNormOutput, layer_norm, layer_norm_backward};
pub use linear::{AffineGradients, affine, affine_add_layer_norm, affine_backward, affine_gelu};
pub use reshape::reshaped;
pub use rotary::{Pairing, rotate};
pub use rows::{gather_rows, scatter_rows};
