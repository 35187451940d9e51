//! Forward passes of burn's `Linear` and `LayerNorm` (alone, over a residual sum, or after
//! a dense layer and its activation) through the backend's fused operations
//! ([`RoFormerBackend::affine`], `affine_gelu`, `affine_add_layer_norm`,
//! `residual_layer_norm`): HF's `nn.Linear`, `LayerNorm(x)` and `LayerNorm(x + residual)`.

use burn::nn::{Dropout, LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::activation::HiddenAct;
use crate::backend::RoFormerBackend;

/// A tensor's float primitive.
fn value<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> burn::tensor::ops::FloatTensor<B> {
    tensor.into_primitive().tensor()
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
        return tensor(B::affine_gelu(
            value(x),
            value(layer.weight.val()),
            value(bias.val()),
        ));
    }
    activation.forward(linear(layer, x))
}

/// `LayerNorm(dropout(x·W + b) + residual)`: HF `RoFormerSelfOutput` / `RoFormerOutput`.
/// Where dropout is inactive (inference, or a probability of 0) it is one fused operation.
pub fn linear_add_layer_norm<B: RoFormerBackend, const D: usize>(
    layer: &Linear<B>,
    dropout: &Dropout,
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
    residual: Tensor<B, D>,
) -> Tensor<B, D> {
    let dropout_active = B::ad_enabled(&x.device()) && dropout.prob > 0.0;
    if let (false, Some(bias), Some(beta)) = (dropout_active, &layer.bias, &norm.beta) {
        return tensor(B::affine_add_layer_norm(
            value(x),
            value(layer.weight.val()),
            value(bias.val()),
            value(residual),
            value(norm.gamma.val()),
            value(beta.val()),
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
    tensor(B::affine(
        value(x),
        value(layer.weight.val()),
        layer.bias.as_ref().map(|bias| value(bias.val())),
    ))
}

/// `x·Eᵀ + b`: a projection onto the rows of `embedding` (`[vocab, width]`), as a tied
/// output layer does.
pub fn tied_projection<B: RoFormerBackend, const D: usize>(
    x: Tensor<B, D>,
    embedding: Tensor<B, 2>,
    bias: Tensor<B, 1>,
) -> Tensor<B, D> {
    tensor(B::affine(
        value(x),
        value(embedding.transpose()),
        Some(value(bias)),
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
    tensor(B::residual_layer_norm(
        value(x),
        Some(value(residual)),
        value(norm.gamma.val()),
        norm.beta.as_ref().map(|beta| value(beta.val())),
        epsilon,
    ))
}

/// `LayerNorm(x)`; `epsilon` must be the one `norm` was built with.
pub fn layer_norm<B: RoFormerBackend, const D: usize>(
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    tensor(B::residual_layer_norm(
        value(x),
        None,
        value(norm.gamma.val()),
        norm.beta.as_ref().map(|beta| value(beta.val())),
        epsilon,
    ))
}
