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

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::{ElementConversion, Int, Tensor, TensorPrimitive};
use roformer::layout::reshape;
use roformer::{IGNORE_INDEX, RoFormerForMaskedLM};

use crate::config::TrainConfig;
use crate::data::{Corpus, MaskedExample, MlmBatch, mask_seed, mlm_batch};
use crate::error::TrainError;
use crate::train::checkpoint::{TrainingState, load_checkpoint, save_checkpoint};
use crate::train::data_parallel::{Setup, Share, Workers, masked_tokens, split_batch};
use crate::train::loss_scale::{LossScale, optimise};
use crate::train::metrics::{
    EvalRecord, append_record, plot_losses, read_records, truncate_records,
};
use crate::train::nodes::{Placement, collective_config, positional_ids, run_digest};
use crate::train::optimizer::FusedAdamW;
use crate::train::run_dir::{METRICS_FILE, PLOT_FILE, open_run_dir, run_tokenizer, start_run_dir};
use crate::train::schedule::LrSchedule;
use crate::train::split::{Masking, Splits};
use roformer_infer::model_dir::save_model;
use roformer_infer::tokenizer::TextTokenizer;

#[cfg(test)]
mod backend_equivalence;

/// Salt of the per-step seeds of the backend's random stream (dropout masks).
const DROPOUT_SALT: u64 = 0xD20F_0A75_7EED;

/// The backend's seed for `step`: dropout masks are a function of (seed, step) alone, so a
/// run resumed from a checkpoint draws the same masks as one never stopped.
pub(crate) fn dropout_seed(seed: u64, step: usize) -> u64 {
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

/// Trains as the config says, writing into `run_dir`. `observe` receives progress; when it
/// answers `Break` to a [`TrainEvent::Checkpointed`], training stops there (the run can be
/// continued with [`RunStart::Resume`]), e.g. on Ctrl-C.
pub fn train<B: RoFormerTrainingBackend>(
    start: RunStart,
    run_dir: &Path,
    device: &B::Device,
    observe: &mut dyn FnMut(TrainEvent) -> ControlFlow<()>,
) -> Result<TrainSummary, TrainError> {
    let run = open_run_dir(start, run_dir)?;
    let config = &run.config;
    // Before anything is written, so a refused run leaves no run directory behind.
    config.training.precision.check_supported::<B>(device)?;
    let corpus = Corpus::load(
        config.data.corpus.as_deref(),
        config.data.validation_works.as_deref(),
    )?;
    let tokenizer = run_tokenizer(&run, &corpus, run_dir)?;
    let splits = Splits::new(&corpus, &tokenizer, config.data.max_seq_len)?;
    start_run_dir(&run, run_dir)?;
    let metrics_path = run_dir.join(METRICS_FILE);
    let resume_from = run.resuming.then_some(run_dir);
    let mut trainer = Trainer::<B>::new(config, splits, &tokenizer, resume_from, device)?;
    if run.resuming {
        // Evaluations past the checkpoint are redone.
        truncate_records(&metrics_path, trainer.start_step)?;
    }

    let _ = observe(TrainEvent::Started {
        start_step: trainer.start_step,
        total_steps: trainer.total_steps,
        train_examples: trainer.splits.train.len(),
        valid_examples: trainer.splits.valid.len(),
        vocab_size: trainer.masking.vocab,
        parameters: trainer.model().num_params(),
    });

    let majority_baseline_accuracy = trainer.majority_baseline();
    let mut last = read_records(&metrics_path)?.pop();
    for step in trainer.start_step..trainer.total_steps {
        let report = trainer.step(step)?;
        let done = step + 1;
        let _ = observe(TrainEvent::Step {
            step: done,
            total_steps: trainer.total_steps,
            loss: report.loss,
            learning_rate: report.learning_rate,
            tokens_per_second: report.tokens_per_second,
        });
        if trainer.evaluates_after(done) && config.distributed.rank == 0 {
            let record = trainer.evaluation(done, &report);
            append_record(&metrics_path, &record)?;
            let _ = observe(TrainEvent::Evaluated(record.clone()));
            last = Some(record);
        }
        if trainer.checkpoints_after(done) {
            let path = trainer.checkpoint(run_dir, done)?;
            if observe(TrainEvent::Checkpointed { step: done, path }).is_break() {
                break;
            }
        }
    }

    trainer.save_model(run_dir)?;
    if let Some(workers) = trainer.workers.take() {
        workers.finish(device)?;
    }
    plot_losses(
        &read_records(&metrics_path)?,
        "masked-LM loss",
        &run_dir.join(PLOT_FILE),
    )?;
    Ok(TrainSummary {
        run_dir: run_dir.to_path_buf(),
        last,
        majority_baseline_accuracy,
    })
}

/// What one optimisation step reports.
struct StepReport {
    /// The step's masked-LM loss.
    loss: f64,
    /// The learning rate it used.
    learning_rate: f64,
    /// Real tokens per second since the last evaluation.
    tokens_per_second: f64,
}

/// Training totals since the last evaluation.
#[derive(Debug, Default)]
struct SinceEvaluation {
    loss_sum: f64,
    steps: usize,
    tokens: usize,
    seconds: f64,
}

impl SinceEvaluation {
    fn mean_loss(&self) -> f64 {
        self.loss_sum / self.steps as f64
    }

    fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(1e-9)
    }
}

