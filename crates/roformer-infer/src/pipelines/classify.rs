//! Classification with a fine-tuned model: the probability of each label (the softmax of
//! the head's logits) for texts or pairs of texts, and the JSON-lines input `classify`
//! reads.

use std::path::Path;

use burn::tensor::activation::softmax;
use roformer::RoFormerBackend;
use serde::Serialize;
use serde_json::Value;

use crate::error::InferError;
use crate::inputs::{PairInput, packed_pair_batch, pair_input};
use crate::json_lines;
use crate::model_dir::LoadedClassifier;

/// Sequences run through the model at once.
const CHUNK: usize = 32;

/// One input: a text and, for sentence pairs, a second text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifyInput {
    /// The (first) text.
    pub text: String,
    /// The second text.
    pub text_pair: Option<String>,
}

/// A label and its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelProbability {
    /// The label.
    pub label: String,
    /// Its probability.
    pub probability: f64,
}

/// What the classifier says about one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// The most likely label.
    pub label: String,
    /// Labels by decreasing probability (the `top_k` most likely).
    pub probabilities: Vec<LabelProbability>,
}

/// The probabilities of every label (by index) for each input, inputs truncated to the
/// model's `max_position_embeddings`.
pub fn label_probabilities<B: RoFormerBackend>(
    classifier: &LoadedClassifier<B>,
    inputs: &[ClassifyInput],
    device: &B::Device,
) -> Result<Vec<Vec<f64>>, InferError> {
    label_scores(classifier, inputs, false, device)
}

/// The score of every label (by index) for each input: the probabilities, or with `raw`
/// the logits (TEI's `raw_scores`).
pub fn label_scores<B: RoFormerBackend>(
    classifier: &LoadedClassifier<B>,
    inputs: &[ClassifyInput],
    raw: bool,
    device: &B::Device,
) -> Result<Vec<Vec<f64>>, InferError> {
    for input in inputs {
        if input.text.trim().is_empty() {
            return Err(InferError::data("input", "empty text"));
        }
        if input
            .text_pair
            .as_ref()
            .is_some_and(|pair| pair.trim().is_empty())
        {
            return Err(InferError::data("input", "empty text_pair"));
        }
    }
    let max_len = classifier.config.max_position_embeddings;
    let encoded: Vec<PairInput> = inputs
        .iter()
        .map(|i| {
            pair_input(
                &classifier.tokenizer,
                &i.text,
                i.text_pair.as_deref(),
                max_len,
            )
        })
        .collect::<Result<_, _>>()?;
    let pad = classifier.tokenizer.special().pad;
    let classes = classifier.labels.len();
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in encoded.chunks(CHUNK) {
        let batch: Vec<&PairInput> = chunk.iter().collect();
        let logits = classifier
            .model
            .forward(packed_pair_batch::<B>(&batch, pad, device));
        let scores = if raw { logits } else { softmax(logits, 1) };
        let values: Vec<f64> = scores.into_data().iter::<f64>().collect();
        out.extend(values.chunks(classes).map(<[f64]>::to_vec));
    }
    Ok(out)
}

/// Classifies each input, keeping the `top_k` most likely labels.
pub fn classify<B: RoFormerBackend>(
    classifier: &LoadedClassifier<B>,
    inputs: &[ClassifyInput],
    top_k: usize,
    device: &B::Device,
) -> Result<Vec<Classification>, InferError> {
    let probabilities = label_probabilities(classifier, inputs, device)?;
    Ok(probabilities
        .into_iter()
        .map(|row| {
            let mut ranked: Vec<LabelProbability> = row
                .iter()
                .zip(&classifier.labels)
                .map(|(&probability, label)| LabelProbability {
                    label: label.clone(),
                    probability,
                })
                .collect();
            // Stable: equal probabilities keep the label order.
            ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
            ranked.truncate(top_k);
            Classification {
                label: ranked[0].label.clone(),
                probabilities: ranked,
            }
        })
        .collect())
}

/// Reads `classify --input`: one JSON object per line with `text` and optionally
/// `text_pair` (blank lines skipped). Errors name the file and line.
pub fn read_classify_inputs(path: &Path) -> Result<Vec<ClassifyInput>, InferError> {
    let source = path.display().to_string();
    let text = json_lines::read(path)?;
    let mut inputs = Vec::new();
    for line in json_lines::lines(&text, &source) {
        let value: Value =
            serde_json::from_str(line.text).map_err(|_| line.error("not a JSON object"))?;
        let field = |name: &str| match value.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(line.error(format!("empty `{name}`"))),
            Some(_) => Err(line.error(format!("field `{name}` is not a string"))),
        };
        let text = field("text")?.ok_or_else(|| line.error("missing field `text`"))?;
        inputs.push(ClassifyInput {
            text,
            text_pair: field("text_pair")?,
        });
    }
    if inputs.is_empty() {
        return Err(InferError::data(&source, "no input lines"));
    }
    Ok(inputs)
}
