//! The fused burn-ndarray kernels (`roformer-kernels`: rotary, attention, GELU, linear and
//! its inference epilogues, LayerNorm with and without a residual, the copy-free head
//! split, the masked-LM cross-entropy) against the tensor-operation path they stand in for,
//! on a whole model. The reference runs on `Autodiff<NdArray<f64>>`, which every kernel
//! declines (so each step is a burn tensor operation); the same weights, copied through a
//! full-precision record, run on `NdArray` (inference kernels) and `Autodiff<NdArray>`
//! (kernels with their backward steps). Outputs and gradients must agree to float rounding.

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use roformer::{HiddenAct, RoFormerConfig, RoFormerForMaskedLM, RoFormerInput, masked_lm_loss};

type Fused = Autodiff<NdArray>;
type Reference = Autodiff<NdArray<f64>>;

fn config(hidden_act: HiddenAct, rotary_value: bool) -> RoFormerConfig {
    RoFormerConfig {
        vocab_size: 97,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 256,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        // Larger than HF's 0.02 so attention is far from uniform.
        initializer_range: 0.3,
        hidden_act,
        rotary_value,
        ..RoFormerConfig::default()
    }
}

/// Two rows of 150 tokens (four of the attention kernel's 48-query blocks, the last
/// partial); the second is padding after 90 tokens.
fn input<B: Backend>(offset: usize) -> RoFormerInput<B> {
    let (batch, seq) = (2, 150);
    let device = Default::default();
    let ids: Vec<i64> = (0..batch * seq).map(|i| (i * 37 % 97) as i64).collect();
    let mask: Vec<i64> = (0..batch * seq)
        .map(|i| i64::from(i < seq || i % seq < 90))
        .collect();
    RoFormerInput::new(Tensor::<B, 2, Int>::from_data(
        TensorData::new(ids, [batch, seq]),
        &device,
    ))
    .with_attention_mask(Tensor::from_data(
        TensorData::new(mask, [batch, seq]),
        &device,
    ))
    .with_position_offset(offset)
}

/// Labels at every third real position.
fn labels<B: Backend>() -> Tensor<B, 2, Int> {
    let labels: Vec<i64> = (0..300)
        .map(|i| {
            if i % 3 == 0 {
                (i * 11 % 97) as i64
            } else {
                -100
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(labels, [2, 150]), &Default::default())
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Max |a − b| relative to the largest |b|.
fn relative_gap(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    let gap = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    gap / scale
}

/// A fresh model whose parameters are initialised now: burn initialises parameters lazily,
/// and a clone (or `valid()`) of a model never run would draw its own values.
fn fresh_model(config: &RoFormerConfig) -> RoFormerForMaskedLM<Fused> {
    let model = RoFormerForMaskedLM::<Fused>::new(config, &Default::default()).unwrap();
    let _ = model.forward(input::<Fused>(0));
    model
}

/// The same weights on another backend, through a full-precision record.
fn copy_to<B: AutodiffBackend>(
    model: &RoFormerForMaskedLM<Fused>,
    config: &RoFormerConfig,
) -> RoFormerForMaskedLM<B> {
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(model.clone().into_record(), ()).unwrap();
    let record = recorder.load(bytes, &Default::default()).unwrap();
    RoFormerForMaskedLM::<B>::new(config, &Default::default())
        .unwrap()
        .load_record(record)
}

/// Gradients of the masked-LM loss for the parameters each kernel feeds: word embeddings
/// (tied decoder), the first layer's query weight (linear + rotary + attention), its
/// feed-forward weight and its attention-output LayerNorm scale.
fn loss_gradients<B: AutodiffBackend>(model: &RoFormerForMaskedLM<B>) -> Vec<Vec<f32>> {
    let logits = model.forward(input::<B>(0));
    let gradients = masked_lm_loss(logits, labels::<B>()).backward();
    let layer = &model.roformer.encoder.layer[0];
    vec![
        values(
            model
                .roformer
                .embeddings
                .word_embeddings
                .weight
                .grad(&gradients)
                .unwrap(),
        ),
        values(
            layer
                .attention
                .self_attention
                .query
                .weight
                .grad(&gradients)
                .unwrap(),
        ),
        values(layer.intermediate.dense.weight.grad(&gradients).unwrap()),
        values(
            layer
                .attention
                .output
                .layer_norm
                .gamma
                .grad(&gradients)
                .unwrap(),
        ),
    ]
}

#[test]
fn fused_inference_matches_the_tensor_operation_path() {
    let cases = [
        (HiddenAct::Gelu, false, 0),
        (HiddenAct::Gelu, true, 0),
        (HiddenAct::Gelu, false, 7),
        (HiddenAct::Relu, true, 3),
    ];
    for (hidden_act, rotary_value, offset) in cases {
        let config = config(hidden_act, rotary_value);
        let model = fresh_model(&config);
        let reference = copy_to::<Reference>(&model, &config);
        let expected = values(reference.forward(input::<Reference>(offset)));
        let fused = values(model.valid().forward(input::<NdArray>(offset)));
        let gap = relative_gap(&fused, &expected);
        // f32 products summed in another order, and erf by A&S 7.1.26 (≤ 5e-7) instead
        // of libm's: differences of a few ulp of the largest logit.
        assert!(
            gap < 1e-5,
            "{hidden_act:?}, rotary_value {rotary_value}, offset {offset}: relative gap {gap:e}"
        );
    }
}

/// ReLU rather than GELU here: burn's GELU backward is the derivative of GELU's tanh
/// approximation (about 1e-3 off), while the kernel's is the exact one (checked against
/// loops in `roformer-kernels`).
#[test]
fn fused_training_gradients_match_the_tensor_operation_path() {
    for rotary_value in [false, true] {
        let config = config(HiddenAct::Relu, rotary_value);
        let model = fresh_model(&config);
        let reference = copy_to::<Reference>(&model, &config);
        let expected = loss_gradients(&reference);
        let fused = loss_gradients(&model);
        let names = ["word embeddings", "query", "intermediate", "LayerNorm γ"];
        for ((name, fused), expected) in names.iter().zip(&fused).zip(&expected) {
            let gap = relative_gap(fused, expected);
            // Both sides f32, summed in different orders through two layers, softmax and the
            // loss (measured: 0.6–1.7e-4; each kernel's own gradient matches f64 to 2e-5 in
            // roformer-kernels' tests).
            assert!(
                gap < 5e-4,
                "rotary_value {rotary_value}, d{name}: relative gap {gap:e}"
            );
        }
    }
}
