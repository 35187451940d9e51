//! Masked-LM pretraining: the loop that turns a [`TrainConfig`] into a run directory.
//!
//! Generic over `B: AutodiffBackend`; the binary picks the backend. Progress is reported
//! through [`TrainEvent`]s (this library never prints). Deterministic for a seed on a
//! backend: example order and masks derive from (seed, epoch, example) and the dropout
//! masks from (seed, step), so a resumed run sees the same batches and drops the same
//! units as an uninterrupted one.

use roformer::{RoFormerBackend, RoFormerTrainingBackend};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsParams, Optimizer};

use burn::tensor::{ElementConversion, Int, Tensor, TensorPrimitive};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use roformer::layout::reshape;
use roformer::{IGNORE_INDEX, RoFormerForMaskedLM};

use crate::config::{Duration, TrainConfig};
use crate::data::{
    Corpus, MaskedExample, MlmBatch, SpecialIds, TextTokenizer, mask_seed, mask_tokens, mlm_batch,
    pack_lines,
};
use crate::error::TrainError;
use crate::fs_atomic::write_atomic;
use crate::model_dir::{load_tokenizer, save_model, save_tokenizer};
use crate::train::checkpoint::{
    TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint,
};
use crate::train::metrics::{
    EvalRecord, append_record, plot_losses, read_records, truncate_records,
};
use crate::train::optimizer::FusedAdamWConfig;
use crate::train::schedule::LrSchedule;

/// The resolved config saved in a run directory (and read back by `--resume`).
pub const RUN_CONFIG_FILE: &str = "config.toml";
/// Evaluation history.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Loss curves.
pub const PLOT_FILE: &str = "loss.png";

/// Salt of the validation masks, so they differ from any training epoch's.
const VALIDATION_SALT: u64 = 0x005E_ED0F_FA11;
/// Salt of the per-step seeds of the backend's random stream (dropout masks).
const DROPOUT_SALT: u64 = 0xD20F_0A75_7EED;

/// The backend's seed for `step`: dropout masks are a function of (seed, step) alone, so a
/// run resumed from a checkpoint draws the same masks as one never stopped.
fn dropout_seed(seed: u64, step: usize) -> u64 {
    mask_seed(seed ^ DROPOUT_SALT, step as u64, u64::MAX)
}

/// What the loop reports while it runs.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// Data, tokenizer and model are ready.
    Started {
        /// Steps already done (non-zero when resuming).
        start_step: usize,
        /// Steps the run will have done when it ends.
        total_steps: usize,
        /// Training examples (packed sequences).
        train_examples: usize,
        /// Validation examples.
        valid_examples: usize,
        /// Entries in the tokenizer's vocabulary.
        vocab_size: usize,
        /// Trainable parameters of the model.
        parameters: usize,
    },
    /// One optimisation step is done.
    Step {
        /// Steps done.
        step: usize,
        /// Steps the run will do.
        total_steps: usize,
        /// This step's masked-LM loss.
        loss: f64,
        /// Learning rate used.
        learning_rate: f64,
        /// Real tokens per second over the steps since the last evaluation.
        tokens_per_second: f64,
    },
    /// An evaluation on the validation split.
    Evaluated(EvalRecord),
    /// A checkpoint was written.
    Checkpointed {
        /// Steps done.
        step: usize,
        /// The checkpoint folder.
        path: PathBuf,
    },
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The last evaluation.
    pub last: Option<EvalRecord>,
    /// Accuracy of always predicting the validation split's most frequent masked token.
    pub majority_baseline_accuracy: f64,
}

/// Where a run starts.
pub enum RunStart {
    /// A new run into an empty (or new) directory.
    Fresh(Box<TrainConfig>),
    /// Continue the run in this directory from its last checkpoint.
    Resume,
}

/// Masked-LM examples of a split, packed from its works.
struct Split {
    sequences: Vec<Vec<u32>>,
}

impl Split {
    fn new(
        works: &[crate::data::Work],
        tokenizer: &TextTokenizer,
        max_seq_len: usize,
    ) -> Result<Self, TrainError> {
        let mut sequences = Vec::new();
        for work in works {
            sequences.extend(pack_lines(&work.text, tokenizer, max_seq_len)?);
        }
        Ok(Self { sequences })
    }

