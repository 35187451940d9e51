//! The rotary position embedding in one pass: Su et al. 2021 (arXiv 2104.09864), eq. 34,
//! as HF `RoFormerSelfAttention.apply_rotary_position_embeddings` computes it.
//!
//! `out[j] = x[j]·cos[m, j] + x[partner(j)]·signed_sin[m, j]` for each row at position `m`;
//! features past the tables' width pass through unchanged.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use ndarray::{ArcArray, IxDyn};

use crate::autodiff::{RotaryBackward, record, tracked_f32};
use crate::ndarray_bridge::{array_from_f32, ndarray_f32, tensor_from_array};
use crate::parallel::{SharedPtr, row_offsets};
use crate::vectorize::multiversion;

/// Which feature each rotated feature pairs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// `(x0, x1), (x2, x3), …` — RoFormer.
    Adjacent,
    /// `x_i` with `x_{i + r/2}` for `r` rotated features — GPT-NeoX, LLaMA.
    Halves,
}

impl Pairing {
    /// The feature rotated together with feature `j` of `rotated`.
    pub fn partner(self, j: usize, rotated: usize) -> usize {
        match self {
            Pairing::Adjacent => j ^ 1,
            Pairing::Halves => (j + rotated / 2) % rotated,
        }
    }
}

/// Rows per parallel task: large enough to amortise scheduling, small enough to balance.
const ROWS_PER_TASK: usize = 256;

/// Rotates `x` (`[..., seq, d]`) by rows `first_position..first_position + seq` of `cos`
/// and `signed_sin` (`[positions, r]`, `r ≤ d` even; row `first_position + m` for position
/// `m` of `x`), so a layer passes its whole precomputed table and nothing is sliced or
/// copied per call. Returns `None` unless the tensors are f32 tensors of burn-ndarray or of
/// `Autodiff<NdArray>` (where the rotation's backward step is recorded) of that form.
pub fn rotary<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    cos: &Tensor<B, 2>,
    signed_sin: &Tensor<B, 2>,
    first_position: usize,
    pairing: Pairing,
) -> Option<Tensor<B, D>> {
    if D < 2 {
        return None;
    }
    if let Some(x) = ndarray_f32(x) {
        let (cos, signed_sin) = (ndarray_f32(cos)?, ndarray_f32(signed_sin)?);
        let rotated = rotate(&x, &cos, &signed_sin, first_position, pairing)?;
        return Some(tensor_from_array(rotated));
    }
    let (tracked, x) = tracked_f32(x)?;
    let ((_, cos), (_, signed_sin)) = (tracked_f32(cos)?, tracked_f32(signed_sin)?);
    let rotated = rotate(&x, &cos, &signed_sin, first_position, pairing)?;
    // ∂out_j/∂x_k: c_k for j = k, and s_j for the j whose partner is k (j = partner(k)).
    // So the backward is the same rotation with `sin'[m, k] = signed_sin[m, partner(k)]`,
    // over this call's rows of the tables.
    let seq = x.shape()[D - 2];
    let width = signed_sin.shape()[1];
    let cos_rows =
        ndarray::Array2::from_shape_fn((seq, width), |(m, k)| cos[[first_position + m, k]]);
    let partner_sin = ndarray::Array2::from_shape_fn((seq, width), |(m, k)| {
        signed_sin[[first_position + m, pairing.partner(k, width)]]
    });
    Some(record(
        RotaryBackward,
        (
            cos_rows.into_dyn().into_shared(),
            partner_sin.into_dyn().into_shared(),
            pairing,
        ),
        [&tracked],
        rotated,
    ))
}

