//! [`RotaryBackend`] on `Autodiff<B, C>` for every rotating backend `B` and checkpoint
//! strategy `C`: the forward is `B`'s rotation, and the backward step recorded in burn's
//! graph is `B`'s rotation again.
//!
//! `∂out_j/∂x_k` is `cos_k` for `j = k` and `signed_sin_j` for the `j` whose partner is `k`
//! (`j = partner(k)`), so the transpose of the rotation is the same kind of rotation with
//! `sin'[m, k] = signed_sin[m, partner(k)]`: the backward is one more call of
//! [`RotaryBackend::rotary`], with that table, on whatever `B` is.
//!
//! A query and key rotated together ([`RotaryBackend::rotary_pair`]) are `B`'s pair forward
//! and two recorded steps, one per output: burn's graph gives each step the gradient of one
//! output, and the two gradients arrive at different points of the backward pass.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};

use super::RotaryBackend;
use crate::layout::RopeLayout;

impl<B: RotaryBackend, C: CheckpointStrategy> RotaryBackend for Autodiff<B, C> {
    fn rotary(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        signed_sin: FloatTensor<Self>,
        first_position: usize,
        layout: RopeLayout,
    ) -> FloatTensor<Self> {
        // The tables are constants: their values only.
        let (cos, signed_sin) = (cos.primitive, signed_sin.primitive);
        let output = B::rotary(
            x.primitive.clone(),
            cos.clone(),
            signed_sin.clone(),
            first_position,
            layout,
        );
        match RotaryBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let shape = x.primitive.shape();
                let seq = shape[shape.num_dims() - 2];
                let state =
                    TransposedRotation::<B>::of(cos, signed_sin, first_position, seq, layout);
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn rotary_pair(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        signed_sin: FloatTensor<Self>,
        first_position: usize,
        layout: RopeLayout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (cos, signed_sin) = (cos.primitive, signed_sin.primitive);
        let (q_output, k_output) = B::rotary_pair(
            q.primitive.clone(),
            k.primitive.clone(),
            cos.clone(),
            signed_sin.clone(),
            first_position,
            layout,
        );
        // Both steps share one transposed table, made when the first needs it.
        let mut transposed = None;
        let mut record = |input: FloatTensor<Self>, output: FloatTensor<B>| match RotaryBackward
            .prepare::<C>([input.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = transposed
                    .get_or_insert_with(|| {
                        let shape = input.primitive.shape();
                        let seq = shape[shape.num_dims() - 2];
                        TransposedRotation::<B>::of(
                            cos.clone(),
                            signed_sin.clone(),
                            first_position,
                            seq,
                            layout,
                        )
                    })
                    .clone();
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        let q_output = record(q, q_output);
        let k_output = record(k, k_output);
        (q_output, k_output)
    }
}

/// The tables of the transposed rotation, for this call's rows.
#[derive(Debug, Clone)]
struct TransposedRotation<B: RotaryBackend> {
    cos: FloatTensor<B>,
    partner_sin: FloatTensor<B>,
    layout: RopeLayout,
}

impl<B: RotaryBackend> TransposedRotation<B> {
    fn of(
        cos: FloatTensor<B>,
        signed_sin: FloatTensor<B>,
        first_position: usize,
        seq: usize,
        layout: RopeLayout,
    ) -> Self {
        let rows = |table: FloatTensor<B>| {
            Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(table)).narrow(
                0,
                first_position,
                seq,
            )
        };
        let signed_sin = rows(signed_sin);
        let width = signed_sin.dims()[1];
        let partner_sin = match layout {
            RopeLayout::Interleaved => signed_sin.reshape([seq, width / 2, 2]).flip([2]),
            RopeLayout::Half => signed_sin.reshape([seq, 2, width / 2]).flip([1]),
        }
        .reshape([seq, width]);
        Self {
            cos: rows(cos).into_primitive().tensor(),
            partner_sin: partner_sin.into_primitive().tensor(),
            layout,
        }
    }
}

/// The recorded backward step of a rotation.
#[derive(Debug)]
struct RotaryBackward;

impl<B: RotaryBackend> Backward<B, 1> for RotaryBackward {
    type State = TransposedRotation<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let TransposedRotation {
            cos,
            partner_sin,
            layout,
        } = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |gradient| {
            B::rotary(gradient, cos, partner_sin, 0, layout)
        });
    }
}
