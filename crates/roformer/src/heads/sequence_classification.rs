//! Sequence classification: HF `RoFormerForSequenceClassification` with
//! `RoFormerClassificationHead` (first token → dropout → dense → activation → dropout →
//! projection); with `classifier_pooling = "mean"`, the mean of the real tokens' hidden
//! states in place of the first token (ModernBERT's `ModernBertForSequenceClassification`
//! with `classifier_pooling="mean"`).

use crate::backend::RoFormerBackend;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::activation::HiddenAct;
use crate::config::{ClassifierPooling, RoFormerConfig};
use crate::dense::linear;
use crate::error::RoFormerError;
use crate::init::normal_linear;
use crate::layout::in_float_type;
use crate::model::{RoFormerInput, RoFormerModel};
use crate::precision::{Precision, widened};

/// HF `classifier`.
#[derive(Module, Debug)]
pub struct RoFormerClassificationHead<B: Backend> {
    /// `hidden_size → hidden_size`.
    pub dense: Linear<B>,
    /// Dropout with `hidden_dropout_prob`, before and after `dense`.
    pub dropout: Dropout,
    /// `hidden_size → num_labels`.
    pub out_proj: Linear<B>,
    activation: HiddenAct,
    pooling: ClassifierPooling,
}

/// The encoder with a classifier over its first token.
#[derive(Module, Debug)]
pub struct RoFormerForSequenceClassification<B: Backend> {
    /// HF `roformer`.
    pub roformer: RoFormerModel<B>,
    /// HF `classifier`.
    pub classifier: RoFormerClassificationHead<B>,
}

impl<B: RoFormerBackend> RoFormerForSequenceClassification<B> {
    /// A freshly initialised classifier with `num_labels` outputs.
    pub fn new(
        config: &RoFormerConfig,
        num_labels: usize,
        device: &B::Device,
    ) -> Result<Self, RoFormerError> {
        if num_labels == 0 {
            return Err(RoFormerError::InvalidConfig {
                field: "num_labels",
                expected: "a positive integer".into(),
                found: "0".into(),
            });
        }
        let (h, std) = (config.hidden_size, config.initializer_range);
        Ok(Self {
            roformer: RoFormerModel::new(config, device)?,
            classifier: RoFormerClassificationHead {
                dense: normal_linear(h, h, std, device),
                dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
                out_proj: normal_linear(h, num_labels, std, device),
                activation: config.hidden_act,
                pooling: config.classifier_pooling,
            },
        })
    }

    /// The classifier computing in `precision` ([`RoFormerModel::with_precision`]); the
    /// head itself is small and runs in f32.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.roformer = self.roformer.with_precision(precision);
        self
    }

    /// Class logits `[batch, num_labels]`, f32.
    pub fn forward(&self, input: RoFormerInput<B>) -> Tensor<B, 2> {
        let mask = input.attention_mask.clone();
        let hidden = widened(self.roformer.forward(input));
        let [batch, seq, width] = hidden.dims();
        let pooled = match self.classifier.pooling {
            ClassifierPooling::Cls => hidden
                .slice([0..batch, 0..1, 0..width])
                .reshape([batch, width]),
            ClassifierPooling::Mean => match mask {
                Some(mask) => {
                    let weights =
                        in_float_type(mask.float(), hidden.dtype()).reshape([batch, seq, 1]);
                    let sums = (hidden * weights.clone())
                        .sum_dim(1)
                        .reshape([batch, width]);
                    sums / weights.sum_dim(1).reshape([batch, 1])
                }
                None => hidden.mean_dim(1).reshape([batch, width]),
            },
        };
        let head = &self.classifier;
        let x = linear(&head.dense, head.dropout.forward(pooled));
        linear(
            &head.out_proj,
            head.dropout.forward(head.activation.forward(x)),
        )
    }
}
