//! Masked-LM pretraining: a [`TrainConfig`] turned into a run directory. The run loop is
//! [`crate::run`]'s; this file is the masked-LM [`Task`]: the model and optimizer (and the
//! data-parallel replicas), the masked batches of a step, and the validation loss and
//! accuracy with fixed masks.
//!
//! Generic over `B: AutodiffBackend`; the binary picks the backend. Masks derive from
//! (seed, epoch, example), so a resumed run sees the same batches as an uninterrupted one.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::{ElementConversion, Int, Tensor, TensorPrimitive};
use roformer::layout::reshape;
use roformer::{IGNORE_INDEX, RoFormerBackend, RoFormerForMaskedLM, RoFormerTrainingBackend};

use crate::config::TrainConfig;
use crate::data::{Corpus, MaskedExample, MlmBatch, mask_seed, mlm_batch};
use crate::error::TrainError;
use crate::run::checkpoint::{TrainingState, load_checkpoint, save_checkpoint};
use crate::run::loss_scale::{LossScale, optimise};
use crate::run::metrics::EvalRecord;
use crate::run::optimizer::FusedAdamW;
use crate::run::{
    RunEvent, RunRecord, RunSettings, RunStart, StepBatch, StepLoss, Task, TaskSizes, TrainFigures,
    run_loop,
};
use crate::train::data_parallel::{Setup, Share, Workers, masked_tokens, split_batch};
use crate::train::nodes::{Placement, collective_config, positional_ids, run_digest};
use crate::train::run_dir::{open_run_dir, run_tokenizer, start_run_dir};
use crate::train::split::{Masking, Splits};
use roformer_infer::model_dir::save_model;
use roformer_infer::tokenizer::TextTokenizer;

#[cfg(test)]
mod backend_equivalence;

/// What pretraining says when it starts, beside the run loop's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PretrainingDetails {
    /// Entries in the tokenizer's vocabulary.
    pub vocab_size: usize,
}

/// What pretraining reports while it runs.
pub type TrainEvent = RunEvent<EvalRecord, PretrainingDetails>;

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The last evaluation.
    pub last: Option<EvalRecord>,
    /// Accuracy of always predicting the validation split's most frequent masked token.
    pub majority_baseline_accuracy: f64,
    /// Whether the run reached its last step (rather than stopping at a checkpoint).
    pub finished: bool,
}

/// What a fresh run starts from instead of a new model and tokenizer: a pretrained model
/// whose masked-LM pretraining continues (domain adaptation before fine-tuning).
pub(crate) struct Continued<B: RoFormerTrainingBackend> {
    /// The model, built for the run's `[model]` (its positions may exceed the original's).
    pub model: RoFormerForMaskedLM<B>,
    /// Its tokenizer, saved into the run directory as a trained one would be.
    pub tokenizer: TextTokenizer,
}

impl RunRecord for EvalRecord {}

/// Trains as the config says, writing into `run_dir`. `observe` receives progress; when it
/// answers `Break` to a [`RunEvent::Checkpointed`], training stops there (the run can be
/// continued with [`RunStart::Resume`]), e.g. on Ctrl-C.
pub fn train<B: RoFormerTrainingBackend>(
    start: RunStart<TrainConfig>,
    run_dir: &Path,
    device: &B::Device,
    observe: &mut dyn FnMut(TrainEvent) -> ControlFlow<()>,
) -> Result<TrainSummary, TrainError> {
    train_from::<B>(start, run_dir, device, None, observe)
}

/// [`train`], a fresh run starting from `continued` when given (ignored when resuming:
/// the checkpoint holds the weights and the run directory the tokenizer).
pub(crate) fn train_from<B: RoFormerTrainingBackend>(
    start: RunStart<TrainConfig>,
    run_dir: &Path,
    device: &B::Device,
    continued: Option<Continued<B>>,
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
    let (model, given_tokenizer) = match continued {
        Some(Continued { model, tokenizer }) if !run.resuming => {
            (Some(Box::new(model)), Some(tokenizer))
        }
        _ => (None, None),
    };
    let tokenizer = run_tokenizer(&run, &corpus, given_tokenizer, run_dir)?;
    let splits = Splits::new(&corpus, &tokenizer, config.data.max_seq_len)?;
    start_run_dir(&run, run_dir)?;
    let start = match run.resuming {
        true => TrainerStart::Resume(run_dir),
        false => TrainerStart::Fresh(model),
    };
    let mut trainer = Trainer::<B>::new(config, splits, &tokenizer, start, device)?;
    let majority_baseline_accuracy = trainer.majority_baseline();
    let settings = RunSettings {
        training: &config.training,
        run_dir,
        start_step: trainer.start_step,
        resuming: run.resuming,
        loss_caption: "masked-LM loss",
        details: PretrainingDetails {
            vocab_size: trainer.masking.vocab,
        },
    };
    let outcome = run_loop(&mut trainer, settings, observe)?;
    Ok(TrainSummary {
        run_dir: run_dir.to_path_buf(),
        last: outcome.last,
        majority_baseline_accuracy,
        finished: outcome.finished,
    })
}