    fn masked(
        &self,
        index: usize,
        special: &SpecialIds,
        vocab: usize,
        probability: f64,
        seed: u64,
    ) -> MaskedExample {
        mask_tokens(&self.sequences[index], special, vocab, probability, seed)
    }
}

/// Trains as the config says, writing into `run_dir`. `observe` receives progress; when it
/// answers `Break` to a [`TrainEvent::Checkpointed`], training stops there (the run can be
/// continued with [`RunStart::Resume`]), e.g. on Ctrl-C.
pub fn train<B: RoFormerTrainingBackend>(
    start: RunStart,
    run_dir: &Path,
    device: &B::Device,
    observe: &mut dyn FnMut(TrainEvent) -> ControlFlow<()>,
) -> Result<TrainSummary, TrainError> {
    let resuming = matches!(start, RunStart::Resume);
    let config = match start {
        RunStart::Fresh(config) => {
            let config = *config;
            if latest_checkpoint(run_dir).is_some() || run_dir.join(RUN_CONFIG_FILE).exists() {
                return Err(TrainError::model_dir(
                    run_dir,
                    "already holds a run; continue it with --resume or choose another --output",
                ));
            }
            std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
            write_atomic(
                &run_dir.join(RUN_CONFIG_FILE),
                config.to_toml_string().as_bytes(),
            )?;
            config
        }
        RunStart::Resume => TrainConfig::from_file(&run_dir.join(RUN_CONFIG_FILE))?,
    };
    let (data, training) = (&config.data, &config.training);

    let corpus = Corpus::load(data.corpus.as_deref(), data.validation_works.as_deref())?;
    let tokenizer = if resuming {
        load_tokenizer(run_dir)?
    } else {
        let tokenizer = match &config.tokenizer.path {
            Some(path) => TextTokenizer::from_file(path)?,
            None => TextTokenizer::train(
                corpus.train.iter().flat_map(|w| w.text.lines()),
                config.model.vocab_size,
                config.tokenizer.min_frequency,
                config.tokenizer.lowercase,
            )?,
        };
        save_tokenizer(run_dir, &tokenizer)?;
        tokenizer
    };
    check_tokenizer_fits(&tokenizer, &config)?;
    let special = tokenizer.special();
    let vocab = tokenizer.vocab_size();

    let train_split = Split::new(&corpus.train, &tokenizer, data.max_seq_len)?;
    let valid_split = Split::new(&corpus.validation, &tokenizer, data.max_seq_len)?;
    if train_split.sequences.is_empty() || valid_split.sequences.is_empty() {
        return Err(TrainError::data(
            "corpus",
            "the training or validation split has no text",
        ));
    }
    let batch_size = training.batch_size;
    let steps_per_epoch = (train_split.sequences.len() / batch_size).max(1);
    let total_steps = match training.duration() {
        Duration::Steps(steps) => steps,
        Duration::Epochs(epochs) => epochs * steps_per_epoch,
    };
    let schedule = LrSchedule {
        peak: training.learning_rate,
        warmup: training.warmup_steps,
        total: total_steps,
        decay: training.decay,
    };

    B::seed(device, training.seed);
    let model = RoFormerForMaskedLM::<B>::new(&config.model, device)?;
    let clipping = (training.max_grad_norm > 0.0)
        .then_some(GradientClippingConfig::Norm(training.max_grad_norm as f32));
    let optimizer = FusedAdamWConfig::new()
        .with_weight_decay(training.weight_decay as f32)
        .with_grad_clipping(clipping)
        .init::<B, RoFormerForMaskedLM<B>>();
    let metrics_path = run_dir.join(METRICS_FILE);
    let (start_step, mut model, mut optimizer) = if resuming {
        let (state, model, optimizer) = load_checkpoint(run_dir, model, optimizer, device)?;
        truncate_records(&metrics_path, state.step)?;
        (state.step, model, optimizer)
    } else {
        (0, model, optimizer)
    };

    let _ = observe(TrainEvent::Started {
        start_step,
        total_steps,
        train_examples: train_split.sequences.len(),
        valid_examples: valid_split.sequences.len(),
        vocab_size: vocab,
        parameters: model.num_params(),
    });

    let majority_baseline_accuracy = majority_baseline(&valid_split, &special, vocab, &config);
    let mut order: Option<(usize, Vec<usize>)> = None;
    let (mut loss_sum, mut loss_steps, mut tokens) = (0.0, 0usize, 0usize);
    let mut train_time = 0.0f64;
    let mut last = read_records(&metrics_path)?.pop();

    for step in start_step..total_steps {
        let started = Instant::now();
        let epoch = step / steps_per_epoch;
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut indices: Vec<usize> = (0..train_split.sequences.len()).collect();
            indices.shuffle(&mut StdRng::seed_from_u64(mask_seed(
                training.seed,
                epoch as u64,
                u64::MAX,
            )));
            order = Some((epoch, indices));
        }
        let indices = &order.as_ref().expect("set above").1;
        let within = step % steps_per_epoch;
        let examples: Vec<MaskedExample> = indices
            [within * batch_size..((within + 1) * batch_size).min(indices.len())]
            .iter()
            .map(|&i| {
                train_split.masked(
                    i,
                    &special,
                    vocab,
                    data.mask_probability,
                    mask_seed(training.seed, epoch as u64, i as u64),
                )
            })
            .collect();
        let batch = mlm_batch::<B>(&examples, special.pad, device);
        tokens += batch.real_tokens;
        B::seed(device, dropout_seed(training.seed, step));
        let (loss, _) = masked_lm_step(&model, batch);
        let loss_value: f64 = loss.clone().into_scalar().elem();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let learning_rate = schedule.at(step);
        model = optimizer.step(learning_rate, model, grads);
        train_time += started.elapsed().as_secs_f64();
        loss_sum += loss_value;
        loss_steps += 1;
        let done = step + 1;
        let tokens_per_second = tokens as f64 / train_time.max(1e-9);
        let _ = observe(TrainEvent::Step {
            step: done,
            total_steps,
            loss: loss_value,
            learning_rate,
            tokens_per_second,
        });

        if done % training.eval_every == 0 || done == total_steps {
            let (valid_loss, valid_accuracy) = evaluate(
                &model.valid(),
                &valid_split,
                &special,
                vocab,
                &config,
                device,
            );
            let record = EvalRecord {
                step: done,
                train_loss: loss_sum / loss_steps as f64,
                valid_loss,
                valid_accuracy,
                tokens_per_second,
                learning_rate,
            };
            append_record(&metrics_path, &record)?;
            let _ = observe(TrainEvent::Evaluated(record.clone()));
            last = Some(record);
            (loss_sum, loss_steps, tokens, train_time) = (0.0, 0, 0, 0.0);
        }
        if done % training.checkpoint_every == 0 || done == total_steps {
            let path = save_checkpoint(run_dir, TrainingState { step: done }, &model, &optimizer)?;
            save_model(run_dir, &config.model, &model.valid())?;
            if observe(TrainEvent::Checkpointed { step: done, path }).is_break() {
                break;
            }
        }
    }

    save_model(run_dir, &config.model, &model.valid())?;
    plot_losses(&read_records(&metrics_path)?, &run_dir.join(PLOT_FILE))?;
    Ok(TrainSummary {
        run_dir: run_dir.to_path_buf(),
        last,
        majority_baseline_accuracy,
    })
}

