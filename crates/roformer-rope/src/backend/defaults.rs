//! Backends that rotate by the reference tensor operations ([`super::rotary_reference`]):
//! burn's Flex CPU backend.

use super::RotaryBackend;

impl RotaryBackend for burn::backend::Flex {}
