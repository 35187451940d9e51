//! Fine-tuning: a pretrained encoder with a new head (a sequence classifier, or a token
//! classifier for tagging) trained on labelled examples, into a run directory that is
//! itself the fine-tuned model's directory. The run loop is [`crate::run`]'s, as for
//! pretraining; the head is a [`HeadTask`]. The model kept in the directory is the one
//! with the best validation macro-F1 (entity F1 for BIO tagging).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use roformer::hf_weights::RoFormerWeights;
use roformer::{
    PositionEmbeddingType, RoFormerBackend, RoFormerConfig, RoFormerForSequenceClassification,
    RoFormerForTokenClassification, RoFormerModel, RoFormerTrainingBackend,
};

use crate::error::TrainError;
use crate::finetune::adapt::{ADAPT_DIR, adapt, adapt_phase};
use crate::finetune::config::{FinetuneConfig, TaskType};
use crate::finetune::examples::{Example, TaskData, majority_baseline};
use crate::finetune::head::HeadTask;
use crate::finetune::labelled::{LabelledExample, TaggedExample};
use crate::finetune::record::FinetuneRecord;
use crate::finetune::report::write_report;
use crate::finetune::scores::Scores;
use crate::finetune::splits::{LabelledSplits, TaggedSplits, labelled_splits, tagged_splits};
use crate::run::checkpoint::latest_checkpoint;
use crate::run::{RunEvent, RunSettings, RunStart, refuse_taken, run_loop};
use crate::train::TrainEvent;
use roformer_infer::entities::is_bio;
use roformer_infer::fs_atomic::write_atomic;
use roformer_infer::inputs::{pair_input, word_windows};
use roformer_infer::model_dir::{
    CLASSIFIER_ARCHITECTURE, CONFIG_FILE, TAGGER_ARCHITECTURE, WEIGHTS_FILE, load_model,
    load_tokenizer, save_classifier_config, save_tokenizer,
};
use roformer_infer::task_model::TaskModel;
use roformer_infer::tokenizer::TextTokenizer;

/// The resolved fine-tuning config saved in a run directory (read back by `--resume`).
pub const FINETUNE_CONFIG_FILE: &str = "finetune.toml";

/// What fine-tuning says when it starts, beside the run loop's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinetuneDetails {
    /// The labels, by output index.
    pub labels: Vec<String>,
    /// The pretrained model's `max_position_embeddings`, when the task's longer inputs
    /// raised it (rotary models only need longer rotation tables).
    pub extended_positions_from: Option<usize>,
}

/// What fine-tuning reports while it runs.
pub type FinetuneEvent = RunEvent<FinetuneRecord, FinetuneDetails>;

/// Where a fine-tuning run starts.
pub type FinetuneStart = RunStart<FinetuneConfig>;

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
    /// Validation accuracy of always predicting the training split's most frequent label
    /// (NaN for a run stopped before its head was trained).
    pub majority_baseline_accuracy: f64,
    /// The labels, by output index.
    pub labels: Vec<String>,
}

