//! [`RotaryBackend`] on burn-ndarray: f32 tensors rotate in one pass
//! (`roformer_kernels::rotate`, any input strides, the tables read in place); other float
//! types (f64) take the reference.

use burn::backend::NdArray;
use burn_ndarray::{
    FloatNdArrayElement, IntNdArrayElement, NdArrayTensor, QuantElement, SharedArray,
};

use super::{RotaryBackend, rotary_reference};
use crate::layout::RopeLayout;

impl<E, I, Q> RotaryBackend for NdArray<E, I, Q>
where
    E: FloatNdArrayElement,
    I: IntNdArrayElement,
    Q: QuantElement,
    NdArrayTensor: From<SharedArray<E>> + From<SharedArray<I>>,
{
    fn rotary(
        x: NdArrayTensor,
        cos: NdArrayTensor,
        signed_sin: NdArrayTensor,
        first_position: usize,
        layout: RopeLayout,
    ) -> NdArrayTensor {
        let (NdArrayTensor::F32(x), NdArrayTensor::F32(c), NdArrayTensor::F32(s)) =
            (&x, &cos, &signed_sin)
        else {
            return rotary_reference::<Self>(x, cos, signed_sin, first_position, layout);
        };
        let (x, c, s) = (
            x.clone().into_shared(),
            c.clone().into_shared(),
            s.clone().into_shared(),
        );
        let pairing = pairing(layout);
        let rotated =
            roformer_kernels::rotate(&x, &c, &s, first_position, pairing).unwrap_or_else(|| {
                panic!(
                    "rotary embedding: tables {:?} from row {first_position} do not fit x {:?}",
                    c.shape(),
                    x.shape()
                )
            });
        NdArrayTensor::from(rotated)
    }
}

/// The kernel's name for a layout.
pub(crate) fn pairing(layout: RopeLayout) -> roformer_kernels::Pairing {
    match layout {
        RopeLayout::Interleaved => roformer_kernels::Pairing::Adjacent,
        RopeLayout::Half => roformer_kernels::Pairing::Halves,
    }
}
