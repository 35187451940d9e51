//! Tensor layout changes that prefer the burn-ndarray kernel: burn-ndarray's `reshape`
//! copies every row-major array, `roformer_kernels::reshape` keeps the buffer; every other
//! backend (GPU) uses burn's own.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// `x` with shape `dims` (as many elements), without a copy where the backend allows.
pub fn reshape<B: Backend, const D: usize, const D2: usize>(
    x: Tensor<B, D>,
    dims: [usize; D2],
) -> Tensor<B, D2> {
    roformer_kernels::reshape(&x, dims).unwrap_or_else(|| x.reshape(dims))
}
