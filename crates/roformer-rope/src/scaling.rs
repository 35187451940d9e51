//! Context-extension scaling rules for rotary position embeddings.
//!
//! Each rule turns the unscaled inverse frequencies θ_i = base^(−2i/d) (Su et al. 2021,
//! eq. 15) into the frequencies actually used, and may scale the rotated values by an
//! attention factor. The formulas follow HF transformers' `modeling_rope_utils.py`
//! (`_compute_linear_scaling_rope_parameters`, `_compute_dynamic_ntk_parameters`,
//! `_compute_yarn_parameters`), so weights trained with those rules behave the same here.

use burn::serde::{Deserialize, Serialize};

/// How positions beyond the trained context are mapped onto rotation angles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(crate = "burn::serde", tag = "type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// No scaling: θ_i = base^(−2i/d). The RoFormer paper's rule and the default.
    #[default]
    None,
    /// Linear position interpolation (Chen et al. 2023, "Extending Context Window of Large
    /// Language Models via Positional Interpolation", arXiv 2306.15595): position m is
    /// rotated as m / `factor`, i.e. θ'_i = θ_i / factor.
    Linear {
        /// Context-extension factor s ≥ 1.
        factor: f64,
    },
    /// NTK-aware base scaling (bloc97 2023, formalised in Peng et al. 2023, arXiv 2309.00071,
    /// §3.1): the base grows to base · s^(d/(d−2)), which stretches low frequencies
    /// and keeps high frequencies nearly unchanged.
    NtkAware {
        /// Context-extension factor s ≥ 1.
        factor: f64,
    },
    /// Dynamic NTK scaling (emozilla 2023; Peng et al. 2023, arXiv 2309.00071, §3.3): no
    /// scaling while the sequence fits the original context L; for a sequence of length
    /// l > L the base becomes base · ((s·l/L) − (s−1))^(d/(d−2)).
    DynamicNtk {
        /// Context-extension factor s ≥ 1.
        factor: f64,
        /// The context length L the weights were trained on.
        original_max_positions: usize,
    },
    /// YaRN (Peng et al. 2023, "YaRN: Efficient Context Window Extension of Large Language
    /// Models", arXiv 2309.00071, §3.4): per-frequency blend of interpolation (θ_i / s) for
    /// long wavelengths and extrapolation (θ_i) for short ones, with a linear ramp between
    /// the dimensions whose wavelength fits `beta_fast` and `beta_slow` times into L; the
    /// rotated values are multiplied by the attention factor √(1/t) = 0.1·ln(s) + 1.
    Yarn {
        /// Context-extension factor s ≥ 1.
        factor: f64,
        /// The context length L the weights were trained on.
        original_max_positions: usize,
        /// Rotations per context above which a dimension is extrapolated (paper's β, 32).
        #[serde(default = "default_beta_fast")]
        beta_fast: f64,
        /// Rotations per context below which a dimension is interpolated (paper's α, 1).
        #[serde(default = "default_beta_slow")]
        beta_slow: f64,
        /// Overrides the attention factor 0.1·ln(s) + 1.
        #[serde(default)]
        attention_factor: Option<f64>,
    },
}

fn default_beta_fast() -> f64 {
    32.0
}

fn default_beta_slow() -> f64 {
    1.0
}

/// The unscaled inverse frequencies θ_i = base^(−2i/d), i = 0..d/2, in f64.
pub fn inverse_frequencies(base: f64, rotary_dim: usize) -> Vec<f64> {
    (0..rotary_dim / 2)
        .map(|i| base.powf(-((2 * i) as f64) / rotary_dim as f64))
        .collect()
}

impl RopeScaling {
    /// The scaling factor s, or 1 for [`RopeScaling::None`].
    pub fn factor(&self) -> f64 {
        match *self {
            RopeScaling::None => 1.0,
            RopeScaling::Linear { factor }
            | RopeScaling::NtkAware { factor }
            | RopeScaling::DynamicNtk { factor, .. }
            | RopeScaling::Yarn { factor, .. } => factor,
        }
    }

