//! Sharing raw array pointers with the rayon tasks of a kernel.

/// A pointer into an array that several tasks read, or write at disjoint offsets.
///
/// Each kernel guarantees that no two tasks write the same element and that the array
/// outlives the parallel loop.
#[derive(Clone, Copy)]
pub(crate) struct SharedPtr<T>(pub(crate) *mut T);

// SAFETY: see the type's contract; the kernels only read through shared input pointers and
// write disjoint regions through output pointers.
unsafe impl<T> Send for SharedPtr<T> {}
// SAFETY: as for `Send`.
unsafe impl<T> Sync for SharedPtr<T> {}

impl<T> SharedPtr<T> {
    pub(crate) fn new_const(ptr: *const T) -> Self {
        Self(ptr as *mut T)
    }

    /// The pointer `offset` elements further.
    ///
    /// # Safety
    /// `offset` stays inside the allocation the pointer points into (`pointer::offset`'s
    /// contract): callers compute it from the array's own shape and strides.
    pub(crate) unsafe fn at(self, offset: isize) -> *mut T {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.0.offset(offset) }
    }
}

/// Element offset of every row (all indices but the last) of an array with `shape` and
/// `strides`, in row-major order of the rows.
pub(crate) fn row_offsets(shape: &[usize], strides: &[isize]) -> Vec<isize> {
    let lead = &shape[..shape.len() - 1];
    let rows: usize = lead.iter().product();
    let mut offsets = Vec::with_capacity(rows);
    let mut index = vec![0usize; lead.len()];
    for _ in 0..rows {
        offsets.push(
            index
                .iter()
                .zip(strides)
                .map(|(&i, &stride)| i as isize * stride)
                .sum(),
        );
        for axis in (0..lead.len()).rev() {
            index[axis] += 1;
            if index[axis] < lead[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    offsets
}
