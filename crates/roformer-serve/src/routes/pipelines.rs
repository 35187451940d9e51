//! transformers-pipeline-shaped routes: `/fill-mask` (`FillMaskPipeline`'s fields),
//! `/tag` (`TokenClassificationPipeline`'s, with character offsets into the input) and
//! `/similarity` (the sentence-similarity task of HF's inference API).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use roformer_infer::pipelines::{MaskPrediction, Pooling, cosine};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, JsonBody, Texts, answer, model_ids, run_jobs, serves};
use crate::error::ApiError;
use crate::job::{Job, Output};
use crate::model::Task;
use crate::routes::tei::embedding;
use crate::worker::ModelHandle;

/// `/fill-mask`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillMaskRequest {
    inputs: Texts,
    #[serde(default = "five")]
    top_k: usize,
    targets: Option<Vec<String>>,
    model: Option<String>,
}

fn five() -> usize {
    5
}

/// `POST /fill-mask`: per mask, the candidates with `score`, `token`, `token_str` and the
/// `sequence` with the mask filled.
pub async fn fill_mask(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<FillMaskRequest>,
) -> Result<Response, ApiError> {
    let model = state.model(request.model.as_deref())?;
    serves(model, Task::FillMask)?;
    if request.top_k == 0 {
        return Err(ApiError::validation("top_k must be at least 1"));
    }
    let (texts, single) = request.inputs.into_list()?;
    let targets = request
        .targets
        .map(|words| target_ids(model, &words))
        .transpose()?;
    let mask = model.tokenizer.special().mask;
    let jobs = texts
        .iter()
        .map(|text| {
            let ids = model_ids(model, text, state.options.auto_truncate)?;
            if !ids.contains(&mask) {
                return Err(ApiError::validation("the text has no [MASK] token to fill"));
            }
            let job = Job::FillMask {
                text: text.clone(),
                top_k: request.top_k,
                targets: targets.clone(),
            };
            Ok((job, ids.len()))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let (answers, timing) = run_jobs(&state, "/fill-mask", model, jobs).await?;
    let mut results: Vec<Value> = texts
        .iter()
        .zip(answers)
        .map(|(text, a)| match a.output {
            Output::Masks(masks) => mask_results(text, &masks),
            _ => unreachable!("a fill-mask job answers with masks"),
        })
        .collect();
    if single {
        return Ok(answer(results.remove(0), &timing));
    }
    Ok(answer(results, &timing))
}

/// The token id of each target word (its first token, as transformers takes it).
fn target_ids(model: &ModelHandle, words: &[String]) -> Result<Vec<u32>, ApiError> {
    words
        .iter()
        .map(|word| {
            model
                .tokenizer
                .encode_plain(word)?
                .first()
                .copied()
                .ok_or_else(|| {
                    ApiError::validation(format!("target {word:?} is no token of the vocabulary"))
                })
        })
        .collect()
}

/// transformers' answer for one text: the candidates of its mask, or a list per mask
/// when it has several.
fn mask_results(text: &str, masks: &[MaskPrediction]) -> Value {
    let per_mask: Vec<Value> = masks
        .iter()
        .enumerate()
        .map(|(nth, mask)| {
            let candidates: Vec<Value> = mask
                .candidates
                .iter()
                .map(|c| {
                    let token_str = c.token.trim_start_matches("##");
                    json!({
                        "score": c.probability,
                        "token": c.id,
                        "token_str": token_str,
                        "sequence": fill_nth_mask(text, nth, token_str),
                    })
                })
                .collect();
            Value::Array(candidates)
        })
        .collect();
    match per_mask.len() {
        1 => per_mask.into_iter().next().expect("one mask"),
        _ => Value::Array(per_mask),
    }
}

/// `text` with its `nth` `[MASK]` replaced by `token`.
fn fill_nth_mask(text: &str, nth: usize, token: &str) -> String {
    match text.match_indices("[MASK]").nth(nth) {
        Some((at, mask)) => format!("{}{token}{}", &text[..at], &text[at + mask.len()..]),
        None => text.to_string(),
    }
}

/// `/tag`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    inputs: Texts,
    #[serde(default)]
    aggregation_strategy: Aggregation,
    model: Option<String>,
}

/// How word labels become answers (transformers' `aggregation_strategy`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Every word not labelled `O`, with its label as `entity`.
    #[default]
    None,
    /// Runs of `B-X I-X …` as one `entity_group` X (score: the words' mean).
    Simple,
    /// As `simple`: each word is already labelled at its first token.
    First,
}

/// A word of the input and where it lies, in characters.
struct Word {
    text: String,
    start: usize,
    end: usize,
}

/// The words of `text` (split at whitespace) with their character offsets.
fn words_with_offsets(text: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, ch) in text.chars().enumerate() {
        match (ch.is_whitespace(), &mut current) {
            (true, Some(_)) => {
                let (start, word) = current.take().expect("matched");
                words.push(Word {
                    end: start + word.chars().count(),
                    text: word,
                    start,
                });
            }
            (true, None) => {}
            (false, Some((_, word))) => word.push(ch),
            (false, None) => current = Some((index, ch.to_string())),
        }
    }
    if let Some((start, word)) = current {
        words.push(Word {
            end: start + word.chars().count(),
            text: word,
            start,
        });
    }
    words
}

