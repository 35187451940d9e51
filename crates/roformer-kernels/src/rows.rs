//! Picking rows of a matrix out, and putting them back among zero rows: the packing of a
//! right-padded batch's real tokens (`roformer::Packing`) and its inverse.
//!
//! burn-ndarray's `select` and `select_assign` do this one row at a time on the calling
//! thread, and the scatter needs a zero-filled matrix first; here both are one parallel
//! pass that writes every output element once.

use rayon::prelude::*;

use crate::buffer::Unwritten;
use crate::dispatch::{self, Kernel};
use crate::{Array, row_major};

/// Output rows per rayon task: a row is a few hundred floats, too little to hand off alone.
const ROWS_PER_TASK: usize = 32;

/// Rows `rows` of the 2-D `x` `[n, width]`, in that order, as a row-major
/// `[rows.len(), width]`. `None` when `x` is not 2-D or a row is out of range.
pub fn gather_rows(x: &Array, rows: &[usize]) -> Option<Array> {
    let &[n, width] = x.shape() else { return None };
    if rows.iter().any(|&r| r >= n) {
        return None;
    }
    dispatch::record(Kernel::GatherRows);
    let x = x.as_standard_layout();
    let x = x.as_slice().expect("standard layout is contiguous");
    let mut out = Unwritten::new(rows.len() * width);
    if width > 0 {
        out.slots()
            .par_chunks_mut(width)
            .with_min_len(ROWS_PER_TASK)
            .zip(rows.par_iter())
            .for_each(|(row, &from)| write(row, &x[from * width..(from + 1) * width]));
    }
    // SAFETY: every output row was written from its source row.
    Some(row_major(
        unsafe { out.assume_written() },
        &[rows.len(), width],
    ))
}

/// The 2-D `x` `[rows.len(), width]` as rows `rows` of a row-major `[n, width]` whose
/// other rows are zero. `None` when `x` is not 2-D with one row per entry of `rows`, a row
/// is out of range, or a row is listed twice.
pub fn scatter_rows(x: &Array, rows: &[usize], n: usize) -> Option<Array> {
    let &[count, width] = x.shape() else {
        return None;
    };
    if count != rows.len() {
        return None;
    }
    let mut source = vec![None; n];
    for (i, &r) in rows.iter().enumerate() {
        if r >= n || source[r].replace(i).is_some() {
            return None;
        }
    }
    dispatch::record(Kernel::ScatterRows);
    let x = x.as_standard_layout();
    let x = x.as_slice().expect("standard layout is contiguous");
    let mut out = Unwritten::new(n * width);
    if width > 0 {
        out.slots()
            .par_chunks_mut(width)
            .with_min_len(ROWS_PER_TASK)
            .zip(source.par_iter())
            .for_each(|(row, from)| match from {
                Some(i) => write(row, &x[i * width..(i + 1) * width]),
                None => row.iter_mut().for_each(|slot| {
                    slot.write(0.0);
                }),
            });
    }
    // SAFETY: every output row was written, from its source row or with zeros.
    Some(row_major(unsafe { out.assume_written() }, &[n, width]))
}

fn write(row: &mut [core::mem::MaybeUninit<f32>], values: &[f32]) {
    for (slot, &value) in row.iter_mut().zip(values) {
        slot.write(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32 * 0.5 - 7.0).collect()
    }

    /// Gathering picks the listed rows in order, also from a transposed array; scattering
    /// puts them back with zero rows between; bad shapes and indices are refused.
    #[test]
    fn rows_are_gathered_and_scattered_back_among_zeros() {
        let x = row_major(ramp(6 * 3), &[6, 3]);
        let rows = [0, 2, 3, 5];
        let gathered = gather_rows(&x, &rows).unwrap();
        let expected: Vec<f32> = rows
            .iter()
            .flat_map(|&r| ramp(18)[r * 3..r * 3 + 3].to_vec())
            .collect();
        assert_eq!(gathered.iter().copied().collect::<Vec<_>>(), expected);

        let back = scatter_rows(&gathered, &rows, 6).unwrap();
        let mut want = ramp(18);
        for r in [1, 4] {
            want[r * 3..r * 3 + 3].fill(0.0);
        }
        assert_eq!(back.shape(), [6, 3]);
        assert_eq!(back.iter().copied().collect::<Vec<_>>(), want);

        let mut transposed = row_major(ramp(18), &[3, 6]);
        transposed.swap_axes(0, 1);
        let picked = gather_rows(&transposed, &[4]).unwrap();
        assert_eq!(
            picked.iter().copied().collect::<Vec<_>>(),
            transposed.row_slice(4)
        );

        assert!(gather_rows(&x, &[6]).is_none());
        assert!(scatter_rows(&gathered, &[0, 2, 2, 5], 6).is_none());
        assert!(scatter_rows(&gathered, &[0, 2, 3], 6).is_none());
        assert!(scatter_rows(&gathered, &[0, 2, 3, 6], 6).is_none());
    }

    trait RowSlice {
        fn row_slice(&self, r: usize) -> Vec<f32>;
    }

    impl RowSlice for Array {
        fn row_slice(&self, r: usize) -> Vec<f32> {
            self.index_axis(ndarray::Axis(0), r)
                .iter()
                .copied()
                .collect()
        }
    }
}
