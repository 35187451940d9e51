//! `roformer bench`: tokens per second, milliseconds per step and peak memory of inference
//! (masked-LM logits at every position, or the encoder's last hidden state alone) and of
//! one masked-LM training step (forward, loss on 15% masked positions, backward, AdamW),
//! on random token ids, for the backend the binary was built with. `scripts/bench_pytorch.py` times the same work in HF
//! transformers and counts FLOPs the same way ([`flops_per_token`]).

use roformer::{RoFormerBackend, RoFormerTrainingBackend};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};

use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use roformer::{Precision, RoFormerConfig, RoFormerForMaskedLM, RoFormerInput, cast_parameters};
use serde::Serialize;

use crate::data::MlmBatch;
use crate::error::TrainError;
use crate::run::FusedAdamWConfig;
use crate::run::loss_scale::{LossScale, optimise};
use crate::train::masked_lm_step;

mod products;

pub use products::{Product, ProductReport, inference_products};

/// Fraction of positions masked in a training step (as in pretraining).
const MASK_PROBABILITY: f64 = 0.15;
/// Default step counts aim at a few seconds per run: about this many tokens are timed.
const INFERENCE_TOKENS: usize = 16 * 1024;
const TRAIN_TOKENS: usize = 8 * 1024;
const MIN_STEPS: usize = 3;
/// First id of an ordinary token (0..5 are the special tokens).
const FIRST_WORD_ID: usize = 5;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// What one step is.
    pub mode: BenchMode,
    /// Timed steps (default: enough for ~16k tokens of inference or ~8k of training).
    pub steps: Option<usize>,
    /// Untimed steps first (allocations, kernel compilation).
    pub warmup: usize,
    /// Compute precision: inference stores the weights in it; training keeps f32 master
    /// weights (mixed precision, with loss scaling for f16).
    pub precision: Precision,
}

/// What one timed step of `roformer bench` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchMode {
    /// The masked-LM's logits at every position.
    Inference,
    /// The encoder's last hidden state, no head (what `embed` and a server's `/embed`
    /// compute).
    Encoder,
    /// A masked-LM training step.
    Train,
}

impl BenchMode {
    /// The name in the report's `mode` field.
    pub fn name(self) -> &'static str {
        match self {
            Self::Inference => "inference",
            Self::Encoder => "encoder",
            Self::Train => "train",
        }
    }
}

/// The first fields of every measurement's JSON object, as the comparison scripts read
/// them.
#[derive(Debug, Clone, Serialize)]
pub struct ReportHeader {
    /// Always "roformer-rs".
    pub implementation: &'static str,
    /// The burn backend.
    pub backend: String,
    /// `f32`, `bf16` or `f16`.
    pub precision: &'static str,
    /// "inference", "encoder", "train" or "product".
    pub mode: &'static str,
}

impl ReportHeader {
    /// The header of a `mode` measurement on `backend` as `options` set it.
    pub fn new(backend: &str, options: &BenchOptions, mode: &'static str) -> Self {
        Self {
            implementation: "roformer-rs",
            backend: backend.to_string(),
            precision: options.precision.name(),
            mode,
        }
    }
}

/// One measurement, in the JSON schema `scripts/bench_vs_pytorch.sh` reads.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// What was measured, where ("inference", "encoder" or "train").
    #[serde(flatten)]
    pub header: ReportHeader,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Worker threads available to the backend.
    pub threads: usize,
    /// Timed steps.
    pub steps: usize,
    /// `batch * seq * steps / seconds`.
    pub tokens_per_second: f64,
    /// Mean wall time of a step.
    pub ms_per_step: f64,
    /// Peak resident memory of the process so far (Linux `VmHWM`), MiB.
    pub peak_rss_mb: Option<f64>,
    /// Parameters of the model.
    pub params: usize,
    /// Model FLOPs per token of one step ([`flops_per_token`]).
    pub flops_per_token: f64,
}

/// Parameters that take part in a matrix multiplication once per token: per layer the
/// four attention projections and the feed-forward pair, `embeddings_project`, the MLM
/// transform and the tied decoder. Lookups, biases and LayerNorm are not counted.
pub fn matmul_params(config: &RoFormerConfig) -> usize {
    let (h, i, e, v) = (
        config.hidden_size,
        config.intermediate_size,
        config.embedding_size(),
        config.vocab_size,
    );
    let mut p = config.num_hidden_layers * (4 * h * h + 2 * h * i);
    if e != h {
        p += e * h;
    }
    p + h * e + v * e
}

/// The masked-LM head's share of [`matmul_params`]: its transform and the tied decoder.
pub fn head_matmul_params(config: &RoFormerConfig) -> usize {
    let e = config.embedding_size();
    config.hidden_size * e + config.vocab_size * e
}

