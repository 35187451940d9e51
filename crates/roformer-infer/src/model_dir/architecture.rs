//! Which model a directory holds, read from its `config.json` (`architectures`, and the
//! labels of a fine-tuned one): the one place an architecture is detected.

use std::path::Path;

use serde_json::Value;

use crate::error::InferError;
use crate::model_dir::files::CONFIG_FILE;

/// The architecture of a sequence classifier's `config.json`.
pub const CLASSIFIER_ARCHITECTURE: &str = "RoFormerForSequenceClassification";
/// The architecture of a token classifier's `config.json`.
pub const TAGGER_ARCHITECTURE: &str = "RoFormerForTokenClassification";

/// The fine-tuned architecture the `config.json` in `dir` names
/// ([`CLASSIFIER_ARCHITECTURE`] or [`TAGGER_ARCHITECTURE`], as ours and transformers'
/// `save_pretrained` write them), if any.
pub fn task_architecture(dir: &Path) -> Option<&'static str> {
    let text = std::fs::read_to_string(dir.join(CONFIG_FILE)).ok()?;
    let value = serde_json::from_str::<Value>(&text).ok()?;
    let names = value.get("architectures")?.as_array()?;
    [CLASSIFIER_ARCHITECTURE, TAGGER_ARCHITECTURE]
        .into_iter()
        .find(|architecture| names.iter().any(|n| n == architecture))
}

/// Whether `dir` holds a fine-tuned sequence or token classifier.
pub fn is_classifier_dir(dir: &Path) -> bool {
    task_architecture(dir).is_some()
}

/// The labels of a classifier's `config.json` (`id2label`, ids 0..n).
pub fn read_labels(config_path: &Path) -> Result<Vec<String>, InferError> {
    let text = std::fs::read_to_string(config_path).map_err(|e| InferError::io(config_path, e))?;
    let bad = |message: &str| InferError::model_dir(config_path, message.to_string());
    let value: Value = serde_json::from_str(&text).map_err(|_| bad("not JSON"))?;
    let id2label = value
        .get("id2label")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            bad("no `id2label`: not a fine-tuned classifier (fine-tune one with `roformer finetune`)")
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
