//! Parameter initialisation as HF's `PreTrainedModel._init_weights` does it for BERT-like
//! models: weights normal(0, `initializer_range`), biases zero, the padding row of the
//! word embeddings zero. (burn's `LinearConfig` would also draw biases at random.)

use burn::module::{Initializer, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

fn normal(std: f64) -> Initializer {
    Initializer::Normal { mean: 0.0, std }
}

/// A linear layer `d_input → d_output` with normal weights and a zero bias.
pub(crate) fn normal_linear<B: Backend>(
    d_input: usize,
    d_output: usize,
    std: f64,
    device: &B::Device,
) -> Linear<B> {
    Linear {
        weight: normal(std).init_with([d_input, d_output], Some(d_input), Some(d_output), device),
        bias: Some(Initializer::Zeros.init([d_output], device)),
    }
}

/// An embedding table with normal rows and, if given, a zero padding row.
pub(crate) fn normal_embedding<B: Backend>(
    count: usize,
    size: usize,
    std: f64,
    padding_row: Option<usize>,
    device: &B::Device,
) -> Embedding<B> {
    let weight: Param<Tensor<B, 2>> = normal(std).init([count, size], device);
    // The zeroed table must again be a leaf that requires a gradient: `slice_assign`'s
    // output is an operation node, and the optimizer finds no gradient for such a parameter
    // (the embeddings then stayed frozen at their initial values).
    let weight = match padding_row {
        Some(row) if row < count => weight.map(|w| {
            w.slice_assign([row..row + 1, 0..size], Tensor::zeros([1, size], device))
                .detach()
                .require_grad()
        }),
        _ => weight,
    };
    Embedding { weight }
}