/// Model FLOPs per token: `2·P + A` for inference, `6·P + 3·A` for training, with
/// `P` = [`matmul_params`] (less [`head_matmul_params`] for the encoder alone) and
/// `A = layers · 2 · 2 · seq · hidden` (QKᵀ and the weighted sum of V). Same formula as
/// `scripts/bench_pytorch.py`; it counts the vocabulary projection at every position,
/// which our training step skips for unmasked positions.
pub fn flops_per_token(config: &RoFormerConfig, seq: usize, mode: BenchMode) -> f64 {
    let p = matmul_params(config) as f64;
    let attention = (config.num_hidden_layers * 2 * 2 * seq * config.hidden_size) as f64;
    match mode {
        BenchMode::Train => 6.0 * p + 3.0 * attention,
        BenchMode::Inference => 2.0 * p + attention,
        BenchMode::Encoder => 2.0 * (p - head_matmul_params(config) as f64) + attention,
    }
}

/// Peak resident set size of this process in MiB (Linux), if known.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Threads the CPU backends use (rayon's pool honours `RAYON_NUM_THREADS`).
fn worker_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The model config a bench uses: `config` without dropout (both sides do the same
/// work), with room for `seq` positions.
pub fn bench_config(config: &RoFormerConfig, seq: usize) -> RoFormerConfig {
    RoFormerConfig {
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        max_position_embeddings: config.max_position_embeddings.max(seq),
        ..config.clone()
    }
}

fn random_ids<B: RoFormerBackend>(
    rng: &mut StdRng,
    config: &RoFormerConfig,
    batch: usize,
    seq: usize,
    device: &B::Device,
) -> (Vec<i64>, Tensor<B, 2, Int>) {
    let ids: Vec<i64> = (0..batch * seq)
        .map(|_| rng.random_range(FIRST_WORD_ID..config.vocab_size) as i64)
        .collect();
    let tensor = Tensor::from_data(TensorData::new(ids.clone(), [batch, seq]), device);
    (ids, tensor)
}

/// One measurement: a config's model at the shape, mode and precision the options set,
/// on the backend named `backend` (as the report names it).
#[derive(Debug, Clone, Copy)]
pub struct Bench<'a> {
    /// The model config (its `max_position_embeddings` is raised to the length if shorter).
    pub config: &'a RoFormerConfig,
    /// Shape, mode, steps and precision.
    pub options: &'a BenchOptions,
    /// The backend's name in the report.
    pub backend: &'a str,
}

fn report(
    bench: &Bench<'_>,
    config: &RoFormerConfig,
    steps: usize,
    seconds: f64,
    params: usize,
) -> BenchReport {
    let Bench {
        options, backend, ..
    } = *bench;
    let tokens = (options.batch * options.seq * steps) as f64;
    BenchReport {
        header: ReportHeader::new(backend, options, options.mode.name()),
        batch: options.batch,
        seq: options.seq,
        threads: worker_threads(),
        steps,
        tokens_per_second: tokens / seconds,
        ms_per_step: seconds * 1000.0 / steps as f64,
        peak_rss_mb: peak_rss_mb(),
        params,
        flops_per_token: flops_per_token(config, options.seq, options.mode),
    }
}

/// Refuses a step shape that cannot be measured.
fn check_shape(options: &BenchOptions) -> Result<(), TrainError> {
    if options.batch == 0 || options.seq < 2 {
        return Err(TrainError::data(
            "bench",
            "--batch must be at least 1 and --seq at least 2",
        ));
    }
    Ok(())
}

/// The timed steps of a run, after [`check_shape`].
fn check(options: &BenchOptions) -> Result<usize, TrainError> {
    check_shape(options)?;
    let tokens = if options.mode == BenchMode::Train {
        TRAIN_TOKENS
    } else {
        INFERENCE_TOKENS
    };
    Ok(options
        .steps
        .unwrap_or((tokens / (options.batch * options.seq)).max(MIN_STEPS))
        .max(1))
}

/// Runs `step` `warmup` times untimed, then `steps` times timed, threading `state`
/// (the model, for training) through; returns the state and the timed seconds.
fn timed<S>(mut state: S, warmup: usize, steps: usize, mut step: impl FnMut(S) -> S) -> (S, f64) {
    for _ in 0..warmup {
        state = step(state);
    }
    let started = Instant::now();
    for _ in 0..steps {
        state = step(state);
    }
    (state, started.elapsed().as_secs_f64())
}

