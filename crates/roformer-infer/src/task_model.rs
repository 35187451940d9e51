//! The two heads fine-tuning trains, behind one interface: HF
//! `RoFormerForSequenceClassification` (one prediction per input) and
//! `RoFormerForTokenClassification` (one prediction per word, read at the word's first
//! token, as HF's token-classification examples label only the first sub-word).
//!
//! A "unit" is what gets a label: an input for sequence classification, a word for token
//! classification. The loop, the scores and the model directory work in units.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use roformer::hf_weights::{
    load_hf_sequence_classification, load_hf_token_classification, save_hf_sequence_classification,
    save_hf_token_classification,
};
use roformer::{
    Precision, RoFormerBackend, RoFormerConfig, RoFormerError, RoFormerForSequenceClassification,
    RoFormerForTokenClassification, RoFormerInput, RoFormerModel,
};

/// A fine-tunable model: an encoder with a classification head.
pub trait TaskModel<B: RoFormerBackend>: Module<B> {
    /// The `architectures` name of its HF `config.json`.
    const ARCHITECTURE: &'static str;
    /// Whether it labels words (token classification) rather than whole inputs.
    const LABELS_WORDS: bool;

    /// A fresh model with `num_labels` outputs (the head initialised from the backend's seed).
    fn fresh(
        config: &RoFormerConfig,
        num_labels: usize,
        device: &B::Device,
    ) -> Result<Self, RoFormerError>;

    /// The encoder.
    fn encoder(&self) -> &RoFormerModel<B>;

    /// The model computing in `precision` (`RoFormerModel::with_precision`).
    fn with_precision(self, precision: Precision) -> Self;

    /// The model with `encoder`'s weights in its encoder. Through the record, so the
    /// parameters keep this model's autodiff setting (tensors loaded from a file do not
    /// require gradients).
    fn with_encoder_weights(self, encoder: RoFormerModel<B>) -> Self;

    /// The logits of the units, `[units, num_labels]`. For a word-labelling model,
    /// `unit_rows` are the rows of the batch's `[batch × seq]` token positions to read (the
    /// first token of each word); a whole-input model ignores them.
    fn unit_logits(
        &self,
        input: RoFormerInput<B>,
        unit_rows: Option<Tensor<B, 1, Int>>,
    ) -> Tensor<B, 2>;

    /// Writes the weights as transformers' `save_pretrained` does.
    fn save_hf(&self, config: &RoFormerConfig, path: &Path) -> Result<(), RoFormerError>;

    /// Loads weights saved by [`Self::save_hf`] or by transformers, strictly.
    fn load_hf(
        config: &RoFormerConfig,
        num_labels: usize,
        path: &Path,
        device: &B::Device,
    ) -> Result<Self, RoFormerError>;
}

/// The methods both heads implement alike: each is an HF head struct with its encoder in
/// `roformer`, saved and loaded by `roformer::hf_weights`' `$save` and `$load`.
macro_rules! encoder_head_methods {
    ($save:ident, $load:ident) => {
        fn fresh(
            config: &RoFormerConfig,
            num_labels: usize,
            device: &B::Device,
        ) -> Result<Self, RoFormerError> {
            Self::new(config, num_labels, device)
        }

        fn encoder(&self) -> &RoFormerModel<B> {
            &self.roformer
        }

        fn with_precision(self, precision: Precision) -> Self {
            Self::with_precision(self, precision)
        }

        fn with_encoder_weights(mut self, encoder: RoFormerModel<B>) -> Self {
            self.roformer = self.roformer.load_record(encoder.into_record());
            self
        }

        fn save_hf(&self, config: &RoFormerConfig, path: &Path) -> Result<(), RoFormerError> {
            $save(self, config, path)
        }

        fn load_hf(
            config: &RoFormerConfig,
            num_labels: usize,
            path: &Path,
            device: &B::Device,
        ) -> Result<Self, RoFormerError> {
            $load(config, num_labels, path, device)
        }
    };
}

impl<B: RoFormerBackend> TaskModel<B> for RoFormerForSequenceClassification<B> {
    const ARCHITECTURE: &'static str = "RoFormerForSequenceClassification";
    const LABELS_WORDS: bool = false;

    encoder_head_methods!(
        save_hf_sequence_classification,
        load_hf_sequence_classification
    );

    fn unit_logits(&self, input: RoFormerInput<B>, _: Option<Tensor<B, 1, Int>>) -> Tensor<B, 2> {
        self.forward(input)
    }
}

impl<B: RoFormerBackend> TaskModel<B> for RoFormerForTokenClassification<B> {
    const ARCHITECTURE: &'static str = "RoFormerForTokenClassification";
    const LABELS_WORDS: bool = true;

    encoder_head_methods!(save_hf_token_classification, load_hf_token_classification);

    fn unit_logits(
        &self,
        input: RoFormerInput<B>,
        unit_rows: Option<Tensor<B, 1, Int>>,
    ) -> Tensor<B, 2> {
        let logits = self.forward(input);
        let [batch, seq, classes] = logits.dims();
        let rows = unit_rows.expect("a word-labelling model is given the rows of its words");
        logits.reshape([batch * seq, classes]).select(0, rows)
    }
}
