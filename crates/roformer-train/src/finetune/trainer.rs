//! The fine-tuning loop: a pretrained encoder with a new head (a sequence classifier, or a
//! token classifier for tagging) trained on labelled examples, into a run directory that is
//! itself the fine-tuned model's directory.
//!
//! Generic over the training backend as [`crate::train::train`] is, and deterministic the
//! same way: the head's initial weights come from the seed, the example order from
//! (seed, epoch), the dropout masks from (seed, step), so a resumed run repeats an
//! uninterrupted one. It reuses pretraining's optimizer, schedule, checkpoints and metrics
//! file; the model kept in the directory is the one with the best validation macro-F1
//! (entity F1 for BIO tagging).

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::{ElementConversion, Tensor, TensorPrimitive};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use roformer::hf_weights::RoFormerWeights;
use roformer::{
    IGNORE_INDEX, PositionEmbeddingType, RoFormerBackend, RoFormerConfig,
    RoFormerForSequenceClassification, RoFormerForTokenClassification, RoFormerModel,
    RoFormerTrainingBackend,
};
use serde::{Deserialize, Serialize};

use crate::data::mask_seed;
use crate::error::TrainError;
use crate::finetune::config::{FinetuneConfig, TaskType};
use crate::finetune::labelled::{LabelledExample, TaggedExample, read_labelled, read_tagged};
use crate::finetune::report::write_report;
use crate::finetune::scores::{Scores, scores};
use crate::train::checkpoint::{
    TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint,
};
use crate::train::dropout_seed;
use crate::train::loss_scale::{LossScale, optimise};
use crate::train::metrics::{
    LossRecord, StepRecord, append_record, plot_losses, read_step_records, truncate_step_records,
};
use crate::train::optimizer::FusedAdamW;
use crate::train::{METRICS_FILE, PLOT_FILE};
use roformer_infer::entities::{entity_scores, is_bio};
use roformer_infer::fs_atomic::write_atomic;
use roformer_infer::inputs::{
    PairInput, label_tensor, pair_batch, pair_input, word_rows, word_windows,
};
use roformer_infer::model_dir::{
    CLASSIFIER_ARCHITECTURE, TAGGER_ARCHITECTURE, save_classifier_config, save_classifier_weights,
};
use roformer_infer::model_dir::{
    CONFIG_FILE, WEIGHTS_FILE, load_model, load_tokenizer, save_tokenizer,
};
use roformer_infer::task_model::TaskModel;
use roformer_infer::tokenizer::TextTokenizer;

/// The resolved fine-tuning config saved in a run directory (read back by `--resume`).
pub const FINETUNE_CONFIG_FILE: &str = "finetune.toml";

/// Salt of the seed of the validation split drawn from the training file.
const SPLIT_SALT: u64 = 0x5B11_7FAC_7104;

/// One evaluation: a line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneRecord {
    /// Optimisation steps done.
    pub step: usize,
    /// Mean training loss since the previous evaluation.
    pub train_loss: f64,
    /// Mean cross-entropy on the validation examples.
    pub valid_loss: f64,
    /// Fraction of validation examples classified correctly.
    pub valid_accuracy: f64,
    /// Macro-averaged F1 on the validation examples (words, for token classification).
    pub valid_macro_f1: f64,
    /// Entity-level F1 on the validation sentences (token classification with BIO labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_entity_f1: Option<f64>,
    /// Learning rate at this step.
    pub learning_rate: f64,
}

impl FinetuneRecord {
    /// The validation score the best model is chosen by: entity F1 where there is one,
    /// macro-F1 otherwise.
    pub fn selection_score(&self) -> f64 {
        self.valid_entity_f1.unwrap_or(self.valid_macro_f1)
    }
}

impl StepRecord for FinetuneRecord {
    fn step(&self) -> usize {
        self.step
    }
}

impl LossRecord for FinetuneRecord {
    fn train_loss(&self) -> f64 {
        self.train_loss
    }
    fn valid_loss(&self) -> f64 {
        self.valid_loss
    }
}

