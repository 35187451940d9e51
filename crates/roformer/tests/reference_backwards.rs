//! The references' hand-written backward steps (`roformer::backend::reference::*_backward`,
//! and the rotary embedding's transposed rotation) against burn's automatic differentiation
//! of the same references' forward tensor operations, in f64.
//!
//! Through the trait, `Autodiff<NdArray<f64>>` runs the reference forward on the inner
//! backend and records the hand-written backward step (no kernel takes f64 tensors); called
//! directly on `Autodiff<NdArray<f64>>` tensors, a reference forward is differentiated by
//! burn. The two gradients must agree to f64 rounding (1e-10 on values of order 1).

use burn::backend::{Autodiff, NdArray};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive};
use roformer::RoFormerBackend;
use roformer::backend::{KeyMask, reference};
use roformer_rope::{RopeLayout, RotaryBackend, rotary_reference};
use roformer_testing::assert_close;

type AD = Autodiff<NdArray<f64>>;

const TOLERANCE: f64 = 1e-10;
const GELU_TOLERANCE: f64 = 1e-8;

/// Deterministic f64 values in [-scale, scale) (a 64-bit LCG).
fn leaf<const D: usize>(dims: [usize; D], seed: u64, scale: f64) -> Tensor<AD, D> {
    let n = dims.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f64> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_data(TensorData::new(values, dims), &Default::default()).require_grad()
}

fn value<const D: usize>(t: &Tensor<AD, D>) -> FloatTensor<AD> {
    t.clone().into_primitive().tensor()
}

fn wrap<const D: usize>(primitive: FloatTensor<AD>) -> Tensor<AD, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

fn values<B: burn::tensor::backend::Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// The gradients of `Σ weights ⊙ output` for each leaf, by the trait's recorded step and by
/// burn's autodiff of the reference, compared leaf by leaf within `tolerance`.
fn compare<const N: usize, const R: usize>(
    what: &str,
    tolerance: f64,
    leaves: &[Tensor<AD, N>],
    through_trait: impl Fn() -> Tensor<AD, R>,
    by_burn: impl Fn() -> Tensor<AD, R>,
) {
    let ours = through_trait();
    let burns = by_burn();
    assert_close(
        what,
        &values(ours.clone()),
        &values(burns.clone()),
        tolerance,
    );
    let weights = leaf(ours.dims(), 99, 1.0).detach();
    let ours = (ours * weights.clone()).sum().backward();
    let burns = (burns * weights).sum().backward();
    for (i, leaf) in leaves.iter().enumerate() {
        let got = values(leaf.grad(&ours).expect("a gradient by the recorded step"));
        let expected = values(leaf.grad(&burns).expect("a gradient by burn"));
        assert_close(
            &format!("{what}: gradient of input {i}"),
            &got,
            &expected,
            tolerance,
        );
    }
}

#[test]
fn attention_backward_matches_burns_autodiff() {
    let (batch, heads, seq, d) = (2, 3, 7, 4);
    let [q, k, v] = [1, 2, 3].map(|seed| leaf([batch, heads, seq, d], seed, 1.5));
    let mut bias = vec![0f64; batch * seq];
    bias[seq + 5] = -1e4;
    bias[seq + 6] = -1e4;
    let bias = Tensor::<AD, 4>::from_data(
        TensorData::new(bias, [batch, 1, 1, seq]),
        &Default::default(),
    );
    compare::<4, 3>(
        "attention",
        TOLERANCE,
        &[q.clone(), k.clone(), v.clone()],
        || {
            wrap(AD::self_attention(
                value(&q),
                value(&k),
                value(&v),
                Some(KeyMask::from_bias(value(&bias))),
                0.4,
                0.0,
            ))
        },
        || {
            wrap(reference::self_attention::<AD>(
                value(&q),
                value(&k),
                value(&v),
                Some(value(&bias)),
                0.4,
            ))
        },
    );
}

#[test]
fn affine_backward_matches_burns_autodiff_with_and_without_bias() {
    let x = leaf([2, 5, 6], 4, 1.0);
    let weight = leaf([6, 3], 5, 1.0);
    let bias = leaf([3], 6, 1.0);
    compare::<3, 3>(
        "affine (x)",
        TOLERANCE,
        std::slice::from_ref(&x),
        || wrap(AD::affine(value(&x), value(&weight), Some(value(&bias)))),
        || {
            wrap(reference::affine::<AD>(
                value(&x),
                value(&weight),
                Some(value(&bias)),
            ))
        },
    );
    compare::<2, 3>(
        "affine (weight)",
        TOLERANCE,
        std::slice::from_ref(&weight),
        || wrap(AD::affine(value(&x), value(&weight), None)),
        || wrap(reference::affine::<AD>(value(&x), value(&weight), None)),
    );
    compare::<1, 3>(
        "affine (bias)",
        TOLERANCE,
        std::slice::from_ref(&bias),
        || wrap(AD::affine(value(&x), value(&weight), Some(value(&bias)))),
        || {
            wrap(reference::affine::<AD>(
                value(&x),
                value(&weight),
                Some(value(&bias)),
            ))
        },
    );
}