/// A run in progress: model and optimizer, the learning-rate schedule, the data, and the
/// totals the next evaluation reports.
struct Trainer<'a, B: RoFormerTrainingBackend> {
    config: &'a TrainConfig,
    device: &'a B::Device,
    splits: Splits,
    masking: Masking,
    /// `None` only inside [`Trainer::step`], while the optimizer owns the model: it takes
    /// it by value, so that it can update parameters in place.
    model: Option<RoFormerForMaskedLM<B>>,
    /// `None` only inside [`Trainer::step`] with several replicas, while replica 0's
    /// thread owns it.
    optimizer: Option<OptimizerAdaptor<FusedAdamW, RoFormerForMaskedLM<B>, B>>,
    schedule: LrSchedule,
    /// Steps already done when this process started (non-zero when resuming).
    start_step: usize,
    /// Steps the run will have done when it ends.
    total_steps: usize,
    steps_per_epoch: usize,
    /// The current epoch and its example order.
    order: Option<(usize, Vec<usize>)>,
    since_evaluation: SinceEvaluation,
    /// The replicas of data-parallel training (several devices or nodes); this struct's
    /// model and optimizer are this process's replica 0.
    workers: Option<Workers<B>>,
    /// f16 training's dynamic loss scale.
    loss_scale: Option<LossScale>,
}

impl<'a, B: RoFormerTrainingBackend> Trainer<'a, B> {
    /// A fresh model and optimizer, or, with `resume_from`, those of the run's last
    /// checkpoint.
    fn new(
        config: &'a TrainConfig,
        splits: Splits,
        tokenizer: &TextTokenizer,
        resume_from: Option<&Path>,
        device: &'a B::Device,
    ) -> Result<Self, TrainError> {
        let training = &config.training;
        let steps_per_epoch = training.steps_per_epoch(splits.train.len());
        let total_steps = training.total_steps(splits.train.len());
        let schedule = training.schedule(total_steps);

        // The initial weights are the backend generator's first draws.
        B::seed(device, training.seed);
        let model = RoFormerForMaskedLM::<B>::new(&config.model, device)?
            .with_precision(training.precision);
        let optimizer = training.optimizer().init::<B, RoFormerForMaskedLM<B>>();
        let (start_step, loss_scale, model, optimizer) = match resume_from {
            Some(run_dir) => {
                let (state, model, optimizer) = load_checkpoint(run_dir, model, optimizer, device)?;
                let loss_scale = state
                    .loss_scale
                    .or_else(|| LossScale::for_precision(training.precision));
                (state.step, loss_scale, model, optimizer)
            }
            None => (
                0,
                LossScale::for_precision(training.precision),
                model,
                optimizer,
            ),
        };
        let distributed = &config.distributed;
        let (model, workers) = if distributed.replicas(training.devices) > 1 {
            // burn draws a parameter's initial values when it is first used; the replicas
            // start from replica 0's values, so those are drawn here, in field order.
            let mut model = model.clone().load_record(model.into_record());
            if distributed.nodes > 1 && resume_from.is_none() {
                model = positional_ids(model);
            }
            let sizes = [
                splits.train.len(),
                splits.valid.len(),
                tokenizer.vocab_size(),
            ];
            let setup = Setup {
                collective: collective_config(distributed, training.devices)?,
                placement: Placement::new(distributed, training.devices),
                digest: run_digest(config, &sizes, start_step, &model),
                timeout: distributed.timeout(),
            };
            // Copies of replica 0, parameter ids included: the all-reduce pairs gradients
            // by id, in id order.
            let replicas = (1..training.devices)
                .map(|_| {
                    (
                        model.clone().fork(device),
                        optimizer.clone(),
                        device.clone(),
                    )
                })
                .collect();
            let workers = Workers::start(replicas, device, tokenizer.special().pad, setup)?;
            (model, Some(workers))
        } else {
            (model, None)
        };
        Ok(Self {
            config,
            device,
            splits,
            masking: Masking {
                special: tokenizer.special(),
                vocab: tokenizer.vocab_size(),
                probability: config.data.mask_probability,
            },
            model: Some(model),
            optimizer: Some(optimizer),
            schedule,
            start_step,
            total_steps,
            steps_per_epoch,
            order: None,
            since_evaluation: SinceEvaluation::default(),
            workers,
            loss_scale,
        })
    }