impl Bench<'_> {
    /// The timed steps of a run, the model config at its length and a model of it
    /// computing in the options' precision, once the shape and the precision are checked.
    fn prepare<B: RoFormerBackend>(
        &self,
        device: &B::Device,
    ) -> Result<(usize, RoFormerConfig, RoFormerForMaskedLM<B>), TrainError> {
        let steps = check(self.options)?;
        self.options.precision.check_supported::<B>(device)?;
        let config = bench_config(self.config, self.options.seq);
        let model =
            RoFormerForMaskedLM::<B>::new(&config, device)?.with_precision(self.options.precision);
        Ok((steps, config, model))
    }

    /// Times inference: masked-LM logits at every position of `batch × seq` random tokens,
    /// or ([`BenchMode::Encoder`]) the encoder's last hidden state alone.
    pub fn inference<B: RoFormerBackend>(
        &self,
        device: &B::Device,
    ) -> Result<BenchReport, TrainError> {
        let (steps, config, model) = self.prepare::<B>(device)?;
        let BenchOptions {
            batch,
            seq,
            warmup,
            precision,
            ..
        } = *self.options;
        let model = cast_parameters(model, precision);
        let mut rng = StdRng::seed_from_u64(0);
        let (_, ids) = random_ids::<B>(&mut rng, &config, batch, seq, device);
        let encoder_only = self.options.mode == BenchMode::Encoder;
        let ((), seconds) = timed((), warmup, steps, |()| {
            let input = RoFormerInput::new(ids.clone());
            let output = if encoder_only {
                model.roformer.forward(input)
            } else {
                model.forward(input)
            };
            // Waits for the device; reading one value keeps the transfer negligible.
            let _ = output.slice([0..1, 0..1, 0..1]).into_data();
        });
        let params = if encoder_only {
            model.roformer.num_params()
        } else {
            model.num_params()
        };
        Ok(report(self, &config, steps, seconds, params))
    }

    /// Times a training step: forward, masked-LM loss at 15% random positions (only those
    /// go through the vocabulary projection, as in `roformer train`), backward, AdamW.
    pub fn train<B: RoFormerTrainingBackend>(
        &self,
        device: &B::Device,
    ) -> Result<BenchReport, TrainError> {
        let options = self.options;
        let (steps, config, model) = self.prepare::<B>(device)?;
        let params = model.num_params();
        let mut loss_scale = LossScale::for_precision(options.precision);
        let mut optimizer = FusedAdamWConfig::new().with_weight_decay(0.01).init();
        let mut rng = StdRng::seed_from_u64(0);
        let (ids, input_ids) =
            random_ids::<B>(&mut rng, &config, options.batch, options.seq, device);
        let mut positions: Vec<i64> = (0..ids.len())
            .filter(|_| rng.random_bool(MASK_PROBABILITY))
            .map(|p| p as i64)
            .collect();
        if positions.is_empty() {
            positions.push(0);
        }
        let labels: Vec<i64> = positions.iter().map(|&p| ids[p as usize]).collect();
        let count = positions.len();
        let int = |values: Vec<i64>| {
            Tensor::<B, 1, Int>::from_data(TensorData::new(values, [count]), device)
        };
        let batch = MlmBatch {
            input: RoFormerInput::new(input_ids),
            masked_positions: int(positions),
            masked_labels: int(labels),
            masked_count: count,
            real_tokens: ids.len(),
        };
        let mut step = |model: RoFormerForMaskedLM<B>| {
            // `masked_lm_step` reads the accuracy back, which waits for the device.
            let (loss, _) = masked_lm_step(&model, batch.clone());
            optimise(model, loss, &mut optimizer, 1e-4, 0.0, loss_scale.as_mut()).model
        };
        let (model, seconds) = timed(model, options.warmup, steps, &mut step);
        let _ = model.valid();
        Ok(report(self, &config, steps, seconds, params))
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;
    use roformer::RoFormerModel;

    use super::*;

    /// The encoder-only step leaves the masked-LM head out of what it counts and of what
    /// it runs: its FLOPs per token are the inference step's less the head's products,
    /// `2·(h·e + V·e)`, written out here by hand, and its parameters are the bare
    /// encoder's.
    #[test]
    fn the_encoder_only_step_leaves_the_head_out() {
        let config = RoFormerConfig {
            vocab_size: 300,
            hidden_size: 48,
            embedding_size: Some(32),
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 96,
            ..RoFormerConfig::default()
        };
        let head = 2.0 * (48.0 * 32.0 + 300.0 * 32.0);
        for seq in [8, 128] {
            let inference = flops_per_token(&config, seq, BenchMode::Inference);
            let encoder = flops_per_token(&config, seq, BenchMode::Encoder);
            assert_eq!(inference - encoder, head, "seq {seq}");
        }
        let options = BenchOptions {
            batch: 2,
            seq: 8,
            mode: BenchMode::Encoder,
            steps: Some(1),
            warmup: 0,
            precision: Precision::F32,
        };
        let bench = Bench {
            config: &config,
            options: &options,
            backend: "ndarray",
        };
        let device = Default::default();
        let report = bench.inference::<NdArray>(&device).unwrap();
        let encoder = RoFormerModel::<NdArray>::new(&config, &device).unwrap();
        assert_eq!(report.header.mode, "encoder");
        assert_eq!(report.params, encoder.num_params());
        assert_eq!(
            report.flops_per_token,
            flops_per_token(&config, 8, BenchMode::Encoder)
        );
    }
}