/// Where a [`Trainer`] starts.
pub(crate) enum TrainerStart<'p, B: RoFormerTrainingBackend> {
    /// A new run, from a model drawn from the seed, or from the one given.
    Fresh(Option<Box<RoFormerForMaskedLM<B>>>),
    /// The last checkpoint of this run directory.
    Resume(&'p Path),
}

/// The masked-LM task: model and optimizer, the data and its masking, and the replicas of
/// data-parallel training.
pub(crate) struct Trainer<'a, B: RoFormerTrainingBackend> {
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
    /// Steps already done when this process started (non-zero when resuming).
    start_step: usize,
    /// The replicas of data-parallel training (several devices or nodes); this struct's
    /// model and optimizer are this process's replica 0.
    workers: Option<Workers<B>>,
    /// f16 training's dynamic loss scale.
    loss_scale: Option<LossScale>,
}

impl<'a, B: RoFormerTrainingBackend> Trainer<'a, B> {
    /// A fresh model (or the one given) and optimizer, or, resuming, those of the run's
    /// last checkpoint.
    fn new(
        config: &'a TrainConfig,
        splits: Splits,
        tokenizer: &TextTokenizer,
        start: TrainerStart<'_, B>,
        device: &'a B::Device,
    ) -> Result<Self, TrainError> {
        let training = &config.training;
        // The initial weights are the backend generator's first draws.
        B::seed(device, training.seed);
        let (model, resume_from) = match start {
            TrainerStart::Fresh(Some(model)) => (*model, None),
            TrainerStart::Fresh(None) => {
                (RoFormerForMaskedLM::<B>::new(&config.model, device)?, None)
            }
            TrainerStart::Resume(run_dir) => (
                RoFormerForMaskedLM::<B>::new(&config.model, device)?,
                Some(run_dir),
            ),
        };
        let model = model.with_precision(training.precision);
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
        let mut trainer = Self {
            config,
            device,
            masking: Masking {
                special: tokenizer.special(),
                vocab: tokenizer.vocab_size(),
                probability: config.data.mask_probability,
            },
            splits,
            model: Some(model),
            optimizer: Some(optimizer),
            start_step,
            workers: None,
            loss_scale,
        };
        if config.distributed.replicas(training.devices) > 1 {
            trainer.start_replicas(resume_from.is_none())?;
        }
        Ok(trainer)
    }

