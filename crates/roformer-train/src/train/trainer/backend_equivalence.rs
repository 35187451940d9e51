//! The training loop gives the same losses on every backend's path: a few steps of a small
//! model with dropout off, from the same weights, through
//!
//! - the ndarray kernels (fused forward, recorded backward steps, fused AdamW; checked to
//!   run),
//! - the references in f64 (`NdArray<f64>`, where no kernel runs; checked), and
//! - WGPU, as burn's CubeBackend and as burn's fusion wrapper of it, the backend the `wgpu`
//!   feature builds (burn's fused attention and LayerNorm, the references elsewhere, fused
//!   by burn's fusion; lavapipe on a machine without a GPU),
//!
//! with the learning-rate schedule, gradient clipping and weight decay all acting. Each
//! step's loss and the validation loss after the last step agree to [`LOSS_TOLERANCE`],
//! so that no path can drift from the others unnoticed.

use std::path::Path;

use burn::backend::wgpu::{CubeBackend, WgpuRuntime};
use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_fusion::Fusion;
use roformer::backend::dispatch::{self, Kernel};
use roformer::{RoFormerForMaskedLM, RoFormerTrainingBackend};
use roformer_testing::weights::copy_weights;

use super::{Trainer, TrainerStart};
use crate::config::TrainConfig;
use crate::data::{Corpus, shipped_file};
use crate::run::{Epochs, Task};
use crate::train::split::Splits;
use roformer_infer::tokenizer::TextTokenizer;

/// Steps each backend trains.
const STEPS: usize = 8;

/// Largest |loss difference| allowed to the f64 references, at any step (losses near 5.6;
/// measured: at most 6.4e-7, f32 rounding).
const LOSS_TOLERANCE: f64 = 1e-5;

type Kernels = Autodiff<NdArray>;
type Reference = Autodiff<NdArray<f64>>;
/// burn's WGPU backend named in full: burn's `Wgpu` alias is the fusion wrapper when
/// burn's `fusion` feature is on in the build.
type WgpuCube = CubeBackend<WgpuRuntime, f32, i32, u32>;
type Gpu = Autodiff<WgpuCube>;
type FusedGpu = Autodiff<Fusion<WgpuCube>>;

/// A 2-layer model of width 32, no dropout, a short warmup, a clipping norm that binds and
/// a large weight decay, on three short works of the shipped corpus in `corpus`.
fn config(corpus: &Path) -> TrainConfig {
    let text = format!(
        r#"
[model]
vocab_size = 300
hidden_size = 32
num_hidden_layers = 2
num_attention_heads = 2
intermediate_size = 64
max_position_embeddings = 64
hidden_dropout_prob = 0.0
attention_probs_dropout_prob = 0.0
initializer_range = 0.1

[data]
corpus = "{corpus}"
validation_works = ["sonnets.txt"]
max_seq_len = 24

[tokenizer]
min_frequency = 1

[training]
batch_size = 16
learning_rate = 1e-2
warmup_steps = 2
steps = {STEPS}
weight_decay = 0.1
max_grad_norm = 0.5
eval_batches = 2
seed = 11
"#,
        corpus = corpus.display()
    );
    TrainConfig::from_toml_str(&text, "equivalence.toml").unwrap()
}

/// What a run reports: each step's loss, then the validation loss and accuracy.
#[derive(Debug)]
struct Losses {
    steps: Vec<f64>,
    valid_loss: f64,
    valid_accuracy: f64,
}

/// Trains [`STEPS`] steps on `B` from the weights of `start`.
fn train_from<B: RoFormerTrainingBackend>(
    config: &TrainConfig,
    corpus: &Corpus,
    tokenizer: &TextTokenizer,
    start: &RoFormerForMaskedLM<Kernels>,
    device: &B::Device,
) -> Losses {
    let splits = Splits::new(corpus, tokenizer, config.data.max_seq_len).unwrap();
    let mut trainer =
        Trainer::<B>::new(config, splits, tokenizer, TrainerStart::Fresh(None), device).unwrap();
    let fresh = trainer.model.take().expect("a new trainer holds its model");
    trainer.model = Some(copy_weights(start, fresh, device));
    // The batches, learning rates and dropout seeds the run loop gives these steps.
    let training = &config.training;
    let train_len = trainer.sizes().train;
    let schedule = training.schedule(training.total_steps(train_len));
    let mut epochs = Epochs::new(training, train_len);
    let steps = (0..STEPS)
        .map(|step| {
            let batch = epochs.step(step, schedule.at(step));
            trainer.step(batch).unwrap().loss
        })
        .collect();
    let (valid_loss, valid_accuracy) = trainer.validation_scores();
    Losses {
        steps,
        valid_loss,
        valid_accuracy,
    }
}

