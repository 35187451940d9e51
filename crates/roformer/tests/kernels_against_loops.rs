//! Each CPU kernel, through the backend extension traits on burn-ndarray and
//! `Autodiff<NdArray>`, against a plain-Rust loop computation of the same formula in f64,
//! on strided inputs like the ones the model passes (heads split by `swap_dims`); and that
//! the kernels are what runs (their dispatch counters move) for f32 tensors on both
//! backends, and not for f64 tensors.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Int, Tensor, TensorData, TensorPrimitive};
use roformer::RoFormerBackend;
use roformer::backend::dispatch::{Kernel, calls};
use roformer::backend::{AdamWStep, AdamWUpdate, KeyMask};
use roformer_rope::{RopeLayout as Pairing, RotaryBackend};
use roformer_testing::{random_values, tensor_values};

use roformer_testing::max_abs_diff;

type B = NdArray;

/// `run()`'s result when it called `kernel` on this thread, else `None`.
fn taken<T>(kernel: Kernel, run: impl FnOnce() -> T) -> Option<T> {
    let before = calls(kernel);
    let output = run();
    (calls(kernel) > before).then_some(output)
}

fn value<Bk: Backend, const D: usize>(t: &Tensor<Bk, D>) -> FloatTensor<Bk> {
    t.clone().into_primitive().tensor()
}

fn wrap<Bk: Backend, const D: usize>(primitive: FloatTensor<Bk>) -> Tensor<Bk, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// The rotation, when the rotary kernel ran it.
fn rotary<Bk: RotaryBackend, const D: usize>(
    x: &Tensor<Bk, D>,
    cos: &Tensor<Bk, 2>,
    sin: &Tensor<Bk, 2>,
    first: usize,
    layout: Pairing,
) -> Option<Tensor<Bk, D>> {
    taken(Kernel::Rotary, || {
        wrap(Bk::rotary(value(x), value(cos), value(sin), first, layout))
    })
}

/// Attention, when the attention kernel ran it.
fn attention<Bk: RoFormerBackend>(
    q: &Tensor<Bk, 4>,
    k: &Tensor<Bk, 4>,
    v: &Tensor<Bk, 4>,
    bias: Option<&Tensor<Bk, 4>>,
    scale: f32,
    dropout: f64,
) -> Option<Tensor<Bk, 3>> {
    taken(Kernel::Attention, || {
        wrap(Bk::self_attention(
            value(q),
            value(k),
            value(v),
            bias.map(|bias| KeyMask::from_bias(value(bias))),
            scale,
            dropout,
        ))
    })
}

/// GELU: `Ok` when the kernel ran it, `Err` (with the reference's result) otherwise.
fn gelu<Bk: RoFormerBackend, const D: usize>(
    x: Tensor<Bk, D>,
) -> Result<Tensor<Bk, D>, Tensor<Bk, D>> {
    let before = calls(Kernel::Gelu);
    let output = wrap(Bk::exact_gelu(x.into_primitive().tensor()));
    if calls(Kernel::Gelu) > before {
        Ok(output)
    } else {
        Err(output)
    }
}

fn linear<Bk: RoFormerBackend, const D: usize>(
    x: &Tensor<Bk, D>,
    weight: &Tensor<Bk, 2>,
    bias: Option<&Tensor<Bk, 1>>,
) -> Option<Tensor<Bk, D>> {
    taken(Kernel::Affine, || {
        wrap(Bk::affine(value(x), value(weight), bias.map(value)))
    })
}

fn linear_gelu<Bk: RoFormerBackend, const D: usize>(
    x: &Tensor<Bk, D>,
    weight: &Tensor<Bk, 2>,
    bias: &Tensor<Bk, 1>,
) -> Option<Tensor<Bk, D>> {
    taken(Kernel::AffineGelu, || {
        wrap(Bk::affine_gelu(value(x), value(weight), value(bias)))
    })
}

fn linear_add_layer_norm<Bk: RoFormerBackend, const D: usize>(
    x: &Tensor<Bk, D>,
    weight: &Tensor<Bk, 2>,
    bias: &Tensor<Bk, 1>,
    residual: &Tensor<Bk, D>,
    gamma: &Tensor<Bk, 1>,
    beta: &Tensor<Bk, 1>,
    epsilon: f64,
) -> Option<Tensor<Bk, D>> {
    taken(Kernel::AffineAddLayerNorm, || {
        wrap(Bk::affine_add_layer_norm(
            value(x),
            value(weight),
            value(bias),
            value(residual),
            value(gamma),
            value(beta),
            epsilon,
        ))
    })
}

fn add_layer_norm<Bk: RoFormerBackend, const D: usize>(
    x: &Tensor<Bk, D>,
    residual: &Tensor<Bk, D>,
    gamma: &Tensor<Bk, 1>,
    beta: Option<&Tensor<Bk, 1>>,
    epsilon: f64,
) -> Option<Tensor<Bk, D>> {
    taken(Kernel::LayerNorm, || {
        wrap(Bk::residual_layer_norm(
            value(x),
            Some(value(residual)),
            value(gamma),
            beta.map(value),
            epsilon,
        ))
    })
}

fn layer_norm<Bk: RoFormerBackend, const D: usize>(
    x: &Tensor<Bk, D>,
    gamma: &Tensor<Bk, 1>,
    beta: Option<&Tensor<Bk, 1>>,
    epsilon: f64,
) -> Option<Tensor<Bk, D>> {
    taken(Kernel::LayerNorm, || {
        wrap(Bk::residual_layer_norm(
            value(x),
            None,
            value(gamma),
            beta.map(value),
            epsilon,
        ))
    })
}

