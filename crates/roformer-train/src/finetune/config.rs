//! The fine-tuning configuration file (TOML): `[task]`, `[data]`, `[training]`.
//!
//! As with [`crate::config`], optional fields take the documented defaults and an unknown
//! key, a wrong type or an invalid value is an error naming the file and the key, raised
//! before any work starts. `[training]` is the pretraining [`TrainingConfig`] (same keys,
//! same defaults).

use std::path::{Path, PathBuf};

use roformer::ClassifierPooling;
use serde::{Deserialize, Serialize};

use crate::config::{TrainingConfig, parse_validated, read_validated};
use crate::error::TrainError;
use crate::finetune::adapt::AdaptConfig;
use crate::finetune::labelled::{LabelFields, TagFields};

/// A whole fine-tuning config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// What to learn, from which model.
    pub task: TaskConfig,
    /// The labelled files.
    pub data: FinetuneDataConfig,
    /// Optimisation and bookkeeping (the keys of `roformer train`'s `[training]`).
    #[serde(default)]
    pub training: TrainingConfig,
    /// Masked-LM pretraining on the training texts before the head is trained (off by
    /// default).
    #[serde(default)]
    pub adapt: AdaptConfig,
}

/// What a task predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskType {
    /// One label per text.
    SequenceClassification,
    /// One label per pair of texts (`[CLS] a [SEP] b [SEP]`, segments 0 and 1).
    SentencePair,
    /// One label per word (named entities, parts of speech), read at each word's first
    /// token.
    TokenClassification,
}

/// `[task]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// The task. Required.
    #[serde(rename = "type")]
    pub kind: TaskType,
    /// The pretrained model directory (ours, or an HF RoFormer directory with a
    /// tokenizer), relative to the working directory. Required. Its encoder weights must
    /// load exactly; the classification head is new.
    pub init_from: PathBuf,
    /// The labels, in the order of the classifier's outputs. Default: the sorted distinct
    /// labels of the training file.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Longest input in tokens, special tokens included (longer inputs are truncated,
    /// the longer text of a pair first). Past the model's `max_position_embeddings`, a
    /// rotary model's is raised to this (its rotation tables are computed, not learned);
    /// a model with a learned position table is refused. Default: 128.
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// Field (JSON) or column (CSV/TSV) of the text. Default: `text`. For token
    /// classification, an array of words or a text split at whitespace.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Field or column of the second text (sentence pairs). Default: `text_pair`.
    #[serde(default = "default_text_pair_field")]
    pub text_pair_field: String,
    /// Field or column of the label. Default: `label`; for token classification `labels`,
    /// an array with a label per word.
    #[serde(default)]
    pub label_field: Option<String>,
    /// What the classifier reads (sequence classification and sentence pairs): `cls`, the
    /// first token (HF's head, the default; exports to transformers), or `mean`, the mean
    /// of the real tokens' hidden states (saved as `classifier_pooling` in config.json;
    /// `export` refuses it).
    #[serde(default)]
    pub classifier_pooling: ClassifierPooling,
}

/// The longest input a fine-tuning run takes: the model's position tables grow with it,
/// so an absurd value is refused by name instead of exhausting memory.
pub const MAX_SEQ_LEN: usize = 65_536;

