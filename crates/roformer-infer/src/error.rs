//! Errors of the inference library. Each names what was wrong (file, input, expected
//! value) so a front end can report it on one line (the CLI) or as a 4xx answer (a server).

use std::path::Path;

use thiserror::Error;

/// What can go wrong loading or running a model.
#[derive(Debug, Error)]
pub enum InferError {
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
    /// Input that cannot be used (empty text, bad line, unknown token id, …).
    #[error("{source_name}: {message}")]
    Data {
        /// The file or input at fault.
        source_name: String,
        /// What was wrong.
        message: String,
    },
    /// A model directory that is missing pieces or is corrupt.
    #[error("{path}: {message}")]
    ModelDir {
        /// The directory or file.
        path: String,
        /// What is missing or wrong.
        message: String,
    },
}

impl InferError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: impl std::fmt::Display) -> Self {
        InferError::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        }
    }

    /// A data error in `source_name`.
    pub fn data(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        InferError::Data {
            source_name: source_name.into(),
            message: message.into(),
        }
    }

    /// A model-directory error on `path`.
    pub fn model_dir(path: &Path, message: impl Into<String>) -> Self {
        InferError::ModelDir {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}