impl FinetuneSummary {
    /// A run stopped before its head was trained (in its adaptation phase).
    fn stopped(run_dir: &Path, labels: &[String]) -> Self {
        Self {
            run_dir: run_dir.to_path_buf(),
            best: None,
            best_scores: None,
            last: None,
            majority_baseline_accuracy: f64::NAN,
            labels: labels.to_vec(),
        }
    }
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

/// Fine-tunes as the config says, writing into `run_dir`: first the `[adapt]` phase, if
/// any, whose progress `observe_adapt` receives, then the head, whose progress `observe`
/// receives. Answering `Break` to a [`RunEvent::Checkpointed`] stops the run there
/// (continue it with [`RunStart::Resume`]).
pub fn finetune<B: RoFormerTrainingBackend>(
    start: FinetuneStart,
    run_dir: &Path,
    device: &B::Device,
    observe_adapt: &mut dyn FnMut(TrainEvent) -> ControlFlow<()>,
    observe: &mut dyn FnMut(FinetuneEvent) -> ControlFlow<()>,
) -> Result<FinetuneSummary, TrainError> {
    let resuming = matches!(start, RunStart::Resume);
    let mut config = match start {
        RunStart::Fresh(config) => {
            refuse_taken(
                run_dir,
                FINETUNE_CONFIG_FILE,
                &[CONFIG_FILE, WEIGHTS_FILE],
                "fine-tuning",
            )?;
            *config
        }
        RunStart::Resume => FinetuneConfig::from_file(&run_dir.join(FINETUNE_CONFIG_FILE))?,
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
    config.task.labels = Some(rows.labels().to_vec());
    // With an adaptation phase, a resumed run whose head has no checkpoint yet starts it.
    let head_resuming =
        resuming && (!config.adapt.enabled() || latest_checkpoint(run_dir).is_some());
    let mut init_from = config.task.init_from.clone();
    if config.adapt.enabled() {
        if !head_resuming
            && !adapt_first::<B>(&config, &rows, run_dir, resuming, device, observe_adapt)?
        {
            return Ok(FinetuneSummary::stopped(run_dir, rows.labels()));
        }
        init_from = run_dir.join(ADAPT_DIR);
    }
    let pretrained = pretrained::<B>(&config, &init_from, run_dir, head_resuming, device)?;
    let data = rows.encode(&pretrained.tokenizer, config.task.max_seq_len, tagging)?;
    if !head_resuming {
        write_run_files(&config, &pretrained, &data.labels, tagging, run_dir)?;
    }
    let run = HeadRun {
        config: &config,
        run_dir,
        resuming: head_resuming,
        device,
    };
    if tagging {
        run.train::<RoFormerForTokenClassification<B>>(pretrained, data, observe)
    } else {
        run.train::<RoFormerForSequenceClassification<B>>(pretrained, data, observe)
    }
}

/// The adaptation phase of a run, fresh or resumed, with the training split's texts;
/// returns whether it finished. A fresh run's config is saved first, so that the run
/// resumes from the phase.
fn adapt_first<B: RoFormerTrainingBackend>(
    config: &FinetuneConfig,
    rows: &Rows,
    run_dir: &Path,
    resuming: bool,
    device: &B::Device,
    observe: &mut dyn FnMut(TrainEvent) -> ControlFlow<()>,
) -> Result<bool, TrainError> {
    let phase = adapt_phase::<B>(config, run_dir, device)?;
    if !resuming {
        std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
        write_atomic(
            &run_dir.join(FINETUNE_CONFIG_FILE),
            config.to_toml_string().as_bytes(),
        )?;
    }
    let texts = rows.train_texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    adapt(phase, &texts, run_dir, device, observe)
}

/// What a fresh run writes before training: the tokenizer, `config.json` with the labels
/// (so the directory is a model directory from the first kept model on), the config.
fn write_run_files<B: RoFormerBackend>(
    config: &FinetuneConfig,
    pretrained: &Pretrained<B>,
    labels: &[String],
    tagging: bool,
    run_dir: &Path,
) -> Result<(), TrainError> {
    let architecture = if tagging {
        TAGGER_ARCHITECTURE
    } else {
        CLASSIFIER_ARCHITECTURE
    };
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    save_tokenizer(run_dir, &pretrained.tokenizer)?;
    save_classifier_config(run_dir, &pretrained.config, labels, architecture)?;
    Ok(write_atomic(
        &run_dir.join(FINETUNE_CONFIG_FILE),
        config.to_toml_string().as_bytes(),
    )?)
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

    /// The texts of the training split (both texts of a pair; a tagged sentence's words
    /// joined by spaces), for masked-LM adaptation.
    fn train_texts(&self) -> Vec<String> {
        match self {
            Rows::Labelled(splits) => splits
                .train
                .iter()
                .flat_map(|row| std::iter::once(row.text.clone()).chain(row.text_pair.clone()))
                .collect(),
            Rows::Tagged(splits) => splits.train.iter().map(|row| row.words.join(" ")).collect(),
        }
    }

    /// The rows encoded for the model, inputs cut to `max_len` tokens (a tagged sentence
    /// longer than that is cut into windows of whole words).
    fn encode(
        &self,
        tokenizer: &TextTokenizer,
        max_len: usize,
        tagging: bool,
    ) -> Result<TaskData, TrainError> {
        let labels = self.labels();
        let index = |label: &String| {
            labels
                .iter()
                .position(|l| l == label)
                .expect("labels were checked")
        };
        let (train, valid) = match self {
            Rows::Labelled(splits) => {
                let encode = |rows: &[LabelledExample]| -> Result<Vec<Example>, TrainError> {
                    rows.iter()
                        .map(|row| {
                            let pair = row.text_pair.as_deref();
                            Ok(Example {
                                input: pair_input(tokenizer, &row.text, pair, max_len)?,
                                labels: vec![index(&row.label)],
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
                                labels: row.labels[window.words].iter().map(index).collect(),
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
        Ok(TaskData {
            train,
            valid,
            labels: labels.to_vec(),
            entity_labels: tagging && is_bio(labels),
        })
    }
}

/// A fine-tuning run about to train its head.
struct HeadRun<'a, B: RoFormerTrainingBackend> {
    config: &'a FinetuneConfig,
    run_dir: &'a Path,
    resuming: bool,
    device: &'a B::Device,
}

impl<B: RoFormerTrainingBackend> HeadRun<'_, B> {
    /// Trains head `M` through the run loop, then scores the kept model.
    fn train<M>(
        self,
        pretrained: Pretrained<B>,
        data: TaskData,
        observe: &mut dyn FnMut(FinetuneEvent) -> ControlFlow<()>,
    ) -> Result<FinetuneSummary, TrainError>
    where
        M: TaskModel<B> + AutodiffModule<B> + Clone,
        M::InnerModule: TaskModel<B::InnerBackend>,
    {
        let Self {
            config,
            run_dir,
            resuming,
            device,
        } = self;
        let pad = pretrained.tokenizer.special().pad;
        let resume_from = resuming.then_some(run_dir);
        let mut task = HeadTask::<B, M>::new(
            &config.training,
            pretrained.config,
            pretrained.encoder,
            data,
            pad,
            resume_from,
            device,
        )?;
        let data = &task.data;
        let majority_baseline_accuracy =
            majority_baseline(&data.train, task.evaluated_examples(), data.labels.len());
        let settings = RunSettings {
            training: &config.training,
            run_dir,
            start_step: task.start_step,
            resuming,
            loss_caption: "fine-tuning loss",
            details: FinetuneDetails {
                labels: data.labels.clone(),
                extended_positions_from: pretrained.extended_positions_from,
            },
        };
        let outcome = run_loop(&mut task, settings, observe)?;
        let best_scores = match (&outcome.best, outcome.finished) {
            (Some(record), true) => Some(kept_scores(&task, run_dir, record.step)?),
            _ => None,
        };
        Ok(FinetuneSummary {
            run_dir: run_dir.to_path_buf(),
            best: outcome.best,
            best_scores,
            last: outcome.last,
            majority_baseline_accuracy,
            labels: task.data.labels,
        })
    }
}

/// The kept model's scores on the whole validation split, read back from the directory as
/// a user gets it, and written as `scores.json` and `confusion.png`.
fn kept_scores<B, M>(
    task: &HeadTask<'_, B, M>,
    run_dir: &Path,
    step: usize,
) -> Result<Scores, TrainError>
where
    B: RoFormerTrainingBackend,
    M: TaskModel<B> + AutodiffModule<B> + Clone,
    M::InnerModule: TaskModel<B::InnerBackend>,
{
    let labels = &task.data.labels;
    let weights = run_dir.join(WEIGHTS_FILE);
    let kept = M::load_hf(&task.encoder_config, labels.len(), &weights, task.device())?;
    let (_, predicted) = task.predict(&kept.valid(), &task.data.valid);
    let scored = task.data.validation_scores(&predicted);
    write_report(run_dir, step, labels, &scored)?;
    Ok(scored)
}

/// The model config, tokenizer and encoder a run starts from: the model of `init_from`
/// (the config's, or the adaptation phase's) for a fresh run, the run directory's config
/// and tokenizer when resuming.
fn pretrained<B: RoFormerTrainingBackend>(
    config: &FinetuneConfig,
    init_from: &Path,
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
    let loaded = load_model::<B>(init_from, device)?;
    let tokenizer = loaded.tokenizer()?.clone();
    let encoder = match loaded.weights {
        RoFormerWeights::MaskedLm(model) => model.roformer,
        RoFormerWeights::Encoder(model) => model,
    };
    let mut model_config = loaded.config;
    model_config.classifier_pooling = config.task.classifier_pooling;
    let pretrained_positions = model_config.max_position_embeddings;
    let extended = fit_positions(config, &mut model_config)?;
    Ok(Pretrained {
        config: model_config,
        tokenizer,
        encoder: Some(encoder),
        extended_positions_from: extended.then_some(pretrained_positions),
    })
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
