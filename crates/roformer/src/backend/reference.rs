//! The reference implementations of [`super::RoFormerBackend`]'s operations, by burn tensor
//! operations on any backend: the defaults of the trait, and what the fused kernels are
//! tested against.
//!
//! The forwards port HF `modeling_roformer.py` (`RoFormerSelfAttention.forward` after the
//! rotation, `nn.Linear`, `nn.LayerNorm` over a residual sum, `ACT2FN["gelu"]`,
//! `CrossEntropyLoss`); the backwards are their gradients written out:
//!
//! - attention, with `P̃ = P ⊙ M` and `O = P̃·V`: `dV = P̃ᵀ·dO`, `dP = (dO·Vᵀ) ⊙ M`,
//!   `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = scale·dS·K`, `dK = scale·dSᵀ·Q`;
//! - affine: `dX = dY·Wᵀ`, `dW = Xᵀ·dY`, `db = Σ_rows dY`;
//! - LayerNorm, with `ĝ = dy ⊙ γ`: `dy_in = (ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂)) / σ`,
//!   `dγ = Σ_rows dy ⊙ x̂`, `dβ = Σ_rows dy`;
//! - GELU: `dy · (Φ(x) + x·φ(x))`;
//! - cross-entropy: `g · (softmax(x) − onehot(label)) / count` on the counted rows.

use burn::optim::{AdamWConfig, AdamWState, AdaptiveMomentumState, SimpleOptimizer};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Distribution, IndexingUpdateOp, Int, Shape, Tensor, TensorPrimitive};

use super::{AdamWStep, AdamWUpdate, AttentionSaved, CrossEntropy, CrossEntropySaved};
use super::{LayerNormGradients, LayerNormSaved};
use crate::layout::in_float_type;
use crate::precision::widened;

/// A float primitive of rank `D` as a tensor.
pub(crate) fn float<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// A tensor's float primitive.
pub(crate) fn primitive<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<B> {
    tensor.into_primitive().tensor()
}

/// An int primitive of rank 1 as a tensor.
fn int<B: Backend>(primitive: IntTensor<B>) -> Tensor<B, 1, Int> {
    Tensor::from_primitive(primitive)
}

/// The scores `scale·q·kᵀ + bias` `[b, h, s_q, s_k]`, in f32 at least (the product runs
/// in q's float type; the softmax that follows is computed wide, as mixed precision does).
fn scores<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    score_bias: Option<FloatTensor<B>>,
    scale: f32,
) -> Tensor<B, 4> {
    // Scaling q before the product touches s·d values instead of s² scores.
    let query = float::<B, 4>(query).mul_scalar(scale);
    let scores = widened(query.matmul(float::<B, 4>(key).swap_dims(2, 3)));
    match score_bias {
        Some(bias) => scores.clone() + in_float_type(float::<B, 4>(bias), scores.dtype()),
        None => scores,
    }
}

/// `[b, h, s, d_v]` per-head contexts merged into `[b, s, h·d_v]`.
fn merge_heads<B: Backend>(context: Tensor<B, 4>) -> FloatTensor<B> {
    let [batch, heads, seq, d_v] = context.dims();
    primitive(context.swap_dims(1, 2).reshape([batch, seq, heads * d_v]))
}

/// [`super::RoFormerBackend::self_attention`] without dropout.
pub fn self_attention<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    score_bias: Option<FloatTensor<B>>,
    scale: f32,
) -> FloatTensor<B> {
    let value = float::<B, 4>(value);
    let probabilities = softmax(scores::<B>(query, key, score_bias, scale), 3);
    merge_heads(in_float_type(probabilities, value.dtype()).matmul(value))
}

/// [`super::RoFormerBackend::self_attention_saving`]: dropout masks from the backend's
/// generator (`B::seed` makes them repeat). The probabilities are kept in f32 at least.
pub fn self_attention_saving<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    score_bias: Option<FloatTensor<B>>,
    scale: f32,
    dropout: f64,
) -> (FloatTensor<B>, AttentionSaved<B>) {
    let probabilities = softmax(scores::<B>(query, key, score_bias, scale), 3);
    let multipliers = (dropout > 0.0).then(|| {
        let keep = 1.0 - dropout;
        let kept = Tensor::<B, 4>::random(
            probabilities.shape(),
            Distribution::Bernoulli(keep),
            &probabilities.device(),
        );
        in_float_type(kept, probabilities.dtype()).div_scalar(keep)
    });
    let weights = match &multipliers {
        Some(multipliers) => probabilities.clone() * multipliers.clone(),
        None => probabilities.clone(),
    };
    let value = float::<B, 4>(value);
    let context = merge_heads(in_float_type(weights, value.dtype()).matmul(value));
    let saved = AttentionSaved {
        probabilities: primitive(probabilities),
        multipliers: multipliers.map(primitive),
    };
    (context, saved)
}