    fn model(&self) -> &RoFormerForMaskedLM<B> {
        self.model
            .as_ref()
            .expect("the optimizer hands the model back")
    }

    fn optimizer(&self) -> &OptimizerAdaptor<FusedAdamW, RoFormerForMaskedLM<B>, B> {
        self.optimizer
            .as_ref()
            .expect("replica 0's thread hands the optimizer back")
    }

    /// The training examples of `step` (0-based): a slice of its epoch's order.
    fn examples(&mut self, step: usize) -> Vec<MaskedExample> {
        let seed = self.config.training.seed;
        let batch_size = self.config.training.batch_size;
        let epoch = step / self.steps_per_epoch;
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.order = Some((epoch, self.splits.train.epoch_order(seed, epoch)));
        }
        let indices = &self.order.as_ref().expect("set above").1;
        let within = step % self.steps_per_epoch;
        indices[within * batch_size..((within + 1) * batch_size).min(indices.len())]
            .iter()
            .map(|&i| {
                self.splits
                    .train
                    .training_example(i, &self.masking, seed, epoch)
            })
            .collect()
    }

    /// Runs optimisation step `step` (0-based).
    fn step(&mut self, step: usize) -> Result<StepReport, TrainError> {
        let started = Instant::now();
        let examples = self.examples(step);
        let dropout = dropout_seed(self.config.training.seed, step);
        let model = self
            .model
            .take()
            .expect("the optimizer hands the model back");
        let learning_rate = self.schedule.at(step);
        let (model, loss_value) = match &mut self.workers {
            None => {
                let batch = mlm_batch::<B>(&examples, self.masking.special.pad, self.device);
                self.since_evaluation.tokens += batch.real_tokens;
                B::seed(self.device, dropout);
                let (loss, _) = masked_lm_step(&model, batch);
                let loss_value: f64 = loss.clone().into_scalar().elem();
                let optimizer = self.optimizer.as_mut().expect("kept between steps");
                let optimised = optimise(
                    model,
                    loss,
                    optimizer,
                    learning_rate,
                    self.loss_scale.as_mut(),
                );
                (optimised.model, loss_value)
            }
            Some(workers) => {
                self.since_evaluation.tokens +=
                    examples.iter().map(|e| e.input_ids.len()).sum::<usize>();
                let batch_masked = masked_tokens(&examples);
                let placement = workers.placement().clone();
                let mut shares = split_batch(examples, placement.total)
                    .into_iter()
                    .enumerate()
                    .skip(placement.first)
                    .take(workers.local_replicas())
                    .map(|(replica, examples)| Share {
                        examples,
                        batch_masked,
                        learning_rate,
                        dropout_seed: mask_seed(dropout, replica as u64, u64::MAX),
                        replica,
                        replicas: placement.total,
                    });
                let own = shares.next().expect("a replica per node at least");
                let optimizer = self.optimizer.take().expect("kept between steps");
                let (model, optimizer, loss) =
                    workers.step(model, optimizer, own, shares.collect(), self.device)?;
                self.optimizer = Some(optimizer);
                (model, loss)
            }
        };
        self.model = Some(model);
        let totals = &mut self.since_evaluation;
        totals.seconds += started.elapsed().as_secs_f64();
        totals.loss_sum += loss_value;
        totals.steps += 1;
        Ok(StepReport {
            loss: loss_value,
            learning_rate,
            tokens_per_second: totals.tokens_per_second(),
        })
    }

    /// Whether the run evaluates once `done` steps are done.
    fn evaluates_after(&self, done: usize) -> bool {
        done.is_multiple_of(self.config.training.eval_every) || done == self.total_steps
    }

    /// Whether the run writes a checkpoint once `done` steps are done.
    fn checkpoints_after(&self, done: usize) -> bool {
        done.is_multiple_of(self.config.training.checkpoint_every) || done == self.total_steps
    }

    /// Evaluates after `done` steps (`last` is the step just taken) and starts new
    /// training totals for the next record.
    fn evaluation(&mut self, done: usize, last: &StepReport) -> EvalRecord {
        let (valid_loss, valid_accuracy) = self.evaluate();
        let record = EvalRecord {
            step: done,
            train_loss: self.since_evaluation.mean_loss(),
            valid_loss,
            valid_accuracy,
            tokens_per_second: last.tokens_per_second,
            learning_rate: last.learning_rate,
        };
        self.since_evaluation = SinceEvaluation::default();
        record
    }

    /// The validation examples an evaluation covers (`eval_batches` batches, or all).
    fn evaluated_sequences(&self) -> usize {
        let valid = self.splits.valid.len();
        match self.config.training.eval_batches {
            0 => valid,
            n => (n * self.config.training.batch_size).min(valid),
        }
    }

    /// Mean masked-LM loss and accuracy over the validation split, with fixed masks.
    fn evaluate(&self) -> (f64, f64) {
        let model = self.model().valid();
        let (seed, batch_size) = (self.config.training.seed, self.config.training.batch_size);
        let covered = self.evaluated_sequences();
        let (mut loss_sum, mut correct, mut count) = (0.0, 0usize, 0usize);
        for batch_index in 0..covered.div_ceil(batch_size) {
            let examples: Vec<MaskedExample> = (batch_index * batch_size
                ..((batch_index + 1) * batch_size).min(covered))
                .map(|i| self.splits.valid.validation_example(i, &self.masking, seed))
                .collect();
            let batch =
                mlm_batch::<B::InnerBackend>(&examples, self.masking.special.pad, self.device);
            let masked = batch.masked_count;
            let (loss, hits) = masked_lm_step(&model, batch);
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
    /// position (the same examples and masks [`Trainer::evaluate`] uses): the floor a
    /// trained model must beat.
    fn majority_baseline(&self) -> f64 {
        let seed = self.config.training.seed;
        let mut counts = std::collections::HashMap::<i64, usize>::new();
        let mut total = 0usize;
        for index in 0..self.evaluated_sequences() {
            let example = self
                .splits
                .valid
                .validation_example(index, &self.masking, seed);
            for label in example.labels.into_iter().filter(|&l| l >= 0) {
                *counts.entry(label).or_default() += 1;
                total += 1;
            }
        }
        counts.values().copied().max().unwrap_or(0) as f64 / total.max(1) as f64
    }

    /// Writes a checkpoint after `done` steps and the model directory beside it, so that
    /// a stopped run can be used as it is.
    fn checkpoint(&self, run_dir: &Path, done: usize) -> Result<PathBuf, TrainError> {
        let state = TrainingState {
            step: done,
            loss_scale: self.loss_scale,
        };
        let path = save_checkpoint(run_dir, state, self.model(), self.optimizer())?;
        self.save_model(run_dir)?;
        Ok(path)
    }

    /// Writes the model (inference weights and config) into `run_dir`.
    fn save_model(&self, run_dir: &Path) -> Result<(), TrainError> {
        Ok(save_model(
            run_dir,
            &self.config.model,
            &self.model().valid(),
        )?)
    }
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
