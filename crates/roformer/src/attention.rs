//! Multi-head self-attention with rotary position embedding: HF `RoFormerSelfAttention`.
//!
//! burn's `MultiHeadAttention` has no hook between the projections and the dot product,
//! so attention is written here: project q, k, v; rotate q and k (and v when
//! `rotary_value`) by position (Su et al. 2021, eq. 34); scaled dot product with an
//! additive padding bias; softmax; dropout; weighted sum of values. The part after the
//! rotation is one operation of the backend, [`RoFormerBackend::self_attention`] (a fused
//! kernel per head on the CPU, burn's flash attention on a GPU; its reference is in
//! [`crate::backend::reference`]), given the padding as a [`KeyMask`] that the encoder
//! makes once per forward. With `attention = "linear"` the rotated features go to
//! the kernelised attention of [`crate::linear_attention`] instead.

use crate::backend::{KeyMask, RoFormerBackend};
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use roformer_rope::RotaryEmbedding;

use crate::config::{AttentionKind, RoFormerConfig};
use crate::dense::linear;
use crate::init::normal_linear;
use crate::layout::{in_float_type, reshape};
use crate::linear_attention::linear_attention;
use crate::packing::{Packing, pack_if, unpack_if};

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
    /// Rotate q and k (`position_embedding_type = "rotary"`); otherwise attention sees no
    /// positions.
    rotary: bool,
    rotary_value: bool,
    /// Kernelised attention (Su et al. 2021, eq. 19) instead of softmax.
    linear: bool,
}

impl<B: RoFormerBackend> RoFormerSelfAttention<B> {
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
            rotary: config.position_embedding_type.is_rotary(),
            rotary_value: config.rotary_value,
            linear: config.attention == AttentionKind::Linear,
        }
    }

    /// The key mask of a batch of `seq` tokens whose padding is `score_bias` (`[batch, 1,
    /// 1, seq]`, 0 for real keys and [`crate::MASKED_SCORE`] for padding), in the form this
    /// attention hands the backend ([`RoFormerBackend::key_mask`]; the bias alone for
    /// linear attention, which does not call it). Made once per forward for all layers.
    pub fn key_mask(&self, score_bias: Tensor<B, 4>, seq: usize) -> KeyMask<B> {
        let bias = score_bias.into_primitive().tensor();
        if self.linear {
            KeyMask::from_bias(bias)
        } else {
            B::key_mask(bias, self.num_heads, seq)
        }
    }

    /// `hidden` `[batch, seq, hidden]` to the attention context `[batch, seq, hidden]`.
    ///
    /// `key_mask` ([`Self::key_mask`]) masks the padded keys out; `position_offset` is the
    /// position of the first token.
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        key_mask: Option<KeyMask<B>>,
        rope: &RotaryEmbedding<B>,
        position_offset: usize,
    ) -> Tensor<B, 3> {
        self.forward_packed(hidden, key_mask, rope, position_offset, None)
    }

    /// [`Self::forward`] on the real tokens of a packed batch (`[1, tokens, hidden]` in
    /// and out, [`Packing`]): the projections run on the real tokens, q, k and v are
    /// unpacked to attend in the batch's padded layout, and the context is packed again.
    /// Without `packing`, the same as [`Self::forward`].
    pub fn forward_packed(
        &self,
        hidden: Tensor<B, 3>,
        key_mask: Option<KeyMask<B>>,
        rope: &RotaryEmbedding<B>,
        position_offset: usize,
        packing: Option<&Packing<B>>,
    ) -> Tensor<B, 3> {
        let width = hidden.dims()[2];
        let [batch, seq] = match packing {
            Some(packing) => [packing.batch(), packing.seq()],
            None => [hidden.dims()[0], hidden.dims()[1]],
        };
        // A projection of the (packed) tokens, in the padded layout, split into heads.
        let project = |dense: &Linear<B>| {
            let projected = unpack_if(packing, linear(dense, hidden.clone()));
            reshape(projected, [batch, seq, self.num_heads, self.head_size]).swap_dims(1, 2)
        };

        let rotate = |x: Tensor<B, 4>, wanted: bool| {
            if wanted {
                rope.apply(x, position_offset)
            } else {
                x
            }
        };
        let value = rotate(project(&self.value), self.rotary_value);
        if self.linear {
            // Eq. (19) rotates φ(q) and φ(k), so the projections go in unrotated.
            let key_mask = key_mask.map(|mask| {
                let bias = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(mask.bias));
                let mask = in_float_type(bias.clone().equal_elem(0.0).float(), bias.dtype());
                mask.reshape([batch, 1, seq, 1])
            });
            let context = linear_attention(
                project(&self.query),
                project(&self.key),
                value,
                key_mask,
                |features| rotate(features, self.rotary),
            );
            return pack_if(
                packing,
                reshape(context.swap_dims(1, 2), [batch, seq, width]),
            );
        }
        let query = project(&self.query);
        let key = project(&self.key);
        // One operation of the backend for both (one kernel launch on a GPU).
        let (query, key) = if self.rotary {
            rope.apply_pair(query, key, position_offset)
        } else {
            (query, key)
        };

        let scale = 1.0 / (self.head_size as f64).sqrt();
        let context = B::self_attention(
            query.into_primitive().tensor(),
            key.into_primitive().tensor(),
            value.into_primitive().tensor(),
            key_mask,
            scale as f32,
            self.dropout.prob,
        );
        debug_assert_eq!(width, self.num_heads * self.head_size);
        pack_if(
            packing,
            Tensor::from_primitive(TensorPrimitive::Float(context)),
        )
    }
}
