//! Tagging with a fine-tuned token classifier: a label per word (the softmax of the
//! head's logits at the word's first token, as HF's token-classification pipeline reads
//! words with `aggregation_strategy="first"`), the entities of BIO labels, and the
//! JSON-lines input `tag` reads. Texts are split into words at whitespace; inputs longer
//! than the model's `max_position_embeddings` are read in windows of whole words.

use std::path::Path;

use burn::tensor::activation::softmax;
use roformer::RoFormerBackend;
use serde::Serialize;
use serde_json::Value;

use crate::entities::{entities, is_bio};
use crate::error::InferError;
use crate::inputs::{PairInput, WordWindow, packed_pair_batch, word_rows, word_windows};
use crate::json_lines;
use crate::model_dir::LoadedTagger;
use crate::task_model::TaskModel;

/// Windows run through the model at once.
const CHUNK: usize = 32;

/// One word and its label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaggedWord {
    /// The word.
    pub word: String,
    /// Its most likely label.
    pub label: String,
    /// That label's probability.
    pub probability: f64,
}

/// An entity found in the labels (BIO labels only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaggedEntity {
    /// Its type (`PER` for `B-PER`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its first word's index.
    pub start: usize,
    /// One past its last word's index.
    pub end: usize,
    /// Its words, joined by spaces.
    pub text: String,
}

/// What the tagger says about one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tagging {
    /// Every word with its label.
    pub words: Vec<TaggedWord>,
    /// The entities, when the labels are BIO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<Vec<TaggedEntity>>,
}

/// The probability of every label (by index) of every word of each input.
pub fn word_probabilities<B: RoFormerBackend>(
    tagger: &LoadedTagger<B>,
    inputs: &[Vec<String>],
    device: &B::Device,
) -> Result<Vec<Vec<Vec<f64>>>, InferError> {
    let max_len = tagger.config.max_position_embeddings;
    let mut windows: Vec<(usize, WordWindow)> = Vec::new();
    for (index, words) in inputs.iter().enumerate() {
        for window in word_windows(&tagger.tokenizer, words, max_len)? {
            windows.push((index, window));
        }
    }
    let pad = tagger.tokenizer.special().pad;
    let classes = tagger.labels.len();
    let mut out: Vec<Vec<Vec<f64>>> = inputs.iter().map(|w| Vec::with_capacity(w.len())).collect();
    for chunk in windows.chunks(CHUNK) {
        let batch: Vec<&PairInput> = chunk.iter().map(|(_, w)| &w.input).collect();
        let starts: Vec<&[usize]> = chunk
            .iter()
            .map(|(_, w)| w.word_starts.as_slice())
            .collect();
        let rows = word_rows::<B>(&batch, &starts, device);
        let logits = tagger
            .model
            .unit_logits(packed_pair_batch::<B>(&batch, pad, device), Some(rows));
        let values: Vec<f64> = softmax(logits, 1).into_data().iter::<f64>().collect();
        let mut words = values.chunks(classes);
        for (index, window) in chunk {
            out[*index].extend(words.by_ref().take(window.words.len()).map(<[f64]>::to_vec));
        }
    }
    Ok(out)
}

/// Tags each input (a list of words).
pub fn tag<B: RoFormerBackend>(
    tagger: &LoadedTagger<B>,
    inputs: &[Vec<String>],
    device: &B::Device,
) -> Result<Vec<Tagging>, InferError> {
    let probabilities = word_probabilities(tagger, inputs, device)?;
    let bio = is_bio(&tagger.labels);
    Ok(inputs
        .iter()
        .zip(probabilities)
        .map(|(words, rows)| {
            let tagged: Vec<TaggedWord> = words
                .iter()
                .zip(rows)
                .map(|(word, row)| {
                    // The first of equal probabilities, as argmax takes it.
                    let (best, probability) =
                        row.iter()
                            .enumerate()
                            .fold((0, f64::NEG_INFINITY), |(bi, bp), (i, &p)| {
                                if p > bp { (i, p) } else { (bi, bp) }
                            });
                    TaggedWord {
                        word: word.clone(),
                        label: tagger.labels[best].clone(),
                        probability,
                    }
                })
                .collect();
            let entities = bio.then(|| {
                let labels: Vec<&str> = tagged.iter().map(|w| w.label.as_str()).collect();
                entities(&labels)
                    .into_iter()
                    .map(|e| TaggedEntity {
                        text: words[e.start..e.end].join(" "),
                        kind: e.kind,
                        start: e.start,
                        end: e.end,
                    })
                    .collect()
            });
            Tagging {
                words: tagged,
                entities,
            }
        })
        .collect())
}

/// The words of a text: split at whitespace.
pub fn words_of(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Reads `tag --input`: one JSON object per line with `words` (an array of strings) or
/// `text` (split at whitespace); blank lines skipped. Errors name the file and line.
pub fn read_tag_inputs(path: &Path) -> Result<Vec<Vec<String>>, InferError> {
    let source = path.display().to_string();
    let text = json_lines::read(path)?;
    let mut inputs = Vec::new();
    for line in json_lines::lines(&text, &source) {
        let at = |message: &str| line.error(message);
        let value: Value = serde_json::from_str(line.text).map_err(|_| at("not a JSON object"))?;
        let words = match (value.get("words"), value.get("text")) {
            (Some(Value::Array(items)), _) => items
                .iter()
                .map(|item| match item {
                    Value::String(word) if !word.trim().is_empty() => Ok(word.clone()),
                    _ => Err(at("field `words` must hold non-empty strings")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            (Some(_), _) => return Err(at("field `words` is not an array of strings")),
            (None, Some(Value::String(text))) => words_of(text),
            (None, Some(_)) => return Err(at("field `text` is not a string")),
            (None, None) => return Err(at("missing field `words` or `text`")),
        };
        if words.is_empty() {
            return Err(at("no words"));
        }
        inputs.push(words);
    }
    if inputs.is_empty() {
        return Err(InferError::data(&source, "no input lines"));
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_lines_take_words_or_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(
            &path,
            "{\"words\": [\"Good\", \"my lord\"]}\n\n{\"text\": \" to  be \"}\n",
        )
        .unwrap();
        assert_eq!(
            read_tag_inputs(&path).unwrap(),
            [
                vec!["Good".to_string(), "my lord".to_string()],
                vec!["to".to_string(), "be".to_string()]
            ]
        );
        for (text, expected) in [
            ("{\"text\": \"  \"}\n", "line 1: no words"),
            (
                "{\"words\": \"a b\"}\n",
                "line 1: field `words` is not an array",
            ),
            ("{\"x\": 1}\n", "line 1: missing field `words` or `text`"),
            ("\n", "no input lines"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = read_tag_inputs(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
