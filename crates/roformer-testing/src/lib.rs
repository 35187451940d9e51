//! Numerical comparisons for the workspace's tests.
//!
//! A maximum folded with `f32::max` drops NaN (`0.0f32.max(NAN) == 0.0`), so an output that
//! is partly or wholly NaN would measure a difference of 0 and pass. Every helper here
//! instead fails (panics, naming the index) on a length mismatch or on a NaN or infinite
//! value on either side, and reports where the largest difference is.
//!
//! [`hf_fixture`] reads the HF transformers fixtures that `scripts/make_hf_fixtures.py`
//! writes, with the tolerances every parity test uses; [`tensors`] makes test data and
//! reads tensors back; [`weights`] puts one model's weights on another backend.

use std::fmt;

pub mod hf_fixture;
pub mod tensors;
pub mod weights;

pub use tensors::{random_values, tensor_values};

/// A float a test compares: `f32` or `f64`, read as `f64`.
pub trait Value: Copy {
    /// The value as `f64` (exact for both types).
    fn to_f64(self) -> f64;
}

impl Value for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Value for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

/// The largest element-wise difference between two equally long, finite slices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    /// max |got − expected|.
    pub max_abs: f64,
    /// Where it is.
    pub index: usize,
    /// `got` there.
    pub got: f64,
    /// `expected` there.
    pub expected: f64,
    /// max |expected| over the whole slice: the scale of [`Gap::relative`].
    pub scale: f64,
}

impl Gap {
    /// `max_abs` relative to the largest |expected| (0 when both are all zeros).
    pub fn relative(&self) -> f64 {
        if self.max_abs == 0.0 {
            0.0
        } else {
            self.max_abs / self.scale
        }
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max |diff| {:.3e} (relative {:.3e}) at index {}: got {:e}, expected {:e}",
            self.max_abs,
            self.relative(),
            self.index,
            self.got,
            self.expected
        )
    }
}

/// The largest difference between `got` and `expected`. Panics, naming the index, if the
/// lengths differ, either slice is empty, or any value on either side is NaN or infinite.
#[track_caller]
pub fn gap<G: Value, E: Value>(got: &[G], expected: &[E]) -> Gap {
    assert_eq!(
        got.len(),
        expected.len(),
        "compared slices differ in length: got {}, expected {}",
        got.len(),
        expected.len()
    );
    assert!(!got.is_empty(), "compared slices are empty");
    let mut worst = Gap {
        max_abs: 0.0,
        index: 0,
        got: got[0].to_f64(),
        expected: expected[0].to_f64(),
        scale: 0.0,
    };
    for (index, (g, e)) in got.iter().zip(expected).enumerate() {
        let (g, e) = (g.to_f64(), e.to_f64());
        assert!(
            g.is_finite(),
            "non-finite value {g} at index {index} of the output (expected {e})"
        );
        assert!(
            e.is_finite(),
            "non-finite value {e} at index {index} of the reference (got {g})"
        );
        let diff = (g - e).abs();
        if diff > worst.max_abs {
            worst = Gap {
                max_abs: diff,
                index,
                got: g,
                expected: e,
                scale: worst.scale,
            };
        }
        worst.scale = worst.scale.max(e.abs());
    }
    worst
}

/// max |got − expected|; panics as [`gap`] does.
#[track_caller]
pub fn max_abs_diff<G: Value, E: Value>(got: &[G], expected: &[E]) -> f64 {
    gap(got, expected).max_abs
}

/// max |got − expected| / max |expected|; panics as [`gap`] does.
#[track_caller]
pub fn max_relative_diff<G: Value, E: Value>(got: &[G], expected: &[E]) -> f64 {
    gap(got, expected).relative()
}

/// Fails unless every |got − expected| < `tolerance`; `what` names the comparison.
#[track_caller]
pub fn assert_close<G: Value, E: Value>(what: &str, got: &[G], expected: &[E], tolerance: f64) {
    let gap = gap(got, expected);
    assert!(
        gap.max_abs < tolerance,
        "{what}: {gap} (tolerance {tolerance:e})"
    );
}

/// Fails unless max |got − expected| < `tolerance` · max |expected|.
#[track_caller]
pub fn assert_close_relative<G: Value, E: Value>(
    what: &str,
    got: &[G],
    expected: &[E],
    tolerance: f64,
) {
    let gap = gap(got, expected);
    assert!(
        gap.relative() < tolerance,
        "{what}: {gap} (relative tolerance {tolerance:e})"
    );
}

/// The rows of a row-major `[rows, width]` array whose `keep` flag is non-zero (e.g. the
/// real tokens of `[batch, seq, width]` under an attention mask), concatenated.
#[track_caller]
pub fn rows_where<T: Copy, K: Copy + Into<i64>>(values: &[T], width: usize, keep: &[K]) -> Vec<T> {
    assert_eq!(
        values.len(),
        width * keep.len(),
        "{} values are not {} rows of {width}",
        values.len(),
        keep.len()
    );
    values
        .chunks_exact(width)
        .zip(keep)
        .filter(|(_, k)| (**k).into() != 0)
        .flat_map(|(row, _)| row.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_is_the_largest_difference_and_its_place() {
        let gap = gap(&[1.0f32, 2.5, -3.0], &[1.0f64, 2.0, -4.0]);
        assert_eq!(gap.max_abs, 1.0);
        assert_eq!(gap.index, 2);
        assert_eq!(gap.scale, 4.0);
        assert_eq!(gap.relative(), 0.25);
        assert_eq!(max_abs_diff(&[0.0f32; 3], &[0.0f32; 3]), 0.0);
        assert_eq!(max_relative_diff(&[0.0f32; 3], &[0.0f32; 3]), 0.0);
    }

    #[test]
    #[should_panic(expected = "non-finite value NaN at index 1 of the output")]
    fn a_nan_in_the_output_fails() {
        max_abs_diff(&[0.0f32, f32::NAN, 0.0], &[0.0f32; 3]);
    }

    #[test]
    #[should_panic(expected = "non-finite value NaN at index 0 of the output")]
    fn an_output_that_is_all_nan_fails() {
        assert_close("all NaN", &[f32::NAN; 4], &[1.0f32; 4], 1e9);
    }

    #[test]
    #[should_panic(expected = "of the reference")]
    fn an_infinite_reference_fails() {
        max_abs_diff(&[0.0f64], &[f64::INFINITY]);
    }

    #[test]
    #[should_panic(expected = "differ in length")]
    fn a_length_mismatch_fails() {
        max_abs_diff(&[0.0f32; 2], &[0.0f32; 3]);
    }

    #[test]
    #[should_panic(expected = "relative tolerance")]
    fn a_relative_gap_over_the_tolerance_fails() {
        assert_close_relative("x", &[1.0f32, 10.5], &[1.0f32, 10.0], 0.01);
    }

    #[test]
    fn rows_where_keeps_the_flagged_rows() {
        let values = [1, 2, 3, 4, 5, 6];
        assert_eq!(rows_where(&values, 2, &[1i64, 0, 1]), vec![1, 2, 5, 6]);
    }
}