/// What the loop reports while it runs.
#[derive(Debug, Clone)]
pub enum FinetuneEvent {
    /// Data, tokenizer and model are ready.
    Started {
        /// Steps already done (non-zero when resuming).
        start_step: usize,
        /// Steps the run will have done when it ends.
        total_steps: usize,
        /// Training examples.
        train_examples: usize,
        /// Validation examples.
        valid_examples: usize,
        /// The labels, by output index.
        labels: Vec<String>,
        /// Trainable parameters.
        parameters: usize,
        /// The pretrained model's `max_position_embeddings`, when the task's longer
        /// inputs raised it (rotary models only need longer rotation tables).
        extended_positions_from: Option<usize>,
    },
    /// One optimisation step is done.
    Step {
        /// Steps done.
        step: usize,
        /// Steps the run will do.
        total_steps: usize,
        /// This step's loss.
        loss: f64,
        /// Learning rate used.
        learning_rate: f64,
    },
    /// An evaluation; `best` when its macro-F1 beat every earlier one (the model
    /// directory now holds this model).
    Evaluated {
        /// The record appended to `metrics.jsonl`.
        record: FinetuneRecord,
        /// Whether this is the best model so far.
        best: bool,
    },
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
pub struct FinetuneSummary {
    /// The run directory (a classifier's model directory).
    pub run_dir: PathBuf,
    /// The evaluation of the model kept.
    pub best: Option<FinetuneRecord>,
    /// The kept model's validation scores per class and confusion matrix (also in
    /// `scores.json` and `confusion.png`), when the run reached its last step.
    pub best_scores: Option<Scores>,
    /// The last evaluation.
    pub last: Option<FinetuneRecord>,
    /// Validation accuracy of always predicting the training split's most frequent label.
    pub majority_baseline_accuracy: f64,
    /// The labels, by output index.
    pub labels: Vec<String>,
}

/// Where a run starts.
pub enum FinetuneStart {
    /// A new run into an empty (or new) directory.
    Fresh(Box<FinetuneConfig>),
    /// Continue the run in this directory from its last checkpoint.
    Resume,
}

/// An encoded example: its input and the label of each of its units (one for a whole
/// input; one per word of the window, with where each word starts, for token
/// classification).
struct Example {
    input: PairInput,
    labels: Vec<usize>,
    word_starts: Vec<usize>,
}

/// The encoder a run starts from and what it needs.
struct Pretrained<B: RoFormerBackend> {
    config: RoFormerConfig,
    tokenizer: TextTokenizer,
    /// `None` when resuming (the checkpoint holds the weights).
    encoder: Option<RoFormerModel<B>>,
    /// The pretrained `max_position_embeddings`, when the task's longer inputs raised it.
    extended_positions_from: Option<usize>,
}

/// Fine-tunes as the config says, writing into `run_dir`. `observe` receives progress;
/// answering `Break` to a [`FinetuneEvent::Checkpointed`] stops the run there (continue
/// it with [`FinetuneStart::Resume`]).
pub fn finetune<B: RoFormerTrainingBackend>(
    start: FinetuneStart,
    run_dir: &Path,
    device: &B::Device,
    observe: &mut dyn FnMut(FinetuneEvent) -> ControlFlow<()>,
) -> Result<FinetuneSummary, TrainError> {
    let resuming = matches!(start, FinetuneStart::Resume);
    let mut config = match start {
        FinetuneStart::Fresh(config) => {
            refuse_taken(run_dir)?;
            *config
        }
        FinetuneStart::Resume => FinetuneConfig::from_file(&run_dir.join(FINETUNE_CONFIG_FILE))?,
    };
    // Before anything is written, so a refused run leaves no run directory behind.
    config.training.precision.check_supported::<B>(device)?;
    let tagging = config.task.kind == TaskType::TokenClassification;
    // Labels first: a bad labelled file is refused before the model is read.
    let rows = if tagging {
        Rows::Tagged(tagged_splits(&config)?)
    } else {
        Rows::Labelled(labelled_splits(&config)?)
    };
    let labels = rows.labels().to_vec();
    config.task.labels = Some(labels.clone());
    let pretrained = pretrained::<B>(&config, run_dir, resuming, device)?;
    let max_len = config.task.max_seq_len;
    let tokenizer = &pretrained.tokenizer;
    let label_index = |label: &String| {
        labels
            .iter()
            .position(|l| l == label)
            .expect("labels were checked")
    };
    let (train_examples, valid_examples) = match &rows {
        Rows::Labelled(splits) => {
            let encode = |rows: &[LabelledExample]| -> Result<Vec<Example>, TrainError> {
                rows.iter()
                    .map(|row| {
                        Ok(Example {
                            input: pair_input(
                                tokenizer,
                                &row.text,
                                row.text_pair.as_deref(),
                                max_len,
                            )?,
                            labels: vec![label_index(&row.label)],
                            word_starts: Vec::new(),
                        })
                    })
                    .collect()
            };
            (encode(&splits.train)?, encode(&splits.validation)?)
        }
        Rows::Tagged(splits) => {
            let encode = |rows: &[TaggedExample]| -> Result<Vec<Example>, TrainError> {
                let mut examples = Vec::new();
                for row in rows {
                    for window in word_windows(tokenizer, &row.words, max_len)? {
                        examples.push(Example {
                            labels: row.labels[window.words].iter().map(label_index).collect(),
                            input: window.input,
                            word_starts: window.word_starts,
                        });
                    }
                }
                Ok(examples)
            };
            (encode(&splits.train)?, encode(&splits.validation)?)
        }
    };
    let architecture = if tagging {
        TAGGER_ARCHITECTURE
    } else {
        CLASSIFIER_ARCHITECTURE
    };
    if !resuming {
        std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
        save_tokenizer(run_dir, tokenizer)?;
        save_classifier_config(run_dir, &pretrained.config, &labels, architecture)?;
        write_atomic(
            &run_dir.join(FINETUNE_CONFIG_FILE),
            config.to_toml_string().as_bytes(),
        )?;
    }
    let data = TaskData {
        train: train_examples,
        valid: valid_examples,
        labels,
        entity_labels: tagging && is_bio(rows.labels()),
    };
    if tagging {
        train_head::<B, RoFormerForTokenClassification<B>>(
            &config, pretrained, data, run_dir, resuming, device, observe,
        )
    } else {
        train_head::<B, RoFormerForSequenceClassification<B>>(
            &config, pretrained, data, run_dir, resuming, device, observe,
        )
    }
}

/// The labelled rows of a run, by task.
enum Rows {
    Labelled(LabelledSplits),
    Tagged(TaggedSplits),
}

impl Rows {
    fn labels(&self) -> &[String] {
        match self {
            Rows::Labelled(splits) => &splits.labels,
            Rows::Tagged(splits) => &splits.labels,
        }
    }
}

/// The encoded examples of a run.
struct TaskData {
    train: Vec<Example>,
    valid: Vec<Example>,
    labels: Vec<String>,
    /// Whether the labels are BIO (entity scores are computed, and select the best model).
    entity_labels: bool,
}

/// The model config, tokenizer and encoder a run starts from: the `init_from` model for
/// a fresh run, the run directory's config and tokenizer when resuming.
fn pretrained<B: RoFormerTrainingBackend>(
    config: &FinetuneConfig,
    run_dir: &Path,
    resuming: bool,
    device: &B::Device,
) -> Result<Pretrained<B>, TrainError> {
    if resuming {
        return Ok(Pretrained {
            config: RoFormerConfig::from_json_file(&run_dir.join(CONFIG_FILE))?,
            tokenizer: load_tokenizer(run_dir)?,
            encoder: None,
            extended_positions_from: None,
        });
    }
    let loaded = load_model::<B>(&config.task.init_from, device)?;
    let tokenizer = loaded.tokenizer()?.clone();
    let encoder = match loaded.weights {
        RoFormerWeights::MaskedLm(model) => model.roformer,
        RoFormerWeights::Encoder(model) => model,
    };
    let mut model_config = loaded.config;
    let pretrained_positions = model_config.max_position_embeddings;
    let extended = fit_positions(config, &mut model_config)?;
    Ok(Pretrained {
        config: model_config,
        tokenizer,
        encoder: Some(encoder),
        extended_positions_from: extended.then_some(pretrained_positions),
    })
}

/// The training loop for a model with head `M`.
fn train_head<B, M>(
    config: &FinetuneConfig,
    pretrained: Pretrained<B>,
    data: TaskData,
    run_dir: &Path,
    resuming: bool,
    device: &B::Device,
    observe: &mut dyn FnMut(FinetuneEvent) -> ControlFlow<()>,
) -> Result<FinetuneSummary, TrainError>
where
    B: RoFormerTrainingBackend,
    M: TaskModel<B> + AutodiffModule<B> + Clone,
    M::InnerModule: TaskModel<B::InnerBackend>,
{
    let training = &config.training;
    let TaskData {
        train: train_examples,
        valid: valid_examples,
        labels,
        entity_labels,
    } = data;
    let encoder_config = pretrained.config;
    let steps_per_epoch = training.steps_per_epoch(train_examples.len());
    let total_steps = training.total_steps(train_examples.len());
    let schedule = training.schedule(total_steps);
    B::seed(device, training.seed);
    let mut model =
        M::fresh(&encoder_config, labels.len(), device)?.with_precision(training.precision);
    if let Some(encoder) = pretrained.encoder {
        model = model.with_encoder_weights(encoder);
    }
    let mut optimizer: OptimizerAdaptor<FusedAdamW, M, B> = training.optimizer().init();
    let metrics_path = run_dir.join(METRICS_FILE);
    let mut start_step = 0;
    let mut loss_scale = LossScale::for_precision(training.precision);
    if resuming {
        let (state, restored, restored_optimizer) =
            load_checkpoint(run_dir, model, optimizer, device)?;
        (start_step, model, optimizer) = (state.step, restored, restored_optimizer);
        loss_scale = state.loss_scale.or(loss_scale);
        truncate_step_records::<FinetuneRecord>(&metrics_path, start_step)?;
    }
    let mut history: Vec<FinetuneRecord> = read_step_records(&metrics_path)?;
    let mut best = history.iter().cloned().reduce(|a, b| {
        if b.selection_score() > a.selection_score() {
            b
        } else {
            a
        }
    });
    let mut last = history.last().cloned();

    let _ = observe(FinetuneEvent::Started {
        start_step,
        total_steps,
        train_examples: train_examples.len(),
        valid_examples: valid_examples.len(),
        labels: labels.clone(),
        parameters: model.num_params(),
        extended_positions_from: pretrained.extended_positions_from,
    });
    let majority_baseline_accuracy =
        majority_baseline(&train_examples, &valid_examples, labels.len());
    let pad = pretrained.tokenizer.special().pad;
    let validation_scores =
        |predicted: &[Vec<usize>]| unit_scores(predicted, &valid_examples, &labels, entity_labels);
    let mut order: Option<(usize, Vec<usize>)> = None;
    let (mut loss_sum, mut loss_steps) = (0.0, 0usize);
    let mut model = Some(model);
    let mut finished = start_step == total_steps;
    for step in start_step..total_steps {
        let epoch = step / steps_per_epoch;
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            order = Some((
                epoch,
                epoch_order(train_examples.len(), training.seed, epoch),
            ));
        }
        let indices = &order.as_ref().expect("set above").1;
        let within = step % steps_per_epoch;
        let batch: Vec<&Example> = indices
            [within * training.batch_size..((within + 1) * training.batch_size).min(indices.len())]
            .iter()
            .map(|&i| &train_examples[i])
            .collect();
        B::seed(device, dropout_seed(training.seed, step));
        let current = model.take().expect("the optimizer hands the model back");
        let (loss, _) = unit_loss(&current, &batch, pad, device);
        let loss_value: f64 = loss.clone().into_scalar().elem();
        let learning_rate = schedule.at(step);
        let optimised = optimise(
            current,
            loss,
            &mut optimizer,
            learning_rate,
            loss_scale.as_mut(),
        );
        model = Some(optimised.model);
        loss_sum += loss_value;
        loss_steps += 1;
        let done = step + 1;
        let _ = observe(FinetuneEvent::Step {
            step: done,
            total_steps,
            loss: loss_value,
            learning_rate,
        });
        let current = model.as_ref().expect("just set");
        if done.is_multiple_of(training.eval_every) || done == total_steps {
            let (valid_loss, predicted) = evaluate(
                &current.valid(),
                &valid_examples,
                training.batch_size,
                pad,
                device,
            );
            let scored = validation_scores(&predicted);
            let record = FinetuneRecord {
                step: done,
                train_loss: loss_sum / loss_steps.max(1) as f64,
                valid_loss,
                valid_accuracy: scored.accuracy,
                valid_macro_f1: scored.macro_f1,
                valid_entity_f1: scored.entities.map(|e| e.f1),
                learning_rate,
            };
            (loss_sum, loss_steps) = (0.0, 0);
            append_record(&metrics_path, &record)?;
            history.push(record.clone());
            plot_losses(&history, "fine-tuning loss", &run_dir.join(PLOT_FILE))?;
            let is_best = best
                .as_ref()
                .is_none_or(|b| record.selection_score() > b.selection_score());
            if is_best {
                save_classifier_weights(run_dir, &encoder_config, &current.valid())?;
                best = Some(record.clone());
            }
            let _ = observe(FinetuneEvent::Evaluated {
                record: record.clone(),
                best: is_best,
            });
            last = Some(record);
        }
        finished = done == total_steps;
        if done.is_multiple_of(training.checkpoint_every) || done == total_steps {
            let state = TrainingState {
                step: done,
                loss_scale,
            };
            let path = save_checkpoint(run_dir, state, current, &optimizer)?;
            if observe(FinetuneEvent::Checkpointed { step: done, path }).is_break() {
                break;
            }
        }
    }
    // The report is of the model kept, read back from the directory as a user gets it.
    let best_scores = match (&best, finished) {
        (Some(record), true) => {
            let kept = M::load_hf(
                &encoder_config,
                labels.len(),
                &run_dir.join(WEIGHTS_FILE),
                device,
            )?;
            let (_, predicted) = evaluate(
                &kept.valid(),
                &valid_examples,
                training.batch_size,
                pad,
                device,
            );
            let scored = validation_scores(&predicted);
            write_report(run_dir, record.step, &labels, &scored)?;
            Some(scored)
        }
        _ => None,
    };
    Ok(FinetuneSummary {
        run_dir: run_dir.to_path_buf(),
        best,
        best_scores,
        last,
        majority_baseline_accuracy,
        labels,
    })
}

