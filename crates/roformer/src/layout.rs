//! Tensor layout changes through the backend ([`RoFormerBackend::reshape_in_place`]:
//! burn-ndarray's own `reshape` copies every row-major array), and the float-type alignment
//! of tensors made from masks or host data.

use crate::backend::RoFormerBackend;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Shape, Tensor, TensorPrimitive};

/// `x` with shape `dims` (as many elements), without a copy where the backend allows.
pub fn reshape<B: RoFormerBackend, const D: usize, const D2: usize>(
    x: Tensor<B, D>,
    dims: [usize; D2],
) -> Tensor<B, D2> {
    let reshaped = B::reshape_in_place(x.into_primitive().tensor(), Shape::new(dims));
    Tensor::from_primitive(TensorPrimitive::Float(reshaped))
}

/// `x` in float type `dtype`: `bool.float()` and host data come in the device's default
/// float type, which an f64 or f16 model's tensors differ from, and burn does not mix
/// float types in one operation.
pub fn in_float_type<B: Backend, const D: usize>(x: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    if x.dtype() == dtype { x } else { x.cast(dtype) }
}
