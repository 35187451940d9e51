//! The rotary position embedding layer (RoPE).
//!
//! Ports the rotation of Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary
//! Position Embedding" (arXiv 2104.09864), eq. 34: for position m and plane i,
//! `(x_a, x_b) ↦ (x_a·cos mθ_i − x_b·sin mθ_i, x_b·cos mθ_i + x_a·sin mθ_i)` with
//! θ_i = base^(−2i/d). HF transformers computes the same thing in
//! `RoFormerSinusoidalPositionalEmbedding` + `RoFormerSelfAttention.apply_rotary_position_embeddings`.
//!
//! The rotation is evaluated as `x·cos + partner(x)·signed_sin`, where `partner` swaps the
//! two features of each plane (a `flip` over a length-2 axis) and the sign of the sine is
//! folded into the precomputed table: two multiplies, one add, no slicing, negation or
//! concatenation per call. The rotation itself is an operation of the backend
//! ([`RotaryBackend::rotary`], and [`RotaryBackend::rotary_pair`] for a query and key
//! together): one fused pass on burn-ndarray, which would otherwise materialise the pair
//! swap element by element, and one kernel launch on the cubecl backends.

use core::ops::Range;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

use crate::backend::RotaryBackend;
use crate::error::RopeError;
use crate::layout::RopeLayout;
use crate::scaling::RopeScaling;

/// Configuration of a [`RotaryEmbedding`].
#[derive(Config, Debug)]
pub struct RotaryEmbeddingConfig {
    /// Features per attention head (d in the paper).
    pub head_dim: usize,
    /// Positions whose sin/cos rows are precomputed at init. Longer sequences still
    /// rotate correctly; their rows are computed when needed. Default: 512.
    #[config(default = 512)]
    pub max_positions: usize,
    /// The base of the frequencies θ_i = base^(−2i/d). Default: 10000 (the paper's).
    #[config(default = 10000.0)]
    pub base: f64,
    /// Rotate only the first `rotary_dim` features of each head; the rest pass through.
    /// Default: `None`, all `head_dim` features rotate.
    #[config(default = "None")]
    pub rotary_dim: Option<usize>,
    /// How features pair into rotated planes. Default: [`RopeLayout::Interleaved`].
    #[config(default = "RopeLayout::Interleaved")]
    pub layout: RopeLayout,
    /// Context-extension scaling. Default: [`RopeScaling::None`].
    #[config(default = "RopeScaling::None")]
    pub scaling: RopeScaling,
}

/// The fixed parameters of a rotary embedding, kept beside its tables.
#[derive(Debug, Clone)]
pub struct RotarySettings {
    /// Features per head.
    pub head_dim: usize,
    /// Features rotated (even, ≤ `head_dim`).
    pub rotary_dim: usize,
    /// Positions precomputed in the tables.
    pub max_positions: usize,
    /// Frequency base.
    pub base: f64,
    /// Feature pairing.
    pub layout: RopeLayout,
    /// Context-extension rule.
    pub scaling: RopeScaling,
}

/// Rotates the features of queries, keys (and RoFormer's values) by their position.
///
/// Holds `cos` and sign-folded `sin` tables `[max_positions, rotary_dim]`, computed in
/// f64 on the host once and stored as f32. They are constants: not parameters, not saved.
#[derive(Module, Debug)]
pub struct RotaryEmbedding<B: Backend> {
    cos: Tensor<B, 2>,
    signed_sin: Tensor<B, 2>,
    settings: RotarySettings,
}

impl RotaryEmbeddingConfig {
    /// Checks the configuration and builds the layer's tables on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<RotaryEmbedding<B>, RopeError> {
        let settings = self.validate()?;
        // Dynamic NTK only rescales past the original context; the table covers the
        // unscaled range, and longer sequences get rows computed for their length.
        let table_len = match settings.scaling {
            RopeScaling::DynamicNtk {
                original_max_positions,
                ..
            } => settings.max_positions.min(original_max_positions),
            _ => settings.max_positions,
        };
        let (cos, signed_sin) = rotation_rows(&settings, 0..table_len, table_len);
        Ok(RotaryEmbedding {
            cos: to_tensor(cos, table_len, settings.rotary_dim, device),
            signed_sin: to_tensor(signed_sin, table_len, settings.rotary_dim, device),
            settings,
        })
    }

    fn validate(&self) -> Result<RotarySettings, RopeError> {
        let invalid =
            |field: &'static str, message: String| RopeError::InvalidConfig { field, message };
        if self.head_dim == 0 {
            return Err(invalid("head_dim", "must be > 0".into()));
        }
        let rotary_dim = self.rotary_dim.unwrap_or(self.head_dim);
        if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) || rotary_dim > self.head_dim {
            return Err(invalid(
                "rotary_dim",
                format!(
                    "must be even, > 0 and <= head_dim ({}), got {rotary_dim}",
                    self.head_dim
                ),
            ));
        }
        if !(self.base.is_finite() && self.base > 1.0) {
            return Err(invalid(
                "base",
                format!("must be a finite number > 1, got {}", self.base),
            ));
        }
        self.scaling
            .validate()
            .map_err(|message| invalid("scaling", message))?;
        Ok(RotarySettings {
            head_dim: self.head_dim,
            rotary_dim,
            max_positions: self.max_positions,
            base: self.base,
            layout: self.layout,
            scaling: self.scaling,
        })
    }
}

