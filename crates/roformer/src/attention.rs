//! Multi-head self-attention with rotary position embedding: HF `RoFormerSelfAttention`.
//!
//! burn's `MultiHeadAttention` has no hook between the projections and the dot product,
//! so attention is written here: project q, k, v; rotate q and k (and v when
//! `rotary_value`) by position (Su et al. 2021, eq. 34); scaled dot product with an
//! additive padding bias; softmax; dropout; weighted sum of values. On burn-ndarray and
//! `Autodiff<NdArray>` (f32) the part after the rotation runs as one fused kernel per head
//! (`roformer_kernels::attention`, with its backward step when training); the tensor
//! operations below are its reference and what every other backend runs.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use roformer_rope::RotaryEmbedding;

use crate::config::RoFormerConfig;
use crate::dense::linear;
use crate::init::normal_linear;
use crate::layout::reshape;

/// The query/key/value projections of one layer (HF `attention.self`).
#[derive(Module, Debug)]
pub struct RoFormerSelfAttention<B: Backend> {
    /// `hidden_size → hidden_size`.
    pub query: Linear<B>,
    /// `hidden_size → hidden_size`.
    pub key: Linear<B>,
    /// `hidden_size → hidden_size`.
    pub value: Linear<B>,
    /// Dropout on attention probabilities (`attention_probs_dropout_prob`).
    pub dropout: Dropout,
    num_heads: usize,
    head_size: usize,
    rotary_value: bool,
}

impl<B: Backend> RoFormerSelfAttention<B> {
    /// Fresh projections, initialised as HF does.
    pub fn new(config: &RoFormerConfig, device: &B::Device) -> Self {
        let (h, std) = (config.hidden_size, config.initializer_range);
        Self {
            query: normal_linear(h, h, std, device),
            key: normal_linear(h, h, std, device),
            value: normal_linear(h, h, std, device),
            dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
            num_heads: config.num_attention_heads,
            head_size: config.head_size(),
            rotary_value: config.rotary_value,
        }
    }

    /// `hidden` `[batch, seq, hidden]` to the attention context `[batch, seq, hidden]`.
    ///
    /// `score_bias` (`[batch, 1, 1, seq]`, 0 for real keys and a large negative number for
    /// padding) is added to the scores; `position_offset` is the position of the first token.
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        score_bias: Option<Tensor<B, 4>>,
        rope: &RotaryEmbedding<B>,
        position_offset: usize,
    ) -> Tensor<B, 3> {
        let [batch, seq, width] = hidden.dims();
        let heads = |x: Tensor<B, 3>| {
            reshape(x, [batch, seq, self.num_heads, self.head_size]).swap_dims(1, 2)
        };

        let query = rope.apply(heads(linear(&self.query, hidden.clone())), position_offset);
        let key = rope.apply(heads(linear(&self.key, hidden.clone())), position_offset);
        let value = heads(linear(&self.value, hidden));
        let value = if self.rotary_value {
            rope.apply(value, position_offset)
        } else {
            value
        };

        let scale = 1.0 / (self.head_size as f64).sqrt();
        // On burn-ndarray one fused pass per head (with its gradient on Autodiff<NdArray>).
        if let Some(context) = roformer_kernels::attention(
            &query,
            &key,
            &value,
            score_bias.as_ref(),
            scale as f32,
            self.dropout.prob,
        ) {
            return context;
        }
        // Scaling q before the product touches seq·d values instead of seq² scores.
        let query = query.mul_scalar(scale);
        let scores = query.matmul(key.swap_dims(2, 3));
        let scores = match score_bias {
            Some(bias) => scores + bias,
            None => scores,
        };
        let probs = self.dropout.forward(softmax(scores, 3));
        probs
            .matmul(value)
            .swap_dims(1, 2)
            .reshape([batch, seq, width])
    }
}
