//! Output buffers that a kernel overwrites completely, allocated without zeroing.
//!
//! A matrix product with `beta = 0` (the `gemm` crate does not read its destination then)
//! or a loop that stores every element needs no zero-filled buffer first, so gradient and
//! attention-probability buffers skip the serial `memset` pass a zeroed allocation costs.
//! The slots stay `MaybeUninit` until [`Unwritten::assume_written`]: kernels write them
//! through raw pointers (the products) or `MaybeUninit::write`, never through a `&mut [f32]`.

use core::mem::{ManuallyDrop, MaybeUninit};

/// `len` f32 slots not yet written.
pub(crate) struct Unwritten(Vec<MaybeUninit<f32>>);

impl Unwritten {
    pub(crate) fn new(len: usize) -> Self {
        let mut slots = Vec::with_capacity(len);
        // SAFETY: `MaybeUninit` needs no initialisation; the capacity is `len`.
        unsafe { slots.set_len(len) };
        Self(slots)
    }

    /// Where the kernel writes element 0; elements follow contiguously.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut f32 {
        self.0.as_mut_ptr().cast()
    }

    /// The slots, to be written with `MaybeUninit::write`.
    pub(crate) fn slots(&mut self) -> &mut [MaybeUninit<f32>] {
        &mut self.0
    }

    /// The buffer as values.
    ///
    /// # Safety
    /// Every one of the `len` elements has been written.
    pub(crate) unsafe fn assume_written(self) -> Vec<f32> {
        let mut slots = ManuallyDrop::new(self.0);
        // SAFETY: same allocation, length and capacity; `MaybeUninit<f32>` has f32's layout
        // and every element is initialised (the caller's guarantee).
        unsafe { Vec::from_raw_parts(slots.as_mut_ptr().cast(), slots.len(), slots.capacity()) }
    }
}
