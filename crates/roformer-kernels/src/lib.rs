//! Fused CPU kernels for burn's ndarray backend.
//!
//! burn-ndarray evaluates a model one tensor operation at a time, and any operand that is
//! not in row-major order (the head split `[b, s, h, d] → [b, h, s, d]`, a transposed key,
//! the pair swap of a rotary embedding) is first copied element by element through
//! ndarray's dynamic-rank iterator. For RoFormer's attention that copying, and the extra
//! passes over memory of composite operations, take time comparable to the matrix products
//! themselves. The kernels here do the same arithmetic in one pass over the data:
//!
//! - [`rotary`]: `x·cos + partner(x)·signed_sin` (Su et al. 2021, eq. 34), any input strides;
//! - [`attention`]: `softmax(q·kᵀ·scale + bias)·v`, the heads merged on output, with the
//!   products by the `gemm` crate on strided views of q and v and a per-head copy of kᵀ;
//! - [`gelu`]: `x·Φ(x)` with a rational erf approximation, in place for inference;
//! - [`linear`]: `x·W + b` as one GEMM accumulating onto the bias rows; for inference
//!   [`linear_gelu`] and [`linear_add_layer_norm`] add the bias in the pass after the product;
//! - [`add_layer_norm`], [`layer_norm`]: `LayerNorm(x + residual)` / `LayerNorm(x)` in one
//!   pass per row;
//! - [`reshape`]: a new shape for a row-major tensor without copying it (burn-ndarray's
//!   copies);
//! - [`cross_entropy`]: the masked-LM loss and accuracy count in one pass per row;
//! - [`adamw`]: an AdamW update of a parameter and its moments in one pass, in place.
//!
//! Every kernel returns `None` (or, for those that take their inputs by value, hands them
//! back as `Err`) unless its tensors are f32 tensors of burn-ndarray (f64, GPU backends…
//! decline); the caller then runs its own composition of tensor operations,
//! which is the reference the kernels are tested against. All but [`adamw`] and the two
//! inference epilogues also take `Autodiff<NdArray>` tensors, the CPU training backend, and
//! record their backward step in its graph; [`adamw`] works on the inner backend's tensors,
//! as burn's optimizers do.

mod adamw;
mod attention;
mod attention_backward;
mod autodiff;
mod buffer;
mod cross_entropy;
mod exp;
mod gelu;
mod gemm;
mod layer_norm;
mod linear;
mod ndarray_bridge;
mod parallel;
mod reshape;
mod rotary;
mod softmax;
mod vectorize;

pub use adamw::{AdamWInputs, AdamWStep, AdamWUpdate, adamw};
pub use attention::attention;
pub use cross_entropy::{CrossEntropy, cross_entropy};
pub use gelu::gelu;
pub use layer_norm::{add_layer_norm, layer_norm};
pub use linear::{linear, linear_add_layer_norm, linear_gelu};
pub use reshape::reshape;
pub use rotary::{Pairing, rotary};
