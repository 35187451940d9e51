//! Which features of a head are rotated together.
//!
//! A rotary embedding rotates d/2 two-dimensional planes. Model families disagree on
//! which two features form a plane; weights trained with one layout only work with it.

use burn::serde::{Deserialize, Serialize};

/// The pairing of features into rotated planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(crate = "burn::serde", rename_all = "snake_case")]
pub enum RopeLayout {
    /// Adjacent features form a plane: (x0, x1), (x2, x3), … — the RoFormer paper
    /// (Su et al. 2021, eq. 34) and HF `RoFormerSelfAttention.apply_rotary_position_embeddings`.
    #[default]
    Interleaved,
    /// Feature i pairs with feature i + d/2 — GPT-NeoX and LLaMA (`rotate_half` in HF).
    Half,
}

impl RopeLayout {
    /// For rotated feature `j` of `rotary_dim`: the frequency index it uses, the feature it
    /// pairs with, and the sign of that partner's sine term, so that
    /// `out[j] = x[j]·cos(mθ_i) + sign·x[partner]·sin(mθ_i)`.
    pub fn plane_of(self, j: usize, rotary_dim: usize) -> (usize, usize, f64) {
        let half = rotary_dim / 2;
        match self {
            RopeLayout::Interleaved => {
                let sign = if j.is_multiple_of(2) { -1.0 } else { 1.0 };
                (j / 2, j ^ 1, sign)
            }
            RopeLayout::Half => {
                let sign = if j < half { -1.0 } else { 1.0 };
                (j % half, (j + half) % rotary_dim, sign)
            }
        }
    }
}