fn check_tokenizer_fits(tokenizer: &TextTokenizer, config: &TrainConfig) -> Result<(), TrainError> {
    let fail = |key: &str, message: String| {
        Err(TrainError::Config {
            file: RUN_CONFIG_FILE.into(),
            key: key.into(),
            message,
        })
    };
    if tokenizer.vocab_size() > config.model.vocab_size {
        return fail(
            "model.vocab_size",
            format!(
                "expected at least the tokenizer's vocabulary size {}, got {}",
                tokenizer.vocab_size(),
                config.model.vocab_size
            ),
        );
    }
    let pad = tokenizer.special().pad as usize;
    if config.model.pad_token_id.is_some_and(|id| id != pad) {
        return fail(
            "model.pad_token_id",
            format!(
                "expected the tokenizer's [PAD] id {pad}, got {:?}",
                config.model.pad_token_id
            ),
        );
    }
    Ok(())
}

/// Loss over the masked positions and the number predicted exactly. Only the masked rows
/// go through the vocabulary projection, which saves most of the head's work.
pub(crate) fn masked_lm_step<B: RoFormerBackend>(
    model: &RoFormerForMaskedLM<B>,
    batch: MlmBatch<B>,
) -> (Tensor<B, 1>, usize) {
    let count = batch.masked_count;
    let hidden = model.roformer.forward(batch.input);
    let [rows, seq, width] = hidden.dims();
    let flat = reshape(hidden, [rows * seq, width]);
    let logits = model.logits(flat.select(0, batch.masked_positions));
    let targets = batch.masked_labels;
    // Loss and accuracy in one operation of the backend (one pass per row on the CPU).
    let output = B::cross_entropy(
        logits.into_primitive().tensor(),
        targets.into_primitive(),
        IGNORE_INDEX,
    );
    let correct: i64 = Tensor::<B, 1, Int>::from_primitive(output.correct)
        .into_scalar()
        .elem();
    debug_assert!(correct as usize <= count);
    let loss = Tensor::from_primitive(TensorPrimitive::Float(output.loss));
    (loss, correct as usize)
}