/// The AdamW step, when the kernel ran it.
fn adamw<Bk: RoFormerBackend, const D: usize>(
    param: Tensor<Bk, D>,
    grad: Tensor<Bk, D>,
    moments: Option<(Tensor<Bk, D>, Tensor<Bk, D>)>,
    step: &AdamWStep,
) -> Option<AdamWUpdate<Bk, D>> {
    taken(Kernel::AdamW, || Bk::adamw_step(param, grad, moments, step))
}

fn tensor<Bk: Backend, const D: usize>(dims: [usize; D], seed: u64, scale: f32) -> Tensor<Bk, D> {
    let n = dims.iter().product();
    let v: Vec<f32> = random_values(n, seed).iter().map(|x| x * scale).collect();
    Tensor::from_data(TensorData::new(v, dims), &Default::default())
}

/// erf by its Taylor series in f64 (200 terms: converges for the |z| ≤ 4.3 used here).
fn series_erf(z: f64) -> f64 {
    let (mut term, mut sum) = (z, z);
    for n in 1..200 {
        term *= -z * z / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// The gradient of each leaf, as f32 values.
fn f32_gradients<const D: usize, const N: usize>(
    leaves: &[Tensor<Autodiff<NdArray>, D>; N],
    gradients: &<Autodiff<NdArray> as burn::tensor::backend::AutodiffBackend>::Gradients,
) -> Vec<Vec<f32>> {
    leaves
        .iter()
        .map(|t| {
            t.grad(gradients)
                .unwrap()
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        })
        .collect()
}

/// Fresh f64 leaves with the same values (the kernels decline f64 tensors).
fn f64_leaves<const D: usize, const N: usize>(
    leaves: &[Tensor<Autodiff<NdArray>, D>; N],
) -> [Tensor<Autodiff<NdArray>, D>; N] {
    leaves
        .clone()
        .map(|t| t.cast(DType::F64).detach().require_grad())
}

/// Each f64 leaf's gradient against the kernel path's (f32) within 2e-5.
fn assert_gradients_match<const D: usize, const N: usize>(
    names: &[&str; N],
    leaves64: &[Tensor<Autodiff<NdArray>, D>; N],
    gradients: &<Autodiff<NdArray> as burn::tensor::backend::AutodiffBackend>::Gradients,
    kernel: &[Vec<f32>],
) {
    for ((name, leaf), kernel) in names.iter().zip(leaves64).zip(kernel) {
        let expected: Vec<f64> = leaf
            .grad(gradients)
            .unwrap()
            .into_data()
            .convert::<f64>()
            .to_vec()
            .unwrap();
        let gap = max_abs_diff(kernel, &expected);
        assert!(
            gap < 2e-5,
            "d{name}: max |kernel - f64 reference| = {gap:e}"
        );
    }
}

/// q, k, v as the model makes them: `[b, s, h·d]` split into heads by `swap_dims` (strided).
fn heads(batch: usize, seq: usize, heads: usize, d: usize, seed: u64) -> Tensor<B, 4> {
    tensor::<B, 3>([batch, seq, heads * d], seed, 2.0)
        .reshape([batch, seq, heads, d])
        .swap_dims(1, 2)
}

#[test]
fn attention_matches_loops_with_padding_bias_and_several_query_blocks() {
    let (batch, h, seq, d) = (2, 3, 130, 8);
    let (q, k, v) = (
        heads(batch, seq, h, d, 1),
        heads(batch, seq, h, d, 2),
        heads(batch, seq, h, d, 3),
    );
    // Row 1 masks its last 30 keys with the encoder's bias value.
    let bias: Vec<f32> = (0..batch * seq)
        .map(|i| {
            if i >= seq && i % seq >= 100 {
                f32::MIN
            } else {
                0.0
            }
        })
        .collect();
    let bias = Tensor::<B, 4>::from_data(
        TensorData::new(bias.clone(), [batch, 1, 1, seq]),
        &Default::default(),
    );
    let scale = 0.35;
    let out =
        attention(&q, &k, &v, Some(&bias), scale, 0.0).expect("ndarray f32 tensors are taken");
    assert_eq!(out.dims(), [batch, seq, h * d]);

    let (qv, kv, vv, bv) = (
        tensor_values(q.swap_dims(1, 2)),
        tensor_values(k.swap_dims(1, 2)),
        tensor_values(v.swap_dims(1, 2)),
        tensor_values(bias),
    );
    // Reference in f64 over the `[b, s, h, d]` layout.
    let at = |x: &[f32], b: usize, s: usize, hh: usize, j: usize| {
        x[((b * seq + s) * h + hh) * d + j] as f64
    };
    let mut expected = vec![0f64; batch * seq * h * d];
    for b in 0..batch {
        for hh in 0..h {
            for i in 0..seq {
                let scores: Vec<f64> = (0..seq)
                    .map(|j| {
                        let dot: f64 = (0..d)
                            .map(|t| at(&qv, b, i, hh, t) * at(&kv, b, j, hh, t))
                            .sum();
                        dot * scale as f64 + bv[b * seq + j] as f64
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for t in 0..d {
                    let value: f64 = (0..seq).map(|j| weights[j] * at(&vv, b, j, hh, t)).sum();
                    expected[((b * seq + i) * h + hh) * d + t] = value / total;
                }
            }
        }
    }
    let gap = max_abs_diff(&tensor_values(out), &expected);
    assert!(gap < 1e-5, "max |kernel - loops| = {gap:e}");
}

#[test]
fn rotary_matches_loops_for_both_pairings_and_a_partial_rotation() {
    let (batch, h, seq, d, rotated) = (2, 3, 70, 12, 8);
    // Tables longer than the sequence, used from position 3 on (as for a position offset).
    let first = 3;
    let x = heads(batch, seq, h, d, 4);
    let cos = tensor::<B, 2>([seq + 5, rotated], 5, 1.0);
    let sin = tensor::<B, 2>([seq + 5, rotated], 6, 1.0);
    let (xv, cv, sv) = (
        tensor_values(x.clone()),
        tensor_values(cos.clone()),
        tensor_values(sin.clone()),
    );
    for pairing in [Pairing::Interleaved, Pairing::Half] {
        let out = rotary(&x, &cos, &sin, first, pairing).expect("ndarray f32 tensors are taken");
        let mut expected: Vec<f64> = xv.iter().map(|&v| v as f64).collect();
        for (row, out_row) in expected.chunks_mut(d).enumerate() {
            let m = first + row % seq;
            let x_row = &xv[row * d..(row + 1) * d];
            for j in 0..rotated {
                let partner = match pairing {
                    Pairing::Interleaved => j ^ 1,
                    Pairing::Half => (j + rotated / 2) % rotated,
                };
                out_row[j] = x_row[j] as f64 * cv[m * rotated + j] as f64
                    + x_row[partner] as f64 * sv[m * rotated + j] as f64;
            }
        }
        let gap = max_abs_diff(&tensor_values(out), &expected);
        assert!(gap < 1e-6, "{pairing:?}: max |kernel - loops| = {gap:e}");
    }
}

#[test]
fn gelu_matches_the_exact_erf_form() {
    let x = tensor::<B, 2>([33, 65], 7, 6.0);
    let xv = tensor_values(x.clone());
    // While `x` is also held elsewhere the kernel writes a copy; then, as sole owner, in place.
    let on_copy = tensor_values(gelu(x.clone()).expect("ndarray f32 tensors are taken"));
    assert_eq!(
        tensor_values(x.clone()),
        xv,
        "a shared input was overwritten"
    );
    let out = tensor_values(gelu(x).expect("ndarray f32 tensors are taken"));
    assert_eq!(on_copy, out);
    // Φ(x) from f64 erf by its Taylor series (|x/√2| ≤ 4.3 here; 200 terms converge).
    let expected: Vec<f64> = xv
        .iter()
        .map(|&v| 0.5 * v as f64 * (1.0 + series_erf(v as f64 / std::f64::consts::SQRT_2)))
        .collect();
    let gap = max_abs_diff(&out, &expected);
    // |x| ≤ 6 times erf's 5e-7, halved.
    assert!(gap < 2e-6, "max |kernel - exact| = {gap:e}");
}

#[test]
fn rotary_and_gelu_gradients_on_autodiff_ndarray_match_loops() {
    type AD = Autodiff<NdArray>;
    let (seq, d) = (9, 8);
    let x = tensor::<AD, 3>([2, seq, d], 10, 2.0).require_grad();
    let weights = tensor::<AD, 3>([2, seq, d], 11, 1.0);
    // Tables from position 2 on, as for a position offset.
    let first = 2;
    let cos = tensor::<AD, 2>([seq + 4, d], 12, 1.0);
    let sin = tensor::<AD, 2>([seq + 4, d], 13, 1.0);
    let (xv, wv, cv, sv) = (
        x.clone().into_data().to_vec::<f32>().unwrap(),
        weights.clone().into_data().to_vec::<f32>().unwrap(),
        cos.clone().into_data().to_vec::<f32>().unwrap(),
        sin.clone().into_data().to_vec::<f32>().unwrap(),
    );
    for pairing in [Pairing::Interleaved, Pairing::Half] {
        let partner = |j: usize| match pairing {
            Pairing::Interleaved => j ^ 1,
            Pairing::Half => (j + d / 2) % d,
        };
        let rotated = rotary(&x, &cos, &sin, first, pairing).expect("Autodiff<NdArray> is taken");
        let gradients = (rotated * weights.clone()).sum().backward();
        let gradient = x
            .grad(&gradients)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // ∂/∂x_k of Σ_j w_j (x_j c_j + x_p(j) s_j) = w_k c_k + w_p(k) s_p(k).
        let expected: Vec<f64> = (0..xv.len())
            .map(|i| {
                let (row, k) = (i / d, i % d);
                let m = first + row % seq;
                let p = partner(k);
                wv[i] as f64 * cv[m * d + k] as f64 + wv[row * d + p] as f64 * sv[m * d + p] as f64
            })
            .collect();
        let gap = max_abs_diff(&gradient, &expected);
        assert!(gap < 1e-6, "{pairing:?}: max |gradient - loops| = {gap:e}");
    }

    let activated = gelu(x.clone()).expect("Autodiff<NdArray> is taken");
    let gradients = (activated * weights).sum().backward();
    let gradient = x
        .grad(&gradients)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let expected: Vec<f64> = xv
        .iter()
        .zip(&wv)
        .map(|(&x, &w)| {
            let x = x as f64;
            let cdf = 0.5 * (1.0 + series_erf(x / std::f64::consts::SQRT_2));
            let density = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            w as f64 * (cdf + x * density)
        })
        .collect();
    let gap = max_abs_diff(&gradient, &expected);
    assert!(gap < 2e-6, "gelu: max |gradient - exact| = {gap:e}");
}

/// The kernels run for f32 tensors on burn-ndarray under any autodiff checkpointing
/// strategy (here the balanced one), and f64 tensors go to the references.
#[test]
fn f32_tensors_take_the_kernels_on_every_autodiff_strategy() {
    type AD = Autodiff<NdArray>;
    let x = tensor::<AD, 4>([1, 2, 4, 8], 8, 1.0);
    let table = tensor::<AD, 2>([4, 8], 9, 1.0);
    // The training backend, with gradients.
    assert!(rotary(&x, &table, &table, 0, Pairing::Interleaved).is_some());
    // Tables without rows for positions 1..5: refused with a panic, not read past their end.
    let past_the_end = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rotary(&x, &table, &table, 1, Pairing::Interleaved);
    }));
    assert!(past_the_end.is_err());
    assert!(gelu(x.clone()).is_ok());
    assert!(attention(&x, &x, &x, None, 1.0, 0.1).is_some());
    // Another checkpointing strategy, forward and backward.
    type Balanced =
        Autodiff<NdArray, burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing>;
    let leaf = tensor::<Balanced, 4>([1, 2, 4, 8], 8, 1.0).require_grad();
    let balanced_table = tensor::<Balanced, 2>([4, 8], 9, 1.0);
    let rotated = rotary(
        &leaf,
        &balanced_table,
        &balanced_table,
        0,
        Pairing::Interleaved,
    )
    .expect("the rotary kernel runs on Autodiff<NdArray, BalancedCheckpointing>");
    let context = attention(&rotated, &leaf, &leaf, None, 1.0, 0.0)
        .expect("the attention kernel runs on Autodiff<NdArray, BalancedCheckpointing>");
    let activated = gelu(context).expect("the GELU kernel runs there too");
    let backward = [
        Kernel::Rotary,
        Kernel::AttentionBackward,
        Kernel::GeluBackward,
    ]
    .map(calls);
    let gradients = activated.sum().backward();
    assert!(leaf.grad(&gradients).is_some());
    for (kernel, before) in [
        Kernel::Rotary,
        Kernel::AttentionBackward,
        Kernel::GeluBackward,
    ]
    .into_iter()
    .zip(backward)
    {
        assert!(
            calls(kernel) > before,
            "{kernel:?} did not run in the backward pass"
        );
    }
    // f64 tensors, on either float type's backend: the references.
    let x64 = tensor::<B, 2>([2, 2], 14, 1.0).cast(DType::F64);
    assert_eq!(x64.dtype(), DType::F64);
    assert!(gelu(x64).is_err());
    let other = tensor::<Autodiff<NdArray<f64>>, 2>([2, 2], 15, 1.0).cast(DType::F64);
    assert!(gelu(other).is_err());
}

/// The composition of burn tensor operations the attention kernel replaces (what
/// `roformer::RoFormerSelfAttention` runs on other backends), without dropout.
fn attention_by_tensor_operations<Bk: Backend>(
    q: Tensor<Bk, 4>,
    k: Tensor<Bk, 4>,
    v: Tensor<Bk, 4>,
    bias: Tensor<Bk, 4>,
    scale: f64,
) -> Tensor<Bk, 3> {
    let [b, h, s, d] = q.dims();
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + bias;
    softmax(scores, 3)
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([b, s, h * d])
}

#[test]
fn attention_gradients_on_autodiff_ndarray_match_f64_tensor_operations() {
    type AD = Autodiff<NdArray>;
    let (batch, h, seq, d) = (2, 2, 70, 8);
    let split = |seed| {
        tensor::<AD, 3>([batch, seq, h * d], seed, 2.0)
            .reshape([batch, seq, h, d])
            .swap_dims(1, 2)
    };
    let leaves = [split(21), split(22), split(23)].map(|t| t.detach().require_grad());
    let bias: Vec<f32> = (0..batch * seq)
        .map(|i| {
            if i >= seq && i % seq >= 50 {
                f32::MIN
            } else {
                0.0
            }
        })
        .collect();
    let bias = Tensor::<AD, 4>::from_data(
        TensorData::new(bias, [batch, 1, 1, seq]),
        &Default::default(),
    );
    let weights = tensor::<AD, 3>([batch, seq, h * d], 24, 1.0);
    let scale = 0.3;

    let [q, k, v] = leaves.clone();
    let out = attention(&q, &k, &v, Some(&bias), scale, 0.0).expect("Autodiff<NdArray> is taken");
    let gradients = (out * weights.clone()).sum().backward();
    let kernel = f32_gradients(&leaves, &gradients);

    // Reference: the same values in f64 (the kernels decline f64 tensors).
    let leaves64 = f64_leaves(&leaves);
    let [q, k, v] = leaves64.clone();
    let out = attention_by_tensor_operations(q, k, v, bias.cast(DType::F64), scale as f64);
    let gradients = (out * weights.cast(DType::F64)).sum().backward();
    assert_gradients_match(&["q", "k", "v"], &leaves64, &gradients, &kernel);
}

/// Dropout masks seen directly: with q = 0 every probability is `1/s`, and with v the
/// identity each context row is its dropped probability row, `m_ij / s`. Over 2 × 3 × 64
/// rows of 64 keys (two query blocks per head): the dropped fraction is `p` within 0.02
/// (±8 standard deviations of 24,576 draws), kept values are `1/(s·keep)` within 1e-6, and
/// no two rows share a mask (one stream per query row of each head and sequence; two equal
/// 64-bit masks by chance: under 1e-13).
#[test]
fn attention_dropout_drops_at_its_rate_with_independent_masks() {
    type AD = Autodiff<NdArray>;
    let device = Default::default();
    let (batch, h, seq) = (2, 3, 64);
    let p = 0.3;
    <AD as Backend>::seed(&device, 11);
    let q = Tensor::<AD, 4>::zeros([batch, h, seq, seq], &device);
    let identity = Tensor::<AD, 2>::eye(seq, &device);
    let v = identity
        .reshape([1, 1, seq, seq])
        .repeat_dim(0, batch)
        .repeat_dim(1, h);
    let out = attention(&q, &q, &v, None, 1.0, p).expect("Autodiff<NdArray> is taken");
    let out = out.into_data().to_vec::<f32>().unwrap();
    let kept_value = 1.0 / (seq as f64 * (1.0 - p));
    let mut dropped = 0usize;
    let mut masks = std::collections::HashSet::new();
    for row in out.chunks_exact(seq) {
        let mut mask = 0u64;
        for (j, &x) in row.iter().enumerate() {
            if x == 0.0 {
                dropped += 1;
            } else {
                assert!((x as f64 - kept_value).abs() < 1e-6, "kept value {x}");
                mask |= 1 << j;
            }
        }
        masks.insert(mask);
    }
    let fraction = dropped as f64 / out.len() as f64;
    assert!((fraction - p).abs() < 0.02, "dropped fraction {fraction}");
    assert_eq!(
        masks.len(),
        batch * h * seq,
        "two rows share a dropout mask"
    );
}

#[test]
fn attention_dropout_repeats_under_a_seed_and_its_gradient_matches_finite_differences() {
    type AD = Autodiff<NdArray>;
    let device = Default::default();
    let (batch, h, seq, d) = (1, 2, 20, 4);
    let q_values = random_values(batch * h * seq * d, 31);
    let k = tensor::<AD, 4>([batch, h, seq, d], 32, 1.0);
    let v = tensor::<AD, 4>([batch, h, seq, d], 33, 1.0);
    let weights = tensor::<AD, 3>([batch, seq, h * d], 34, 1.0);
    let loss = |q_values: Vec<f32>, dropout: f64| {
        <AD as Backend>::seed(&device, 7);
        let q = Tensor::<AD, 4>::from_data(TensorData::new(q_values, [batch, h, seq, d]), &device)
            .require_grad();
        let out = attention(&q, &k, &v, None, 0.5, dropout).expect("Autodiff<NdArray> is taken");
        ((out * weights.clone()).sum(), q)
    };
    let scalar = |t: Tensor<AD, 1>| t.into_data().to_vec::<f32>().unwrap()[0] as f64;

    let (with_dropout, q) = loss(q_values.clone(), 0.3);
    let (again, _) = loss(q_values.clone(), 0.3);
    let (without, _) = loss(q_values.clone(), 0.0);
    assert_eq!(
        scalar(with_dropout.clone()),
        scalar(again),
        "same seed, same masks"
    );
    assert!(
        (scalar(with_dropout.clone()) - scalar(without)).abs() > 1e-3,
        "dropout changes the output"
    );

    let gradients = with_dropout.backward();
    let gradient = q
        .grad(&gradients)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let epsilon = 1e-2;
    for i in [0, 7, 45, 90, 159] {
        let shifted = |delta: f32| {
            let mut shifted = q_values.clone();
            shifted[i] += delta;
            scalar(loss(shifted, 0.3).0)
        };
        let numeric = (shifted(epsilon) - shifted(-epsilon)) / (2.0 * epsilon as f64);
        // f32 central differences: O(ε²) truncation plus rounding of the summed loss.
        assert!(
            (numeric - gradient[i] as f64).abs() < 5e-3,
            "element {i}: finite difference {numeric}, gradient {}",
            gradient[i]
        );
    }
}

/// The inference epilogues: `gelu(x·W + b)` and `LayerNorm(x·W + b + residual)` with the
/// bias added after the product, and `LayerNorm(x)`, against f64 loops; W a transposed
/// view (as the tied decoder's). Tolerances: f32 products of 40 terms (~1e-6 relative)
/// and erf's 5e-7; LayerNorm outputs are O(1). On Autodiff the epilogues decline (training
/// records the unfused steps).
#[test]
fn inference_epilogues_and_plain_layer_norm_match_f64_loops() {
    let (rows, d_in, d_out, epsilon) = (70, 40, 33, 1e-5);
    let x = tensor::<B, 3>([2, rows / 2, d_in], 51, 1.0);
    let w_rows = tensor::<B, 2>([d_out, d_in], 52, 0.4);
    let bias = tensor::<B, 1>([d_out], 53, 1.0);
    let residual = tensor::<B, 3>([2, rows / 2, d_out], 54, 1.0);
    let (gamma, beta) = (
        tensor::<B, 1>([d_out], 55, 1.0),
        tensor::<B, 1>([d_out], 56, 1.0),
    );
    let weight = w_rows.clone().transpose();
    let (xv, wv, bv) = (
        tensor_values(x.clone()),
        tensor_values(w_rows),
        tensor_values(bias.clone()),
    );
    let (rv, gv, betav) = (
        tensor_values(residual.clone()),
        tensor_values(gamma.clone()),
        tensor_values(beta.clone()),
    );
    let affine: Vec<f64> = (0..rows * d_out)
        .map(|i| {
            let (r, o) = (i / d_out, i % d_out);
            let dot: f64 = (0..d_in)
                .map(|k| xv[r * d_in + k] as f64 * wv[o * d_in + k] as f64)
                .sum();
            dot + bv[o] as f64
        })
        .collect();
    let (gv, betav) = (&gv, &betav);
    let norm = |y: &[f64]| -> Vec<f64> {
        y.chunks(d_out)
            .flat_map(|row| {
                let mean = row.iter().sum::<f64>() / d_out as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d_out as f64;
                let inv = 1.0 / (var + epsilon).sqrt();
                row.iter()
                    .enumerate()
                    .map(move |(o, v)| (v - mean) * inv * gv[o] as f64 + betav[o] as f64)
                    .collect::<Vec<_>>()
            })
            .collect()
    };

    let activated = tensor_values(linear_gelu(&x, &weight, &bias).expect("ndarray f32 is taken"));
    let expected: Vec<f64> = affine
        .iter()
        .map(|&v| 0.5 * v * (1.0 + series_erf(v / std::f64::consts::SQRT_2)))
        .collect();
    let gap = max_abs_diff(&activated, &expected);
    assert!(gap < 5e-6, "linear_gelu: max |kernel - loops| = {gap:e}");

    let fused = linear_add_layer_norm(&x, &weight, &bias, &residual, &gamma, &beta, epsilon)
        .expect("ndarray f32 is taken");
    let summed: Vec<f64> = affine
        .iter()
        .zip(&rv)
        .map(|(&a, &r)| a + r as f64)
        .collect();
    let gap = max_abs_diff(&tensor_values(fused), &norm(&summed));
    assert!(
        gap < 1e-5,
        "linear_add_layer_norm: max |kernel - loops| = {gap:e}"
    );

    let plain = layer_norm(&residual, &gamma, Some(&beta), epsilon).expect("ndarray f32 is taken");
    let residual64: Vec<f64> = rv.iter().map(|&v| v as f64).collect();
    let gap = max_abs_diff(&tensor_values(plain), &norm(&residual64));
    assert!(gap < 1e-5, "layer_norm: max |kernel - loops| = {gap:e}");

    type AD = Autodiff<NdArray>;
    let tracked = |t: Tensor<B, 3>| Tensor::<AD, 3>::from_inner(t).require_grad();
    let (x_ad, residual_ad) = (tracked(x), tracked(residual));
    let (weight_ad, bias_ad) = (
        Tensor::<AD, 2>::from_inner(weight),
        Tensor::<AD, 1>::from_inner(bias),
    );
    let (gamma_ad, beta_ad) = (
        Tensor::<AD, 1>::from_inner(gamma),
        Tensor::<AD, 1>::from_inner(beta),
    );
    assert!(linear_gelu(&x_ad, &weight_ad, &bias_ad).is_none());
    let epilogue = linear_add_layer_norm(
        &x_ad,
        &weight_ad,
        &bias_ad,
        &residual_ad,
        &gamma_ad,
        &beta_ad,
        epsilon,
    );
    assert!(epilogue.is_none());
}

#[test]
fn linear_and_layer_norm_gradients_on_autodiff_ndarray_match_f64_tensor_operations() {
    type AD = Autodiff<NdArray>;
    let (batch, seq, d_in, d_out, epsilon) = (2, 5, 12, 7, 1e-5);
    // The weight is a transposed view of an `[d_out, d_in]` leaf, as the tied decoder's is.
    let leaves = [
        tensor::<AD, 3>([batch, seq, d_in], 41, 1.0),
        tensor::<AD, 3>([d_out, d_in, 1], 42, 0.5),
        tensor::<AD, 3>([d_out, 1, 1], 43, 0.5),
        tensor::<AD, 3>([batch, seq, d_out], 44, 1.0),
        tensor::<AD, 3>([d_out, 1, 1], 45, 1.0),
        tensor::<AD, 3>([d_out, 1, 1], 46, 1.0),
    ]
    .map(|t| t.require_grad());
    let weights = tensor::<AD, 3>([batch, seq, d_out], 47, 1.0);

    let [x, embedding, bias, residual, gamma, beta] = leaves.clone();
    let embedding: Tensor<AD, 2> = embedding.reshape([d_out, d_in]);
    let (bias, gamma, beta) = (
        bias.reshape([d_out]),
        gamma.reshape([d_out]),
        beta.reshape([d_out]),
    );
    let projected =
        linear(&x, &embedding.transpose(), Some(&bias)).expect("Autodiff<NdArray> is taken");
    let normalised = add_layer_norm(&projected, &residual, &gamma, Some(&beta), epsilon)
        .expect("Autodiff<NdArray> is taken");
    let gradients = (normalised * weights.clone()).sum().backward();
    let kernel = f32_gradients(&leaves, &gradients);

    // Reference: burn tensor operations in f64 (the kernels decline f64 tensors).
    let leaves64 = f64_leaves(&leaves);
    let [x, embedding, bias, residual, gamma, beta] = leaves64.clone();
    let embedding: Tensor<AD, 2> = embedding.reshape([d_out, d_in]);
    let projected = x.matmul(embedding.transpose().unsqueeze::<3>()) + bias.reshape([1, 1, d_out]);
    let sum = projected + residual;
    let centred = sum.clone() - sum.mean_dim(2);
    let variance = (centred.clone() * centred.clone()).mean_dim(2);
    let normalised = centred / (variance + epsilon).sqrt() * gamma.reshape([1, 1, d_out])
        + beta.reshape([1, 1, d_out]);
    let gradients = (normalised * weights.cast(DType::F64)).sum().backward();
    let names = ["x", "embedding", "bias", "residual", "gamma", "beta"];
    assert_gradients_match(&names, &leaves64, &gradients, &kernel);
}

/// AdamW in f64, element by element (Loshchilov & Hutter 2019, Algorithm 2 with burn's
/// bias corrections and decoupled decay `p·(1 − lr·λ)`).
fn adamw_loop(p: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f32], step: &AdamWStep) {
    let (b1, b2) = (step.beta_1 as f64, step.beta_2 as f64);
    let t = step.time as i32;
    for i in 0..p.len() {
        let g = g[i] as f64;
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        let m_hat = m[i] / (1.0 - b1.powi(t));
        let v_hat = v[i] / (1.0 - b2.powi(t));
        p[i] = p[i] * (1.0 - step.learning_rate * step.weight_decay as f64)
            - step.learning_rate * m_hat / (v_hat.sqrt() + step.epsilon as f64);
    }
}

