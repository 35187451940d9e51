//! [`RoFormerBackend`] on burn's Flex CPU backend: the references.

use super::RoFormerBackend;

impl RoFormerBackend for burn::backend::Flex {}
