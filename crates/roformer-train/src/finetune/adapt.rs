//! Domain-adaptive pretraining before fine-tuning (Gururangan et al. 2020, "Don't Stop
//! Pretraining"): the `init_from` model continues masked-LM pretraining on the texts of
//! the fine-tuning run's training split, and the head is then trained on that encoder.
//!
//! The phase is an ordinary pretraining run in `RUN_DIR/adapt`, with its own steps,
//! `metrics.jsonl`, `loss.png` and checkpoints, resumed with the fine-tuning run; its
//! directory is a model directory, which the head starts from. Its positions are raised to
//! the phase's sequence length (rotary models), so a model pretrained on short sequences
//! first learns from inputs as long as the task's.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use burn::module::Module;
use roformer::hf_weights::RoFormerWeights;
use roformer::{PositionEmbeddingType, RoFormerForMaskedLM, RoFormerTrainingBackend};
use serde::{Deserialize, Serialize};

use crate::config::{DataConfig, DistributedConfig, TokenizerConfig, TrainConfig, TrainingConfig};
use crate::error::TrainError;
use crate::finetune::config::{FinetuneConfig, MAX_SEQ_LEN};
use crate::run::RunStart;
use crate::train::{Continued, RUN_CONFIG_FILE, TrainEvent, train_from};
use roformer_infer::fs_atomic::write_atomic;
use roformer_infer::model_dir::load_model;

/// The phase's run directory, inside the fine-tuning run's.
pub const ADAPT_DIR: &str = "adapt";
/// The phase's corpus (the training texts, one work for training, one for validation),
/// inside [`ADAPT_DIR`].
const CORPUS_DIR: &str = "corpus";
const TRAIN_WORK: &str = "train.txt";
const VALIDATION_WORK: &str = "validation.txt";
/// One training text in this many is held out to validate the phase's masked-LM loss (the
/// fine-tuning validation split is not read).
const VALIDATION_EVERY: usize = 20;
/// BERT's share of tokens selected for prediction.
const DEFAULT_MASK_PROBABILITY: f64 = 0.15;

/// `[adapt]`: masked-LM steps on the training texts before the head is trained.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptConfig {
    /// Masked-LM steps on the training split's texts before fine-tuning; `0` skips the
    /// phase. Default: 0.
    pub steps: usize,
    /// Longest packed sequence in tokens. Default: `task.max_seq_len`.
    pub max_seq_len: Option<usize>,
    /// Sequences per step. Default: `training.batch_size`.
    pub batch_size: Option<usize>,
    /// Peak learning rate. Default: `training.learning_rate`.
    pub learning_rate: Option<f64>,
    /// Steps of linear warmup. Default: a tenth of `steps`.
    pub warmup_steps: Option<usize>,
    /// Share of tokens selected for prediction. Default: 0.15.
    pub mask_probability: Option<f64>,
}

impl AdaptConfig {
    /// Whether the run adapts before fine-tuning.
    pub fn enabled(&self) -> bool {
        self.steps > 0
    }

    /// The phase's sequence length for a task of `task_max_seq_len`.
    pub fn max_seq_len(&self, task_max_seq_len: usize) -> usize {
        self.max_seq_len.unwrap_or(task_max_seq_len)
    }

    /// The phase's `[training]`: fine-tuning's, with this section's values.
    fn training(&self, training: &TrainingConfig, output_dir: PathBuf) -> TrainingConfig {
        TrainingConfig {
            batch_size: self.batch_size.unwrap_or(training.batch_size),
            learning_rate: self.learning_rate.unwrap_or(training.learning_rate),
            warmup_steps: self.warmup_steps.unwrap_or(self.steps / 10),
            steps: Some(self.steps),
            epochs: None,
            output_dir,
            ..training.clone()
        }
    }

    /// Checks the section against the rest of the config; errors name `adapt.*` keys.
    pub(crate) fn validate(
        &self,
        task_max_seq_len: usize,
        training: &TrainingConfig,
    ) -> Result<(), (String, String)> {
        if !self.enabled() {
            return Ok(());
        }
        let fail = |key: &str, message: String| Err((format!("adapt.{key}"), message));
        let max_seq_len = self.max_seq_len(task_max_seq_len);
        if !(8..=MAX_SEQ_LEN).contains(&max_seq_len) {
            return fail(
                "max_seq_len",
                format!("expected 8 to {MAX_SEQ_LEN} tokens, got {max_seq_len}"),
            );
        }
        let p = self.mask_probability.unwrap_or(DEFAULT_MASK_PROBABILITY);
        if !(p > 0.0 && p < 1.0) {
            return fail(
                "mask_probability",
                format!("expected a number in (0, 1), got {p}"),
            );
        }
        self.training(training, PathBuf::new())
            .validate()
            .map_err(|(key, message)| {
                let key = key.trim_start_matches("training.");
                (format!("adapt.{key}"), message)
            })
    }
}

/// Where the phase stands in a run directory.
pub(crate) enum AdaptPhase<B: RoFormerTrainingBackend> {
    /// Not started: its config and the model it continues.
    Fresh(Box<(TrainConfig, Continued<B>)>),
    /// Started (perhaps finished): resumed from its last checkpoint.
    Resume,
}

