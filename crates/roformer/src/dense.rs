//! Forward passes of burn's `Linear` and `LayerNorm` (alone, over a residual sum, or after
//! a dense layer and its activation) that prefer the fused burn-ndarray kernels
//! (`roformer_kernels::{linear, linear_gelu, layer_norm, add_layer_norm,
//! linear_add_layer_norm}`) and fall back to burn's own operations on every other backend
//! (GPU): same formulas, HF's `nn.Linear`, `LayerNorm(x)` and `LayerNorm(x + residual)`.

use burn::nn::{Dropout, LayerNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::activation::HiddenAct;

/// `activation(x·W + b)`: HF `RoFormerIntermediate` and the dense + activation of the
/// masked-LM head's transform. For GELU on burn-ndarray (inference) one kernel adds the
/// bias inside the activation's pass.
pub fn linear_activation<B: Backend, const D: usize>(
    layer: &Linear<B>,
    activation: HiddenAct,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    if let (HiddenAct::Gelu, Some(bias)) = (activation, &layer.bias) {
        let fused = roformer_kernels::linear_gelu(&x, &layer.weight.val(), &bias.val());
        if let Some(activated) = fused {
            return activated;
        }
    }
    activation.forward(linear(layer, x))
}

/// `LayerNorm(dropout(x·W + b) + residual)`: HF `RoFormerSelfOutput` / `RoFormerOutput`.
/// On burn-ndarray (inference, where dropout is the identity) one kernel adds the bias
/// inside the normalisation's pass.
pub fn linear_add_layer_norm<B: Backend, const D: usize>(
    layer: &Linear<B>,
    dropout: &Dropout,
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
    residual: Tensor<B, D>,
) -> Tensor<B, D> {
    if let (Some(bias), Some(beta)) = (&layer.bias, &norm.beta) {
        let fused = roformer_kernels::linear_add_layer_norm(
            &x,
            &layer.weight.val(),
            &bias.val(),
            &residual,
            &norm.gamma.val(),
            &beta.val(),
            epsilon,
        );
        if let Some(normalised) = fused {
            return normalised;
        }
    }
    let projected = dropout.forward(linear(layer, x));
    add_layer_norm(norm, epsilon, projected, residual)
}

/// `x·W + b` over the last axis.
pub fn linear<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let weight = layer.weight.val();
    let bias = layer.bias.as_ref().map(|bias| bias.val());
    if let Some(projected) = roformer_kernels::linear(&x, &weight, bias.as_ref()) {
        return projected;
    }
    // burn's linear multiplies a `[batch, seq, d]` input batch by batch; as one
    // `[batch·seq, d]` matrix the product (and its gradient) is one larger GEMM.
    let mut dims = x.dims();
    let rows = dims[..D - 1].iter().product();
    dims[D - 1] = weight.dims()[1];
    layer
        .forward(x.reshape([rows, weight.dims()[0]]))
        .reshape(dims)
}

/// `x·Eᵀ + b`: a projection onto the rows of `embedding` (`[vocab, width]`), as a tied
/// output layer does.
pub fn tied_projection<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    embedding: Tensor<B, 2>,
    bias: Tensor<B, 1>,
) -> Tensor<B, D> {
    let weight = embedding.transpose();
    if let Some(projected) = roformer_kernels::linear(&x, &weight, Some(&bias)) {
        return projected;
    }
    let mut dims = x.dims();
    let width = dims[D - 1];
    let rows = dims[..D - 1].iter().product();
    dims[D - 1] = weight.dims()[1];
    (x.reshape([rows, width]).matmul(weight) + bias.unsqueeze::<2>()).reshape(dims)
}

/// `LayerNorm(x + residual)`; `epsilon` must be the one `norm` was built with (burn keeps
/// it private).
pub fn add_layer_norm<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
    residual: Tensor<B, D>,
) -> Tensor<B, D> {
    let gamma = norm.gamma.val();
    let beta = norm.beta.as_ref().map(|beta| beta.val());
    roformer_kernels::add_layer_norm(&x, &residual, &gamma, beta.as_ref(), epsilon)
        .unwrap_or_else(|| norm.forward(x + residual))
}

/// `LayerNorm(x)`; `epsilon` must be the one `norm` was built with.
pub fn layer_norm<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let gamma = norm.gamma.val();
    let beta = norm.beta.as_ref().map(|beta| beta.val());
    roformer_kernels::layer_norm(&x, &gamma, beta.as_ref(), epsilon)
        .unwrap_or_else(|| norm.forward(x))
}
