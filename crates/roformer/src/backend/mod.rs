//! The backend extension trait of the RoFormer encoder, [`RoFormerBackend`], and the
//! backends that implement it.
//!
//! burn's pattern for backend-specific code (`examples/custom-cubecl-kernel`): each fused
//! operation of the model is a method of the backend with a default body, the reference
//! by burn tensor operations ([`reference`]); a backend with a faster way overrides it.
//! Training uses the `*_saving` forward (which keeps what the gradient needs) and the
//! `*_backward` methods, both with references too, so that `Autodiff<B, C>` records one
//! backward step per fused operation, computed by `B`:
//!
//! | backend | feature | what it runs |
//! |---|---|---|
//! | burn-ndarray (f32) | `ndarray` | the CPU kernels of `roformer-kernels`, forward and backward |
//! | `Autodiff<B, C>`, any `B` here, any checkpointing `C` | `autodiff` | `B`'s forward, a recorded backward step calling `B`'s backward |
//! | cubecl (wgpu, cuda), and its fusion wrapper | `cubecl`, `fusion` | burn's fused `attention` (the padding as a boolean mask: flash attention) and `layer_norm`; the references, fused by burn, elsewhere |
//! | Flex | `flex` | the references |
//!
//! A new backend gets the model by implementing [`RoFormerBackend`] (and
//! `roformer_rope::RotaryBackend`): empty `impl`s take the references.

#[cfg(feature = "autodiff")]
mod autodiff;
#[cfg(any(feature = "cubecl", feature = "fusion"))]
mod burn_fused;
/// Calls of burn's `attention` in the form its flash-attention kernels take, on this thread
/// (for tests that the cubecl backends' attention does not fall back to unfused operations).
#[cfg(any(feature = "cubecl", feature = "fusion"))]
pub use burn_fused::{
    FlashAttentionInputs, flash_attention_inputs, flash_form_attention_calls, flash_key_mask,
    flash_key_masks_built,
};
#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "ndarray")]
mod ndarray;
pub mod reference;

/// Counts of the CPU kernels' calls on this thread (for tests that a fast path is taken).
#[cfg(feature = "ndarray")]
pub use roformer_kernels::dispatch;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::{BoolTensor, FloatTensor, IntTensor};
use burn::tensor::{Shape, Tensor};
use roformer_rope::RotaryBackend;

/// The padding of a batch as [`RoFormerBackend::self_attention`] takes it: made once per
/// forward by [`RoFormerBackend::key_mask`] and shared by every layer, so that a backend
/// whose attention reads the padding in another form builds that form once, not per layer.
#[derive(Debug, Clone)]
pub struct KeyMask<B: Backend> {
    /// The additive score bias `[b, 1, 1, s_k]`: 0 for the keys that count and
    /// [`crate::MASKED_SCORE`] for those masked out.
    pub bias: FloatTensor<B>,
    /// The masked keys in the form the backend's own attention reads, where it has one
    /// (the cubecl backends in f16 and bf16: the flash-attention kernels' boolean mask,
    /// [`FlashAttentionInputs::mask`]).
    pub prepared: Option<BoolTensor<B>>,
}

impl<B: Backend> KeyMask<B> {
    /// The bias alone, for every backend's reference.
    pub fn from_bias(bias: FloatTensor<B>) -> Self {
        Self {
            bias,
            prepared: None,
        }
    }
}

/// What [`RoFormerBackend::self_attention_saving`] keeps for the backward step.
#[derive(Debug, Clone)]
pub struct AttentionSaved<B: Backend> {
    /// The attention probabilities `P` `[b, h, s_q, s_k]`.
    pub probabilities: FloatTensor<B>,
    /// The dropout multipliers `M` (0 or `1/keep`, same shape), with dropout.
    pub multipliers: Option<FloatTensor<B>>,
}

