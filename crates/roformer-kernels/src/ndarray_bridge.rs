//! Moving burn tensors to and from burn-ndarray's arrays without copying.
//!
//! Library code is generic over `B: Backend`; a tensor is handed to a kernel only when its
//! primitive *is* burn-ndarray's (checked by `Any` downcast, so any other backend,
//! including `Autodiff<NdArray>`, gets `None` and keeps its own operations).

use core::any::Any;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_ndarray::NdArrayTensor;
use ndarray::{ArcArray, IxDyn};

/// The f32 array behind `tensor` when it is a burn-ndarray float tensor (shared, not copied).
pub(crate) fn ndarray_f32<B: Backend, const D: usize>(
    tensor: &Tensor<B, D>,
) -> Option<ArcArray<f32, IxDyn>> {
    let TensorPrimitive::Float(primitive) = tensor.clone().into_primitive() else {
        return None;
    };
    let boxed: Box<dyn Any> = Box::new(primitive);
    primitive_f32(*boxed.downcast::<NdArrayTensor>().ok()?)
}

/// Wraps a row-major f32 buffer of `shape` as a tensor of the backend `B`.
///
/// Only called after [`ndarray_f32`] returned `Some` for a tensor of `B`, which proves that
/// `B`'s float primitive is burn-ndarray's.
pub(crate) fn tensor_from_f32<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: &[usize],
) -> Tensor<B, D> {
    tensor_from_array(array_from_f32(values, shape))
}

/// A row-major array of `shape` over `values`.
pub(crate) fn array_from_f32(values: Vec<f32>, shape: &[usize]) -> ArcArray<f32, IxDyn> {
    ArcArray::from_shape_vec(IxDyn(shape), values).expect("kernel output length matches its shape")
}

/// Wraps an array as a tensor of the backend `B` (burn-ndarray, as for [`tensor_from_f32`]).
pub(crate) fn tensor_from_array<B: Backend, const D: usize>(
    array: ArcArray<f32, IxDyn>,
) -> Tensor<B, D> {
    let boxed: Box<dyn Any> = Box::new(NdArrayTensor::from(array));
    let primitive = boxed
        .downcast::<B::FloatTensorPrimitive>()
        .expect("the backend was checked to be burn-ndarray");
    Tensor::from_primitive(TensorPrimitive::Float(*primitive))
}

/// The f32 array inside a burn-ndarray tensor primitive (gradients, autodiff internals).
pub(crate) fn primitive_f32(primitive: NdArrayTensor) -> Option<ArcArray<f32, IxDyn>> {
    match primitive {
        NdArrayTensor::F32(storage) => Some(storage.into_shared()),
        _ => None,
    }
}
