//! Mean cross-entropy of rows of logits against integer labels, with the count of rows
//! whose largest logit is the label's, in one pass per row: HF `RoFormerForMaskedLM`'s
//! `CrossEntropyLoss()(prediction_scores.view(-1, vocab), labels.view(-1))` (rows labelled
//! `ignore_index`, PyTorch's −100, do not count) and the masked-LM accuracy.
//!
//! burn's form is `log_softmax` (a max, an `exp` per element through libm, a sum, a log,
//! a subtraction: each a pass), a `gather` and a mean, plus an `argmax` for the accuracy;
//! its backward builds a zero tensor of the logits' size to scatter the gathered gradient
//! into and evaluates `exp` again. Here each row gets its maximum (and where it is), the
//! sum of `e^(x − max)` and `lse = max + ln Σ`, and the backward step writes
//! `∂loss/∂x = (e^(x − lse) − [j = label]) / count` directly.

use rayon::prelude::*;

use crate::dispatch::{self, Kernel};
use crate::exp::exp;
use crate::vectorize::multiversion;
use crate::{Array, row_major};

/// Rows per parallel task (a row is a whole vocabulary: thousands of logits).
const ROWS_PER_TASK: usize = 4;

/// The loss and the accuracy count of [`cross_entropy`], and what its backward needs.
#[derive(Debug, Clone)]
pub struct CrossEntropyRows {
    /// Mean over the counted rows of `−log softmax(x)[label]` (0 when no row counts).
    pub loss: f32,
    /// Counted rows whose largest logit (the first, on ties) is at the label.
    pub correct: usize,
    /// Rows not labelled `ignore_index`.
    pub counted: usize,
    /// Each row's `lse = max + ln Σ e^(x − max)`.
    pub log_sums: Vec<f32>,
}

/// Cross-entropy of `logits` `[rows, classes]` (any strides) against `labels` (`rows` of
/// them); rows labelled `ignore_index` (negative) are left out. `None` unless the shapes
/// agree and every other label is in `0..classes`.
pub fn cross_entropy(
    logits: &Array,
    labels: &[i64],
    ignore_index: i64,
) -> Option<CrossEntropyRows> {
    let (rows, classes) = rows_and_classes(logits, labels, ignore_index)?;
    dispatch::record(Kernel::CrossEntropy);
    let logits = logits.as_standard_layout();
    let rows_out = row_statistics(logits.as_slice()?, classes, labels, ignore_index);
    debug_assert_eq!(rows_out.len(), rows);
    let counted = labels
        .iter()
        .filter(|&&label| label != ignore_index)
        .count();
    let correct = rows_out.iter().filter(|row| row.correct).count();
    let total: f64 = rows_out.iter().map(|row| row.loss).sum();
    Some(CrossEntropyRows {
        loss: (total / counted.max(1) as f64) as f32,
        correct,
        counted,
        log_sums: rows_out.iter().map(|row| row.log_sum).collect(),
    })
}

/// `∂/∂x[i, j]` of `upstream · loss`: `upstream · (softmax(x_i)[j] − [j = label_i]) / count`
/// (0 on rows that do not count), from the forward's `log_sums` and `counted`. `None`
/// unless the shapes agree.
pub fn cross_entropy_backward(
    logits: &Array,
    labels: &[i64],
    ignore_index: i64,
    log_sums: &[f32],
    counted: usize,
    upstream: f32,
) -> Option<Array> {
    let (_, classes) = rows_and_classes(logits, labels, ignore_index)?;
    if log_sums.len() != labels.len() {
        return None;
    }
    dispatch::record(Kernel::CrossEntropyBackward);
    let scale = upstream / counted.max(1) as f32;
    let shape = logits.shape().to_vec();
    let logits = logits.as_standard_layout();
    let logits = logits.as_slice()?;
    let mut d_logits = vec![0f32; logits.len()];
    d_logits
        .par_chunks_mut(classes)
        .enumerate()
        .for_each(|(row, out)| {
            let label = labels[row];
            if label == ignore_index {
                return;
            }
            let values = &logits[row * classes..(row + 1) * classes];
            scaled_softmax(values, log_sums[row], scale, out);
            out[label as usize] -= scale;
        });
    Some(row_major(d_logits, &shape))
}

/// `[rows, classes]` when `logits` is 2-d with a label per row, every label in
/// `0..classes` or `ignore_index` (negative).
fn rows_and_classes(logits: &Array, labels: &[i64], ignore_index: i64) -> Option<(usize, usize)> {
    let &[rows, classes] = logits.shape() else {
        return None;
    };
    let valid = |label: i64| label == ignore_index || (0..classes as i64).contains(&label);
    let fits = labels.len() == rows && classes > 0 && ignore_index < 0;
    (fits && labels.iter().all(|&label| valid(label))).then_some((rows, classes))
}

/// What one row contributes.
#[derive(Clone, Copy, Default)]
struct RowStatistics {
    /// `lse − x[label]` (0 for a row that does not count).
    loss: f64,
    /// `lse = max + ln Σ e^(x − max)`.
    log_sum: f32,
    /// The row counts and its first largest logit is at the label.
    correct: bool,
}

/// [`RowStatistics`] of each row of `logits` (`classes` wide), in parallel.
fn row_statistics(
    logits: &[f32],
    classes: usize,
    labels: &[i64],
    ignore_index: i64,
) -> Vec<RowStatistics> {
    let mut out = vec![RowStatistics::default(); labels.len()];
    out.par_chunks_mut(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, out)| {
            let first = task * ROWS_PER_TASK;
            for (i, row_out) in out.iter_mut().enumerate() {
                let row = first + i;
                let values = &logits[row * classes..(row + 1) * classes];
                let (max, argmax) = max_and_position(values);
                let mut sum = 0.0;
                sum_of_exp(values, max, &mut sum);
                let log_sum = max + sum.ln();
                let label = labels[row];
                let counts = label != ignore_index;
                *row_out = RowStatistics {
                    loss: if counts {
                        f64::from(log_sum) - f64::from(values[label as usize])
                    } else {
                        0.0
                    },
                    log_sum,
                    correct: counts && argmax == label as usize,
                };
            }
        });
    out
}

/// The largest value and the index of its first occurrence (NaN never wins).
fn max_and_position(values: &[f32]) -> (f32, usize) {
    let max = crate::vectorize::max(values);
    let position = values.iter().position(|&v| v == max).unwrap_or(0);
    (max, position)
}

multiversion! {
    /// `*sum = Σ e^(x − max)` over a row.
    fn sum_of_exp(values: &[f32], max: f32, sum: &mut f32) {
        const LANES: usize = 16;
        let mut lanes = [0f32; LANES];
        let mut chunks = values.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (lane, &x) in lanes.iter_mut().zip(chunk) {
                *lane += exp(x - max);
            }
        }
        *sum = lanes.iter().sum::<f32>();
        for &x in chunks.remainder() {
            *sum += exp(x - max);
        }
    }
}

multiversion! {
    /// `out = scale · e^(x − log_sum)` over a row.
    fn scaled_softmax(values: &[f32], log_sum: f32, scale: f32, out: &mut [f32]) {
        for (o, &x) in out.iter_mut().zip(values) {
            *o = scale * exp(x - log_sum);
        }
    }
}