/// What [`RoFormerBackend::residual_layer_norm_saving`] keeps for the backward step.
#[derive(Debug, Clone)]
pub struct LayerNormSaved<B: Backend> {
    /// The normalised rows `x̂ = (y − mean(y))/σ`, shaped like the input.
    pub normalised: FloatTensor<B>,
    /// Each row's `1/σ`, shaped like the input with a last axis of 1.
    pub inverse_std: FloatTensor<B>,
}

/// The gradients of a [`RoFormerBackend::residual_layer_norm`].
#[derive(Debug, Clone)]
pub struct LayerNormGradients<B: Backend> {
    /// Of the input (and of the residual: the same).
    pub input: FloatTensor<B>,
    /// Of γ, `[d]`.
    pub gamma: FloatTensor<B>,
    /// Of β, `[d]`.
    pub beta: FloatTensor<B>,
}

/// The masked-LM loss of [`RoFormerBackend::cross_entropy`] and its accuracy count.
#[derive(Debug, Clone)]
pub struct CrossEntropy<B: Backend> {
    /// Mean over the counted rows of `−log softmax(x)[label]`, `[1]` (0 when none counts).
    pub loss: FloatTensor<B>,
    /// Counted rows whose largest logit (the first, on ties) is at the label, `[1]`.
    pub correct: IntTensor<B>,
}

/// What [`RoFormerBackend::cross_entropy_saving`] keeps for the backward step.
#[derive(Debug, Clone)]
pub struct CrossEntropySaved<B: Backend> {
    /// Each row's `lse = log Σ e^x`, `[rows]`.
    pub log_sums: FloatTensor<B>,
    /// Rows not labelled `ignore_index`, `[1]`.
    pub counted: FloatTensor<B>,
}

/// The hyper-parameters of one AdamW step (Loshchilov & Hutter 2019; burn's `AdamW`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// Learning rate of this step.
    pub learning_rate: f64,
    /// Decay of the first-moment estimate (β₁).
    pub beta_1: f32,
    /// Decay of the second-moment estimate (β₂).
    pub beta_2: f32,
    /// Added to `√v̂` in the denominator (ε).
    pub epsilon: f32,
    /// Decoupled weight decay (λ), multiplied by the learning rate.
    pub weight_decay: f32,
    /// Number of this step, from 1 (for the bias corrections).
    pub time: usize,
}

/// A parameter and its moment estimates after an AdamW step.
#[derive(Debug)]
pub struct AdamWUpdate<B: Backend, const D: usize> {
    /// The updated parameter.
    pub param: Tensor<B, D>,
    /// The first-moment estimate `m`.
    pub moment_1: Tensor<B, D>,
    /// The second-moment estimate `v`.
    pub moment_2: Tensor<B, D>,
}

/// A backend to train on: automatic differentiation over a [`RoFormerBackend`], itself one
/// (for the model's forward), with an inner backend that is one too (for validation and the
/// optimizer's update). `Autodiff<B, C>` is one for every `B: RoFormerBackend`.
pub trait RoFormerTrainingBackend:
    AutodiffBackend<InnerBackend: RoFormerBackend> + RoFormerBackend
{
}

impl<B> RoFormerTrainingBackend for B where
    B: AutodiffBackend<InnerBackend: RoFormerBackend> + RoFormerBackend
{
}

/// A backend that runs the RoFormer encoder's fused operations.
///
/// Shapes are the callers' responsibility (the model's modules get them right); a backend
/// may panic, naming the operation, on shapes that do not fit, as burn's own operations do.
pub trait RoFormerBackend: RotaryBackend {
    /// The key mask of [`Self::self_attention`] for a batch whose padding is the score bias
    /// `score_bias` (`[b, 1, 1, s_k]`: 0 for the keys that count, [`crate::MASKED_SCORE`]
    /// for padding), for attention with `heads` heads over `queries` queries. Made once per
    /// forward and shared by the layers. The default keeps the bias alone.
    fn key_mask(score_bias: FloatTensor<Self>, heads: usize, queries: usize) -> KeyMask<Self> {
        let _ = (heads, queries);
        KeyMask::from_bias(score_bias)
    }

