//! [`RoFormerBackend`] on the cubecl backends (wgpu, cuda, rocm) and burn's fusion wrapper
//! of them: attention and LayerNorm by burn's own fused operations
//! (`burn::tensor::module::attention`, autotuned flash attention where the device supports
//! it; `ModuleOps::layer_norm`), the references elsewhere, which burn's fusion compiles into
//! few kernels.
//!
//! burn-cubecl 0.21 runs its flash-attention kernels only for a boolean mask and the default
//! scale `1/√d`; given an additive bias or an explicit scale it runs its unfused composition
//! (matmul, softmax, matmul) instead. In f16 and bf16 the padding bias is therefore handed
//! over as a mask, and q, k, v and the mask in the layout those kernels read
//! ([`FlashAttentionInputs`]); in f32 the bias and the scale go as they are, since the
//! kernels' f16 tiles would lose f32's precision ([`burn_attention`]).

use std::cell::Cell;

use burn::tensor::backend::Backend;
use burn::tensor::ops::{AttentionModuleOptions, BoolTensor, FloatTensor};
use burn::tensor::{Bool, DType, Tensor};

use super::reference::{float, primitive};
use super::{KeyMask, RoFormerBackend};

thread_local! {
    static FLASH_FORM_CALLS: Cell<u64> = const { Cell::new(0) };
    static FLASH_KEY_MASKS: Cell<u64> = const { Cell::new(0) };
}

/// Calls of burn's `attention` operation made on this thread in the form burn-cubecl's
/// flash-attention kernels take (a boolean mask or none, the default scale, no bias: f16
/// and bf16 activations), so that a test can check that the attention of the cubecl
/// backends does not fall back to burn's unfused composition. Which kernel runs is then
/// autotuning's choice.
pub fn flash_form_attention_calls() -> u64 {
    FLASH_FORM_CALLS.with(Cell::get)
}

/// Boolean key masks built on this thread for the flash form ([`flash_key_mask`]): one per
/// padded forward when the encoder prepares it ([`RoFormerBackend::key_mask`]), one per
/// layer when attention is handed the bias alone.
pub fn flash_key_masks_built() -> u64 {
    FLASH_KEY_MASKS.with(Cell::get)
}

/// q, k, v and the padding mask as burn-cubecl 0.21's flash-attention kernels read them
/// correctly. Those kernels merge the batch and head axes into one index and step it by
/// the head stride alone (cubek-attention's `AttentionGlobalLayout`), so each tensor needs
/// `stride(0) = h·stride(1)`: q, k and v are copied where they are views with the heads
/// swapped in. The mask is stored whole, `[b, h, s_q, s_k]` (bytes on cuda): a stride-0
/// batch or head axis would give every batch row the first one's mask, and the kernels read
/// a mask broadcast over the queries wrongly too (tests/wgpu_backend.rs).
#[derive(Debug)]
pub struct FlashAttentionInputs<B: Backend> {
    /// `[b, h, s_q, d]`.
    pub query: FloatTensor<B>,
    /// `[b, h, s_k, d]`.
    pub key: FloatTensor<B>,
    /// `[b, h, s_k, d_v]`.
    pub value: FloatTensor<B>,
    /// `[b, h, s_q, s_k]`, true at the keys masked out.
    pub mask: Option<BoolTensor<B>>,
}

/// The flash form's mask `[b, heads, queries, s_k]`, true at the keys masked out, from the
/// key bias `[b, 1, 1, s_k]` (0, or [`crate::MASKED_SCORE`] for padding), stored whole
/// (see [`FlashAttentionInputs`]).
pub fn flash_key_mask<B: Backend>(
    score_bias: FloatTensor<B>,
    heads: usize,
    queries: usize,
) -> BoolTensor<B> {
    FLASH_KEY_MASKS.with(|built| built.set(built.get() + 1));
    // Negative, not "below MASKED_SCORE / 2": in f16 the masked score is −∞, and so is
    // half of f32::MIN.
    let masked: Tensor<B, 4, Bool> = float::<B, 4>(score_bias).lower_elem(0.0);
    let [batch, _, _, keys] = masked.dims();
    // The merging reshape copies the broadcast view into a tensor of its own.
    masked
        .expand([batch, heads, queries, keys])
        .reshape([batch * heads * queries, keys])
        .reshape([batch, heads, queries, keys])
        .into_primitive()
}

/// [`FlashAttentionInputs`] from [`RoFormerBackend::self_attention`]'s q, k and v and the
/// flash form's mask ([`flash_key_mask`]).
pub fn flash_attention_inputs<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    mask: Option<BoolTensor<B>>,
) -> FlashAttentionInputs<B> {
    // A reshape that merges the batch and head axes copies exactly the views it cannot merge.
    let mergeable = |x: FloatTensor<B>| {
        let x = float::<B, 4>(x);
        let [batch, heads, rows, width] = x.dims();
        primitive(
            x.reshape([batch * heads, rows, width])
                .reshape([batch, heads, rows, width]),
        )
    };
    FlashAttentionInputs {
        query: mergeable(query),
        key: mergeable(key),
        value: mergeable(value),
        mask,
    }
}

