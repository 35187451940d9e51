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

use burn::backend::NdArray;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, unary};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use burn_ndarray::NdArrayTensor;
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;

use crate::autodiff::{gradient_f32, record, tracked_f32};
use crate::exp::exp;
use crate::ndarray_bridge::{array_from_f32, ndarray_f32, tensor_from_array};
use crate::vectorize::multiversion;

/// Rows per parallel task (a row is a whole vocabulary: thousands of logits).
const ROWS_PER_TASK: usize = 4;

/// The loss and the accuracy count of [`cross_entropy`].
pub struct CrossEntropy<B: Backend> {
    /// Mean over the counted rows of `−log softmax(x)[label]`, shape `[1]` (0 when no row
    /// counts).
    pub loss: Tensor<B, 1>,
    /// Counted rows whose largest logit (the first, on ties) is at the label.
    pub correct: usize,
    /// Rows not labelled `ignore_index`.
    pub counted: usize,
}

/// Cross-entropy of `logits` `[rows, classes]` against `labels` `[rows]`; rows labelled
/// `ignore_index` (negative) are left out. `None` unless `logits` is an f32 tensor of
/// burn-ndarray or of `Autodiff<NdArray>` (then the backward step is recorded), the shapes
/// agree and every other label is in `0..classes`.
pub fn cross_entropy<B: Backend>(
    logits: &Tensor<B, 2>,
    labels: &Tensor<B, 1, Int>,
    ignore_index: i64,
) -> Option<CrossEntropy<B>> {
    let [rows, classes] = logits.dims();
    if labels.dims() != [rows] || classes == 0 || ignore_index >= 0 {
        return None;
    }
    // burn-ndarray (inference), or Autodiff<NdArray> (training: the step is recorded).
    let (tracked, array) = match ndarray_f32(logits) {
        Some(array) => (None, array),
        None => {
            let (tracked, array) = tracked_f32(logits)?;
            (Some(tracked), array)
        }
    };
    let labels: Vec<i64> = labels.to_data().convert::<i64>().to_vec().ok()?;
    let valid = |label: i64| label == ignore_index || (0..classes as i64).contains(&label);
    if !labels.iter().all(|&label| valid(label)) {
        return None;
    }
    // Every label left out is the (negative) ignore_index from here on.
    let array = if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_owned().into_shared()
    };
    let rows_out = row_statistics(array.as_slice()?, classes, &labels);
    let counted = labels.iter().filter(|&&label| label >= 0).count();
    let correct = rows_out.iter().filter(|row| row.correct).count();
    let total: f64 = rows_out.iter().map(|row| row.loss).sum();
    let loss = (total / counted.max(1) as f64) as f32;
    let output = array_from_f32(vec![loss], &[1]);
    let loss = match tracked {
        None => tensor_from_array(output),
        Some(tracked) => {
            let saved = CrossEntropySaved {
                logits: array,
                log_sums: rows_out.iter().map(|row| row.log_sum).collect(),
                labels,
                counted,
            };
            record(CrossEntropyBackward, saved, [&tracked], output)
        }
    };
    Some(CrossEntropy {
        loss,
        correct,
        counted,
    })
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
fn row_statistics(logits: &[f32], classes: usize, labels: &[i64]) -> Vec<RowStatistics> {
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
                *row_out = RowStatistics {
                    loss: if label >= 0 {
                        f64::from(log_sum) - f64::from(values[label as usize])
                    } else {
                        0.0
                    },
                    log_sum,
                    correct: label >= 0 && argmax == label as usize,
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

/// What the forward keeps for the backward step.
#[derive(Clone)]
struct CrossEntropySaved {
    /// The logits, row-major (shared with the forward's input, not copied).
    logits: ArcArray<f32, IxDyn>,
    log_sums: Vec<f32>,
    labels: Vec<i64>,
    counted: usize,
}

impl core::fmt::Debug for CrossEntropySaved {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CrossEntropySaved")
            .field("shape", &self.logits.shape())
            .field("counted", &self.counted)
            .finish()
    }
}

/// Records `∂loss/∂x[i, j] = g · (softmax(x_i)[j] − [j = label_i]) / count` (0 on rows
/// that do not count).
#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<NdArray, 1> for CrossEntropyBackward {
    type State = CrossEntropySaved;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let saved = ops.state;
        unary::<NdArray, _>(ops.parents, ops.node, grads, |gradient| {
            let gradient = gradient_f32(gradient);
            let upstream = gradient.iter().next().copied().unwrap_or(0.0);
            let scale = upstream / saved.counted.max(1) as f32;
            let shape = saved.logits.shape().to_vec();
            let classes = shape[1];
            let logits = saved.logits.as_slice().expect("kept row-major");
            let mut d_logits = vec![0f32; logits.len()];
            d_logits
                .par_chunks_mut(classes)
                .enumerate()
                .for_each(|(row, out)| {
                    let label = saved.labels[row];
                    if label < 0 {
                        return;
                    }
                    let values = &logits[row * classes..(row + 1) * classes];
                    scaled_softmax(values, saved.log_sums[row], scale, out);
                    out[label as usize] -= scale;
                });
            NdArrayTensor::from(array_from_f32(d_logits, &shape))
        });
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Int, Tensor, TensorData};

    type B = Autodiff<NdArray>;

    /// Pseudo-random logits with a spread like a language model's (±8).
    fn logits(rows: usize, classes: usize) -> Vec<f32> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..rows * classes)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 16.0
            })
            .collect()
    }

    /// Loss, accuracy count and gradient against f64 loops: loss to 1e-6 relative,
    /// gradient to 1e-7 absolute (entries are at most 1/count); an ignored row (label −100)
    /// gets no gradient and does not count. 1,003 classes: 62 full lanes and a tail.
    #[test]
    fn cross_entropy_matches_f64_loops_with_an_ignored_row() {
        let (rows, classes) = (6, 1003);
        let values = logits(rows, classes);
        let mut labels: Vec<i64> = vec![5, 1002, -100, 0, 517, 77];
        // Row 3's label is its largest logit, so it is one correct prediction at least.
        let argmax = |row: usize| {
            let r = &values[row * classes..(row + 1) * classes];
            (0..classes).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap()
        };
        labels[3] = argmax(3) as i64;
        let device = Default::default();
        let x =
            Tensor::<B, 2>::from_data(TensorData::new(values.clone(), [rows, classes]), &device)
                .require_grad();
        let label_tensor =
            Tensor::<B, 1, Int>::from_data(TensorData::new(labels.clone(), [rows]), &device);
        let out = super::cross_entropy(&x, &label_tensor, -100).expect("f32 on Autodiff<NdArray>");
        let loss = out.loss.clone().into_scalar();
        let gradient = x.grad(&(out.loss * 3.0).sum().backward()).unwrap();
        let gradient = gradient.to_data().to_vec::<f32>().unwrap();

        let (mut total, mut counted, mut correct) = (0f64, 0usize, 0usize);
        let mut expected_gradient = vec![0f64; rows * classes];
        for (row, &label) in labels.iter().enumerate() {
            if label < 0 {
                continue;
            }
            let r: Vec<f64> = values[row * classes..(row + 1) * classes]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let max = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + r.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            total += lse - r[label as usize];
            counted += 1;
            correct += usize::from(argmax(row) == label as usize);
            for (j, v) in r.iter().enumerate() {
                expected_gradient[row * classes + j] =
                    (v - lse).exp() - f64::from(j == label as usize);
            }
        }
        let expected = total / counted as f64;
        assert!(
            ((loss as f64 - expected) / expected).abs() < 1e-6,
            "loss {loss} vs {expected}"
        );
        assert_eq!((out.correct, out.counted), (correct, counted));
        assert!(correct >= 1);
        let expected_gradient: Vec<f64> = expected_gradient
            .iter()
            .map(|e| 3.0 * e / counted as f64)
            .collect();
        roformer_testing::assert_close("gradient", &gradient, &expected_gradient, 1e-7);
        assert!(gradient[2 * classes..3 * classes].iter().all(|&g| g == 0.0));
    }

    /// On plain burn-ndarray (no autodiff) the loss equals burn's log_softmax + gather
    /// form to 1e-5 relative; labels past the class count, or negative ones other than
    /// the ignore index, are declined.
    #[test]
    fn cross_entropy_on_ndarray_matches_burns_form_and_declines_bad_labels() {
        let (rows, classes) = (4, 300);
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::from_data(
            TensorData::new(logits(rows, classes), [rows, classes]),
            &device,
        );
        let labels = Tensor::<NdArray, 1, Int>::from_data(
            TensorData::new(vec![3i64, 299, 0, 150], [rows]),
            &device,
        );
        let ours = super::cross_entropy(&x, &labels, -100)
            .expect("f32 on ndarray")
            .loss
            .into_scalar();
        let burns = log_softmax(x.clone(), 1)
            .gather(1, labels.clone().reshape([rows, 1]))
            .mean()
            .neg()
            .into_scalar();
        assert!(
            ((ours - burns) / burns).abs() < 1e-5,
            "{ours} vs burn's {burns}"
        );
        let too_large = Tensor::<NdArray, 1, Int>::from_data(
            TensorData::new(vec![3i64, 300, 0, 1], [rows]),
            &device,
        );
        assert!(super::cross_entropy(&x, &too_large, -100).is_none());
        let negative = Tensor::<NdArray, 1, Int>::from_data(
            TensorData::new(vec![3i64, -1, 0, 1], [rows]),
            &device,
        );
        assert!(super::cross_entropy(&x, &negative, -100).is_none());
    }
}