/// Three AdamW steps on a parameter larger than one parallel chunk (so several tasks
/// run), with a transposed (strided) gradient on the last, against the f64 loop: parameters
/// and moments within 1e-6 of their largest magnitude. f64 tensors are left to the reference.
#[test]
fn adamw_matches_loops_and_declines_f64() {
    let shape = [300, 200];
    let n = shape[0] * shape[1];
    let p0: Vec<f32> = random_values(n, 21);
    let (mut p, mut m, mut v) = (
        p0.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        vec![0f64; n],
        vec![0f64; n],
    );
    let mut param = tensor::<B, 2>(shape, 21, 1.0);
    let mut moments: Option<(Tensor<B, 2>, Tensor<B, 2>)> = None;
    for time in 1..=3 {
        let step = AdamWStep {
            learning_rate: 1e-2 / time as f64,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-5,
            weight_decay: 0.1,
            time,
        };
        let grad = if time == 3 {
            tensor::<B, 2>([shape[1], shape[0]], 30 + time as u64, 0.5).transpose()
        } else {
            tensor::<B, 2>(shape, 30 + time as u64, 0.5)
        };
        adamw_loop(&mut p, &mut m, &mut v, &tensor_values(grad.clone()), &step);
        let update = adamw(param, grad, moments, &step).expect("f32 ndarray tensors are taken");
        param = update.param;
        moments = Some((update.moment_1, update.moment_2));
    }
    let (moment_1, moment_2) = moments.unwrap();
    for (name, kernel, reference) in [
        ("param", tensor_values(param.clone()), &p),
        ("moment 1", tensor_values(moment_1), &m),
        ("moment 2", tensor_values(moment_2), &v),
    ] {
        let scale = reference.iter().fold(0f64, |s, x| s.max(x.abs()));
        let gap = max_abs_diff(&kernel, reference);
        assert!(
            gap <= 1e-6 * scale,
            "{name}: max |kernel − loop| = {gap:e} (scale {scale:e})"
        );
    }
    assert!(
        max_abs_diff(
            &tensor_values(param),
            &p0.iter().map(|&x| x as f64).collect::<Vec<_>>()
        ) > 1e-3
    );

    let p64 = tensor::<B, 2>([2, 2], 40, 1.0).cast(DType::F64);
    let step = AdamWStep {
        learning_rate: 1e-3,
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.0,
        time: 1,
    };
    assert!(
        adamw(p64.clone(), p64, None, &step).is_none(),
        "f64 is left to the reference"
    );
}

