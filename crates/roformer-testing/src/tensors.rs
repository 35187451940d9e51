//! Test data and tensor readout shared by the test files: reproducible pseudo-random
//! values, and a tensor's values on the host.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// `n` deterministic values in [-1, 1) from a 64-bit linear congruential generator
/// (Knuth's MMIX constants) started at `seed`, so failures reproduce.
pub fn random_values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The values of `tensor` as f32, in row-major order, whatever its float type.
pub fn tensor_values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("float tensor data converts to f32")
}
