//! Errors of the training library. Each names what was wrong (file, key, expected value)
//! so the binary can report it on one line. Errors of loading models, tokenizers and
//! inputs come from the inference library and pass through unchanged.

use std::path::Path;

use roformer_infer::InferError;
use thiserror::Error;

/// What can go wrong training a model.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A config file key with a bad or unknown value.
    #[error("{file}: key `{key}`: {message}")]
    Config {
        /// The config file.
        file: String,
        /// Dotted path of the key.
        key: String,
        /// What was expected.
        message: String,
    },
    /// A model, tokenizer, file or input error (the inference library's).
    #[error(transparent)]
    Infer(#[from] InferError),
    /// Data-parallel training could not go on: a replica stopped or did not answer, or
    /// the collective refused an operation.
    #[error("data-parallel training: {0}")]
    Distributed(String),
}

impl From<roformer::RoFormerError> for TrainError {
    fn from(error: roformer::RoFormerError) -> Self {
        TrainError::Infer(InferError::Model(error))
    }
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: impl std::fmt::Display) -> Self {
        InferError::io(path, error).into()
    }

    /// A data error in `source_name`.
    pub fn data(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        InferError::data(source_name, message).into()
    }

    /// A model-directory error on `path`.
    pub fn model_dir(path: &Path, message: impl Into<String>) -> Self {
        InferError::model_dir(path, message).into()
    }
}