/// The loss and accuracy count of the cross-entropy kernel, when it ran.
fn cross_entropy<Bk: RoFormerBackend>(
    logits: &Tensor<Bk, 2>,
    labels: &Tensor<Bk, 1, Int>,
    ignore_index: i64,
) -> Option<(Tensor<Bk, 1>, usize)> {
    taken(Kernel::CrossEntropy, || {
        let output =
            Bk::cross_entropy(value(logits), labels.clone().into_primitive(), ignore_index);
        let correct = Tensor::<Bk, 1, Int>::from_primitive(output.correct)
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap()[0] as usize;
        (wrap(output.loss), correct)
    })
}

/// Pseudo-random logits with a spread like a language model's (±8).
fn logits(rows: usize, classes: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..rows * classes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 16.0
        })
        .collect()
}

/// Loss, accuracy count and gradient on `Autodiff<NdArray>` against f64 loops: loss to
/// 1e-6 relative, gradient to 1e-7 absolute (entries are at most 1/count); an ignored row
/// (label −100) gets no gradient and does not count. 1,003 classes: 62 full lanes and a
/// tail. The backward is the kernel's.
#[test]
fn cross_entropy_matches_f64_loops_with_an_ignored_row() {
    type AD = Autodiff<NdArray>;
    let (rows, classes) = (6, 1003);
    let values = logits(rows, classes);
    let mut labels: Vec<i64> = vec![5, 1002, -100, 0, 517, 77];
    // Row 3's label is its largest logit, so it is one correct prediction at least.
    let argmax = |row: usize| {
        let r = &values[row * classes..(row + 1) * classes];
        (0..classes).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap()
    };
    labels[3] = argmax(3) as i64;
    let device = Default::default();
    let x = Tensor::<AD, 2>::from_data(TensorData::new(values.clone(), [rows, classes]), &device)
        .require_grad();
    let label_tensor =
        Tensor::<AD, 1, Int>::from_data(TensorData::new(labels.clone(), [rows]), &device);
    let (loss_tensor, correct_count) =
        cross_entropy(&x, &label_tensor, -100).expect("the kernel runs on Autodiff<NdArray>");
    let loss = loss_tensor.clone().into_scalar();
    let before = calls(Kernel::CrossEntropyBackward);
    let gradient = x.grad(&(loss_tensor * 3.0).sum().backward()).unwrap();
    assert!(calls(Kernel::CrossEntropyBackward) > before);
    let gradient = gradient.to_data().to_vec::<f32>().unwrap();

    let (mut total, mut counted, mut correct) = (0f64, 0usize, 0usize);
    let mut expected_gradient = vec![0f64; rows * classes];
    for (row, &label) in labels.iter().enumerate() {
        if label < 0 {
            continue;
        }
        let r: Vec<f64> = values[row * classes..(row + 1) * classes]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let max = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + r.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        total += lse - r[label as usize];
        counted += 1;
        correct += usize::from(argmax(row) == label as usize);
        for (j, v) in r.iter().enumerate() {
            expected_gradient[row * classes + j] = (v - lse).exp() - f64::from(j == label as usize);
        }
    }
    let expected = total / counted as f64;
    assert!(
        ((loss as f64 - expected) / expected).abs() < 1e-6,
        "loss {loss} vs {expected}"
    );
    assert_eq!(correct_count, correct);
    assert!(correct >= 1);
    let expected_gradient: Vec<f64> = expected_gradient
        .iter()
        .map(|e| 3.0 * e / counted as f64)
        .collect();
    roformer_testing::assert_close("gradient", &gradient, &expected_gradient, 1e-7);
    assert!(gradient[2 * classes..3 * classes].iter().all(|&g| g == 0.0));
}

