//! Forward passes of burn's `Linear` and `LayerNorm` (alone or over a residual sum) that
//! prefer the fused burn-ndarray kernels (`roformer_kernels::{linear, layer_norm,
//! add_layer_norm}`) and fall back to burn's own operations on every other backend (GPU):
//! same formulas, HF's `nn.Linear`, `LayerNorm(x)` and `LayerNorm(x + residual)`.

use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

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
