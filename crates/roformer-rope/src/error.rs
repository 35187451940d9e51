//! Errors of the rotary embedding crate.

use core::fmt;

/// What can go wrong building a [`crate::RotaryEmbedding`].
#[derive(Debug, Clone, PartialEq)]
pub enum RopeError {
    /// A configuration value is out of range; `field` names it.
    InvalidConfig {
        /// The configuration field at fault.
        field: &'static str,
        /// What was expected and what was found.
        message: String,
    },
}

impl fmt::Display for RopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RopeError::InvalidConfig { field, message } => {
                write!(f, "invalid rotary embedding config: `{field}` {message}")
            }
        }
    }
}

impl std::error::Error for RopeError {}
