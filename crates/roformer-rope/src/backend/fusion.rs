//! [`RotaryBackend`] on burn's fusion wrapper `Fusion<B>`: the rotation is a custom
//! operation of the fusion stream, run by `B`'s own rotation when the stream runs (on the
//! cubecl backends, the one-launch kernel of `cubecl.rs`).
//!
//! burn's fusion only fuses operations it has descriptions of; a custom operation ends the
//! fused block before it and starts a new one after it, and is run as it is. The shapes are
//! checked when the operation is recorded, on the caller's thread: a panic while the stream
//! runs would happen on burn's device server instead.

use core::marker::PhantomData;

use burn::backend::ir::{CustomOpIr, HandleContainer, OperationIr, OperationOutput, TensorIr};
use burn::tensor::TensorMetadata;
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{Fusion, FusionBackend, FusionRuntime, FusionTensor};

use super::{RotaryBackend, assert_same_shape, assert_tables_fit};
use crate::dispatch::Requester;
use crate::layout::RopeLayout;

/// The stream's handles on `B`'s runtime.
type Handles<B> =
    HandleContainer<<<B as FusionBackend>::FusionRuntime as FusionRuntime>::FusionHandle>;

impl<B: FusionBackend + RotaryBackend> RotaryBackend for Fusion<B> {
    fn rotary(
        x: FusionTensor<B::FusionRuntime>,
        cos: FusionTensor<B::FusionRuntime>,
        signed_sin: FusionTensor<B::FusionRuntime>,
        first_position: usize,
        layout: RopeLayout,
    ) -> FusionTensor<B::FusionRuntime> {
        assert_tables_fit(
            &x.shape(),
            &cos.shape(),
            &signed_sin.shape(),
            first_position,
        );
        let client = x.client.clone();
        let streams = OperationStreams::with_inputs([&x, &cos, &signed_sin]);
        let output = TensorIr::uninit(client.create_empty_handle(), x.shape(), x.dtype());
        let description = CustomOpIr::new(
            "roformer_rope::rotary",
            &[x.into_ir(), cos.into_ir(), signed_sin.into_ir()],
            &[output],
        );
        let operation = Rotation::<B> {
            description: description.clone(),
            first_position,
            layout,
            requester: Requester::current(),
            backend: PhantomData,
        };
        client
            .register(streams, OperationIr::Custom(description), operation)
            .output()
    }

    fn rotary_pair(
        q: FusionTensor<B::FusionRuntime>,
        k: FusionTensor<B::FusionRuntime>,
        cos: FusionTensor<B::FusionRuntime>,
        signed_sin: FusionTensor<B::FusionRuntime>,
        first_position: usize,
        layout: RopeLayout,
    ) -> (
        FusionTensor<B::FusionRuntime>,
        FusionTensor<B::FusionRuntime>,
    ) {
        assert_same_shape(&q.shape(), &k.shape());
        assert_tables_fit(
            &q.shape(),
            &cos.shape(),
            &signed_sin.shape(),
            first_position,
        );
        let client = q.client.clone();
        let streams = OperationStreams::with_inputs([&q, &k, &cos, &signed_sin]);
        let output = |x: &FusionTensor<B::FusionRuntime>| {
            TensorIr::uninit(client.create_empty_handle(), x.shape(), x.dtype())
        };
        let outputs = [output(&q), output(&k)];
        let description = CustomOpIr::new(
            "roformer_rope::rotary_pair",
            &[
                q.into_ir(),
                k.into_ir(),
                cos.into_ir(),
                signed_sin.into_ir(),
            ],
            &outputs,
        );
        let operation = RotationPair::<B> {
            description: description.clone(),
            first_position,
            layout,
            requester: Requester::current(),
            backend: PhantomData,
        };
        let [q, k] = client
            .register(streams, OperationIr::Custom(description), operation)
            .outputs();
        (q, k)
    }
}

/// The recorded [`RotaryBackend::rotary`]: inputs `x`, `cos`, `signed_sin`; one output.
#[derive(Debug)]
struct Rotation<B> {
    description: CustomOpIr,
    first_position: usize,
    layout: RopeLayout,
    requester: Requester,
    backend: PhantomData<fn() -> B>,
}

impl<B: FusionBackend + RotaryBackend> Operation<B::FusionRuntime> for Rotation<B> {
    fn execute(&self, handles: &mut Handles<B>) {
        let ([x, cos, signed_sin], [output]) = self.description.as_fixed();
        let rotated = self.requester.launch(|| {
            B::rotary(
                handles.get_float_tensor::<B>(x),
                handles.get_float_tensor::<B>(cos),
                handles.get_float_tensor::<B>(signed_sin),
                self.first_position,
                self.layout,
            )
        });
        handles.register_float_tensor::<B>(&output.id, rotated);
    }
}

/// The recorded [`RotaryBackend::rotary_pair`]: inputs `q`, `k`, `cos`, `signed_sin`;
/// outputs the rotated `q` and `k`.
#[derive(Debug)]
struct RotationPair<B> {
    description: CustomOpIr,
    first_position: usize,
    layout: RopeLayout,
    requester: Requester,
    backend: PhantomData<fn() -> B>,
}

impl<B: FusionBackend + RotaryBackend> Operation<B::FusionRuntime> for RotationPair<B> {
    fn execute(&self, handles: &mut Handles<B>) {
        let ([q, k, cos, signed_sin], [q_output, k_output]) = self.description.as_fixed();
        let (q_rotated, k_rotated) = self.requester.launch(|| {
            B::rotary_pair(
                handles.get_float_tensor::<B>(q),
                handles.get_float_tensor::<B>(k),
                handles.get_float_tensor::<B>(cos),
                handles.get_float_tensor::<B>(signed_sin),
                self.first_position,
                self.layout,
            )
        });
        handles.register_float_tensor::<B>(&q_output.id, q_rotated);
        handles.register_float_tensor::<B>(&k_output.id, k_rotated);
    }
}
