//! Forward passes of burn's `Linear` and `LayerNorm` (alone, over a residual sum, or after
//! a dense layer and its activation) through the backend's fused operations
//! ([`RoFormerBackend::affine`], `affine_gelu`, `affine_add_layer_norm`,
//! `residual_layer_norm`): HF's `nn.Linear`, `LayerNorm(x)` and `LayerNorm(x + residual)`.
//!
//! Mixed precision ([`crate::precision`]) is applied here: a dense layer runs in its
//! input's float type (its weights cast to it where they differ, f32 master weights in
//! training), and a LayerNorm of a narrower input computes in f32 and returns the input's
//! type.

use burn::nn::{Dropout, LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::activation::HiddenAct;
use crate::backend::RoFormerBackend;
use crate::layout::in_float_type;
use crate::precision::{is_reduced, widened};

/// A tensor's float primitive.
fn value<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> burn::tensor::ops::FloatTensor<B> {
    tensor.into_primitive().tensor()
}

/// A parameter's value in the float type of the activations it meets.
fn weight<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    like: burn::tensor::DType,
) -> burn::tensor::ops::FloatTensor<B> {
    value(in_float_type(param, like))
}

/// A float primitive as a tensor.
fn tensor<B: Backend, const D: usize>(
    primitive: burn::tensor::ops::FloatTensor<B>,
) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// `activation(x·W + b)`: HF `RoFormerIntermediate` and the dense + activation of the
/// masked-LM head's transform. GELU after a biased layer is one fused operation.
pub fn linear_activation<B: RoFormerBackend, const D: usize>(
    layer: &Linear<B>,
    activation: HiddenAct,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    if let (HiddenAct::Gelu, Some(bias)) = (activation, &layer.bias) {
        let dtype = x.dtype();
        return tensor(B::affine_gelu(
            value(x),
            weight(layer.weight.val(), dtype),
            weight(bias.val(), dtype),
        ));
    }
    activation.forward(linear(layer, x))
}

/// `LayerNorm(dropout(x·W + b) + residual)`: HF `RoFormerSelfOutput` / `RoFormerOutput`.
/// Where dropout is inactive (inference, or a probability of 0) and the input is f32 it is
/// one fused operation.
pub fn linear_add_layer_norm<B: RoFormerBackend, const D: usize>(
    layer: &Linear<B>,
    dropout: &Dropout,
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
    residual: Tensor<B, D>,
) -> Tensor<B, D> {
    let dropout_active = B::ad_enabled(&x.device()) && dropout.prob > 0.0;
    let fusable = !dropout_active && !is_reduced(x.dtype());
    if let (true, Some(bias), Some(beta)) = (fusable, &layer.bias, &norm.beta) {
        let dtype = x.dtype();
        return tensor(B::affine_add_layer_norm(
            value(x),
            weight(layer.weight.val(), dtype),
            weight(bias.val(), dtype),
            value(residual),
            weight(norm.gamma.val(), dtype),
            weight(beta.val(), dtype),
            epsilon,
        ));
    }
    let projected = dropout.forward(linear(layer, x));
    add_layer_norm(norm, epsilon, projected, residual)
}

/// `x·W + b` over the last axis.
pub fn linear<B: RoFormerBackend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let dtype = x.dtype();
    tensor(B::affine(
        value(x),
        weight(layer.weight.val(), dtype),
        layer.bias.as_ref().map(|bias| weight(bias.val(), dtype)),
    ))
}

/// `x·Eᵀ + b`: a projection onto the rows of `embedding` (`[vocab, width]`), as a tied
/// output layer does.
pub fn tied_projection<B: RoFormerBackend, const D: usize>(
    x: Tensor<B, D>,
    embedding: Tensor<B, 2>,
    bias: Tensor<B, 1>,
) -> Tensor<B, D> {
    let dtype = x.dtype();
    tensor(B::affine(
        value(x),
        value(in_float_type(embedding, dtype).transpose()),
        Some(weight(bias, dtype)),
    ))
}

/// `LayerNorm(x + residual)`; `epsilon` must be the one `norm` was built with (burn keeps
/// it private).
pub fn add_layer_norm<B: RoFormerBackend, const D: usize>(
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
    residual: Tensor<B, D>,
) -> Tensor<B, D> {
    normalised(norm, epsilon, x, Some(residual))
}

/// `LayerNorm(x)`; `epsilon` must be the one `norm` was built with.
pub fn layer_norm<B: RoFormerBackend, const D: usize>(
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    normalised(norm, epsilon, x, None)
}

/// `LayerNorm(x (+ residual))` in f32 at least, returned in `x`'s float type.
fn normalised<B: RoFormerBackend, const D: usize>(
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
    residual: Option<Tensor<B, D>>,
) -> Tensor<B, D> {
    let dtype = x.dtype();
    let x = widened(x);
    let wide = x.dtype();
    let output = tensor(B::residual_layer_norm(
        value(x),
        residual.map(|residual| value(in_float_type(residual, wide))),
        weight(norm.gamma.val(), wide),
        norm.beta.as_ref().map(|beta| weight(beta.val(), wide)),
        epsilon,
    ));
    in_float_type(output, dtype)
}
