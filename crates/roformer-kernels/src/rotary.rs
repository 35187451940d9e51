//! The rotary position embedding in one pass: Su et al. 2021 (arXiv 2104.09864), eq. 34,
//! as HF `RoFormerSelfAttention.apply_rotary_position_embeddings` computes it.
//!
//! `out[j] = x[j]·cos[m, j] + x[partner(j)]·signed_sin[m, j]` for each row at position `m`;
//! features past the tables' width pass through unchanged.

use rayon::prelude::*;

use crate::dispatch::{self, Kernel};
use crate::parallel::{SharedPtr, row_offsets};
use crate::vectorize::multiversion;
use crate::{Array, row_major};

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

/// Rotates `x` (`[..., seq, d]`, any strides) by rows `first_position..first_position + seq`
/// of `cos` and `signed_sin` (`[positions, r]`, `r ≤ d` even; row `first_position + m` for
/// position `m` of `x`), so a layer passes its whole precomputed table and nothing is sliced
/// or copied per call. `None` when the shapes do not fit.
pub fn rotate(
    x: &Array,
    cos: &Array,
    signed_sin: &Array,
    first_position: usize,
    pairing: Pairing,
) -> Option<Array> {
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
    dispatch::record(Kernel::Rotary);
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
    Some(row_major(out, &shape))
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
            let x_row = unsafe {
                core::slice::from_raw_parts(task.input.at(task.offsets[row]), task.d)
            };
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