/// Largest |difference| between two runs' losses, steps and validation alike.
fn loss_gap(a: &Losses, b: &Losses) -> f64 {
    assert_eq!(a.steps.len(), b.steps.len());
    a.steps
        .iter()
        .zip(&b.steps)
        .chain([(&a.valid_loss, &b.valid_loss)])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn kernels_references_and_wgpu_train_alike() {
    let corpus_dir = tempfile::tempdir().unwrap();
    for name in ["macbeth.txt", "tempest.txt", "sonnets.txt"] {
        let text = shipped_file(name).unwrap();
        let head: Vec<&str> = text.lines().skip(100).take(300).collect();
        std::fs::write(corpus_dir.path().join(name), head.join("\n")).unwrap();
    }
    let config = config(corpus_dir.path());
    let corpus = Corpus::load(
        config.data.corpus.as_deref(),
        config.data.validation_works.as_deref(),
    )
    .unwrap();
    let tokenizer = TextTokenizer::train(
        corpus.train.iter().flat_map(|work| work.text.lines()),
        config.model.vocab_size,
        config.tokenizer.min_frequency,
        config.tokenizer.lowercase,
    )
    .unwrap();
    // burn draws a parameter's values when it is first used, separately in each clone: the
    // values are drawn once here, so that every copy is of the same weights.
    <Kernels as Backend>::seed(&Default::default(), 5);
    let fresh = RoFormerForMaskedLM::<Kernels>::new(&config.model, &Default::default()).unwrap();
    let start = fresh.clone().load_record(fresh.into_record());

    let (kernels, ran) = dispatch::ran_during(|| {
        train_from::<Kernels>(&config, &corpus, &tokenizer, &start, &Default::default())
    });
    for kernel in [
        Kernel::Rotary,
        Kernel::Attention,
        Kernel::AttentionBackward,
        Kernel::AffineBackward,
        Kernel::LayerNormBackward,
        Kernel::GeluBackward,
        Kernel::CrossEntropyBackward,
        Kernel::AdamW,
    ] {
        assert!(ran.contains(&kernel), "{kernel:?} did not run: {ran:?}");
    }
    let (reference, ran) = dispatch::ran_during(|| {
        train_from::<Reference>(&config, &corpus, &tokenizer, &start, &Default::default())
    });
    assert!(ran.is_empty(), "kernels ran on the f64 references: {ran:?}");
    let gpu = train_from::<Gpu>(&config, &corpus, &tokenizer, &start, &Default::default());
    let fused_gpu =
        train_from::<FusedGpu>(&config, &corpus, &tokenizer, &start, &Default::default());

    // Training moved the model: the comparison is of a run, not of a fixed point.
    assert!(
        kernels.steps[STEPS - 1] < kernels.steps[0] - 0.05,
        "the loss did not fall: {kernels:?}"
    );
    let gaps = [
        ("ndarray kernels", loss_gap(&kernels, &reference)),
        ("WGPU", loss_gap(&gpu, &reference)),
        ("WGPU with fusion", loss_gap(&fused_gpu, &reference)),
    ];
    assert!(
        gaps.iter().all(|(_, gap)| *gap <= LOSS_TOLERANCE),
        "largest loss gap to the f64 references {gaps:?}\n kernels: {kernels:?}\n WGPU: \
         {gpu:?}\n WGPU with fusion: {fused_gpu:?}\n references: {reference:?}"
    );
    assert!(
        (kernels.valid_accuracy - reference.valid_accuracy).abs() < 0.02,
        "validation accuracy: kernels {kernels:?}, references {reference:?}"
    );
}
