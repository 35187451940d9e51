//! text-embeddings-inference's routes, as its clients call them: `/embed`, `/predict`,
//! `/tokenize`, `/health`, `/info`, `/metrics`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use roformer_infer::pipelines::{ClassifyInput, Pooling};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AppState, JsonBody, Texts, answer, model_ids, run_jobs, serves};
use crate::error::ApiError;
use crate::job::{Job, Output};
use crate::model::Task;

/// `/embed`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    inputs: Texts,
    #[serde(default = "yes")]
    normalize: bool,
    truncate: Option<bool>,
    #[serde(default)]
    pooling: PoolingName,
    model: Option<String>,
}

fn yes() -> bool {
    true
}

/// How an embedding is pooled, by its name in requests.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolingName {
    /// The mean of the real tokens' hidden states.
    #[default]
    Mean,
    /// The `[CLS]` token's.
    Cls,
}

impl From<PoolingName> for Pooling {
    fn from(name: PoolingName) -> Self {
        match name {
            PoolingName::Mean => Pooling::Mean,
            PoolingName::Cls => Pooling::Cls,
        }
    }
}

/// `POST /embed`: one embedding per input.
pub async fn embed(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<EmbedRequest>,
) -> Result<Response, ApiError> {
    let model = state.model(request.model.as_deref())?;
    serves(model, Task::Embed)?;
    let (texts, _) = request.inputs.into_list()?;
    let truncate = request.truncate.unwrap_or(state.options.auto_truncate);
    let jobs = texts
        .iter()
        .map(|text| {
            let ids = model_ids(model, text, truncate)?;
            let tokens = ids.len();
            let job = Job::Embed {
                ids,
                pooling: request.pooling.into(),
                normalize: request.normalize,
            };
            Ok((job, tokens))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let (answers, timing) = run_jobs(&state, "/embed", model, jobs).await?;
    let embeddings: Vec<Vec<f32>> = answers.into_iter().map(|a| embedding(a.output)).collect();
    Ok(answer(embeddings, &timing))
}

/// The embedding of an embed job's output.
pub fn embedding(output: Output) -> Vec<f32> {
    match output {
        Output::Embedding(embedding) => embedding,
        _ => unreachable!("an embed job answers with an embedding"),
    }
}

/// One `/predict` input: a text, or a text pair.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Sequence {
    Text(String),
    Pair(Vec<String>),
}

/// `/predict`'s `inputs`: one sequence, or a list of them (TEI reads `["a", "b"]` as one
/// pair).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PredictInputs {
    One(Sequence),
    Many(Vec<Sequence>),
}

/// `/predict`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    inputs: PredictInputs,
    #[serde(default)]
    raw_scores: bool,
    truncate: Option<bool>,
    model: Option<String>,
}

/// A label's score.
#[derive(Debug, Serialize)]
struct LabelScore {
    score: f64,
    label: String,
}

/// `POST /predict`: every label's score per input, best first.
pub async fn predict(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<PredictRequest>,
) -> Result<Response, ApiError> {
    let model = state.model(request.model.as_deref())?;
    serves(model, Task::Classify)?;
    let (sequences, single) = match request.inputs {
        PredictInputs::One(sequence) => (vec![sequence], true),
        PredictInputs::Many(sequences) => (sequences, false),
    };
    if sequences.is_empty() {
        return Err(ApiError::new(
            crate::error::ErrorKind::Empty,
            "`inputs` cannot be empty",
        ));
    }
    let truncate = request.truncate.unwrap_or(state.options.auto_truncate);
    let jobs = sequences
        .into_iter()
        .map(|sequence| classify_job(model, sequence, request.raw_scores, truncate))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let (answers, timing) = run_jobs(&state, "/predict", model, jobs).await?;
    let labels = model.labels.clone().unwrap_or_default();
    let mut ranked: Vec<Vec<LabelScore>> = answers
        .into_iter()
        .map(|a| match a.output {
            Output::Scores(scores) => rank(&labels, &scores),
            _ => unreachable!("a classify job answers with scores"),
        })
        .collect();
    if single {
        return Ok(answer(ranked.remove(0), &timing));
    }
    Ok(answer(ranked, &timing))
}

/// A classify job of a sequence, checked for emptiness and length.
fn classify_job(
    model: &crate::worker::ModelHandle,
    sequence: Sequence,
    raw: bool,
    truncate: bool,
) -> Result<(Job, usize), ApiError> {
    let (text, text_pair) = match sequence {
        Sequence::Text(text) => (text, None),
        Sequence::Pair(mut texts) if texts.len() == 2 => {
            let pair = texts.pop();
            (texts.pop().expect("two texts"), pair)
        }
        Sequence::Pair(texts) if texts.len() == 1 => (texts.into_iter().next().expect("one"), None),
        Sequence::Pair(_) => {
            return Err(ApiError::validation(
                "an input is a text or a pair of texts: [\"text\", \"pair\"]",
            ));
        }
    };
    if text.trim().is_empty() || text_pair.as_ref().is_some_and(|p| p.trim().is_empty()) {
        return Err(ApiError::new(
            crate::error::ErrorKind::Empty,
            "`inputs` cannot hold an empty text",
        ));
    }
    let mut tokens = model.tokenizer.encode_plain(&text)?.len() + 2;
    if let Some(pair) = &text_pair {
        tokens += model.tokenizer.encode_plain(pair)?.len() + 1;
    }
    super::check_length(model, tokens, truncate)?;
    let tokens = tokens.min(model.max_input_length);
    let input = ClassifyInput { text, text_pair };
    Ok((Job::Classify { input, raw }, tokens))
}

/// Labels with their scores, best first (equal scores keep the label order).
fn rank(labels: &[String], scores: &[f64]) -> Vec<LabelScore> {
    let mut ranked: Vec<LabelScore> = labels
        .iter()
        .zip(scores)
        .map(|(label, &score)| LabelScore {
            score,
            label: label.clone(),
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    ranked
}

/// `/tokenize`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    inputs: Texts,
    #[serde(default = "yes")]
    add_special_tokens: bool,
    model: Option<String>,
}

/// `POST /tokenize`: the tokens of each input, with where they lie in it.
pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<TokenizeRequest>,
) -> Result<Response, ApiError> {
    let model = state.model(request.model.as_deref())?;
    let (texts, _) = request.inputs.into_list()?;
    let tokens = texts
        .iter()
        .map(|text| model.tokenizer.spans(text, request.add_special_tokens))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(tokens).into_response())
}

/// `GET /health`: 200 once every model is loaded (the server listens only then).
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({}))
}

/// `GET /info`: the version, the models and what they serve, and the limits.
pub async fn info(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let options = &state.options;
    let models: Vec<_> = state
        .models
        .iter()
        .map(|model| {
            json!({
                "name": model.name,
                "dir": model.dir.display().to_string(),
                "tasks": model.tasks,
                "labels": model.labels,
                "max_input_length": model.max_input_length,
                "vocab_size": model.tokenizer.vocab_size(),
            })
        })
        .collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "models": models,
        "max_batch_tokens": options.max_batch_tokens,
        "max_batch_requests": options.max_batch_requests,
        "max_concurrent_requests": options.max_concurrent_requests,
        "max_client_batch_size": options.max_client_batch_size,
        "payload_limit": options.payload_limit,
        "auto_truncate": options.auto_truncate,
    }))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response()
}
