//! One post-LayerNorm encoder layer, BERT-style: HF `RoFormerLayer` with its parts
//! `RoFormerAttention` (`RoFormerSelfAttention` + `RoFormerSelfOutput`),
//! `RoFormerIntermediate` and `RoFormerOutput`.

use crate::backend::{KeyMask, RoFormerBackend};
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use roformer_rope::RotaryEmbedding;

use crate::activation::HiddenAct;
use crate::attention::RoFormerSelfAttention;
use crate::config::RoFormerConfig;
use crate::dense::{linear_activation, linear_add_layer_norm};
use crate::init::normal_linear;
use crate::packing::Packing;

/// `dense → dropout → LayerNorm(x + residual)`: HF `RoFormerSelfOutput` and `RoFormerOutput`.
#[derive(Module, Debug)]
pub struct ResidualOutput<B: Backend> {
    /// Projection back to `hidden_size`.
    pub dense: Linear<B>,
    /// Normalisation of the residual sum (HF `LayerNorm`).
    pub layer_norm: LayerNorm<B>,
    /// Dropout with `hidden_dropout_prob`.
    pub dropout: Dropout,
    layer_norm_eps: f64,
}

impl<B: RoFormerBackend> ResidualOutput<B> {
    fn new(d_input: usize, config: &RoFormerConfig, device: &B::Device) -> Self {
        Self {
            dense: normal_linear(
                d_input,
                config.hidden_size,
                config.initializer_range,
                device,
            ),
            layer_norm: LayerNormConfig::new(config.hidden_size)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    /// `LayerNorm(dropout(dense(x)) + residual)`.
    pub fn forward(&self, x: Tensor<B, 3>, residual: Tensor<B, 3>) -> Tensor<B, 3> {
        linear_add_layer_norm(
            &self.dense,
            &self.dropout,
            &self.layer_norm,
            self.layer_norm_eps,
            x,
            residual,
        )
    }
}

/// Self-attention and its output projection (HF `RoFormerAttention`).
#[derive(Module, Debug)]
pub struct RoFormerAttention<B: Backend> {
    /// HF `attention.self`.
    pub self_attention: RoFormerSelfAttention<B>,
    /// HF `attention.output`.
    pub output: ResidualOutput<B>,
}

/// The feed-forward expansion (HF `RoFormerIntermediate`).
#[derive(Module, Debug)]
pub struct RoFormerIntermediate<B: Backend> {
    /// `hidden_size → intermediate_size`.
    pub dense: Linear<B>,
    activation: HiddenAct,
}

/// One encoder layer (HF `encoder.layer.N`).
#[derive(Module, Debug)]
pub struct RoFormerLayer<B: Backend> {
    /// Attention sub-layer.
    pub attention: RoFormerAttention<B>,
    /// Feed-forward expansion.
    pub intermediate: RoFormerIntermediate<B>,
    /// Feed-forward contraction with residual and LayerNorm.
    pub output: ResidualOutput<B>,
}

impl<B: RoFormerBackend> RoFormerLayer<B> {
    /// A fresh layer, initialised as HF does.
    pub fn new(config: &RoFormerConfig, device: &B::Device) -> Self {
        Self {
            attention: RoFormerAttention {
                self_attention: RoFormerSelfAttention::new(config, device),
                output: ResidualOutput::new(config.hidden_size, config, device),
            },
            intermediate: RoFormerIntermediate {
                dense: normal_linear(
                    config.hidden_size,
                    config.intermediate_size,
                    config.initializer_range,
                    device,
                ),
                activation: config.hidden_act,
            },
            output: ResidualOutput::new(config.intermediate_size, config, device),
        }
    }

    /// `[batch, seq, hidden]` to `[batch, seq, hidden]`; with `packing`, the real tokens
    /// `[1, tokens, hidden]` to the same ([`Packing`]).
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        key_mask: Option<KeyMask<B>>,
        rope: &RotaryEmbedding<B>,
        position_offset: usize,
        packing: Option<&Packing<B>>,
    ) -> Tensor<B, 3> {
        let context = self.attention.self_attention.forward_packed(
            hidden.clone(),
            key_mask,
            rope,
            position_offset,
            packing,
        );
        let attended = self.attention.output.forward(context, hidden);
        let expanded = linear_activation(
            &self.intermediate.dense,
            self.intermediate.activation,
            attended.clone(),
        );
        self.output.forward(expanded, attended)
    }
}
