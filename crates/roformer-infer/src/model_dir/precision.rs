//! A loaded model switched to the precision it computes in: one check that the device
//! computes in it, then the model's own cast of its weights.

use roformer::{Precision, RoFormerBackend};

use crate::error::InferError;

/// A loaded model that can be cast to another compute precision.
pub trait InPrecision<B: RoFormerBackend>: Sized {
    /// The model with its weights stored in `precision` (no device check).
    fn cast_to(self, precision: Precision) -> Self;

    /// The model for inference in `precision` (weights stored in it); an error when the
    /// device does not compute in it.
    fn in_precision(self, precision: Precision, device: &B::Device) -> Result<Self, InferError> {
        precision.check_supported::<B>(device)?;
        Ok(self.cast_to(precision))
    }
}
