//! Errors of the encoder crate.

use thiserror::Error;

/// What can go wrong building, configuring or loading a RoFormer model.
#[derive(Debug, Error)]
pub enum RoFormerError {
    /// A configuration value a model cannot be built from.
    #[error("invalid config: `{field}` must be {expected}, got {found}")]
    InvalidConfig {
        /// The config field at fault.
        field: &'static str,
        /// What the field must be.
        expected: String,
        /// What it was.
        found: String,
    },
    /// A config file that does not parse; `key` is the path to the offending value.
    #[error("{source_name}: key `{key}`: {message}")]
    ConfigParse {
        /// The file (or other source) being read.
        source_name: String,
        /// Dotted path to the key at fault (`.` for the document itself).
        key: String,
        /// What was wrong.
        message: String,
    },
    /// The rotary embedding refused its configuration.
    #[error(transparent)]
    Rope(#[from] roformer_rope::RopeError),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A weights file that does not fit the model: every problem is listed.
    #[error("{path}: weights do not fit the model:\n{problems}")]
    WeightsMismatch {
        /// The weights file.
        path: String,
        /// One line per missing, unexpected or mis-shaped tensor.
        problems: String,
    },
    /// A compute precision the device does not run.
    #[error(
        "precision {precision} is not supported on this device ({device}); f32 runs everywhere, bf16 and f16 need a GPU build (--features cuda, or wgpu for f16) on a device that has the type"
    )]
    UnsupportedPrecision {
        /// The precision asked for.
        precision: &'static str,
        /// The device, as the backend describes it.
        device: String,
    },
    /// A weights file that cannot be read at all.
    #[error("{path}: cannot read weights: {message}")]
    WeightsFormat {
        /// The weights file.
        path: String,
        /// What the reader reported.
        message: String,
    },
}
