//! The fused burn-ndarray kernels (`roformer-kernels`: rotary, attention, GELU, linear and
//! its inference epilogues, LayerNorm with and without a residual, the copy-free head
//! split, the masked-LM cross-entropy) against the reference implementations they stand in
//! for (`roformer::backend::reference`), on a whole model. The reference runs on
//! `Autodiff<NdArray<f64>>` with every parameter cast to f64 (a record loads in its own
//! precision, and the model's host-made tensors follow the hidden states' type), where no
//! kernel runs (checked by their dispatch counters), so each step is burn tensor
//! operations in f64; the same weights run on `NdArray` (inference kernels) and
//! `Autodiff<NdArray>` (kernels with their backward steps), where every kernel must run.
//! Outputs and gradients must agree to f32 rounding. `reference_backwards.rs` checks the
//! references' backward steps against burn's autodiff.

use roformer::{RoFormerBackend, RoFormerTrainingBackend};
use roformer_testing::tensor_values;
use std::sync::{Mutex, MutexGuard};

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use roformer::backend::dispatch::{self, Kernel};
use roformer::{HiddenAct, RoFormerConfig, RoFormerForMaskedLM, RoFormerInput, masked_lm_loss};
use roformer_testing::max_relative_diff;
use roformer_testing::weights::copy_weights;

type Fused = Autodiff<NdArray>;
type Reference = Autodiff<NdArray<f64>>;

/// Per-tensor relative gap (max |fused − reference| / max |reference| over the tensor)
/// allowed between the kernels' f32 gradients and the f64 reference. Measured: at most
/// 3e-6 (the attention's query and key weights); GELU's tanh-approximation derivative in
/// place of the exact one moves 38 of the 41 tensors by 1.4e-4 to 3.1e-3.
const GRADIENT_TOLERANCE: f64 = 1e-5;

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
fn input<B: RoFormerBackend>(offset: usize) -> RoFormerInput<B> {
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
fn labels<B: RoFormerBackend>() -> Tensor<B, 2, Int> {
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

/// burn-ndarray has one global random generator, which model initialisation and the
/// attention kernel (its dropout seed) draw from: the tests of this file run one at a time
/// so that each model is the same on every run.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh model whose parameters are drawn now from a seeded generator (burn initialises
/// parameters lazily, and a clone or `valid()` of a model never run would draw its own).
fn fresh_model(config: &RoFormerConfig, seed: u64) -> RoFormerForMaskedLM<Fused> {
    let device = Default::default();
    Fused::seed(&device, seed);
    let model = RoFormerForMaskedLM::<Fused>::new(config, &device).unwrap();
    let _ = model.forward(input::<Fused>(0));
    model
}

/// The same weights on another backend, each parameter in its float type.
fn copy_to<B: RoFormerTrainingBackend>(
    model: &RoFormerForMaskedLM<Fused>,
    config: &RoFormerConfig,
) -> RoFormerForMaskedLM<B> {
    let device = Default::default();
    copy_weights(
        model,
        RoFormerForMaskedLM::<B>::new(config, &device).unwrap(),
        &device,
    )
}

/// Runs `run`, then checks that each of `expected` ran on this thread during it, or, with
/// `expected` empty, that no kernel did.
fn assert_kernels<T>(what: &str, expected: &[Kernel], run: impl FnOnce() -> T) -> T {
    let (output, ran) = dispatch::ran_during(run);
    if expected.is_empty() {
        assert!(
            ran.is_empty(),
            "{what}: kernels ran on the reference path: {ran:?}"
        );
    }
    for kernel in expected {
        assert!(
            ran.contains(kernel),
            "{what}: {kernel:?} did not run (ran: {ran:?})"
        );
    }
    output
}

/// Every parameter's gradient, by its path in the module tree, in visiting order.
struct GradientCollector<'a, B: AutodiffBackend> {
    gradients: &'a B::Gradients,
    path: Vec<String>,
    collected: Vec<(String, Option<Vec<f32>>)>,
}

impl<B: RoFormerTrainingBackend> ModuleVisitor<B> for GradientCollector<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let gradient = param.val().grad(self.gradients).map(tensor_values);
        self.collected.push((self.path.join("."), gradient));
    }
}

/// The gradient of the masked-LM loss for every parameter of the model.
fn loss_gradients<B: RoFormerTrainingBackend>(
    model: &RoFormerForMaskedLM<B>,
) -> Vec<(String, Option<Vec<f32>>)> {
    let logits = model.forward(input::<B>(0));
    let gradients = masked_lm_loss(logits, labels::<B>()).backward();
    let mut collector = GradientCollector::<B> {
        gradients: &gradients,
        path: Vec::new(),
        collected: Vec::new(),
    };
    model.visit(&mut collector);
    collector.collected
}

