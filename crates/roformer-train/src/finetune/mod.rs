//! Fine-tuning a pretrained encoder for sequence classification and sentence pairs:
//! labelled files, the config, the scores, the classifier's model directory, the inputs,
//! the loop and the baselines to compare with.

pub mod baseline;
pub mod classifier_dir;
pub mod config;
pub mod inputs;
pub mod labelled;
pub mod report;
pub mod scores;
pub mod trainer;

pub use classifier_dir::{LoadedClassifier, load_classifier};
pub use config::{FinetuneConfig, TaskType};
pub use labelled::{LabelFields, LabelledExample, read_labelled};
pub use scores::{ClassScores, Scores, scores};
pub use trainer::{
    FINETUNE_CONFIG_FILE, FinetuneEvent, FinetuneRecord, FinetuneStart, FinetuneSummary, finetune,
};
