//! A fine-tuned model's directory, as transformers lays out a
//! `RoFormerForSequenceClassification` or a `RoFormerForTokenClassification`:
//! `config.json` with `architectures`, `id2label` and `label2id`; `model.safetensors` with
//! HF names (`roformer.*` and the head's `classifier.*`); the tokenizer files.

use std::path::{Path, PathBuf};

use roformer::{
    Precision, RoFormerBackend, RoFormerConfig, RoFormerForSequenceClassification,
    RoFormerForTokenClassification, cast_parameters,
};
use serde_json::{Map, Value};

use crate::error::InferError;
use crate::fs_atomic::{produce_atomic, write_atomic};
use crate::model_dir::architecture::{
    CLASSIFIER_ARCHITECTURE, TAGGER_ARCHITECTURE, read_labels, task_architecture,
};
use crate::model_dir::files::{
    CONFIG_FILE, WEIGHTS_FILE, load_tokenizer, prepare_hf_dir, read_config, save_tokenizer,
    weights_file,
};
use crate::model_dir::precision::InPrecision;
use crate::task_model::TaskModel;
use crate::tokenizer::TextTokenizer;

/// A sequence classifier ready for inference.
pub type LoadedClassifier<B> = LoadedTask<B, RoFormerForSequenceClassification<B>>;
/// A token classifier ready for inference.
pub type LoadedTagger<B> = LoadedTask<B, RoFormerForTokenClassification<B>>;

/// A fine-tuned model ready for inference.
pub struct LoadedTask<B: RoFormerBackend, M> {
    /// The directory it came from.
    pub dir: PathBuf,
    /// The encoder config.
    pub config: RoFormerConfig,
    /// The labels, by output index.
    pub labels: Vec<String>,
    /// The model.
    pub model: M,
    /// The tokenizer.
    pub tokenizer: TextTokenizer,
    /// The backend.
    pub backend: std::marker::PhantomData<B>,
}

impl<B: RoFormerBackend, M: TaskModel<B>> InPrecision<B> for LoadedTask<B, M> {
    fn cast_to(mut self, precision: Precision) -> Self {
        self.model = cast_parameters(self.model.with_precision(precision), precision);
        self
    }
}

/// `config.json` of a fine-tuned model: the encoder config with its architecture and labels.
pub fn classifier_config_json(
    config: &RoFormerConfig,
    labels: &[String],
    architecture: &str,
) -> String {
    let mut value: Value =
        serde_json::from_str(&config.to_hf_json_for(architecture)).expect("the config is JSON");
    let object = value.as_object_mut().expect("a config is a JSON object");
    let id2label: Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| (i.to_string(), label.clone().into()))
        .collect();
    let label2id: Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| (label.clone(), i.into()))
        .collect();
    object.insert("id2label".into(), id2label.into());
    object.insert("label2id".into(), label2id.into());
    if architecture == CLASSIFIER_ARCHITECTURE {
        object.insert("problem_type".into(), "single_label_classification".into());
    }
    serde_json::to_string_pretty(&value).expect("JSON always serializes")
}

/// Writes `config.json` (atomically).
pub fn save_classifier_config(
    dir: &Path,
    config: &RoFormerConfig,
    labels: &[String],
    architecture: &str,
) -> Result<(), InferError> {
    std::fs::create_dir_all(dir).map_err(|e| InferError::io(dir, e))?;
    write_atomic(
        &dir.join(CONFIG_FILE),
        classifier_config_json(config, labels, architecture).as_bytes(),
    )
}

/// Writes `model.safetensors` (atomically).
pub fn save_classifier_weights<B: RoFormerBackend, M: TaskModel<B>>(
    dir: &Path,
    config: &RoFormerConfig,
    model: &M,
) -> Result<(), InferError> {
    produce_atomic(&dir.join(WEIGHTS_FILE), |tmp| {
        Ok(model.save_hf(config, tmp)?)
    })
}

/// Writes `classifier` as transformers' `save_pretrained` lays out its architecture
/// (config with the labels, weights, tokenizer) into `out`, which must not already hold a
/// model.
pub fn write_classifier_dir<B: RoFormerBackend, M: TaskModel<B>>(
    classifier: &LoadedTask<B, M>,
    out: &Path,
) -> Result<(), InferError> {
    prepare_hf_dir(&classifier.config, &classifier.dir, out)?;
    save_classifier_weights(out, &classifier.config, &classifier.model)?;
    save_tokenizer(out, &classifier.tokenizer)?;
    save_classifier_config(out, &classifier.config, &classifier.labels, M::ARCHITECTURE)
}

/// Loads a sequence classifier's directory (ours, or one saved by transformers with a
/// tokenizer).
pub fn load_classifier<B: RoFormerBackend>(
    dir: &Path,
    device: &B::Device,
) -> Result<LoadedClassifier<B>, InferError> {
    load_task(dir, device)
}

/// Loads a token classifier's directory (ours, or one saved by transformers with a
/// tokenizer).
pub fn load_tagger<B: RoFormerBackend>(
    dir: &Path,
    device: &B::Device,
) -> Result<LoadedTagger<B>, InferError> {
    load_task(dir, device)
}

/// Loads a fine-tuned model's directory of architecture `M`; another architecture is an
/// error that names the command for it.
pub fn load_task<B: RoFormerBackend, M: TaskModel<B>>(
    dir: &Path,
    device: &B::Device,
) -> Result<LoadedTask<B, M>, InferError> {
    let (config_path, config) = read_config(dir)?;
    match task_architecture(dir) {
        Some(found) if found == M::ARCHITECTURE => {}
        Some(found) => {
            let command = if found == TAGGER_ARCHITECTURE {
                "roformer tag"
            } else {
                "roformer classify"
            };
            return Err(InferError::model_dir(
                dir,
                format!(
                    "holds a {found}, not a {}; run it with `{command}`",
                    M::ARCHITECTURE
                ),
            ));
        }
        None => {
            return Err(InferError::model_dir(
                dir,
                format!(
                    "not a {} (its config.json names no fine-tuned architecture; fine-tune one with `roformer finetune`)",
                    M::ARCHITECTURE
                ),
            ));
        }
    }
    let labels = read_labels(&config_path)?;
    let model = M::load_hf(&config, labels.len(), &weights_file(dir)?, device)?;
    let tokenizer = load_tokenizer(dir)?;
    Ok(LoadedTask {
        dir: dir.to_path_buf(),
        config,
        labels,
        model,
        tokenizer,
        backend: std::marker::PhantomData,
    })
}
