//! Masked-language-model head: HF `RoFormerForMaskedLM` with `RoFormerOnlyMLMHead`,
//! `RoFormerLMPredictionHead` and `RoFormerPredictionHeadTransform`. The decoder is tied
//! to the word embeddings (it has no weight of its own), plus a per-token bias.

use crate::backend::RoFormerBackend;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorPrimitive};

use crate::activation::HiddenAct;
use crate::config::RoFormerConfig;
use crate::dense::{layer_norm, linear_activation, tied_projection};
use crate::error::RoFormerError;
use crate::init::normal_linear;
use crate::layout::reshape;
use crate::model::{RoFormerInput, RoFormerModel};
use crate::precision::{Precision, widened};

/// Label value of positions that do not count in [`masked_lm_loss`] (PyTorch's convention).
pub const IGNORE_INDEX: i64 = -100;

/// `dense → activation → LayerNorm`, from `hidden_size` to `embedding_size`.
#[derive(Module, Debug)]
pub struct RoFormerPredictionHeadTransform<B: Backend> {
    /// `hidden_size → embedding_size`.
    pub dense: Linear<B>,
    /// Normalisation over `embedding_size` (HF `LayerNorm`).
    pub layer_norm: LayerNorm<B>,
    activation: HiddenAct,
    layer_norm_eps: f64,
}

/// The transform and the output bias; the decoder weight is the word embedding table.
#[derive(Module, Debug)]
pub struct RoFormerLmPredictionHead<B: Backend> {
    /// HF `cls.predictions.transform`.
    pub transform: RoFormerPredictionHeadTransform<B>,
    /// HF `cls.predictions.bias` (also `decoder.bias`), `[vocab_size]`.
    pub bias: Param<Tensor<B, 1>>,
}

/// HF `cls`.
#[derive(Module, Debug)]
pub struct RoFormerOnlyMlmHead<B: Backend> {
    /// HF `cls.predictions`.
    pub predictions: RoFormerLmPredictionHead<B>,
}

/// The encoder with its masked-LM head.
#[derive(Module, Debug)]
pub struct RoFormerForMaskedLM<B: Backend> {
    /// HF `roformer`.
    pub roformer: RoFormerModel<B>,
    /// HF `cls`.
    pub cls: RoFormerOnlyMlmHead<B>,
}

impl<B: RoFormerBackend> RoFormerForMaskedLM<B> {
    /// A freshly initialised model; fails if `config` is invalid.
    pub fn new(config: &RoFormerConfig, device: &B::Device) -> Result<Self, RoFormerError> {
        let roformer = RoFormerModel::new(config, device)?;
        let transform = RoFormerPredictionHeadTransform {
            dense: normal_linear(
                config.hidden_size,
                config.embedding_size(),
                config.initializer_range,
                device,
            ),
            layer_norm: LayerNormConfig::new(config.embedding_size())
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            activation: config.hidden_act,
            layer_norm_eps: config.layer_norm_eps,
        };
        let bias = Param::from_tensor(Tensor::zeros([config.vocab_size], device));
        Ok(Self {
            roformer,
            cls: RoFormerOnlyMlmHead {
                predictions: RoFormerLmPredictionHead { transform, bias },
            },
        })
    }

    /// The model computing in `precision` ([`RoFormerModel::with_precision`]).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.roformer = self.roformer.with_precision(precision);
        self
    }

    /// Vocabulary logits `[batch, seq, vocab_size]`, f32.
    pub fn forward(&self, input: RoFormerInput<B>) -> Tensor<B, 3> {
        self.logits(self.roformer.forward(input))
    }

    /// Vocabulary logits for any hidden states `[..., hidden_size]` (for instance only the
    /// masked positions of a batch, which saves the vocabulary projection elsewhere), f32;
    /// computed in the float type of `hidden`.
    pub fn logits<const D: usize>(&self, hidden: Tensor<B, D>) -> Tensor<B, D> {
        let transform = &self.cls.predictions.transform;
        let activated = linear_activation(&transform.dense, transform.activation, hidden);
        let transformed = layer_norm(&transform.layer_norm, transform.layer_norm_eps, activated);
        widened(tied_projection(
            transformed,
            self.roformer.embeddings.word_embeddings.weight.val(),
            self.cls.predictions.bias.val(),
        ))
    }
}

/// Mean cross-entropy of `logits` `[batch, seq, vocab]` against `labels` `[batch, seq]`,
/// over the positions whose label is not [`IGNORE_INDEX`] (HF's MLM loss). Returns 0 when
/// no position counts.
pub fn masked_lm_loss<B: RoFormerBackend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
) -> Tensor<B, 1> {
    let [batch, seq, vocab] = logits.dims();
    let labels = labels.reshape([batch * seq]);
    let rows = reshape(logits, [batch * seq, vocab]);
    let loss = B::cross_entropy(
        rows.into_primitive().tensor(),
        labels.into_primitive(),
        IGNORE_INDEX,
    )
    .loss;
    Tensor::from_primitive(TensorPrimitive::Float(loss))
}