/// The phase of `run_dir`: resumed if its directory holds a run, otherwise a fresh one
/// from `init_from` (loaded and checked here, before anything is written).
pub(crate) fn adapt_phase<B: RoFormerTrainingBackend>(
    config: &FinetuneConfig,
    run_dir: &Path,
    device: &B::Device,
) -> Result<AdaptPhase<B>, TrainError> {
    let dir = run_dir.join(ADAPT_DIR);
    if dir.join(RUN_CONFIG_FILE).is_file() {
        return Ok(AdaptPhase::Resume);
    }
    let adapt = &config.adapt;
    let max_seq_len = adapt.max_seq_len(config.task.max_seq_len);
    let loaded = load_model::<B>(&config.task.init_from, device)?;
    let tokenizer = loaded.tokenizer()?.clone();
    let mut model_config = loaded.config.clone();
    if max_seq_len > model_config.max_position_embeddings {
        if model_config.position_embedding_type == PositionEmbeddingType::Absolute {
            return Err(TrainError::Config {
                file: crate::finetune::FINETUNE_CONFIG_FILE.into(),
                key: "adapt.max_seq_len".into(),
                message: format!(
                    "expected at most the model's max_position_embeddings ({}) for its learned position table, got {max_seq_len}",
                    model_config.max_position_embeddings
                ),
            });
        }
        model_config.max_position_embeddings = max_seq_len;
    }
    // Built for the phase's positions, the weights through the record (so they train).
    let mut model = RoFormerForMaskedLM::<B>::new(&model_config, device)?;
    match loaded.weights {
        RoFormerWeights::MaskedLm(pretrained) => {
            model = model.load_record(pretrained.into_record())
        }
        RoFormerWeights::Encoder(encoder) => {
            model.roformer = model.roformer.load_record(encoder.into_record());
        }
    }
    let train_config = TrainConfig {
        model: model_config,
        data: DataConfig {
            corpus: Some(dir.join(CORPUS_DIR)),
            validation_works: Some(vec![VALIDATION_WORK.into()]),
            max_seq_len,
            mask_probability: adapt.mask_probability.unwrap_or(DEFAULT_MASK_PROBABILITY),
        },
        tokenizer: TokenizerConfig::default(),
        training: adapt.training(&config.training, dir),
        distributed: DistributedConfig::default(),
    };
    train_config.revalidate(&format!(
        "{} [adapt]",
        crate::finetune::FINETUNE_CONFIG_FILE
    ))?;
    Ok(AdaptPhase::Fresh(Box::new((
        train_config,
        Continued { model, tokenizer },
    ))))
}

/// Runs `phase` in `run_dir`'s [`ADAPT_DIR`] on `texts` (the training split's, used by a
/// fresh phase); returns whether it reached its last step (`observe` may stop it at a
/// checkpoint).
pub(crate) fn adapt<B: RoFormerTrainingBackend>(
    phase: AdaptPhase<B>,
    texts: &[&str],
    run_dir: &Path,
    device: &B::Device,
    observe: &mut dyn FnMut(TrainEvent) -> ControlFlow<()>,
) -> Result<bool, TrainError> {
    let dir = run_dir.join(ADAPT_DIR);
    let summary = match phase {
        AdaptPhase::Resume => train_from::<B>(RunStart::Resume, &dir, device, None, observe)?,
        AdaptPhase::Fresh(fresh) => {
            let (config, continued) = *fresh;
            write_corpus(&dir.join(CORPUS_DIR), texts)?;
            let start = RunStart::Fresh(Box::new(config));
            train_from(start, &dir, device, Some(continued), observe)?
        }
    };
    Ok(summary.finished)
}

/// The phase's corpus: every [`VALIDATION_EVERY`]-th text in the validation work, the
/// others in the training work, one text after another.
fn write_corpus(dir: &Path, texts: &[&str]) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let (mut train, mut validation) = (String::new(), String::new());
    for (i, text) in texts.iter().enumerate() {
        let work = if i % VALIDATION_EVERY == 0 {
            &mut validation
        } else {
            &mut train
        };
        work.push_str(text.trim_end());
        work.push('\n');
    }
    write_atomic(&dir.join(TRAIN_WORK), train.as_bytes())?;
    Ok(write_atomic(
        &dir.join(VALIDATION_WORK),
        validation.as_bytes(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_text_in_twenty_validates_and_every_text_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let texts: Vec<String> = (0..45).map(|i| format!("text {i}\nsecond line")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        write_corpus(dir.path(), &refs).unwrap();
        let read = |name| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let (train, validation) = (read(TRAIN_WORK), read(VALIDATION_WORK));
        assert_eq!(
            validation,
            "text 0\nsecond line\ntext 20\nsecond line\ntext 40\nsecond line\n"
        );
        assert_eq!(train.matches("second line").count(), 42);
        for i in (0..45).filter(|i| i % 20 != 0) {
            assert!(train.contains(&format!("text {i}\n")), "text {i}");
        }
    }

    #[test]
    fn the_phase_takes_fine_tuning_values_unless_it_sets_its_own() {
        let training = TrainingConfig {
            batch_size: 16,
            learning_rate: 1e-3,
            epochs: Some(3),
            seed: 7,
            ..TrainingConfig::default()
        };
        let adapt = AdaptConfig {
            steps: 300,
            learning_rate: Some(5e-4),
            ..AdaptConfig::default()
        };
        let phase = adapt.training(&training, PathBuf::from("run/adapt"));
        assert_eq!(phase.steps, Some(300));
        assert_eq!(phase.epochs, None);
        assert_eq!(phase.warmup_steps, 30);
        assert_eq!(phase.learning_rate, 5e-4);
        assert_eq!((phase.batch_size, phase.seed), (16, 7));
        assert_eq!(phase.output_dir, PathBuf::from("run/adapt"));
        assert_eq!(adapt.max_seq_len(512), 512);
    }
}
