//! The encoder stack: HF `RoFormerEncoder`. One rotary embedding shared by every layer
//! (HF's `embed_positions`, regenerated here, never loaded) and the layers in order.

use crate::backend::{KeyMask, RoFormerBackend};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor};
use roformer_rope::{RotaryEmbedding, RotaryEmbeddingConfig};

use crate::config::RoFormerConfig;
use crate::error::RoFormerError;
use crate::layer::RoFormerLayer;
use crate::layout::in_float_type;
use crate::packing::{Packing, pack_if, unpack_if};

/// Score added for padded keys: HF adds `torch.finfo(float32).min`, so that a padded key
/// gets exactly zero probability.
pub const MASKED_SCORE: f32 = f32::MIN;

/// The layers and the rotation they share.
#[derive(Module, Debug)]
pub struct RoFormerEncoder<B: Backend> {
    /// HF `encoder.layer`.
    pub layer: Vec<RoFormerLayer<B>>,
    /// Rotation by position, over each head's features (interleaved, base 10000).
    pub rope: RotaryEmbedding<B>,
}

impl<B: RoFormerBackend> RoFormerEncoder<B> {
    /// A fresh encoder, initialised as HF does.
    pub fn new(config: &RoFormerConfig, device: &B::Device) -> Result<Self, RoFormerError> {
        let rope = RotaryEmbeddingConfig::new(config.head_size())
            .with_max_positions(config.max_position_embeddings)
            .with_scaling(config.rope_scaling)
            .init(device)?;
        let layer = (0..config.num_hidden_layers)
            .map(|_| RoFormerLayer::new(config, device))
            .collect();
        Ok(Self { layer, rope })
    }

    /// Runs every layer; returns the input followed by each layer's output. With
    /// `packing`, the layers compute the real tokens only and every state has zeros at the
    /// padding ([`Packing`]).
    pub fn forward_all(
        &self,
        hidden: Tensor<B, 3>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        position_offset: usize,
        packing: Option<&Packing<B>>,
    ) -> Vec<Tensor<B, 3>> {
        let key_mask = self.key_mask(attention_mask, &hidden);
        let hidden = pack_if(packing, hidden);
        let mut states = Vec::with_capacity(self.layer.len() + 1);
        states.push(hidden);
        for layer in &self.layer {
            let last = states.last().expect("starts with the input").clone();
            states.push(layer.forward(
                last,
                key_mask.clone(),
                &self.rope,
                position_offset,
                packing,
            ));
        }
        states
            .into_iter()
            .map(|state| unpack_if(packing, state))
            .collect()
    }

    /// Runs every layer; returns the last hidden state `[batch, seq, hidden]`. With
    /// `packing`, the layers compute the real tokens only and the padding comes out as
    /// zeros ([`Packing`]).
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        position_offset: usize,
        packing: Option<&Packing<B>>,
    ) -> Tensor<B, 3> {
        let key_mask = self.key_mask(attention_mask, &hidden);
        let hidden = pack_if(packing, hidden);
        let last = self.layer.iter().fold(hidden, |hidden, layer| {
            layer.forward(
                hidden,
                key_mask.clone(),
                &self.rope,
                position_offset,
                packing,
            )
        });
        unpack_if(packing, last)
    }

    /// The key mask every layer's attention takes, made once per forward: the padding of
    /// `attention_mask` as a score bias in the hidden states' float type, in the form the
    /// backend prepares for it (the layers' attention is configured alike).
    fn key_mask(
        &self,
        attention_mask: Option<Tensor<B, 2, Int>>,
        hidden: &Tensor<B, 3>,
    ) -> Option<KeyMask<B>> {
        let (mask, first) = (attention_mask?, self.layer.first()?);
        let bias = score_bias(mask, hidden.dtype());
        let seq = hidden.dims()[1];
        Some(first.attention.self_attention.key_mask(bias, seq))
    }
}

/// `[batch, seq]` mask (1 = real token, 0 = padding) to the additive score bias
/// `[batch, 1, 1, seq]` in the hidden states' float type.
fn score_bias<B: RoFormerBackend>(mask: Tensor<B, 2, Int>, dtype: DType) -> Tensor<B, 4> {
    let [batch, seq] = mask.dims();
    // Scaled in f32, then cast: in f16 (and bf16) MASKED_SCORE rounds to −∞, and 0·−∞
    // would put NaN on every real key.
    let bias = in_float_type(mask.equal_elem(0).float(), DType::F32).mul_scalar(MASKED_SCORE);
    in_float_type(bias, dtype).reshape([batch, 1, 1, seq])
}
