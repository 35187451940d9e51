//! [`RoFormerBackend`] on `Autodiff<B, C>` for every `B: RoFormerBackend` and every
//! checkpoint strategy `C`: each fused operation runs `B`'s forward (the `*_saving` one
//! when a gradient is needed) and records one backward step in burn's graph that calls
//! `B`'s backward, the way burn's own operations record theirs
//! (`burn_autodiff::ops::Backward`, as in burn's `examples/custom-cubecl-kernel`).
//!
//! What a step needs is kept in its state (compute-bound: nothing is recomputed), so the
//! steps fit any checkpointing strategy. The inference epilogues (`affine_gelu`,
//! `affine_add_layer_norm`) keep their default bodies, compositions of the recorded
//! operations.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Shape, TensorMetadata};

use super::{
    AttentionSaved, CrossEntropy, CrossEntropySaved, KeyMask, LayerNormSaved, RoFormerBackend,
};

/// Records `$step` with `$state` over the parents `$nodes` as the backward of `$output`
/// (a macro: burn does not export the type of graph nodes).
macro_rules! record {
    ($step:expr, $nodes:expr, $state:expr, $output:expr) => {
        match $step.prepare::<C>($nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish($state, $output),
            OpsKind::UnTracked(prep) => prep.finish($output),
        }
    };
}

impl<B: RoFormerBackend, C: CheckpointStrategy> RoFormerBackend for Autodiff<B, C> {
    fn self_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        key_mask: Option<KeyMask<Self>>,
        scale: f32,
        dropout: f64,
    ) -> FloatTensor<Self> {
        // The bias is a constant (the padding mask): its value only. `key_mask` is the
        // default one, with no prepared form: training runs `B`'s saving forward, which
        // reads the bias, so preparing `B`'s own form would be wasted.
        let bias = key_mask.map(|mask| KeyMask {
            bias: mask.bias.primitive,
            prepared: mask.prepared,
        });
        let nodes = [query.node.clone(), key.node.clone(), value.node.clone()];
        let (q, k, v) = (query.primitive, key.primitive, value.primitive);
        match AttentionBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (context, saved) =
                    B::self_attention_saving(q.clone(), k.clone(), v.clone(), bias, scale, dropout);
                let state = AttentionState {
                    query: q,
                    key: k,
                    value: v,
                    saved,
                    scale,
                };
                prep.finish(state, context)
            }
            OpsKind::UnTracked(prep) => {
                // Dropout is active on an autodiff backend, gradient or not (burn's `Dropout`).
                let context = if dropout > 0.0 {
                    B::self_attention_saving(q, k, v, bias, scale, dropout).0
                } else {
                    B::self_attention(q, k, v, bias, scale, dropout)
                };
                prep.finish(context)
            }
        }
    }

    fn affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        let output = B::affine(
            x.primitive.clone(),
            weight.primitive.clone(),
            bias.as_ref().map(|b| b.primitive.clone()),
        );
        let state = AffineState {
            x: x.primitive,
            weight: weight.primitive,
        };
        match bias {
            Some(bias) => record!(
                AffineBackward,
                [x.node, weight.node, bias.node],
                state,
                output
            ),
            None => record!(AffineBackward, [x.node, weight.node], state, output),
        }
    }

    fn residual_layer_norm(
        x: FloatTensor<Self>,
        residual: Option<FloatTensor<Self>>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let step = LayerNormBackward {
            has_residual: residual.is_some(),
            has_beta: beta.is_some(),
        };
        let gamma_value = gamma.primitive.clone();
        let forward = |tracked: bool| {
            let (x, residual, gamma, beta) = (
                x.primitive.clone(),
                residual.as_ref().map(|r| r.primitive.clone()),
                gamma.primitive.clone(),
                beta.as_ref().map(|b| b.primitive.clone()),
            );
            if tracked {
                let (output, saved) =
                    B::residual_layer_norm_saving(x, residual, gamma, beta, epsilon);
                (output, Some(saved))
            } else {
                (
                    B::residual_layer_norm(x, residual, gamma, beta, epsilon),
                    None,
                )
            }
        };
        // Run the saving forward only when a gradient is needed.
        macro_rules! record_layer_norm {
            ($nodes:expr) => {
                match step.prepare::<C>($nodes).compute_bound().stateful() {
                    OpsKind::Tracked(prep) => {
                        let (output, saved) = forward(true);
                        let state = LayerNormState {
                            saved: saved.expect("kept when asked"),
                            gamma: gamma_value,
                        };
                        prep.finish(state, output)
                    }
                    OpsKind::UnTracked(prep) => prep.finish(forward(false).0),
                }
            };
        }
        let (x_node, gamma_node) = (x.node.clone(), gamma.node.clone());
        match (
            residual.as_ref().map(|r| r.node.clone()),
            beta.as_ref().map(|b| b.node.clone()),
        ) {
            (None, None) => record_layer_norm!([x_node, gamma_node]),
            (Some(r), None) => record_layer_norm!([x_node, r, gamma_node]),
            (None, Some(b)) => record_layer_norm!([x_node, gamma_node, b]),
            (Some(r), Some(b)) => record_layer_norm!([x_node, r, gamma_node, b]),
        }
    }

    fn exact_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::exact_gelu(x.primitive.clone());
                prep.finish(x.primitive, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::exact_gelu(x.primitive)),
        }
    }

    fn cross_entropy(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        ignore_index: i64,
    ) -> CrossEntropy<Self> {
        match CrossEntropyBackward
            .prepare::<C>([logits.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, saved) =
                    B::cross_entropy_saving(logits.primitive.clone(), labels.clone(), ignore_index);
                let state = CrossEntropyState {
                    logits: logits.primitive,
                    labels,
                    ignore_index,
                    saved,
                };
                CrossEntropy {
                    loss: prep.finish(state, output.loss),
                    correct: output.correct,
                }
            }
            OpsKind::UnTracked(prep) => {
                let output = B::cross_entropy(logits.primitive, labels, ignore_index);
                CrossEntropy {
                    loss: prep.finish(output.loss),
                    correct: output.correct,
                }
            }
        }
    }

    fn reshape_in_place(x: FloatTensor<Self>, shape: Shape) -> FloatTensor<Self> {
        let input_shape = x.primitive.shape();
        let output = B::reshape_in_place(x.primitive, shape);
        match ReshapeBackward
            .prepare::<C>([x.node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(input_shape, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
}

/// What the attention step keeps.
#[derive(Debug, Clone)]
struct AttentionState<B: RoFormerBackend> {
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    saved: AttentionSaved<B>,
    scale: f32,
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: RoFormerBackend> Backward<B, 3> for AttentionBackward {
    type State = AttentionState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let state = ops.state;
        let context_gradient = grads.consume::<B>(&ops.node);
        let gradients = B::self_attention_backward(
            state.query,
            state.key,
            state.value,
            state.saved,
            state.scale,
            context_gradient,
        );
        for (parent, gradient) in ops.parents.into_iter().zip(gradients) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, gradient);
            }
        }
    }
}

