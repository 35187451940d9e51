//! A classifier's model directory, as transformers lays out a
//! `RoFormerForSequenceClassification`: `config.json` with `architectures`, `id2label` and
//! `label2id`; `model.safetensors` with HF names (`roformer.*`, `classifier.dense.*`,
//! `classifier.out_proj.*`); the tokenizer files.

use std::path::{Path, PathBuf};

use roformer::hf_weights::{load_hf_sequence_classification, save_hf_sequence_classification};
use roformer::{RoFormerBackend, RoFormerConfig, RoFormerForSequenceClassification};
use serde_json::{Map, Value};

use crate::data::TextTokenizer;
use crate::error::TrainError;
use crate::fs_atomic::{produce_atomic, write_atomic};
use crate::model_dir::{CONFIG_FILE, WEIGHTS_FILE, load_tokenizer, save_tokenizer, weights_file};

/// The architecture `config.json` names.
pub const CLASSIFIER_ARCHITECTURE: &str = "RoFormerForSequenceClassification";

/// A classifier ready for inference.
pub struct LoadedClassifier<B: RoFormerBackend> {
    /// The directory it came from.
    pub dir: PathBuf,
    /// The encoder config.
    pub config: RoFormerConfig,
    /// The labels, by output index.
    pub labels: Vec<String>,
    /// The model.
    pub model: RoFormerForSequenceClassification<B>,
    /// The tokenizer.
    pub tokenizer: TextTokenizer,
}

/// `config.json` of a classifier: the encoder config with its labels.
pub fn classifier_config_json(config: &RoFormerConfig, labels: &[String]) -> String {
    let mut value: Value = serde_json::from_str(&config.to_hf_json_for(CLASSIFIER_ARCHITECTURE))
        .expect("the config is JSON");
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
    object.insert("problem_type".into(), "single_label_classification".into());
    serde_json::to_string_pretty(&value).expect("JSON always serializes")
}

/// Writes `config.json` (atomically).
pub fn save_classifier_config(
    dir: &Path,
    config: &RoFormerConfig,
    labels: &[String],
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    write_atomic(
        &dir.join(CONFIG_FILE),
        classifier_config_json(config, labels).as_bytes(),
    )
}

/// Writes `model.safetensors` (atomically).
pub fn save_classifier_weights<B: RoFormerBackend>(
    dir: &Path,
    config: &RoFormerConfig,
    model: &RoFormerForSequenceClassification<B>,
) -> Result<(), TrainError> {
    produce_atomic(&dir.join(crate::model_dir::WEIGHTS_FILE), |tmp| {
        Ok(save_hf_sequence_classification(model, config, tmp)?)
    })
}

/// Whether the `config.json` in `dir` names [`CLASSIFIER_ARCHITECTURE`] (as ours and
/// transformers' `save_pretrained` write it).
pub fn is_classifier_dir(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(CONFIG_FILE)) else {
        return false;
    };
    serde_json::from_str::<Value>(&text).is_ok_and(|value| {
        value
            .get("architectures")
            .and_then(Value::as_array)
            .is_some_and(|names| names.iter().any(|n| n == CLASSIFIER_ARCHITECTURE))
    })
}

/// Writes `classifier` as transformers' `save_pretrained` lays out a
/// `RoFormerForSequenceClassification` (config with the labels, weights, tokenizer) into
/// `out`, which must not already hold a model.
pub fn write_classifier_dir<B: RoFormerBackend>(
    classifier: &LoadedClassifier<B>,
    out: &Path,
) -> Result<(), TrainError> {
    if out.join(CONFIG_FILE).exists() || out.join(WEIGHTS_FILE).exists() {
        return Err(TrainError::model_dir(
            out,
            "already holds a model; choose an empty or new directory",
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    save_classifier_weights(out, &classifier.config, &classifier.model)?;
    save_tokenizer(out, &classifier.tokenizer)?;
    save_classifier_config(out, &classifier.config, &classifier.labels)
}

/// The labels of a classifier's `config.json` (`id2label`, ids 0..n).
pub fn read_labels(config_path: &Path) -> Result<Vec<String>, TrainError> {
    let text = std::fs::read_to_string(config_path).map_err(|e| TrainError::io(config_path, e))?;
    let bad = |message: &str| TrainError::model_dir(config_path, message.to_string());
    let value: Value = serde_json::from_str(&text).map_err(|_| bad("not JSON"))?;
    let id2label = value
        .get("id2label")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            bad("no `id2label`: not a sequence classifier (fine-tune one with `roformer finetune`)")
        })?;
    let mut labels = vec![None; id2label.len()];
    for (id, label) in id2label {
        let index: usize = id
            .parse()
            .ok()
            .filter(|&i| i < labels.len())
            .ok_or_else(|| bad("`id2label` ids must be 0..number of labels"))?;
        labels[index] = Some(
            label
                .as_str()
                .ok_or_else(|| bad("`id2label` values must be strings"))?
                .to_string(),
        );
    }
    labels
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad("`id2label` ids must be 0..number of labels"))
}

/// Loads a classifier directory (ours, or one saved by transformers with a tokenizer).
pub fn load_classifier<B: RoFormerBackend>(
    dir: &Path,
    device: &B::Device,
) -> Result<LoadedClassifier<B>, TrainError> {
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Err(TrainError::model_dir(
            dir,
            format!("not a model directory: no {CONFIG_FILE}"),
        ));
    }
    let config = RoFormerConfig::from_json_file(&config_path)?;
    let labels = read_labels(&config_path)?;
    let model =
        load_hf_sequence_classification(&config, labels.len(), &weights_file(dir)?, device)?;
    let tokenizer = load_tokenizer(dir)?;
    Ok(LoadedClassifier {
        dir: dir.to_path_buf(),
        config,
        labels,
        model,
        tokenizer,
    })
}