    /// Starts the data-parallel replicas as copies of this process's model (replica 0).
    fn start_replicas(&mut self, fresh: bool) -> Result<(), TrainError> {
        let (config, device) = (self.config, self.device);
        let (training, distributed) = (&config.training, &config.distributed);
        let model = self.model.take().expect("a new trainer holds its model");
        // burn draws a parameter's initial values when it is first used; the replicas
        // start from replica 0's values, so those are drawn here, in field order.
        let mut model = model.clone().load_record(model.into_record());
        if distributed.nodes > 1 && fresh {
            model = positional_ids(model);
        }
        let sizes = [
            self.splits.train.len(),
            self.splits.valid.len(),
            self.masking.vocab,
        ];
        let setup = Setup {
            collective: collective_config(distributed, training.devices)?,
            placement: Placement::new(distributed, training.devices),
            digest: run_digest(config, &sizes, self.start_step, &model),
            timeout: distributed.timeout(),
        };
        // Copies of replica 0, parameter ids included: the all-reduce pairs gradients
        // by id, in id order.
        let replicas = (1..training.devices)
            .map(|_| {
                (
                    model.clone().fork(device),
                    self.optimizer().clone(),
                    device.clone(),
                )
            })
            .collect();
        self.workers = Some(Workers::start(
            replicas,
            device,
            self.masking.special.pad,
            setup,
        )?);
        self.model = Some(model);
        Ok(())
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

    /// The masked training examples of a step.
    fn examples(&self, batch: &StepBatch<'_>) -> Vec<MaskedExample> {
        let seed = self.config.training.seed;
        batch
            .examples
            .iter()
            .map(|&i| {
                self.splits
                    .train
                    .training_example(i, &self.masking, seed, batch.epoch)
            })
            .collect()
    }

    /// One step on this process alone: forward, backward and the optimizer.
    fn step_alone(
        &mut self,
        model: RoFormerForMaskedLM<B>,
        examples: &[MaskedExample],
        batch: &StepBatch<'_>,
    ) -> (RoFormerForMaskedLM<B>, StepLoss) {
        let masked = mlm_batch::<B>(examples, self.masking.special.pad, self.device);
        let tokens = masked.real_tokens;
        B::seed(self.device, batch.dropout_seed);
        let (loss, _) = masked_lm_step(&model, masked);
        let loss_value: f64 = loss.clone().into_scalar().elem();
        let optimizer = self.optimizer.as_mut().expect("kept between steps");
        let optimised = optimise(
            model,
            loss,
            optimizer,
            batch.learning_rate,
            self.config.training.max_grad_norm,
            self.loss_scale.as_mut(),
        );
        (
            optimised.model,
            StepLoss {
                loss: loss_value,
                tokens,
            },
        )
    }

    /// One step shared among the data-parallel replicas.
    fn step_shared(
        &mut self,
        model: RoFormerForMaskedLM<B>,
        examples: Vec<MaskedExample>,
        batch: &StepBatch<'_>,
    ) -> Result<(RoFormerForMaskedLM<B>, StepLoss), TrainError> {
        let workers = self.workers.as_mut().expect("several replicas");
        let tokens = examples.iter().map(|e| e.input_ids.len()).sum::<usize>();
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
                learning_rate: batch.learning_rate,
                max_grad_norm: self.config.training.max_grad_norm,
                dropout_seed: mask_seed(batch.dropout_seed, replica as u64, u64::MAX),
                replica,
                replicas: placement.total,
            });
        let own = shares.next().expect("a replica per node at least");
        let optimizer = self.optimizer.take().expect("kept between steps");
        let (model, optimizer, loss) =
            workers.step(model, optimizer, own, shares.collect(), self.device)?;
        self.optimizer = Some(optimizer);
        Ok((model, StepLoss { loss, tokens }))
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
    fn validation_scores(&self) -> (f64, f64) {
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
    /// position (the same examples and masks [`Trainer::validation_scores`] uses): the floor a
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
}

impl<B: RoFormerTrainingBackend> Task<B> for Trainer<'_, B> {
    type Record = EvalRecord;

    fn sizes(&self) -> TaskSizes {
        TaskSizes {
            train: self.splits.train.len(),
            valid: self.splits.valid.len(),
            parameters: self.model().num_params(),
        }
    }

    fn step(&mut self, batch: StepBatch<'_>) -> Result<StepLoss, TrainError> {
        let examples = self.examples(&batch);
        let model = self
            .model
            .take()
            .expect("the optimizer hands the model back");
        let (model, outcome) = match self.workers {
            None => self.step_alone(model, &examples, &batch),
            Some(_) => self.step_shared(model, examples, &batch)?,
        };
        self.model = Some(model);
        Ok(outcome)
    }

    fn evaluates(&self) -> bool {
        self.config.distributed.rank == 0
    }

    fn evaluate(&mut self, done: usize, train: TrainFigures) -> EvalRecord {
        let (valid_loss, valid_accuracy) = self.validation_scores();
        EvalRecord {
            step: done,
            train_loss: train.mean_loss,
            valid_loss,
            valid_accuracy,
            tokens_per_second: train.tokens_per_second,
            learning_rate: train.learning_rate,
        }
    }

    fn checkpoint(&self, run_dir: &Path, done: usize) -> Result<PathBuf, TrainError> {
        let state = TrainingState {
            step: done,
            loss_scale: self.loss_scale,
        };
        save_checkpoint(run_dir, state, self.model(), self.optimizer())
    }

    fn save_model(&self, run_dir: &Path) -> Result<(), TrainError> {
        Ok(save_model(
            run_dir,
            &self.config.model,
            &self.model().valid(),
        )?)
    }

    fn finish(&mut self) -> Result<(), TrainError> {
        match self.workers.take() {
            Some(workers) => workers.finish(self.device),
            None => Ok(()),
        }
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