/// What the affine step keeps.
#[derive(Debug, Clone)]
struct AffineState<B: RoFormerBackend> {
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
}

/// Parents: x, the weight and, when `N = 3`, the bias.
#[derive(Debug)]
struct AffineBackward;

impl<B: RoFormerBackend, const N: usize> Backward<B, N> for AffineBackward {
    type State = AffineState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let output_gradient = grads.consume::<B>(&ops.node);
        let wanted = [0, 1, 2].map(|i| ops.parents.get(i).is_some_and(Option::is_some));
        let gradients = B::affine_backward(ops.state.x, ops.state.weight, output_gradient, wanted);
        for (parent, gradient) in ops.parents.into_iter().zip(gradients) {
            if let (Some(node), Some(gradient)) = (parent, gradient) {
                grads.register::<B>(node.id, gradient);
            }
        }
    }
}

/// What the LayerNorm step keeps.
#[derive(Debug, Clone)]
struct LayerNormState<B: RoFormerBackend> {
    saved: LayerNormSaved<B>,
    gamma: FloatTensor<B>,
}

/// Parents: x, the residual (when there is one), γ, β (when there is one).
#[derive(Debug)]
struct LayerNormBackward {
    has_residual: bool,
    has_beta: bool,
}

impl<B: RoFormerBackend, const N: usize> Backward<B, N> for LayerNormBackward {
    type State = LayerNormState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let output_gradient = grads.consume::<B>(&ops.node);
        let gradients =
            B::residual_layer_norm_backward(output_gradient, ops.state.saved, ops.state.gamma);
        let mut roles = vec![gradients.input.clone()];
        if self.has_residual {
            roles.push(gradients.input);
        }
        roles.push(gradients.gamma);
        if self.has_beta {
            roles.push(gradients.beta);
        }
        for (parent, gradient) in ops.parents.into_iter().zip(roles) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, gradient);
            }
        }
    }
}

#[derive(Debug)]
struct GeluBackward;

impl<B: RoFormerBackend> Backward<B, 1> for GeluBackward {
    /// The forward input.
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let x = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |gradient| {
            B::exact_gelu_backward(x, gradient)
        });
    }
}

/// What the cross-entropy step keeps.
#[derive(Debug, Clone)]
struct CrossEntropyState<B: RoFormerBackend> {
    logits: FloatTensor<B>,
    labels: IntTensor<B>,
    ignore_index: i64,
    saved: CrossEntropySaved<B>,
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl<B: RoFormerBackend> Backward<B, 1> for CrossEntropyBackward {
    type State = CrossEntropyState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let state = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |loss_gradient| {
            B::cross_entropy_backward(
                state.logits,
                state.labels,
                state.ignore_index,
                state.saved,
                loss_gradient,
            )
        });
    }
}

#[derive(Debug)]
struct ReshapeBackward;

impl<B: RoFormerBackend> Backward<B, 1> for ReshapeBackward {
    /// The forward input's shape.
    type State = Shape;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let shape = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |gradient| {
            B::reshape_in_place(gradient, shape)
        });
    }
}