/// The validation examples an evaluation covers (`eval_batches` batches, or all).
fn evaluated_sequences(split: &Split, config: &TrainConfig) -> usize {
    match config.training.eval_batches {
        0 => split.sequences.len(),
        n => (n * config.training.batch_size).min(split.sequences.len()),
    }
}

/// Mean masked-LM loss and accuracy over the validation split, with fixed masks.
fn evaluate<B: RoFormerBackend>(
    model: &RoFormerForMaskedLM<B>,
    split: &Split,
    special: &SpecialIds,
    vocab: usize,
    config: &TrainConfig,
    device: &B::Device,
) -> (f64, f64) {
    let batch_size = config.training.batch_size;
    let covered = evaluated_sequences(split, config);
    let (mut loss_sum, mut correct, mut count) = (0.0, 0usize, 0usize);
    for batch_index in 0..covered.div_ceil(batch_size) {
        let examples: Vec<MaskedExample> = (batch_index * batch_size
            ..((batch_index + 1) * batch_size).min(covered))
            .map(|i| {
                split.masked(
                    i,
                    special,
                    vocab,
                    config.data.mask_probability,
                    mask_seed(config.training.seed ^ VALIDATION_SALT, 0, i as u64),
                )
            })
            .collect();
        let batch = mlm_batch::<B>(&examples, special.pad, device);
        let masked = batch.masked_count;
        let (loss, hits) = masked_lm_step(model, batch);
        let loss: f64 = loss.into_scalar().elem();
        loss_sum += loss * masked as f64;
        correct += hits;
        count += masked;
    }
    (
        loss_sum / count.max(1) as f64,
        correct as f64 / count.max(1) as f64,
    )
}

/// Accuracy of predicting the most frequent masked token for every masked validation
/// position (the same examples and masks [`evaluate`] uses): the floor a trained model
/// must beat.
fn majority_baseline(
    split: &Split,
    special: &SpecialIds,
    vocab: usize,
    config: &TrainConfig,
) -> f64 {
    let (probability, seed) = (config.data.mask_probability, config.training.seed);
    let mut counts = std::collections::HashMap::<i64, usize>::new();
    let mut total = 0usize;
    for index in 0..evaluated_sequences(split, config) {
        let example = split.masked(
            index,
            special,
            vocab,
            probability,
            mask_seed(seed ^ VALIDATION_SALT, 0, index as u64),
        );
        for label in example.labels.into_iter().filter(|&l| l >= 0) {
            *counts.entry(label).or_default() += 1;
            total += 1;
        }
    }
    counts.values().copied().max().unwrap_or(0) as f64 / total.max(1) as f64
}
