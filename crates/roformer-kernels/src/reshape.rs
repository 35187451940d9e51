//! Reshaping a row-major tensor without copying it.
//!
//! burn-ndarray 0.21's `reshape` of a row-major array takes an `ndarray` `to_shape` view and
//! turns it into an owned array (`CowArray::into_shared`), which copies every element: the
//! head split of q, k and v in each attention layer would copy them (1 MB each for 8×128
//! tokens of the `small` config), serially, on the calling thread. A row-major buffer can
//! take any shape with the same number of elements as it is, so here the array keeps its
//! buffer and only its shape changes; on `Autodiff<NdArray>` the backward step does the
//! same to the gradient.

use burn::backend::NdArray;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, unary};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_ndarray::NdArrayTensor;
use ndarray::{ArcArray, IxDyn};

use crate::autodiff::{gradient_f32, record, tracked_f32};
use crate::ndarray_bridge::{ndarray_f32, tensor_from_array};

/// `x` with shape `dims`, sharing its buffer. `None` unless `x` is a row-major f32 tensor
/// of burn-ndarray or of `Autodiff<NdArray>` (then the backward step is recorded) with as
/// many elements as `dims` asks for.
pub fn reshape<B: Backend, const D: usize, const D2: usize>(
    x: &Tensor<B, D>,
    dims: [usize; D2],
) -> Option<Tensor<B, D2>> {
    if let Some(array) = ndarray_f32(x) {
        return Some(tensor_from_array(reshaped(array, &dims)?));
    }
    let (tracked, array) = tracked_f32(x)?;
    let shape = array.shape().to_vec();
    let output = reshaped(array, &dims)?;
    Some(record(ReshapeBackward, shape, [&tracked], output))
}

/// The same buffer with shape `dims`, when `array` is row-major and the sizes agree.
fn reshaped(array: ArcArray<f32, IxDyn>, dims: &[usize]) -> Option<ArcArray<f32, IxDyn>> {
    if !array.is_standard_layout() || array.len() != dims.iter().product::<usize>() {
        return None;
    }
    array.into_shape_with_order(IxDyn(dims)).ok()
}

/// The gradient takes the input's shape back (row-major, so again without a copy when the
/// gradient is row-major; a strided gradient is laid out first).
#[derive(Debug)]
struct ReshapeBackward;

impl Backward<NdArray, 1> for ReshapeBackward {
    /// The forward input's shape.
    type State = Vec<usize>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let shape = ops.state;
        unary::<NdArray, _>(ops.parents, ops.node, grads, |gradient| {
            let gradient = gradient_f32(gradient);
            let gradient = if gradient.is_standard_layout() {
                gradient
            } else {
                gradient.as_standard_layout().into_owned().into_shared()
            };
            let gradient = reshaped(gradient, &shape).expect("the gradient has the output's size");
            NdArrayTensor::from(gradient)
        });
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{Tensor, TensorData};

    use crate::ndarray_bridge::ndarray_f32;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32 * 0.25 - 3.0).collect()
    }

    /// Same values as burn's reshape, and the same buffer (no copy).
    #[test]
    fn reshape_shares_the_buffer_and_matches_burn() {
        let device = Default::default();
        let x =
            Tensor::<NdArray, 3>::from_data(TensorData::new(ramp(2 * 3 * 8), [2, 3, 8]), &device);
        let ours = super::reshape(&x, [2, 3, 2, 4]).expect("row-major f32 on ndarray");
        let burns = x.clone().reshape([2, 3, 2, 4]);
        assert_eq!(ours.dims(), [2, 3, 2, 4]);
        assert_eq!(
            ours.to_data().to_vec::<f32>().unwrap(),
            burns.to_data().to_vec::<f32>().unwrap()
        );
        let (input, output) = (ndarray_f32(&x).unwrap(), ndarray_f32(&ours).unwrap());
        assert_eq!(input.as_ptr(), output.as_ptr());
        // A strided (swapped) tensor is declined; so is a size mismatch.
        assert!(super::reshape(&x.clone().swap_dims(0, 1), [6, 8]).is_none());
        assert!(super::reshape(&x, [5, 8]).is_none());
    }

    /// The gradient through the reshape (then a swap of axes, as the head split does) is
    /// the upstream gradient laid back in the input's shape: `d Σ(w ⊙ f(x)) / dx` equals
    /// `w` mapped back, exactly.
    #[test]
    fn reshape_gradient_on_autodiff_is_the_upstream_gradient_reshaped_back() {
        type B = Autodiff<NdArray>;
        let device = Default::default();
        let x = Tensor::<B, 3>::from_data(TensorData::new(ramp(2 * 3 * 8), [2, 3, 8]), &device)
            .require_grad();
        let weights = Tensor::<B, 4>::from_data(
            TensorData::new(
                ramp(2 * 2 * 3 * 4).iter().map(|v| v * v).collect(),
                [2, 2, 3, 4],
            ),
            &device,
        );
        let split = super::reshape(&x, [2, 3, 2, 4])
            .expect("row-major f32 on Autodiff<NdArray>")
            .swap_dims(1, 2);
        let gradients = (split * weights.clone()).sum().backward();
        let ours = x
            .grad(&gradients)
            .unwrap()
            .to_data()
            .to_vec::<f32>()
            .unwrap();
        let expected = weights
            .inner()
            .swap_dims(1, 2)
            .reshape([2, 3, 8])
            .to_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(ours, expected);
    }
}