    /// Checks the rule's parameters; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let factor = self.factor();
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(format!(
                "scaling factor must be a finite number >= 1, got {factor}"
            ));
        }
        match *self {
            RopeScaling::DynamicNtk {
                original_max_positions: 0,
                ..
            } => Err("scaling original_max_positions must be > 0".to_string()),
            RopeScaling::Yarn {
                original_max_positions,
                beta_fast,
                beta_slow,
                attention_factor,
                ..
            } => {
                if original_max_positions == 0 {
                    return Err("scaling original_max_positions must be > 0".to_string());
                }
                if !(beta_fast > beta_slow && beta_slow > 0.0) {
                    return Err(format!(
                        "scaling needs beta_fast > beta_slow > 0, got beta_fast={beta_fast}, beta_slow={beta_slow}"
                    ));
                }
                match attention_factor {
                    Some(a) if !(a.is_finite() && a > 0.0) => Err(format!(
                        "scaling attention_factor must be a positive number, got {a}"
                    )),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Whether the frequencies depend on the length of the sequence being rotated.
    pub fn is_dynamic(&self) -> bool {
        matches!(self, RopeScaling::DynamicNtk { .. })
    }

    /// Multiplier applied to cos and sin (YaRN's √(1/t)); 1 for every other rule.
    pub fn attention_factor(&self) -> f64 {
        match *self {
            RopeScaling::Yarn {
                factor,
                attention_factor,
                ..
            } => attention_factor.unwrap_or_else(|| yarn_default_attention_factor(factor)),
            _ => 1.0,
        }
    }

    /// The inverse frequencies for rotating a sequence whose last position is
    /// `seq_len − 1` (only [`RopeScaling::DynamicNtk`] looks at `seq_len`).
    pub fn inverse_frequencies(&self, base: f64, rotary_dim: usize, seq_len: usize) -> Vec<f64> {
        let d = rotary_dim as f64;
        match *self {
            RopeScaling::None => inverse_frequencies(base, rotary_dim),
            RopeScaling::Linear { factor } => inverse_frequencies(base, rotary_dim)
                .into_iter()
                .map(|theta| theta / factor)
                .collect(),
            RopeScaling::NtkAware { factor } => {
                inverse_frequencies(base * factor.powf(d / (d - 2.0)), rotary_dim)
            }
            RopeScaling::DynamicNtk {
                factor,
                original_max_positions,
            } => {
                if seq_len <= original_max_positions {
                    inverse_frequencies(base, rotary_dim)
                } else {
                    let ratio = factor * seq_len as f64 / original_max_positions as f64;
                    let scaled_base = base * (ratio - (factor - 1.0)).powf(d / (d - 2.0));
                    inverse_frequencies(scaled_base, rotary_dim)
                }
            }
            RopeScaling::Yarn {
                factor,
                original_max_positions,
                beta_fast,
                beta_slow,
                ..
            } => yarn_inverse_frequencies(
                base,
                rotary_dim,
                factor,
                original_max_positions,
                beta_fast,
                beta_slow,
            ),
        }
    }
}

/// YaRN's default attention factor: 0.1·ln(s) + 1 (Peng et al. 2023, eq. 22).
fn yarn_default_attention_factor(factor: f64) -> f64 {
    if factor <= 1.0 {
        1.0
    } else {
        0.1 * factor.ln() + 1.0
    }
}

/// The dimension index whose wavelength fits `rotations` times into the original context:
/// d·ln(L / (rotations·2π)) / (2·ln base). HF's `find_correction_dim`.
fn correction_dim(rotations: f64, rotary_dim: usize, base: f64, original_max: usize) -> f64 {
    (rotary_dim as f64 * (original_max as f64 / (rotations * 2.0 * std::f64::consts::PI)).ln())
        / (2.0 * base.ln())
}

fn yarn_inverse_frequencies(
    base: f64,
    rotary_dim: usize,
    factor: f64,
    original_max: usize,
    beta_fast: f64,
    beta_slow: f64,
) -> Vec<f64> {
    let half = rotary_dim / 2;
    // HF's `find_correction_range`: whole dimensions, clamped to the valid range.
    let low = correction_dim(beta_fast, rotary_dim, base, original_max)
        .floor()
        .max(0.0);
    let high = correction_dim(beta_slow, rotary_dim, base, original_max)
        .ceil()
        .min(rotary_dim as f64 - 1.0);
    // HF's `linear_ramp_factor`: avoid a zero-width ramp.
    let high = if low == high { high + 0.001 } else { high };
    inverse_frequencies(base, rotary_dim)
        .into_iter()
        .take(half)
        .enumerate()
        .map(|(i, theta)| {
            let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
            // Dimensions below `low` rotate fast (extrapolate), above `high` slowly (interpolate).
            let extrapolation_weight = 1.0 - ramp;
            (theta / factor) * (1.0 - extrapolation_weight) + theta * extrapolation_weight
        })
        .collect()
}