/// The scores of per-example predicted units against the examples' labels: accuracy and
/// F1 over all units, and entity scores when the labels are BIO.
fn unit_scores(
    predicted: &[Vec<usize>],
    examples: &[Example],
    labels: &[String],
    entity_labels: bool,
) -> Scores {
    let flat_predicted: Vec<usize> = predicted.iter().flatten().copied().collect();
    let flat_targets: Vec<usize> = examples
        .iter()
        .flat_map(|e| e.labels.iter().copied())
        .collect();
    let mut scored = scores(&flat_predicted, &flat_targets, labels.len());
    if entity_labels {
        let names =
            |units: &[usize]| -> Vec<&str> { units.iter().map(|&u| labels[u].as_str()).collect() };
        let predicted: Vec<Vec<&str>> = predicted.iter().map(|p| names(p)).collect();
        let targets: Vec<Vec<&str>> = examples.iter().map(|e| names(&e.labels)).collect();
        scored.entities = Some(entity_scores(&predicted, &targets));
    }
    scored
}

/// The labelled examples of a fine-tuning config, split.
pub(crate) struct LabelledSplits {
    pub train: Vec<LabelledExample>,
    pub validation: Vec<LabelledExample>,
    /// By output index: the config's list, or the sorted distinct labels of the training
    /// file.
    pub labels: Vec<String>,
}

