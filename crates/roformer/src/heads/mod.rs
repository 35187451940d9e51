//! Task heads on top of [`crate::RoFormerModel`], each a port of the HF class it names.

mod masked_lm;
mod sequence_classification;
mod token_classification;

pub use masked_lm::{
    IGNORE_INDEX, RoFormerForMaskedLM, RoFormerLmPredictionHead, RoFormerOnlyMlmHead,
    RoFormerPredictionHeadTransform, masked_lm_loss,
};
pub use sequence_classification::{RoFormerClassificationHead, RoFormerForSequenceClassification};
pub use token_classification::RoFormerForTokenClassification;
