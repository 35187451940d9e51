//! `e^x` for f32 written so that loops over slices vectorise (no libm call, no branches).
//!
//! Cephes `expf`: `x = n·ln2 + r` with `|r| ≤ ln2/2` (ln2 split in two for an exact
//! reduction), a degree-6 minimax polynomial for `e^r`, and `2^n` built in the exponent
//! bits. Results below f32's smallest normal number (`x < −87.33`) are exactly 0 and inputs
//! above 88 are clamped: the result is never subnormal or infinite. Subnormal values would
//! be exact enough but slow every product they enter by orders of magnitude on x86, and
//! masked attention scores would produce them (values near 1e-38), more of them as
//! attention sharpens during training.

/// Below this, `e^x` is under f32's smallest normal number (ln 2^-126 = −87.336).
const SMALLEST_NORMAL_EXPONENT: f32 = -87.33;

/// `e^x`, relative error about 1 ulp; 0 below [`SMALLEST_NORMAL_EXPONENT`].
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let underflows = x < SMALLEST_NORMAL_EXPONENT;
    const LOG2_E: f32 = core::f32::consts::LOG2_E;
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer in plain arithmetic.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(SMALLEST_NORMAL_EXPONENT, 88.0);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let polynomial =
        ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 1.666_666_5e-1)
            * r
            + 0.5;
    let e_r = polynomial * r * r + r + 1.0;
    // 2^n from the exponent bits without a float-to-int cast: Rust's saturating `as i32`
    // compiles to per-lane scalar code and keeps the loops around it from vectorising.
    // `n + 127 + ROUND` has `n + 127` (1..=255 after the clamp) in its low mantissa bits,
    // which the shift moves into the exponent field.
    let two_to_n = f32::from_bits((n + (127.0 + ROUND)).to_bits() << 23);
    if underflows { 0.0 } else { e_r * two_to_n }
}

#[cfg(test)]
mod tests {
    /// Against f64 `exp` over the whole clamped range; tolerance 3e-7 relative (2.5 ulp).
    #[test]
    fn exp_matches_f64_within_three_e_minus_seven_relative() {
        // exp(x) / e^x against 1, element by element (a NaN fails the comparison).
        let ratios: Vec<f64> = (-87_000..=87_000)
            .map(|i| {
                let x = i as f32 / 1000.0;
                super::exp(x) as f64 / (x as f64).exp()
            })
            .collect();
        roformer_testing::assert_close("exp / e^x", &ratios, &vec![1.0f64; ratios.len()], 3e-7);
        assert_eq!(super::exp(f32::MIN), 0.0);
        assert_eq!(super::exp(-87.34), 0.0);
        assert!(super::exp(-87.3).is_normal());
    }
}