/// The rotation on arrays: `x` `[..., seq, d]` (any strides), tables `[positions, r]` of
/// which rows `first_position..first_position + seq` are used.
pub(crate) fn rotate(
    x: &ArcArray<f32, IxDyn>,
    cos: &ArcArray<f32, IxDyn>,
    signed_sin: &ArcArray<f32, IxDyn>,
    first_position: usize,
    pairing: Pairing,
) -> Option<ArcArray<f32, IxDyn>> {
    let shape = x.shape().to_vec();
    let rank = shape.len();
    if rank < 2 || x.is_empty() || cos.ndim() != 2 {
        return None;
    }
    let (seq, d) = (shape[rank - 2], shape[rank - 1]);
    let (positions, rotated) = (cos.shape()[0], cos.shape()[1]);
    let tables_fit = signed_sin.shape() == cos.shape()
        && first_position + seq <= positions
        && rotated <= d
        && rotated.is_multiple_of(2);
    if !tables_fit {
        return None;
    }
    // Rows are read in place when contiguous; otherwise (rare: some gradients) copied once.
    let x = if x.strides()[rank - 1] == 1 {
        x.clone()
    } else {
        x.as_standard_layout().into_shared()
    };
    let (cos, signed_sin) = (cos.as_standard_layout(), signed_sin.as_standard_layout());
    let used = first_position * rotated..(first_position + seq) * rotated;
    let (cos, signed_sin) = (
        &cos.as_slice()?[used.clone()],
        &signed_sin.as_slice()?[used],
    );

    let offsets = row_offsets(&shape, x.strides());
    let input = SharedPtr::new_const(x.as_ptr());
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(ROWS_PER_TASK * d)
        .enumerate()
        .for_each(|(task, rows)| {
            let rows_of_task = RowsOfTask {
                first: task * ROWS_PER_TASK,
                seq,
                d,
                offsets: &offsets,
                input,
            };
            rotate_rows(rows, rows_of_task, cos, signed_sin, pairing);
        });
    Some(array_from_f32(out, &shape))
}

/// Where the input rows of one task are.
#[derive(Clone, Copy)]
struct RowsOfTask<'a> {
    /// Index of the task's first row among all rows of the input.
    first: usize,
    /// Sequence length (the table row of input row `r` is `r % seq`).
    seq: usize,
    /// Features per row.
    d: usize,
    /// Start of every input row.
    offsets: &'a [isize],
    input: SharedPtr<f32>,
}

multiversion! {
    /// The rows of one task, written to `out` (`rows · d` values). Dispatched once per task
    /// rather than per row: rows are short (a head's `d` values).
    fn rotate_rows(
        out: &mut [f32],
        task: RowsOfTask<'_>,
        cos: &[f32],
        signed_sin: &[f32],
        pairing: Pairing,
    ) {
        let rotated = cos.len() / task.seq;
        for (i, out_row) in out.chunks_exact_mut(task.d).enumerate() {
            let row = task.first + i;
            // SAFETY: `offsets[row]` is the start of a row of `d` contiguous elements (unit
            // last stride) inside the input, which outlives the parallel loop.
            let x_row = unsafe { core::slice::from_raw_parts(task.input.at(task.offsets[row]), task.d) };
            let m = row % task.seq;
            let table = m * rotated..(m + 1) * rotated;
            rotate_row(x_row, &cos[table.clone()], &signed_sin[table], pairing, out_row);
        }
    }
}

/// One row: the first `cos.len()` features rotated in pairs, the rest copied. Written over
/// pairs / halves as zipped slices so that the loops vectorise.
#[inline(always)]
fn rotate_row(x: &[f32], cos: &[f32], signed_sin: &[f32], pairing: Pairing, out: &mut [f32]) {
    let rotated = cos.len();
    let (x_rotated, x_rest) = x.split_at(rotated);
    let (out_rotated, out_rest) = out.split_at_mut(rotated);
    match pairing {
        Pairing::Adjacent => {
            let pairs = out_rotated
                .chunks_exact_mut(2)
                .zip(x_rotated.chunks_exact(2))
                .zip(cos.chunks_exact(2).zip(signed_sin.chunks_exact(2)));
            for ((o, x), (c, s)) in pairs {
                o[0] = x[0] * c[0] + x[1] * s[0];
                o[1] = x[1] * c[1] + x[0] * s[1];
            }
        }
        Pairing::Halves => {
            let half = rotated / 2;
            let (x_a, x_b) = x_rotated.split_at(half);
            let (out_a, out_b) = out_rotated.split_at_mut(half);
            let (cos_a, cos_b) = cos.split_at(half);
            let (sin_a, sin_b) = signed_sin.split_at(half);
            for (j, (o_a, o_b)) in out_a.iter_mut().zip(out_b.iter_mut()).enumerate() {
                let (a, b) = (x_a[j], x_b[j]);
                *o_a = a * cos_a[j] + b * sin_a[j];
                *o_b = b * cos_b[j] + a * sin_b[j];
            }
        }
    }
    out_rest.copy_from_slice(x_rest);
}
