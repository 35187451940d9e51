//! Tensor layout changes that prefer the burn-ndarray kernel: burn-ndarray's `reshape`
//! copies every row-major array, `roformer_kernels::reshape` keeps the buffer; every other
//! backend (GPU) uses burn's own. Also the float-type alignment of tensors made from
//! masks or host data.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

/// `x` with shape `dims` (as many elements), without a copy where the backend allows.
pub fn reshape<B: Backend, const D: usize, const D2: usize>(
    x: Tensor<B, D>,
    dims: [usize; D2],
) -> Tensor<B, D2> {
    roformer_kernels::reshape(&x, dims).unwrap_or_else(|| x.reshape(dims))
}

/// `x` in float type `dtype`: `bool.float()` and host data come in the device's default
/// float type, which an f64 or f16 model's tensors differ from, and burn does not mix
/// float types in one operation.
pub fn in_float_type<B: Backend, const D: usize>(x: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    if x.dtype() == dtype { x } else { x.cast(dtype) }
}
