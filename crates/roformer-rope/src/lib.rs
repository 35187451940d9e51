//! Rotary position embedding (RoPE) for [burn], as introduced by RoFormer
//! (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding",
//! arXiv 2104.09864).
//!
//! [`RotaryEmbedding`] rotates each two-dimensional plane of a query or key by an angle
//! proportional to its position, so that `<R_m q, R_n k>` depends on `m − n` only. It
//! supports both feature layouts in use ([`RopeLayout::Interleaved`], RoFormer's, and
//! [`RopeLayout::Half`], GPT-NeoX/LLaMA's), partial rotation, position offsets, and the
//! common context-extension rules ([`RopeScaling`]).
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::{Distribution, Tensor};
//! use roformer_rope::RotaryEmbeddingConfig;
//!
//! let device = Default::default();
//! let rope = RotaryEmbeddingConfig::new(64).init::<NdArray>(&device).unwrap();
//! // [batch, heads, seq, head_dim]
//! let q = Tensor::<NdArray, 4>::random([2, 4, 16, 64], Distribution::Default, &device);
//! let rotated = rope.apply(q, 0);
//! assert_eq!(rotated.dims(), [2, 4, 16, 64]);
//! ```

pub mod backend;
#[cfg(any(feature = "cubecl", feature = "fusion"))]
pub mod dispatch;
mod error;
mod layout;
mod rotary;
mod scaling;

pub use backend::{RotaryBackend, rotary_reference};
pub use error::RopeError;
pub use layout::RopeLayout;
pub use rotary::{RotaryEmbedding, RotaryEmbeddingConfig, RotarySettings};
pub use scaling::{RopeScaling, inverse_frequencies};
