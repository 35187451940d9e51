//! The kernels on `Autodiff<NdArray>` (the CPU training backend): the forward value is the
//! kernel's, and a backward step is recorded in burn's autodiff graph the way burn's own
//! operations record theirs (`burn_autodiff::ops::Backward`).
//!
//! Only that exact backend is taken (default checkpointing), so the recorded steps match
//! the graph they join; any other autodiff backend keeps burn's operations.

use core::any::{Any, TypeId};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_ndarray::NdArrayTensor;
use ndarray::{ArcArray, IxDyn};

use crate::gelu::gelu_derivative_times;
use crate::ndarray_bridge::primitive_f32;
use crate::rotary::{Pairing, rotate};

/// The CPU training backend.
type Training = Autodiff<NdArray>;
/// Its float tensor: burn-ndarray's tensor plus a graph node.
pub(crate) type TrackedTensor = FloatTensor<Training>;

/// The tracked tensor and its f32 value when `tensor` is on `Autodiff<NdArray>`.
pub(crate) fn tracked_f32<B: Backend, const D: usize>(
    tensor: &Tensor<B, D>,
) -> Option<(TrackedTensor, ArcArray<f32, IxDyn>)> {
    if TypeId::of::<B>() != TypeId::of::<Training>() {
        return None;
    }
    let TensorPrimitive::Float(primitive) = tensor.clone().into_primitive() else {
        return None;
    };
    let boxed: Box<dyn Any> = Box::new(primitive);
    let tracked = *boxed.downcast::<TrackedTensor>().ok()?;
    let value = primitive_f32(tracked.primitive.clone())?;
    Some((tracked, value))
}

/// `output` (computed by a kernel from the tracked `inputs`) as a tensor of
/// `B` = `Autodiff<NdArray>`, with `step` recorded as its backward when any input requires
/// a gradient.
pub(crate) fn record<B: Backend, const D: usize, const N: usize, S: Backward<NdArray, N>>(
    step: S,
    state: S::State,
    inputs: [&TrackedTensor; N],
    output: ArcArray<f32, IxDyn>,
) -> Tensor<B, D> {
    let output = NdArrayTensor::from(output);
    let tracked = match step
        .prepare::<NoCheckpointing>(inputs.map(|input| input.node.clone()))
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    into_tensor(tracked)
}

/// A tracked tensor as a tensor of `B` (checked to be `Autodiff<NdArray>` by the caller,
/// through [`tracked_f32`]).
fn into_tensor<B: Backend, const D: usize>(tracked: TrackedTensor) -> Tensor<B, D> {
    let boxed: Box<dyn Any> = Box::new(tracked);
    let primitive = boxed
        .downcast::<B::FloatTensorPrimitive>()
        .expect("the backend was checked to be Autodiff<NdArray>");
    Tensor::from_primitive(TensorPrimitive::Float(*primitive))
}

/// The f32 array of a gradient the graph hands to a backward step.
pub(crate) fn gradient_f32(gradient: NdArrayTensor) -> ArcArray<f32, IxDyn> {
    primitive_f32(gradient).expect("gradients of f32 tensors are f32")
}

/// Backward of the rotation: its transpose, which is the same kind of rotation with each
/// feature's sine taken from its partner's column.
#[derive(Debug)]
pub(crate) struct RotaryBackward;

impl Backward<NdArray, 1> for RotaryBackward {
    /// The forward's rows of `cos` and of `signed_sin` with columns swapped to partners,
    /// pairing.
    type State = (ArcArray<f32, IxDyn>, ArcArray<f32, IxDyn>, Pairing);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (cos, partner_sin, pairing) = ops.state;
        unary::<NdArray, _>(ops.parents, ops.node, grads, |gradient| {
            let rotated = rotate(&gradient_f32(gradient), &cos, &partner_sin, 0, pairing)
                .expect("the gradient has the forward input's shape");
            NdArrayTensor::from(rotated)
        });
    }
}

/// Backward of GELU: `gradient · (Φ(x) + x·φ(x))`, from the saved input `x`.
#[derive(Debug)]
pub(crate) struct GeluBackward;

impl Backward<NdArray, 1> for GeluBackward {
    /// The forward input.
    type State = ArcArray<f32, IxDyn>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let input = ops.state;
        unary::<NdArray, _>(ops.parents, ops.node, grads, |gradient| {
            NdArrayTensor::from(gelu_derivative_times(&input, &gradient_f32(gradient)))
        });
    }
}