/// [`super::RoFormerBackend::self_attention_backward`].
pub fn self_attention_backward<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    saved: AttentionSaved<B>,
    scale: f32,
    context_gradient: FloatTensor<B>,
) -> [FloatTensor<B>; 3] {
    let (query, key, value) = (
        float::<B, 4>(query),
        float::<B, 4>(key),
        float::<B, 4>(value),
    );
    let [batch, heads, seq_q, _] = query.dims();
    let d_v = value.dims()[3];
    let d_out = float::<B, 3>(context_gradient)
        .reshape([batch, seq_q, heads, d_v])
        .swap_dims(1, 2);
    let probabilities = float::<B, 4>(saved.probabilities);
    let multipliers = saved.multipliers.map(float::<B, 4>);
    let weights = match &multipliers {
        Some(m) => probabilities.clone() * m.clone(),
        None => probabilities.clone(),
    };
    // Products in the inputs' float type; the softmax gradient in the probabilities' (f32
    // at least).
    let compute = value.dtype();
    let d_value = in_float_type(weights, compute)
        .swap_dims(2, 3)
        .matmul(d_out.clone());
    let d_weights = widened(d_out.matmul(value.swap_dims(2, 3)));
    let d_probabilities = match multipliers {
        Some(m) => d_weights * m,
        None => d_weights,
    };
    let row_dot = (d_probabilities.clone() * probabilities.clone()).sum_dim(3);
    let d_scores = in_float_type(probabilities * (d_probabilities - row_dot), compute);
    let d_query = d_scores.clone().matmul(key).mul_scalar(scale);
    let d_key = d_scores.swap_dims(2, 3).matmul(query).mul_scalar(scale);
    [primitive(d_query), primitive(d_key), primitive(d_value)]
}

/// `x` `[..., d]` as `[rows, d]` rows, and the shape to return to.
fn as_rows<B: Backend>(x: FloatTensor<B>) -> (Tensor<B, 2>, Shape) {
    let shape = burn::tensor::TensorMetadata::shape(&x);
    let d = shape[shape.num_dims() - 1];
    let rows = shape.num_elements() / d.max(1);
    (
        float::<B, 2>(B::float_reshape(x, Shape::new([rows, d]))),
        shape,
    )
}

/// `rows` back in `shape` with its last axis replaced by `width`.
fn from_rows<B: Backend>(rows: Tensor<B, 2>, mut shape: Shape, width: usize) -> FloatTensor<B> {
    let last = shape.num_dims() - 1;
    shape[last] = width;
    B::float_reshape(primitive(rows), shape)
}

/// [`super::RoFormerBackend::affine`]: one `[rows, d_in]` product (burn's `Linear` would
/// multiply a `[batch, seq, d]` input batch by batch).
pub fn affine<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
) -> FloatTensor<B> {
    let (rows, shape) = as_rows::<B>(x);
    let weight = float::<B, 2>(weight);
    let d_out = weight.dims()[1];
    let product = rows.matmul(weight);
    let product = match bias {
        Some(bias) => product + float::<B, 1>(bias).unsqueeze::<2>(),
        None => product,
    };
    from_rows(product, shape, d_out)
}

/// [`super::RoFormerBackend::affine_backward`].
pub fn affine_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_gradient: FloatTensor<B>,
    wanted: [bool; 3],
) -> [Option<FloatTensor<B>>; 3] {
    let (x, shape) = as_rows::<B>(x);
    let d_in = x.dims()[1];
    let (d_y, _) = as_rows::<B>(output_gradient);
    let weight = float::<B, 2>(weight);
    let d_x = wanted[0].then(|| from_rows(d_y.clone().matmul(weight.transpose()), shape, d_in));
    let d_weight = wanted[1].then(|| primitive(x.transpose().matmul(d_y.clone())));
    let d_bias = wanted[2].then(|| primitive(d_y.sum_dim(0).squeeze_dim::<1>(0)));
    [d_x, d_weight, d_bias]
}

/// `(y − mean(y))/σ` rows and `1/σ` for `y = x (+ residual)`.
fn normalise<B: Backend>(
    x: FloatTensor<B>,
    residual: Option<FloatTensor<B>>,
    epsilon: f64,
) -> (Tensor<B, 2>, Tensor<B, 2>, Shape) {
    let x = match residual {
        Some(residual) => B::float_add(x, residual),
        None => x,
    };
    let (rows, shape) = as_rows::<B>(x);
    let centred = rows.clone() - rows.mean_dim(1);
    let variance = centred.clone().square().mean_dim(1);
    let std = variance.add_scalar(epsilon).sqrt();
    let normalised = centred / std.clone();
    (normalised, std.recip(), shape)
}

