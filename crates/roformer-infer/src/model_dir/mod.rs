//! A model directory: what `--model DIR` reads, `roformer train` and `roformer import`
//! write, and `roformer export-hf` writes for transformers.
//!
//! It is laid out as HF transformers lays out a RoFormer checkpoint: `config.json`,
//! `model.safetensors` (HF parameter names; `pytorch_model.bin` is read too),
//! `tokenizer.json` and/or a BERT `vocab.txt`, and `tokenizer_config.json`. So a run
//! directory loads with `RoFormerForMaskedLM.from_pretrained`, and an HF RoFormer
//! directory loads here as it is.
//!
//! - [`files`]: the file names, the tokenizer's files, the weights file;
//! - [`architecture`]: which model a directory holds;
//! - [`encoder`]: a masked-LM or bare encoder ([`LoadedModel`]);
//! - [`task`]: a fine-tuned sequence or token classifier ([`LoadedTask`]);
//! - [`precision`]: any of them switched to the precision it computes in;
//! - [`convert`]: any of them rewritten in HF layout (`import`, `export-hf`).

pub mod architecture;
pub mod convert;
pub mod encoder;
pub mod files;
pub mod precision;
pub mod task;

pub use architecture::{
    CLASSIFIER_ARCHITECTURE, TAGGER_ARCHITECTURE, is_classifier_dir, read_labels, task_architecture,
};
pub use convert::{Converted, convert};
pub use encoder::{LoadedModel, load_model, save_model, write_model_dir};
pub use files::{
    CONFIG_FILE, PYTORCH_WEIGHTS_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, VOCAB_FILE,
    WEIGHTS_FILE, has_tokenizer_files, load_tokenizer, save_tokenizer, weights_file,
};
pub use precision::InPrecision;
pub use task::{
    LoadedClassifier, LoadedTagger, LoadedTask, classifier_config_json, load_classifier,
    load_tagger, load_task, save_classifier_config, save_classifier_weights, write_classifier_dir,
};