/// The tagged sentences of a token-classification config, split.
pub(crate) struct TaggedSplits {
    pub train: Vec<TaggedExample>,
    pub validation: Vec<TaggedExample>,
    /// By output index: the config's list, or the sorted distinct labels of the training
    /// file.
    pub labels: Vec<String>,
}

/// The labels of a config, or the sorted distinct labels of the training file (at least 2).
fn labels_of<'a>(
    config: &FinetuneConfig,
    seen: impl Iterator<Item = &'a String>,
) -> Result<Vec<String>, TrainError> {
    if let Some(labels) = &config.task.labels {
        return Ok(labels.clone());
    }
    let distinct: BTreeSet<&String> = seen.collect();
    if distinct.len() < 2 {
        return Err(TrainError::data(
            config.data.train.display().to_string(),
            format!(
                "expected at least 2 distinct labels, found {}",
                distinct.len()
            ),
        ));
    }
    Ok(distinct.into_iter().cloned().collect())
}

/// The training and validation examples of `config` and its labels.
pub(crate) fn labelled_splits(config: &FinetuneConfig) -> Result<LabelledSplits, TrainError> {
    let fields = config.task.fields();
    let train_file = &config.data.train;
    let mut train_rows = read_labelled(train_file, &fields, config.task.labels.as_deref())?;
    let labels = labels_of(config, train_rows.iter().map(|e| &e.label))?;
    let valid_rows = match &config.data.validation {
        Some(path) => read_labelled(path, &fields, Some(&labels))?,
        None => split_off_validation(&mut train_rows, config, train_file)?,
    };
    Ok(LabelledSplits {
        train: train_rows,
        validation: valid_rows,
        labels,
    })
}

