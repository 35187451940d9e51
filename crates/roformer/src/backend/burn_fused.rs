//! [`RoFormerBackend`] on the cubecl backends (wgpu, cuda, rocm) and burn's fusion wrapper
//! of them: attention and LayerNorm by burn's own fused operations
//! (`burn::tensor::module::attention`, autotuned flash attention where the device supports
//! it; `ModuleOps::layer_norm`), the references elsewhere, which burn's fusion compiles into
//! few kernels.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{AttentionModuleOptions, FloatTensor};

use super::RoFormerBackend;
use super::reference::{float, primitive};

/// Merged-head attention by burn's `attention` operation: the key bias broadcast to the
/// `[b, h, s_q, s_k]` bias it takes, the heads merged after.
fn burn_attention<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    score_bias: Option<FloatTensor<B>>,
    scale: f32,
) -> FloatTensor<B> {
    let query = float::<B, 4>(query);
    let [batch, heads, seq_q, _] = query.dims();
    let value = float::<B, 4>(value);
    let [_, _, seq_k, d_v] = value.dims();
    let bias =
        score_bias.map(|bias| primitive(float::<B, 4>(bias).expand([batch, heads, seq_q, seq_k])));
    let options = AttentionModuleOptions {
        scale: Some(f64::from(scale)),
        ..Default::default()
    };
    let context = B::attention(primitive(query), key, primitive(value), None, bias, options);
    primitive(
        float::<B, 4>(context)
            .swap_dims(1, 2)
            .reshape([batch, seq_q, heads * d_v]),
    )
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
        fn self_attention(
            query: FloatTensor<Self>,
            key: FloatTensor<Self>,
            value: FloatTensor<Self>,
            score_bias: Option<FloatTensor<Self>>,
            scale: f32,
            _dropout: f64,
        ) -> FloatTensor<Self> {
            burn_attention::<Self>(query, key, value, score_bias, scale)
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