#[test]
fn fused_inference_matches_the_tensor_operation_path() {
    let cases = [
        (HiddenAct::Gelu, false, 0),
        (HiddenAct::Gelu, true, 0),
        (HiddenAct::Gelu, false, 7),
        (HiddenAct::Relu, true, 3),
    ];
    let _serial = one_at_a_time();
    for (hidden_act, rotary_value, offset) in cases {
        let config = config(hidden_act, rotary_value);
        let model = fresh_model(&config, 5);
        let reference = copy_to::<Reference>(&model, &config);
        let expected = assert_kernels("f64 inference", &[], || {
            tensor_values(reference.forward(input::<Reference>(offset)))
        });
        let model = model.valid();
        let mut kernels = vec![
            Kernel::Rotary,
            Kernel::Attention,
            Kernel::Affine,
            Kernel::AffineAddLayerNorm,
            Kernel::LayerNorm,
            Kernel::Reshape,
        ];
        if hidden_act == HiddenAct::Gelu {
            kernels.push(Kernel::AffineGelu);
        }
        let fused = assert_kernels("f32 inference", &kernels, || {
            tensor_values(model.forward(input::<NdArray>(offset)))
        });
        let gap = max_relative_diff(&fused, &expected);
        eprintln!(
            "{hidden_act:?}, rotary_value {rotary_value}, offset {offset}: relative gap {gap:.2e}"
        );
        // f32 rounding against f64, and a rational erf (≤ 3.4e-7) instead of libm's.
        assert!(
            gap < 1e-5,
            "{hidden_act:?}, rotary_value {rotary_value}, offset {offset}: relative gap {gap:e}"
        );
    }
}

/// Every parameter's gradient through the kernels (f32, with their own backward steps)
/// against the f64 tensor-operation reference, tensor by tensor, relative to that tensor's
/// largest gradient. GELU's reference is `gelu_exact` (x·Φ(x) by tensor operations, which
/// autodiff differentiates exactly); burn's own GELU backward is the tanh approximation's
/// derivative, which is what this test must tell apart from the exact one.
#[test]
fn fused_training_gradients_match_the_f64_reference_for_every_parameter() {
    let _serial = one_at_a_time();
    let cases = [
        (HiddenAct::Gelu, false),
        (HiddenAct::Gelu, true),
        (HiddenAct::Relu, false),
    ];
    for (hidden_act, rotary_value) in cases {
        let config = config(hidden_act, rotary_value);
        let model = fresh_model(&config, 5);
        let reference = copy_to::<Reference>(&model, &config);
        let expected = assert_kernels("f64 training", &[], || loss_gradients(&reference));
        let mut kernels = vec![
            Kernel::Rotary,
            Kernel::Attention,
            Kernel::AttentionBackward,
            Kernel::Affine,
            Kernel::AffineBackward,
            Kernel::LayerNorm,
            Kernel::LayerNormBackward,
            Kernel::CrossEntropy,
            Kernel::CrossEntropyBackward,
            Kernel::Reshape,
        ];
        if hidden_act == HiddenAct::Gelu {
            kernels.extend([Kernel::Gelu, Kernel::GeluBackward]);
        }
        let fused = assert_kernels("f32 training", &kernels, || loss_gradients(&model));
        assert_eq!(fused.len(), expected.len());
        let gaps: Vec<(f64, &str)> = fused
            .iter()
            .zip(&expected)
            .map(|((name, fused), (reference_name, expected))| {
                assert_eq!(name, reference_name);
                let (Some(fused), Some(expected)) = (fused, expected) else {
                    panic!("{name}: no gradient");
                };
                (max_relative_diff(fused, expected), name.as_str())
            })
            .collect();
        let (compared, worst) = (
            gaps.len(),
            gaps.iter()
                .cloned()
                .fold((0.0, ""), |w, g| if g.0 > w.0 { g } else { w }),
        );
        for (gap, name) in &gaps {
            assert!(
                *gap < GRADIENT_TOLERANCE,
                "{hidden_act:?}, rotary_value {rotary_value}, d{name}: relative gap {gap:e}; all: {}",
                gaps.iter()
                    .map(|(gap, name)| format!("{name} {gap:.1e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        eprintln!(
            "{hidden_act:?}, rotary_value {rotary_value}: {compared} gradients, worst {:.2e} ({})",
            worst.0, worst.1
        );
    }
}