impl<B: RotaryBackend> RotaryEmbedding<B> {
    /// Rotates `x` (`[..., seq, head_dim]`, typically `[batch, heads, seq, head_dim]`)
    /// for positions `0..seq`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.apply(x, 0)
    }

    /// Rotates `x` (`[..., seq, head_dim]`) for positions `offset..offset + seq`, for
    /// chunked or incremental use. Positions past the precomputed table are computed
    /// for this call; there is no wraparound.
    ///
    /// # Panics
    /// If `D < 2` or the last dimension is not `head_dim` (a programming error).
    pub fn apply<const D: usize>(&self, x: Tensor<B, D>, offset: usize) -> Tensor<B, D> {
        let (cos, signed_sin, first) = self.tables_for(&x.dims(), offset, &x.device());
        let rotated = B::rotary(
            x.into_primitive().tensor(),
            cos.into_primitive().tensor(),
            signed_sin.into_primitive().tensor(),
            first,
            self.settings.layout,
        );
        Tensor::from_primitive(TensorPrimitive::Float(rotated))
    }

    /// Rotates a query and a key of the same shape (`[..., seq, head_dim]`) for positions
    /// `offset..offset + seq`, as [`RotaryEmbedding::apply`] does each, in one operation of
    /// the backend ([`RotaryBackend::rotary_pair`]: one kernel launch on a GPU).
    ///
    /// # Panics
    /// If `q` and `k` differ in shape, or as [`RotaryEmbedding::apply`] does.
    pub fn apply_pair<const D: usize>(
        &self,
        q: Tensor<B, D>,
        k: Tensor<B, D>,
        offset: usize,
    ) -> (Tensor<B, D>, Tensor<B, D>) {
        let dims = q.dims();
        assert_eq!(
            dims,
            k.dims(),
            "rotary embedding of a query and key pair needs equal shapes"
        );
        let (cos, signed_sin, first) = self.tables_for(&dims, offset, &q.device());
        let (q, k) = B::rotary_pair(
            q.into_primitive().tensor(),
            k.into_primitive().tensor(),
            cos.into_primitive().tensor(),
            signed_sin.into_primitive().tensor(),
            first,
            self.settings.layout,
        );
        let float = |x| Tensor::from_primitive(TensorPrimitive::Float(x));
        (float(q), float(k))
    }

    /// The tables for a tensor of `dims` at positions from `offset`, and the row they
    /// start at. The precomputed tables are passed whole, from row `offset`; past them, this
    /// call's rows are computed.
    fn tables_for(
        &self,
        dims: &[usize],
        offset: usize,
        device: &B::Device,
    ) -> (Tensor<B, 2>, Tensor<B, 2>, usize) {
        let rank = dims.len();
        assert!(
            rank >= 2,
            "rotary embedding needs [..., seq, head_dim], got rank {rank}"
        );
        let settings = &self.settings;
        let (seq, head_dim) = (dims[rank - 2], dims[rank - 1]);
        assert_eq!(
            head_dim, settings.head_dim,
            "rotary embedding built for head_dim {} got features of size {head_dim}",
            settings.head_dim
        );
        if offset + seq <= self.cos.dims()[0] {
            (self.cos.clone(), self.signed_sin.clone(), offset)
        } else {
            let (cos, signed_sin) = self.rows(offset..offset + seq, device);
            (cos, signed_sin, 0)
        }
    }
}

impl<B: Backend> RotaryEmbedding<B> {
    /// The settings this layer was built with.
    pub fn settings(&self) -> &RotarySettings {
        &self.settings
    }

    /// `cos` and signed `sin` rows `[len, rotary_dim]` computed for `positions` (past the
    /// precomputed table; rows inside it are read in place by `apply`).
    fn rows(&self, positions: Range<usize>, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let settings = &self.settings;
        let len = positions.end - positions.start;
        let (cos, signed_sin) = rotation_rows(settings, positions.clone(), positions.end);
        (
            to_tensor(cos, len, settings.rotary_dim, device),
            to_tensor(signed_sin, len, settings.rotary_dim, device),
        )
    }
}

/// Host computation of `cos` and signed `sin` for `positions`, in f64, rounded to f32.
/// `seq_len` is the length the frequencies are chosen for (dynamic NTK only).
pub(crate) fn rotation_rows(
    settings: &RotarySettings,
    positions: Range<usize>,
    seq_len: usize,
) -> (Vec<f32>, Vec<f32>) {
    let d = settings.rotary_dim;
    let inverse_frequencies = settings
        .scaling
        .inverse_frequencies(settings.base, d, seq_len);
    let factor = settings.scaling.attention_factor();
    let planes: Vec<(usize, f64)> = (0..d)
        .map(|j| {
            let (i, _, sign) = settings.layout.plane_of(j, d);
            (i, sign)
        })
        .collect();
    let len = positions.end - positions.start;
    let mut cos = Vec::with_capacity(len * d);
    let mut signed_sin = Vec::with_capacity(len * d);
    for m in positions {
        for &(i, sign) in &planes {
            let angle = m as f64 * inverse_frequencies[i];
            cos.push((angle.cos() * factor) as f32);
            signed_sin.push((sign * angle.sin() * factor) as f32);
        }
    }
    (cos, signed_sin)
}

/// The rows as a tensor of the backend's float type (burn keeps host data in the type it
/// was made in, so an f32 table on an f64 or f16 backend would not combine with `x`).
fn to_tensor<B: Backend>(
    values: Vec<f32>,
    rows: usize,
    cols: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(values, [rows, cols]).convert::<B::FloatElem>(),
        device,
    )
}