#[test]
fn layer_norm_backward_matches_burns_autodiff_with_and_without_residual_and_beta() {
    let x = leaf([3, 4, 8], 7, 2.0);
    let residual = leaf([3, 4, 8], 8, 2.0);
    let gamma = leaf([8], 9, 1.0);
    let beta = leaf([8], 10, 1.0);
    for (with_residual, with_beta) in [(true, true), (false, false), (true, false)] {
        let residual = with_residual.then(|| value(&residual));
        let beta_value = with_beta.then(|| value(&beta));
        let what = format!("layer norm (residual {with_residual}, beta {with_beta})");
        compare::<3, 3>(
            &what,
            TOLERANCE,
            std::slice::from_ref(&x),
            || {
                wrap(AD::residual_layer_norm(
                    value(&x),
                    residual.clone(),
                    value(&gamma),
                    beta_value.clone(),
                    1e-5,
                ))
            },
            || {
                wrap(reference::residual_layer_norm::<AD>(
                    value(&x),
                    residual.clone(),
                    value(&gamma),
                    beta_value.clone(),
                    1e-5,
                ))
            },
        );
        compare::<1, 3>(
            &format!("{what}, gamma"),
            TOLERANCE,
            std::slice::from_ref(&gamma),
            || {
                wrap(AD::residual_layer_norm(
                    value(&x),
                    residual.clone(),
                    value(&gamma),
                    beta_value.clone(),
                    1e-5,
                ))
            },
            || {
                wrap(reference::residual_layer_norm::<AD>(
                    value(&x),
                    residual.clone(),
                    value(&gamma),
                    beta_value.clone(),
                    1e-5,
                ))
            },
        );
    }
}

#[test]
fn gelu_backward_matches_burns_autodiff() {
    let x = leaf([4, 33], 11, 5.0);
    compare::<2, 2>(
        "gelu",
        // burn's autodiff of `x·Φ(x)` (erf's derivative) and the written-out
        // `Φ(x) + x·φ(x)` differ by up to 4e-9 here (|x| ≤ 5).
        GELU_TOLERANCE,
        std::slice::from_ref(&x),
        || wrap(AD::exact_gelu(value(&x))),
        || wrap(reference::exact_gelu::<AD>(value(&x))),
    );
}

#[test]
fn cross_entropy_backward_matches_burns_autodiff_with_an_ignored_row() {
    let logits = leaf([5, 11], 12, 4.0);
    let labels = Tensor::<AD, 1, Int>::from_data(
        TensorData::new(vec![3i64, -100, 0, 10, 7], [5]),
        &Default::default(),
    );
    let loss = |through_trait: bool| {
        let labels = labels.clone().into_primitive();
        let output = if through_trait {
            AD::cross_entropy(value(&logits), labels, -100)
        } else {
            reference::cross_entropy::<AD>(value(&logits), labels, -100)
        };
        wrap::<1>(output.loss)
    };
    compare::<2, 1>(
        "cross-entropy",
        TOLERANCE,
        std::slice::from_ref(&logits),
        || loss(true),
        || loss(false),
    );
}

#[test]
fn rotary_backward_matches_burns_autodiff_for_both_layouts_and_a_partial_rotation() {
    let (seq, d, rotated, first) = (6, 10, 8, 2);
    let x = leaf([2, 3, seq, d], 13, 1.0);
    let cos = leaf([seq + 3, rotated], 14, 1.0).detach();
    let sin = leaf([seq + 3, rotated], 15, 1.0).detach();
    for layout in [RopeLayout::Interleaved, RopeLayout::Half] {
        compare::<4, 4>(
            &format!("rotary ({layout:?})"),
            TOLERANCE,
            std::slice::from_ref(&x),
            || {
                wrap(AD::rotary(
                    value(&x),
                    value(&cos),
                    value(&sin),
                    first,
                    layout,
                ))
            },
            || {
                wrap(rotary_reference::<AD>(
                    value(&x),
                    value(&cos),
                    value(&sin),
                    first,
                    layout,
                ))
            },
        );
    }
}
