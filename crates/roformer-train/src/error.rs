//! Errors of the training and inference library. Each names what was wrong (file, key,
//! expected value) so the binary can report it on one line.

use std::path::Path;

use thiserror::Error;

/// What can go wrong training or running a model.
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
    /// A file or folder that cannot be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// The model refused its config or weights.
    #[error(transparent)]
    Model(#[from] roformer::RoFormerError),
    /// A tokenizer that cannot be trained, read or used.
    #[error("tokenizer {source_name}: {message}")]
    Tokenizer {
        /// The tokenizer file, or "training".
        source_name: String,
        /// What went wrong.
        message: String,
    },
    /// Input data that cannot be used (empty corpus, bad line, unknown token id, …).
    #[error("{source_name}: {message}")]
    Data {
        /// The file or input at fault.
        source_name: String,
        /// What was wrong.
        message: String,
    },
    /// A run or model directory that is missing pieces or is corrupt.
    #[error("{path}: {message}")]
    ModelDir {
        /// The directory or file.
        path: String,
        /// What is missing or wrong.
        message: String,
    },
    /// Data-parallel training could not go on: a replica stopped or did not answer, or
    /// the collective refused an operation.
    #[error("data-parallel training: {0}")]
    Distributed(String),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: impl std::fmt::Display) -> Self {
        TrainError::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        }
    }

    /// A data error in `source_name`.
    pub fn data(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        TrainError::Data {
            source_name: source_name.into(),
            message: message.into(),
        }
    }

    /// A model-directory error on `path`.
    pub fn model_dir(path: &Path, message: impl Into<String>) -> Self {
        TrainError::ModelDir {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}
