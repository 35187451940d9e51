//! A fine-tuning evaluation: a line of `metrics.jsonl`, and the score the kept model is
//! chosen by.

use serde::{Deserialize, Serialize};

use crate::run::RunRecord;
use crate::run::metrics::{LossRecord, StepRecord};

/// One evaluation: a line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneRecord {
    /// Optimisation steps done.
    pub step: usize,
    /// Mean training loss since the previous evaluation.
    pub train_loss: f64,
    /// Mean cross-entropy on the validation examples.
    pub valid_loss: f64,
    /// Fraction of validation examples classified correctly.
    pub valid_accuracy: f64,
    /// Macro-averaged F1 on the validation examples (words, for token classification).
    pub valid_macro_f1: f64,
    /// Entity-level F1 on the validation sentences (token classification with BIO labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_entity_f1: Option<f64>,
    /// Learning rate at this step.
    pub learning_rate: f64,
}

impl RunRecord for FinetuneRecord {
    const KEEPS_BEST: bool = true;

    /// Entity F1 where there is one, macro-F1 otherwise.
    fn selection_score(&self) -> f64 {
        self.valid_entity_f1.unwrap_or(self.valid_macro_f1)
    }
}

impl StepRecord for FinetuneRecord {
    fn step(&self) -> usize {
        self.step
    }
}

impl LossRecord for FinetuneRecord {
    fn train_loss(&self) -> f64 {
        self.train_loss
    }
    fn valid_loss(&self) -> f64 {
        self.valid_loss
    }
}
