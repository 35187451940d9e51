//! Kernelised (linear) attention with rotary positions: Su et al. 2021, §3.3 and eq. (19),
//! on the linear attention of Katharopoulos et al. 2020 ("Transformers are RNNs").
//!
//! With the feature map φ(x) = elu(x) + 1 (positive, so the normaliser never vanishes),
//! the output at position m is
//!
//! ```text
//!            Σ_n (R_m φ(q_m))ᵀ (R_n φ(k_n)) v_n
//! out_m  =  ────────────────────────────────────
//!                  Σ_n φ(q_m)ᵀ φ(k_n)
//! ```
//!
//! with R_m the rotation of position m. The rotation is in the numerator only: rotated
//! features can have negative inner products, and the paper keeps the normaliser on the
//! unrotated, positive φ so that it stays positive. Because the numerator sums over n
//! before it meets m, it is computed as `R φ(Q) · ((R φ(K))ᵀ V)`, which costs
//! O(seq · head_size²) instead of the O(seq² · head_size) of softmax attention. There is
//! no probability matrix, so `attention_probs_dropout_prob` has nothing to act on here.

use burn::tensor::Tensor;
use burn::tensor::activation::elu;
use burn::tensor::backend::Backend;

/// Added to the normaliser, as in Katharopoulos et al.'s implementation, so that a row
/// whose keys are all padding gives zeros instead of 0/0.
pub const LINEAR_ATTENTION_EPS: f64 = 1e-6;

/// φ(x) = elu(x) + 1, the feature map of Katharopoulos et al.
pub fn elu_feature_map<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    elu(x, 1.0).add_scalar(1.0)
}

/// Eq. (19) over `[batch, heads, seq, head_size]` projections; returns the context
/// `[batch, heads, seq, head_size]`.
///
/// `rotate(x)` rotates features `[batch, heads, seq, head_size]` by their positions (the
/// identity for a model without rotary positions). `key_mask` (`[batch, 1, seq, 1]`, 1 for
/// a real key and 0 for padding) removes padded keys from both sums.
pub fn linear_attention<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    key_mask: Option<Tensor<B, 4>>,
    rotate: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
) -> Tensor<B, 4> {
    let query_features = elu_feature_map(query);
    let key_features = match key_mask {
        Some(mask) => elu_feature_map(key) * mask,
        None => elu_feature_map(key),
    };
    // Σ_n (R_n φ(k_n)) v_nᵀ: [batch, heads, head_size, head_size].
    let key_values = rotate(key_features.clone()).swap_dims(2, 3).matmul(value);
    let numerator = rotate(query_features.clone()).matmul(key_values);
    // φ(q_m)ᵀ Σ_n φ(k_n): [batch, heads, seq, 1].
    let key_sum = key_features.sum_dim(2);
    let normaliser = (query_features * key_sum)
        .sum_dim(3)
        .add_scalar(LINEAR_ATTENTION_EPS);
    numerator / normaliser
}