/// The training and validation sentences of a token-classification `config` and its
/// labels.
pub(crate) fn tagged_splits(config: &FinetuneConfig) -> Result<TaggedSplits, TrainError> {
    let fields = config.task.tag_fields();
    let train_file = &config.data.train;
    let mut train_rows = read_tagged(train_file, &fields, config.task.labels.as_deref())?;
    let labels = labels_of(config, train_rows.iter().flat_map(|e| &e.labels))?;
    let valid_rows = match &config.data.validation {
        Some(path) => read_tagged(path, &fields, Some(&labels))?,
        None => split_off_validation(&mut train_rows, config, train_file)?,
    };
    Ok(TaggedSplits {
        train: train_rows,
        validation: valid_rows,
        labels,
    })
}

/// A fresh run refuses a directory that already holds a run or a model.
fn refuse_taken(run_dir: &Path) -> Result<(), TrainError> {
    if latest_checkpoint(run_dir).is_some() || run_dir.join(FINETUNE_CONFIG_FILE).exists() {
        return Err(TrainError::model_dir(
            run_dir,
            "already holds a run; continue it with --resume or choose another --output",
        ));
    }
    if let Some(name) = [CONFIG_FILE, WEIGHTS_FILE]
        .into_iter()
        .find(|name| run_dir.join(name).exists())
    {
        return Err(TrainError::model_dir(
            run_dir,
            format!(
                "already holds {name}, which fine-tuning would overwrite; choose another --output"
            ),
        ));
    }
    Ok(())
}