/// Whether attention over `dtype` activations takes the flash form: f16 and bf16 (see
/// [`burn_attention`]).
fn takes_flash_form(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

/// [`RoFormerBackend::key_mask`] of the cubecl backends: in f16 and bf16 the flash form's
/// mask too, built here once for all the layers.
fn burn_key_mask<B: Backend>(
    score_bias: FloatTensor<B>,
    heads: usize,
    queries: usize,
) -> KeyMask<B> {
    let prepared = takes_flash_form(float::<B, 4>(score_bias.clone()).dtype())
        .then(|| flash_key_mask::<B>(score_bias.clone(), heads, queries));
    KeyMask {
        bias: score_bias,
        prepared,
    }
}

/// Merged-head attention by burn's `attention` operation, the heads merged after.
///
/// burn-cubecl's flash-attention kernels hold q, k and v in f16 tiles (accumulating in f32).
/// For f16 and bf16 activations that loses nothing (bf16's 8 significant bits fit in f16's
/// 11; magnitudes beyond f16's 65504, which projections of LayerNorm outputs do not reach,
/// would overflow), so those take the flash form ([`flash_attention_inputs`], the default
/// scale). f32 activations keep f32 products: the key bias and the scale go to burn as they
/// are, which runs burn's unfused composition in f32.
fn burn_attention<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    key_mask: Option<KeyMask<B>>,
    scale: f32,
) -> FloatTensor<B> {
    let query = float::<B, 4>(query);
    let [batch, heads, seq_q, head_dim] = query.dims();
    let scale = f64::from(scale);
    let default_scale = 1.0 / (head_dim as f64).sqrt();
    // The model's scale is 1/√d rounded to f32.
    let is_default_scale = (scale - default_scale).abs() <= 1e-6 * default_scale;
    let context = if takes_flash_form(query.dtype()) && is_default_scale {
        FLASH_FORM_CALLS.with(|calls| calls.set(calls.get() + 1));
        let mask = key_mask.map(|mask| match mask.prepared {
            Some(prepared) => prepared,
            None => flash_key_mask::<B>(mask.bias, heads, seq_q),
        });
        let inputs = flash_attention_inputs::<B>(primitive(query), key, value, mask);
        B::attention(
            inputs.query,
            inputs.key,
            inputs.value,
            inputs.mask,
            None,
            AttentionModuleOptions::default(),
        )
    } else {
        let seq_k = float::<B, 4>(key.clone()).dims()[2];
        let bias = key_mask
            .map(|mask| primitive(float::<B, 4>(mask.bias).expand([batch, heads, seq_q, seq_k])));
        let options = AttentionModuleOptions {
            scale: Some(scale),
            ..Default::default()
        };
        B::attention(primitive(query), key, value, None, bias, options)
    };
    let context = float::<B, 4>(context);
    let d_v = context.dims()[3];
    primitive(context.swap_dims(1, 2).reshape([batch, seq_q, heads * d_v]))
}

/// LayerNorm of `x (+ residual)` by burn's operation.
fn burn_layer_norm<B: Backend>(
    x: FloatTensor<B>,
    residual: Option<FloatTensor<B>>,
    gamma: FloatTensor<B>,
    beta: Option<FloatTensor<B>>,
    epsilon: f64,
) -> FloatTensor<B> {
    let x = match residual {
        Some(residual) => B::float_add(x, residual),
        None => x,
    };
    B::layer_norm(x, gamma, beta, epsilon)
}

/// The overrides shared by the cubecl backends and their fusion wrapper.
macro_rules! burn_fused_operations {
    () => {
        fn key_mask(score_bias: FloatTensor<Self>, heads: usize, queries: usize) -> KeyMask<Self> {
            burn_key_mask::<Self>(score_bias, heads, queries)
        }

        fn self_attention(
            query: FloatTensor<Self>,
            key: FloatTensor<Self>,
            value: FloatTensor<Self>,
            key_mask: Option<KeyMask<Self>>,
            scale: f32,
            _dropout: f64,
        ) -> FloatTensor<Self> {
            burn_attention::<Self>(query, key, value, key_mask, scale)
        }

        fn residual_layer_norm(
            x: FloatTensor<Self>,
            residual: Option<FloatTensor<Self>>,
            gamma: FloatTensor<Self>,
            beta: Option<FloatTensor<Self>>,
            epsilon: f64,
        ) -> FloatTensor<Self> {
            burn_layer_norm::<Self>(x, residual, gamma, beta, epsilon)
        }
    };
}

#[cfg(feature = "cubecl")]
impl<R, F, I, BT> RoFormerBackend for burn_cubecl::CubeBackend<R, F, I, BT>
where
    R: burn_cubecl::CubeRuntime,
    F: burn_cubecl::FloatElement,
    I: burn_cubecl::IntElement,
    BT: burn_cubecl::BoolElement,
    Self: Backend + roformer_rope::RotaryBackend,
{
    burn_fused_operations!();
}

// `Fusion<B>` rotates by `B`'s rotation (a custom operation of the stream), so `B` must have one.
#[cfg(feature = "fusion")]
impl<B: burn_fusion::FusionBackend + roformer_rope::RotaryBackend> RoFormerBackend
    for burn_fusion::Fusion<B>
{
    burn_fused_operations!();
}