    /// `softmax(scale·q·kᵀ + bias)·v` with the heads merged: q `[b, h, s_q, d]`, k
    /// `[b, h, s_k, d]`, v `[b, h, s_k, d_v]`, the bias of `key_mask` (from
    /// [`Self::key_mask`]), output `[b, s_q, h·d_v]` — HF `RoFormerSelfAttention` after the
    /// rotation. The bias is a key mask, the same for every query: 0 for the keys that count
    /// and [`crate::MASKED_SCORE`] for those masked out (padding). A backend may add it to
    /// the scores (the references, the CPU kernels) or mask the keys where it is negative
    /// (the cubecl backends, whose flash-attention kernels take a boolean mask: the
    /// mask's `prepared` form). Attention probabilities are dropped with probability
    /// `dropout` where dropout is active (on autodiff backends, as burn's `Dropout`).
    fn self_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        key_mask: Option<KeyMask<Self>>,
        scale: f32,
        dropout: f64,
    ) -> FloatTensor<Self> {
        let _ = dropout;
        let bias = key_mask.map(|mask| mask.bias);
        reference::self_attention::<Self>(query, key, value, bias, scale)
    }

    /// [`Self::self_attention`] with dropout applied (masks from the backend's generator),
    /// keeping what [`Self::self_attention_backward`] needs.
    fn self_attention_saving(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        key_mask: Option<KeyMask<Self>>,
        scale: f32,
        dropout: f64,
    ) -> (FloatTensor<Self>, AttentionSaved<Self>) {
        let bias = key_mask.map(|mask| mask.bias);
        reference::self_attention_saving::<Self>(query, key, value, bias, scale, dropout)
    }

    /// The gradients `[dq, dk, dv]` of [`Self::self_attention_saving`] from the gradient of
    /// its context.
    fn self_attention_backward(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        saved: AttentionSaved<Self>,
        scale: f32,
        context_gradient: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        reference::self_attention_backward::<Self>(
            query,
            key,
            value,
            saved,
            scale,
            context_gradient,
        )
    }

    /// `x·weight (+ bias)` over the last axis: x `[..., d_in]`, weight `[d_in, d_out]`
    /// (burn's `Linear` layout, or a transposed embedding), bias `[d_out]`.
    fn affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        reference::affine::<Self>(x, weight, bias)
    }

    /// The gradients `[dx, dweight, dbias]` of [`Self::affine`] from its output's, each one
    /// computed when its flag in `wanted` is set.
    fn affine_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_gradient: FloatTensor<Self>,
        wanted: [bool; 3],
    ) -> [Option<FloatTensor<Self>>; 3] {
        reference::affine_backward::<Self>(x, weight, output_gradient, wanted)
    }

    /// `gelu(x·weight + bias)` (exact GELU): HF `RoFormerIntermediate`.
    fn affine_gelu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::exact_gelu(Self::affine(x, weight, Some(bias)))
    }

    /// `LayerNorm(x·weight + bias + residual)`: HF `RoFormerSelfOutput` / `RoFormerOutput`
    /// without dropout.
    #[allow(clippy::too_many_arguments)]
    fn affine_add_layer_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let projected = Self::affine(x, weight, Some(bias));
        Self::residual_layer_norm(projected, Some(residual), gamma, Some(beta), epsilon)
    }

    /// `γ·(y − mean(y))/√(var(y) + ε) + β` over the last axis for `y = x (+ residual)`
    /// (burn's `LayerNorm` arithmetic: biased variance, ε inside the root; no β: 0).
    fn residual_layer_norm(
        x: FloatTensor<Self>,
        residual: Option<FloatTensor<Self>>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        reference::residual_layer_norm::<Self>(x, residual, gamma, beta, epsilon)
    }

    /// [`Self::residual_layer_norm`], keeping what [`Self::residual_layer_norm_backward`]
    /// needs.
    fn residual_layer_norm_saving(
        x: FloatTensor<Self>,
        residual: Option<FloatTensor<Self>>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, LayerNormSaved<Self>) {
        reference::residual_layer_norm_saving::<Self>(x, residual, gamma, beta, epsilon)
    }

    /// The gradients of [`Self::residual_layer_norm_saving`] from its output's.
    fn residual_layer_norm_backward(
        output_gradient: FloatTensor<Self>,
        saved: LayerNormSaved<Self>,
        gamma: FloatTensor<Self>,
    ) -> LayerNormGradients<Self> {
        reference::residual_layer_norm_backward::<Self>(output_gradient, saved, gamma)
    }

    /// `x·Φ(x)`, GELU with the error function (HF `gelu`).
    fn exact_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::exact_gelu::<Self>(x)
    }

    /// `gradient · (Φ(x) + x·φ(x))`: the gradient of [`Self::exact_gelu`].
    fn exact_gelu_backward(x: FloatTensor<Self>, gradient: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::exact_gelu_backward::<Self>(x, gradient)
    }

    /// Mean cross-entropy of `logits` `[rows, classes]` against `labels` `[rows]` over the
    /// rows not labelled `ignore_index` (negative, PyTorch's −100), and the accuracy count:
    /// HF `RoFormerForMaskedLM`'s loss.
    fn cross_entropy(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        ignore_index: i64,
    ) -> CrossEntropy<Self> {
        reference::cross_entropy::<Self>(logits, labels, ignore_index)
    }

    /// [`Self::cross_entropy`], keeping what [`Self::cross_entropy_backward`] needs.
    fn cross_entropy_saving(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        ignore_index: i64,
    ) -> (CrossEntropy<Self>, CrossEntropySaved<Self>) {
        reference::cross_entropy_saving::<Self>(logits, labels, ignore_index)
    }

    /// The gradient of the logits from the loss's gradient `loss_gradient` (`[1]`).
    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        ignore_index: i64,
        saved: CrossEntropySaved<Self>,
        loss_gradient: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::cross_entropy_backward::<Self>(
            logits,
            labels,
            ignore_index,
            saved,
            loss_gradient,
        )
    }

    /// The rows `rows` of `x` `[n, width]`, in that order (`indices`: the same rows as an
    /// int tensor on the device): the real tokens of a padded batch ([`crate::Packing`]).
    fn gather_rows(
        x: FloatTensor<Self>,
        indices: IntTensor<Self>,
        rows: &[usize],
    ) -> FloatTensor<Self> {
        let _ = rows;
        reference::gather_rows::<Self>(x, indices)
    }

    /// `x` `[rows.len(), width]` as the rows `rows` of an `[n, width]` tensor whose other
    /// rows are zero (`indices`: the same rows on the device; each row listed once): the
    /// inverse of [`Self::gather_rows`].
    fn scatter_rows(
        x: FloatTensor<Self>,
        indices: IntTensor<Self>,
        rows: &[usize],
        n: usize,
    ) -> FloatTensor<Self> {
        let _ = rows;
        reference::scatter_rows::<Self>(x, indices, n)
    }

    /// `x` with `shape` (as many elements), without a copy where the backend can.
    fn reshape_in_place(x: FloatTensor<Self>, shape: Shape) -> FloatTensor<Self> {
        Self::float_reshape(x, shape)
    }

    /// One AdamW step of `param` with gradient `grad` and the previous moments (`None` on
    /// the first step: both start at zero).
    fn adamw_step<const D: usize>(
        param: Tensor<Self, D>,
        grad: Tensor<Self, D>,
        moments: Option<(Tensor<Self, D>, Tensor<Self, D>)>,
        step: &AdamWStep,
    ) -> AdamWUpdate<Self, D> {
        reference::adamw_step(param, grad, moments, step)
    }
}