/// The task's limits against the model's. A model whose positions are not a learned
/// table (rotary, fixed sinusoidal or none) takes inputs longer than it was pretrained
/// on: its `max_position_embeddings` is raised to `task.max_seq_len` (the rotation
/// tables are computed, not learned). Returns whether it was raised.
fn fit_positions(config: &FinetuneConfig, model: &mut RoFormerConfig) -> Result<bool, TrainError> {
    let fail = |key: &str, message: String| {
        Err(TrainError::Config {
            file: FINETUNE_CONFIG_FILE.into(),
            key: key.into(),
            message,
        })
    };
    if config.task.kind == TaskType::SentencePair && model.type_vocab_size < 2 {
        return fail(
            "task.type",
            format!(
                "sentence-pair needs two segment types; the model has type_vocab_size {}",
                model.type_vocab_size
            ),
        );
    }
    if config.task.max_seq_len <= model.max_position_embeddings {
        return Ok(false);
    }
    if model.position_embedding_type == PositionEmbeddingType::Absolute {
        return fail(
            "task.max_seq_len",
            format!(
                "expected at most the model's max_position_embeddings ({}) for its learned position table, got {}",
                model.max_position_embeddings, config.task.max_seq_len
            ),
        );
    }
    model.max_position_embeddings = config.task.max_seq_len;
    Ok(true)
}