fn default_max_seq_len() -> usize {
    128
}
fn default_text_field() -> String {
    "text".into()
}
fn default_text_pair_field() -> String {
    "text_pair".into()
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneDataConfig {
    /// The training examples (`.jsonl`, `.csv` or `.tsv`). Required.
    pub train: PathBuf,
    /// The validation examples. Default: none, a seeded `validation_fraction` of `train`.
    #[serde(default)]
    pub validation: Option<PathBuf>,
    /// Fraction of `train` held out for validation when `validation` is not given
    /// (a shuffle by `training.seed`). Default: 0.1.
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
}

fn default_validation_fraction() -> f64 {
    0.1
}

impl TaskConfig {
    /// The field names the task reads.
    pub fn fields(&self) -> LabelFields {
        LabelFields {
            text: self.text_field.clone(),
            text_pair: (self.kind == TaskType::SentencePair).then(|| self.text_pair_field.clone()),
            label: self.label_field(),
        }
    }

    /// The field names a token-classification task reads.
    pub fn tag_fields(&self) -> TagFields {
        TagFields {
            words: self.text_field.clone(),
            labels: self.label_field(),
        }
    }

    /// The label field, or the task's default.
    pub fn label_field(&self) -> String {
        self.label_field.clone().unwrap_or_else(|| {
            match self.kind {
                TaskType::TokenClassification => "labels",
                _ => "label",
            }
            .into()
        })
    }
}

impl FinetuneConfig {
    /// Reads, parses and validates a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        read_validated(path, Self::validate)
    }

    /// Parses and validates TOML text; `source` names it in errors.
    pub fn from_toml_str(text: &str, source: &str) -> Result<Self, TrainError> {
        parse_validated(text, source, Self::validate)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((key.to_string(), message));
        if self.training.devices != 1 {
            return fail(
                "training.devices",
                format!(
                    "expected 1: fine-tuning runs on one device (data-parallel training is for pretraining), got {}",
                    self.training.devices
                ),
            );
        }
        if self.task.max_seq_len < 3 {
            return fail(
                "task.max_seq_len",
                format!(
                    "expected at least 3 ([CLS], a token, [SEP]), got {}",
                    self.task.max_seq_len
                ),
            );
        }
        if self.task.max_seq_len > MAX_SEQ_LEN {
            return fail(
                "task.max_seq_len",
                format!(
                    "expected at most {MAX_SEQ_LEN} tokens (a rotary model's tables are built for that many positions), got {}",
                    self.task.max_seq_len
                ),
            );
        }
        if self.task.kind == TaskType::TokenClassification && !self.task.classifier_pooling.is_cls()
        {
            return fail(
                "task.classifier_pooling",
                "a token classifier labels every word; pooling is for sequence classification"
                    .into(),
            );
        }
        if let Some(labels) = &self.task.labels {
            if labels.len() < 2 {
                return fail(
                    "task.labels",
                    format!("expected at least 2 labels, got {}", labels.len()),
                );
            }
            let mut sorted = labels.clone();
            sorted.sort();
            if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return fail(
                    "task.labels",
                    format!("label {:?} is listed twice", pair[0]),
                );
            }
        }
        let fraction = self.data.validation_fraction;
        if self.data.validation.is_none() && !(fraction > 0.0 && fraction < 1.0) {
            return fail(
                "data.validation_fraction",
                format!("expected a number in (0, 1), got {fraction}"),
            );
        }
        self.adapt.validate(self.task.max_seq_len, &self.training)?;
        self.training.validate().map_err(|(key, message)| {
            (
                format!("training.{}", key.trim_start_matches("training.")),
                message,
            )
        })
    }

    /// The config as TOML, as it is saved in a run directory.
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "[task]\ntype = \"sentence-pair\"\ninit_from = \"m\"\n[data]\ntrain = \"t.jsonl\"\n";

    #[test]
    fn defaults_and_round_trip() {
        let config = FinetuneConfig::from_toml_str(MINIMAL, "f.toml").unwrap();
        assert_eq!(config.task.max_seq_len, 128);
        assert_eq!(config.task.fields().text_pair.as_deref(), Some("text_pair"));
        assert_eq!(config.data.validation_fraction, 0.1);
        assert_eq!(config.training, TrainingConfig::default());
        assert!(!config.adapt.enabled());
        assert_eq!(config.task.classifier_pooling, ClassifierPooling::Cls);
        assert_eq!(config.task.fields().label, "label");
        let tagging = MINIMAL.replace("sentence-pair", "token-classification");
        let tagging = FinetuneConfig::from_toml_str(&tagging, "f.toml").unwrap();
        assert_eq!(tagging.task.tag_fields().labels, "labels");
        let again = FinetuneConfig::from_toml_str(&config.to_toml_string(), "again").unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn errors_name_file_and_key() {
        let cases = [
            (
                MINIMAL.replace("sentence-pair", "token-tagging"),
                "task.type",
                "unknown variant",
            ),
            (
                format!("{MINIMAL}[training]\nbatch_sise = 3\n"),
                "training.batch_sise",
                "unknown field",
            ),
            (
                format!("{MINIMAL}[training]\nbatch_size = 0\n"),
                "training.batch_size",
                "positive",
            ),
            (
                MINIMAL.replace("[data]", "labels = [\"a\", \"a\"]\n[data]"),
                "task.labels",
                "twice",
            ),
            (
                MINIMAL.replace("[data]\n", "[data]\nvalidation_fraction = 1.5\n"),
                "data.validation_fraction",
                "(0, 1)",
            ),
            (
                format!("{MINIMAL}[adapt]\nsteps = 10\nbatch_size = 0\n"),
                "adapt.batch_size",
                "positive",
            ),
            (
                format!("{MINIMAL}[adapt]\nsteps = 10\nmax_seq_len = 4\n"),
                "adapt.max_seq_len",
                "8 to 65536",
            ),
            (
                format!("{MINIMAL}[adapt]\nsteps = 10\nmask_probability = 1.0\n"),
                "adapt.mask_probability",
                "(0, 1)",
            ),
            (
                MINIMAL
                    .replace("sentence-pair", "token-classification")
                    .replace("[data]", "classifier_pooling = \"mean\"\n[data]"),
                "task.classifier_pooling",
                "sequence classification",
            ),
            (
                MINIMAL.replace("[data]", "classifier_pooling = \"max\"\n[data]"),
                "task.classifier_pooling",
                "unknown variant",
            ),
            (
                format!("{MINIMAL}[adapt]\nstep = 10\n"),
                "adapt.step",
                "unknown field",
            ),
        ];
        for (text, key, message) in cases {
            let error = FinetuneConfig::from_toml_str(&text, "f.toml")
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("f.toml: key `{key}`")) && error.contains(message),
                "{error}"
            );
        }
    }
}
