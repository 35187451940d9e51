//! Fine-tuning a pretrained encoder for sequence classification, sentence pairs and token
//! classification: labelled files, the config, the scores (entity scores for BIO tags),
//! the loop and the baselines to compare with. The two heads, their inputs and the
//! fine-tuned model's directory are `roformer_infer`'s.

pub mod adapt;
pub mod baseline;
pub mod config;
mod examples;
mod head;
pub mod labelled;
mod record;
pub mod report;
pub mod scores;
mod splits;
pub mod trainer;

pub use config::{FinetuneConfig, TaskType};
pub use labelled::{
    LabelFields, LabelledExample, TagFields, TaggedExample, read_labelled, read_tagged,
};
pub use record::FinetuneRecord;
pub use scores::{ClassScores, Scores, scores};
pub use trainer::{
    FINETUNE_CONFIG_FILE, FinetuneDetails, FinetuneEvent, FinetuneStart, FinetuneSummary, finetune,
};
