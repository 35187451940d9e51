//! Token classification: HF `RoFormerForTokenClassification` (dropout → linear on every
//! token's last hidden state).

use crate::backend::RoFormerBackend;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::config::RoFormerConfig;
use crate::dense::linear;
use crate::error::RoFormerError;
use crate::init::normal_linear;
use crate::model::{RoFormerInput, RoFormerModel};
use crate::precision::{Precision, widened};

/// The encoder with a per-token classifier.
#[derive(Module, Debug)]
pub struct RoFormerForTokenClassification<B: Backend> {
    /// HF `roformer`.
    pub roformer: RoFormerModel<B>,
    /// Dropout with `hidden_dropout_prob`.
    pub dropout: Dropout,
    /// HF `classifier`: `hidden_size → num_labels`.
    pub classifier: Linear<B>,
}

impl<B: RoFormerBackend> RoFormerForTokenClassification<B> {
    /// A freshly initialised tagger with `num_labels` outputs.
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
        Ok(Self {
            roformer: RoFormerModel::new(config, device)?,
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            classifier: normal_linear(
                config.hidden_size,
                num_labels,
                config.initializer_range,
                device,
            ),
        })
    }

    /// The tagger computing in `precision` ([`RoFormerModel::with_precision`]); the
    /// classifier itself is small and runs in f32.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.roformer = self.roformer.with_precision(precision);
        self
    }

    /// Per-token logits `[batch, seq, num_labels]`, f32.
    pub fn forward(&self, input: RoFormerInput<B>) -> Tensor<B, 3> {
        let hidden = widened(self.roformer.forward(input));
        linear(&self.classifier, self.dropout.forward(hidden))
    }
}
