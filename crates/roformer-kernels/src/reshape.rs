//! Reshaping a row-major array without copying it.
//!
//! burn-ndarray 0.21's `reshape` of a row-major array takes an `ndarray` `to_shape` view and
//! turns it into an owned array (`CowArray::into_shared`), which copies every element: the
//! head split of q, k and v in each attention layer would copy them (1 MB each for 8×128
//! tokens of the `small` config), serially, on the calling thread. A row-major buffer can
//! take any shape with the same number of elements as it is, so here the array keeps its
//! buffer and only its shape changes.

use crate::Array;
use crate::dispatch::{self, Kernel};

/// `array` with shape `dims`: the same buffer when `array` is row-major, else a row-major
/// copy (as any reshape of a strided array must make). `None` when the sizes differ.
pub fn reshaped(array: Array, dims: &[usize]) -> Option<Array> {
    if array.len() != dims.iter().product::<usize>() {
        return None;
    }
    dispatch::record(Kernel::Reshape);
    let array = if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_shared()
    };
    array.into_shape_with_order(ndarray::IxDyn(dims)).ok()
}

#[cfg(test)]
mod tests {
    use crate::row_major;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32 * 0.25 - 3.0).collect()
    }

    /// The same values in row-major order and the same buffer (no copy); a strided array is
    /// laid out first; a size mismatch is refused.
    #[test]
    fn reshape_shares_the_buffer_of_a_row_major_array() {
        let x = row_major(ramp(2 * 3 * 8), &[2, 3, 8]);
        let ours = super::reshaped(x.clone(), &[2, 3, 2, 4]).unwrap();
        assert_eq!(ours.shape(), [2, 3, 2, 4]);
        assert_eq!(ours.iter().copied().collect::<Vec<_>>(), ramp(48));
        assert_eq!(ours.as_ptr(), x.as_ptr());
        let mut swapped = x.clone();
        swapped.swap_axes(0, 1);
        let laid_out = super::reshaped(swapped.clone(), &[6, 8]).unwrap();
        let expected: Vec<f32> = swapped.iter().copied().collect();
        assert_eq!(laid_out.iter().copied().collect::<Vec<_>>(), expected);
        assert!(super::reshaped(x, &[5, 8]).is_none());
    }
}