/// `x̂·γ + β`.
fn scale_shift<B: Backend>(
    normalised: Tensor<B, 2>,
    gamma: FloatTensor<B>,
    beta: Option<FloatTensor<B>>,
) -> Tensor<B, 2> {
    let scaled = normalised * float::<B, 1>(gamma).unsqueeze::<2>();
    match beta {
        Some(beta) => scaled + float::<B, 1>(beta).unsqueeze::<2>(),
        None => scaled,
    }
}

/// [`super::RoFormerBackend::residual_layer_norm`].
pub fn residual_layer_norm<B: Backend>(
    x: FloatTensor<B>,
    residual: Option<FloatTensor<B>>,
    gamma: FloatTensor<B>,
    beta: Option<FloatTensor<B>>,
    epsilon: f64,
) -> FloatTensor<B> {
    let (normalised, _, shape) = normalise::<B>(x, residual, epsilon);
    let d = normalised.dims()[1];
    from_rows(scale_shift::<B>(normalised, gamma, beta), shape, d)
}

/// [`super::RoFormerBackend::residual_layer_norm_saving`].
pub fn residual_layer_norm_saving<B: Backend>(
    x: FloatTensor<B>,
    residual: Option<FloatTensor<B>>,
    gamma: FloatTensor<B>,
    beta: Option<FloatTensor<B>>,
    epsilon: f64,
) -> (FloatTensor<B>, LayerNormSaved<B>) {
    let (normalised, inverse_std, shape) = normalise::<B>(x, residual, epsilon);
    let d = normalised.dims()[1];
    let output = from_rows(
        scale_shift::<B>(normalised.clone(), gamma, beta),
        shape.clone(),
        d,
    );
    let saved = LayerNormSaved {
        normalised: from_rows(normalised, shape.clone(), d),
        inverse_std: from_rows(inverse_std, shape, 1),
    };
    (output, saved)
}

/// [`super::RoFormerBackend::residual_layer_norm_backward`].
pub fn residual_layer_norm_backward<B: Backend>(
    output_gradient: FloatTensor<B>,
    saved: LayerNormSaved<B>,
    gamma: FloatTensor<B>,
) -> LayerNormGradients<B> {
    let (d_y, shape) = as_rows::<B>(output_gradient);
    let d = d_y.dims()[1];
    let (normalised, _) = as_rows::<B>(saved.normalised);
    let (inverse_std, _) = as_rows::<B>(saved.inverse_std);
    let g = d_y.clone() * float::<B, 1>(gamma).unsqueeze::<2>();
    let mean_g = g.clone().mean_dim(1);
    let mean_gn = (g.clone() * normalised.clone()).mean_dim(1);
    let d_input = (g - mean_g - normalised.clone() * mean_gn) * inverse_std;
    let d_gamma = (d_y.clone() * normalised).sum_dim(0).squeeze_dim::<1>(0);
    let d_beta = d_y.sum_dim(0).squeeze_dim::<1>(0);
    LayerNormGradients {
        input: from_rows(d_input, shape, d),
        gamma: primitive(d_gamma),
        beta: primitive(d_beta),
    }
}

/// `Φ(x) = (1 + erf(x/√2))/2`, elementwise (on primitives: any rank).
fn normal_cdf<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let erf = B::float_erf(B::float_div_scalar(x, core::f64::consts::SQRT_2.into()));
    B::float_mul_scalar(B::float_add_scalar(erf, 1.0.into()), 0.5.into())
}

/// [`super::RoFormerBackend::exact_gelu`]: `x·Φ(x)`.
pub fn exact_gelu<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::float_mul(x.clone(), normal_cdf::<B>(x))
}

/// [`super::RoFormerBackend::exact_gelu_backward`]: `gradient · (Φ(x) + x·φ(x))`.
pub fn exact_gelu_backward<B: Backend>(
    x: FloatTensor<B>,
    gradient: FloatTensor<B>,
) -> FloatTensor<B> {
    // 1/√(2π)
    const DENSITY_SCALE: f64 = 0.398_942_280_401_432_7;
    let square = B::float_mul(x.clone(), x.clone());
    let density = B::float_mul_scalar(
        B::float_exp(B::float_mul_scalar(square, (-0.5).into())),
        DENSITY_SCALE.into(),
    );
    let derivative = B::float_add(normal_cdf::<B>(x.clone()), B::float_mul(x, density));
    B::float_mul(gradient, derivative)
}

/// The counted-row mask `[rows]` (in the logits' float type) and the clamped targets.
fn counted_rows<B: Backend>(
    labels: &Tensor<B, 1, Int>,
    ignore_index: i64,
    like: &Tensor<B, 2>,
) -> Tensor<B, 1> {
    in_float_type(
        labels.clone().not_equal_elem(ignore_index).float(),
        like.dtype(),
    )
}

