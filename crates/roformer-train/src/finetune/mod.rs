//! Fine-tuning a pretrained encoder for sequence classification, sentence pairs and token
//! classification: labelled files, the config, the scores (entity scores for BIO tags),
//! the fine-tuned model's directory, the two heads, the inputs, the loop and the baselines
//! to compare with.

pub mod baseline;
pub mod classifier_dir;
pub mod config;
pub mod entities;
pub mod inputs;
pub mod labelled;
pub mod report;
pub mod scores;
pub mod task_model;
pub mod trainer;

pub use classifier_dir::{LoadedClassifier, LoadedTagger, load_classifier, load_tagger};
pub use config::{FinetuneConfig, TaskType};
pub use labelled::{
    LabelFields, LabelledExample, TagFields, TaggedExample, read_labelled, read_tagged,
};
pub use scores::{ClassScores, Scores, scores};
pub use trainer::{
    FINETUNE_CONFIG_FILE, FinetuneEvent, FinetuneRecord, FinetuneStart, FinetuneSummary, finetune,
};