/// On plain burn-ndarray the loss equals burn's log_softmax + gather form to 1e-5
/// relative; labels past the class count, or negative ones other than the ignore index,
/// are refused with a panic naming the operation.
#[test]
fn cross_entropy_on_ndarray_matches_burns_form_and_refuses_bad_labels() {
    let (rows, classes) = (4, 300);
    let device = Default::default();
    let x = Tensor::<NdArray, 2>::from_data(
        TensorData::new(logits(rows, classes), [rows, classes]),
        &device,
    );
    let labels = Tensor::<NdArray, 1, Int>::from_data(
        TensorData::new(vec![3i64, 299, 0, 150], [rows]),
        &device,
    );
    let ours = cross_entropy(&x, &labels, -100)
        .expect("the kernel runs on ndarray")
        .0
        .into_scalar();
    let burns = log_softmax(x.clone(), 1)
        .gather(1, labels.clone().reshape([rows, 1]))
        .mean()
        .neg()
        .into_scalar();
    assert!(
        ((ours - burns) / burns).abs() < 1e-5,
        "{ours} vs burn's {burns}"
    );
    for bad in [vec![3i64, 300, 0, 1], vec![3i64, -1, 0, 1]] {
        let bad = Tensor::<NdArray, 1, Int>::from_data(TensorData::new(bad, [rows]), &device);
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cross_entropy(&x, &bad, -100);
        }));
        assert!(refused.is_err());
    }
}