/// [`super::RoFormerBackend::cross_entropy`].
pub fn cross_entropy<B: Backend>(
    logits: FloatTensor<B>,
    labels: IntTensor<B>,
    ignore_index: i64,
) -> CrossEntropy<B> {
    cross_entropy_saving::<B>(logits, labels, ignore_index).0
}

/// [`super::RoFormerBackend::cross_entropy_saving`].
pub fn cross_entropy_saving<B: Backend>(
    logits: FloatTensor<B>,
    labels: IntTensor<B>,
    ignore_index: i64,
) -> (CrossEntropy<B>, CrossEntropySaved<B>) {
    let logits = float::<B, 2>(logits);
    let labels = int::<B>(labels);
    let rows = logits.dims()[0];
    let counted = counted_rows(&labels, ignore_index, &logits);
    let targets = labels.clone().clamp_min(0).reshape([rows, 1]);
    let log_probs = log_softmax(logits.clone(), 1);
    let log_sums = (logits.clone() - log_probs.clone())
        .narrow(1, 0, 1)
        .reshape([rows]);
    let picked = log_probs.gather(1, targets).reshape([rows]);
    let count = counted.clone().sum();
    let loss = (picked * counted.clone()).sum().neg() / count.clone().clamp_min(1.0);
    let correct = logits
        .argmax(1)
        .reshape([rows])
        .equal(labels)
        .int()
        .mul(counted.int())
        .sum();
    let output = CrossEntropy {
        loss: primitive(loss),
        correct: correct.into_primitive(),
    };
    let saved = CrossEntropySaved {
        log_sums: primitive(log_sums),
        counted: primitive(count),
    };
    (output, saved)
}

/// [`super::RoFormerBackend::cross_entropy_backward`].
pub fn cross_entropy_backward<B: Backend>(
    logits: FloatTensor<B>,
    labels: IntTensor<B>,
    ignore_index: i64,
    saved: CrossEntropySaved<B>,
    loss_gradient: FloatTensor<B>,
) -> FloatTensor<B> {
    let logits = float::<B, 2>(logits);
    let labels = int::<B>(labels);
    let [rows, classes] = logits.dims();
    let counted = counted_rows(&labels, ignore_index, &logits);
    let scale = float::<B, 1>(loss_gradient) / float::<B, 1>(saved.counted).clamp_min(1.0);
    let probabilities = (logits.clone() - float::<B, 1>(saved.log_sums).reshape([rows, 1])).exp();
    let one_hot = in_float_type(
        labels.clamp_min(0).one_hot::<2>(classes).float(),
        logits.dtype(),
    );
    let row_scale = (counted * scale).reshape([rows, 1]);
    primitive((probabilities - one_hot) * row_scale)
}

/// [`super::RoFormerBackend::adamw_step`]: burn's own `AdamW` step.
pub fn adamw_step<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
    step: &AdamWStep,
) -> AdamWUpdate<B, D> {
    let optimizer = AdamWConfig::new()
        .with_beta_1(step.beta_1)
        .with_beta_2(step.beta_2)
        .with_epsilon(step.epsilon)
        .with_weight_decay(step.weight_decay)
        .build();
    let state = moments.map(|(moment_1, moment_2)| {
        AdamWState::new(AdaptiveMomentumState::new(
            step.time - 1,
            moment_1,
            moment_2,
        ))
    });
    let (param, state) = optimizer.step(step.learning_rate, param, grad, state);
    let momentum = state.expect("AdamW keeps its state").momentum;
    AdamWUpdate {
        param,
        moment_1: momentum.moment_1,
        moment_2: momentum.moment_2,
    }
}

/// [`super::RoFormerBackend::gather_rows`]: `x[indices]` along the rows.
pub fn gather_rows<B: Backend>(x: FloatTensor<B>, indices: IntTensor<B>) -> FloatTensor<B> {
    B::float_select(x, 0, indices)
}

/// [`super::RoFormerBackend::scatter_rows`]: `x` added into the rows `indices` of an
/// `[n, width]` zero matrix (each row listed once).
pub fn scatter_rows<B: Backend>(
    x: FloatTensor<B>,
    indices: IntTensor<B>,
    n: usize,
) -> FloatTensor<B> {
    let x = float::<B, 2>(x);
    let width = x.dims()[1];
    let zeros = in_float_type(Tensor::<B, 2>::zeros([n, width], &x.device()), x.dtype());
    let indices = Tensor::<B, 1, Int>::from_primitive(indices);
    primitive(zeros.select_assign(0, indices, x, IndexingUpdateOp::Add))
}