/// `POST /tag`: the labelled words or entity groups of each input, with character offsets.
pub async fn tag(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<TagRequest>,
) -> Result<Response, ApiError> {
    let model = state.model(request.model.as_deref())?;
    serves(model, Task::Tag)?;
    let (texts, single) = request.inputs.into_list()?;
    let inputs: Vec<Vec<Word>> = texts.iter().map(|t| words_with_offsets(t)).collect();
    let jobs = inputs
        .iter()
        .map(|words| {
            let words: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
            let tokens = model.tokenizer.encode_plain(&words.join(" "))?.len() + 2;
            // Long texts are read in windows of whole words; a batch counts one window.
            let tokens = tokens.min(model.max_input_length);
            Ok((Job::Tag { words }, tokens))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let (answers, timing) = run_jobs(&state, "/tag", model, jobs).await?;
    let labels = model.labels.clone().unwrap_or_default();
    let mut results: Vec<Vec<Value>> = inputs
        .iter()
        .zip(answers)
        .map(|(words, a)| match a.output {
            Output::Words(probabilities) => {
                entities(words, &probabilities, &labels, request.aggregation_strategy)
            }
            _ => unreachable!("a tag job answers with words"),
        })
        .collect();
    if single {
        return Ok(answer(results.remove(0), &timing));
    }
    Ok(answer(results, &timing))
}

/// The answer for one input's words.
fn entities(
    words: &[Word],
    probabilities: &[Vec<f64>],
    labels: &[String],
    aggregation: Aggregation,
) -> Vec<Value> {
    let best: Vec<(&str, f64)> = probabilities
        .iter()
        .map(|p| {
            let (index, score) = p
                .iter()
                .copied()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("at least one label");
            (labels[index].as_str(), score)
        })
        .collect();
    if aggregation == Aggregation::None {
        return words
            .iter()
            .zip(&best)
            .enumerate()
            .filter(|(_, (_, (label, _)))| *label != "O")
            .map(|(index, (word, (label, score)))| {
                json!({ "entity": label, "score": score, "index": index + 1, "word": word.text, "start": word.start, "end": word.end })
            })
            .collect();
    }
    group_entities(words, &best)
}

/// Runs of `B-X I-X …` (or of equal non-BIO labels) as entity groups; `O` left out.
fn group_entities(words: &[Word], best: &[(&str, f64)]) -> Vec<Value> {
    let kind = |label: &str| -> (bool, String) {
        match label.split_once('-') {
            Some(("B", kind)) => (true, kind.to_string()),
            Some(("I", kind)) => (false, kind.to_string()),
            _ => (true, label.to_string()),
        }
    };
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (index, (label, _)) in best.iter().enumerate() {
        if *label == "O" {
            continue;
        }
        let (begins, entity) = kind(label);
        let continues = !begins
            && groups.last().is_some_and(|(last, members)| {
                *last == entity && members.last() == Some(&(index - 1))
            });
        match continues {
            true => groups.last_mut().expect("checked").1.push(index),
            false => groups.push((entity, vec![index])),
        }
    }
    groups
        .into_iter()
        .map(|(entity, members)| {
            let score = members.iter().map(|&i| best[i].1).sum::<f64>() / members.len() as f64;
            let (first, last) = (&words[members[0]], &words[*members.last().expect("non-empty")]);
            let text: Vec<&str> = members.iter().map(|&i| words[i].text.as_str()).collect();
            json!({ "entity_group": entity, "score": score, "word": text.join(" "), "start": first.start, "end": last.end })
        })
        .collect()
}

/// `/similarity`'s body (HF's sentence-similarity task).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarityRequest {
    inputs: SimilarityInputs,
    model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimilarityInputs {
    source_sentence: String,
    sentences: Vec<String>,
}

/// `POST /similarity`: the cosine of the source sentence's embedding with each sentence's
/// (mean pooling, as `roformer similarity`).
pub async fn similarity(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<SimilarityRequest>,
) -> Result<Response, ApiError> {
    let model = state.model(request.model.as_deref())?;
    serves(model, Task::Embed)?;
    let SimilarityInputs {
        source_sentence,
        sentences,
    } = request.inputs;
    let mut texts = vec![source_sentence];
    texts.extend(sentences);
    let (texts, _) = Texts::Many(texts).into_list()?;
    if texts.len() < 2 {
        return Err(ApiError::new(
            crate::error::ErrorKind::Empty,
            "`sentences` cannot be empty",
        ));
    }
    let jobs = texts
        .iter()
        .map(|text| {
            let ids = model_ids(model, text, state.options.auto_truncate)?;
            let tokens = ids.len();
            Ok((
                Job::Embed {
                    ids,
                    pooling: Pooling::Mean,
                    normalize: false,
                },
                tokens,
            ))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let (answers, timing) = run_jobs(&state, "/similarity", model, jobs).await?;
    let vectors: Vec<Vec<f32>> = answers.into_iter().map(|a| embedding(a.output)).collect();
    let scores: Vec<f32> = vectors[1..]
        .iter()
        .map(|v| cosine(&vectors[0], v))
        .collect();
    Ok(answer(scores, &timing))
}