/// The copy-free reshape (whose unit test checks that the buffer is kept) gives burn's
/// values on burn-ndarray and, through the head split's reshape and swap on
/// `Autodiff<NdArray>`, the upstream gradient laid back in the input's shape:
/// `d Σ(w ⊙ f(x)) / dx` equals `w` mapped back, exactly.
#[test]
fn reshape_in_place_keeps_the_buffer_and_its_gradient_is_the_upstream_reshaped_back() {
    type AD = Autodiff<NdArray>;
    let ramp = |n: usize| -> Vec<f32> { (0..n).map(|i| i as f32 * 0.25 - 3.0).collect() };
    let device = Default::default();
    let x = Tensor::<B, 3>::from_data(TensorData::new(ramp(48), [2, 3, 8]), &device);
    let reshaped = taken(Kernel::Reshape, || {
        roformer::layout::reshape(x.clone(), [2, 3, 2, 4])
    })
    .expect("the reshape kernel runs on ndarray");
    assert_eq!(
        tensor_values(reshaped),
        tensor_values(x.reshape([2, 3, 2, 4]))
    );

    let x =
        Tensor::<AD, 3>::from_data(TensorData::new(ramp(48), [2, 3, 8]), &device).require_grad();
    let weights = Tensor::<AD, 4>::from_data(
        TensorData::new(ramp(48).iter().map(|v| v * v).collect(), [2, 2, 3, 4]),
        &device,
    );
    let split = taken(Kernel::Reshape, || {
        roformer::layout::reshape(x.clone(), [2, 3, 2, 4])
    })
    .expect("the reshape kernel runs on Autodiff<NdArray>")
    .swap_dims(1, 2);
    let gradients = (split * weights.clone()).sum().backward();
    let ours = x
        .grad(&gradients)
        .unwrap()
        .to_data()
        .to_vec::<f32>()
        .unwrap();
    let expected = weights
        .inner()
        .swap_dims(1, 2)
        .reshape([2, 3, 8])
        .to_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(ours, expected);
}