/// Moves a seeded `validation_fraction` of the training rows into a validation split.
fn split_off_validation<T>(
    rows: &mut Vec<T>,
    config: &FinetuneConfig,
    train_file: &Path,
) -> Result<Vec<T>, TrainError> {
    let count = ((rows.len() as f64 * config.data.validation_fraction).round() as usize).max(1);
    if count >= rows.len() {
        return Err(TrainError::data(
            train_file.display().to_string(),
            format!(
                "{} examples are too few to hold out a validation fraction of {}; give data.validation",
                rows.len(),
                config.data.validation_fraction
            ),
        ));
    }
    let mut indices: Vec<usize> = (0..rows.len()).collect();
    indices.shuffle(&mut StdRng::seed_from_u64(mask_seed(
        config.training.seed ^ SPLIT_SALT,
        0,
        0,
    )));
    let mut held: Vec<usize> = indices[..count].to_vec();
    held.sort_unstable();
    let mut valid = Vec::with_capacity(count);
    for &index in held.iter().rev() {
        valid.push(rows.remove(index));
    }
    valid.reverse();
    Ok(valid)
}

/// The order in which `epoch` visits the training examples (a function of seed and epoch).
fn epoch_order(len: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..len).collect();
    indices.shuffle(&mut StdRng::seed_from_u64(mask_seed(
        seed,
        epoch as u64,
        u64::MAX,
    )));
    indices
}

/// Mean cross-entropy of the head's logits over the units of `batch`, and the logits
/// (`[units, labels]`).
fn unit_loss<B: RoFormerBackend, M: TaskModel<B>>(
    model: &M,
    batch: &[&Example],
    pad: u32,
    device: &B::Device,
) -> (Tensor<B, 1>, Tensor<B, 2>) {
    let inputs: Vec<&PairInput> = batch.iter().map(|e| &e.input).collect();
    let labels: Vec<usize> = batch
        .iter()
        .flat_map(|e| e.labels.iter().copied())
        .collect();
    let rows = M::LABELS_WORDS.then(|| {
        let starts: Vec<&[usize]> = batch.iter().map(|e| e.word_starts.as_slice()).collect();
        word_rows::<B>(&inputs, &starts, device)
    });
    let logits = model.unit_logits(pair_batch::<B>(&inputs, pad, device), rows);
    let output = B::cross_entropy(
        logits.clone().into_primitive().tensor(),
        label_tensor::<B>(&labels, device).into_primitive(),
        IGNORE_INDEX,
    );
    (
        Tensor::from_primitive(TensorPrimitive::Float(output.loss)),
        logits,
    )
}

/// Mean validation loss per unit and the predicted label of each unit, example by example.
fn evaluate<B: RoFormerBackend, M: TaskModel<B>>(
    model: &M,
    examples: &[Example],
    batch_size: usize,
    pad: u32,
    device: &B::Device,
) -> (f64, Vec<Vec<usize>>) {
    let (mut loss_sum, mut units) = (0.0, 0usize);
    let mut predicted = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(batch_size) {
        let batch: Vec<&Example> = chunk.iter().collect();
        let (loss, logits) = unit_loss(model, &batch, pad, device);
        let loss: f64 = loss.into_scalar().elem();
        let count: usize = chunk.iter().map(|e| e.labels.len()).sum();
        loss_sum += loss * count as f64;
        units += count;
        let data = logits.argmax(1).into_data();
        let mut classes = data.iter::<i64>();
        for example in chunk {
            predicted.push(
                classes
                    .by_ref()
                    .take(example.labels.len())
                    .map(|c| c as usize)
                    .collect(),
            );
        }
    }
    (loss_sum / units.max(1) as f64, predicted)
}

/// Accuracy on the units of `valid` of always predicting the most frequent label of
/// `train`'s units (the lowest index on a tie), as `roformer baseline` scores it.
fn majority_baseline(train: &[Example], valid: &[Example], classes: usize) -> f64 {
    let mut counts = vec![0usize; classes];
    for label in train.iter().flat_map(|e| &e.labels) {
        counts[*label] += 1;
    }
    let majority = (0..classes)
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .unwrap_or(0);
    let units = valid.iter().flat_map(|e| &e.labels);
    let (hits, total) = units.fold((0, 0), |(h, t), &l| (h + usize::from(l == majority), t + 1));
    hits as f64 / total.max(1) as f64
}
