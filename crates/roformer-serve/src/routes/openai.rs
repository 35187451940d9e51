//! OpenAI's `POST /v1/embeddings`, as its official client libraries call it (base URL
//! pointed at the server): text or token-id inputs, float or base64 embeddings, usage.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use roformer_infer::pipelines::Pooling;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AppState, JsonBody, answer, check_length, model_ids, non_empty_texts, run_jobs, serves,
};
use crate::error::{ApiError, ErrorKind, OpenAiError};
use crate::job::Job;
use crate::model::Task;
use crate::routes::tei::embedding;

/// `input`: a text, texts, token ids, or lists of token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

/// The body of `/v1/embeddings`.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    input: Input,
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<String>,
    /// Accepted and ignored, as OpenAI's clients may send it.
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<Value>,
    /// Only the model's own width is served.
    #[serde(default)]
    dimensions: Option<usize>,
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Result<JsonBody<EmbeddingsRequest>, ApiError>,
) -> Result<Response, OpenAiError> {
    let JsonBody(request) = body?;
    // A name OpenAI's clients send that is not one of ours falls back to the default model.
    let named = request
        .model
        .as_deref()
        .filter(|name| state.models.iter().any(|m| m.name == *name));
    let model = state.model(named)?;
    serves(model, Task::Embed)?;
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "encoding_format must be \"float\" or \"base64\", got \"{other}\""
            ))
            .into());
        }
    };
    let ids = input_ids(model, request.input, state.options.auto_truncate)?;
    let jobs: Vec<(Job, usize)> = ids
        .into_iter()
        .map(|ids| {
            let tokens = ids.len();
            let job = Job::Embed {
                ids,
                pooling: Pooling::Mean,
                normalize: true,
            };
            (job, tokens)
        })
        .collect();
    let prompt_tokens: usize = jobs.iter().map(|(_, t)| t).sum();
    let (answers, timing) = run_jobs(&state, "/v1/embeddings", model, jobs).await?;
    let data: Vec<Value> = answers
        .into_iter()
        .enumerate()
        .map(|(index, a)| {
            let vector = embedding(a.output);
            if let Some(width) = request.dimensions
                && width != vector.len()
            {
                return Err(ApiError::validation(format!(
                    "dimensions: this model's embeddings have {} dimensions, not {width}",
                    vector.len()
                )));
            }
            let embedding = match base64 {
                true => json!(base64_floats(&vector)),
                false => json!(vector),
            };
            Ok(json!({ "object": "embedding", "embedding": embedding, "index": index }))
        })
        .collect::<Result<_, ApiError>>()?;
    let body = json!({
        "object": "list",
        "data": data,
        "model": model.name,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    });
    Ok(answer(body, &timing))
}

/// Each input's token ids: texts tokenized with `[CLS]`/`[SEP]`, ids as they are (checked
/// against the vocabulary).
fn input_ids(
    model: &crate::worker::ModelHandle,
    input: Input,
    truncate: bool,
) -> Result<Vec<Vec<u32>>, ApiError> {
    let texts = |texts: Vec<String>| -> Result<Vec<Vec<u32>>, ApiError> {
        non_empty_texts(&texts, "input")?;
        texts
            .iter()
            .map(|t| model_ids(model, t, truncate))
            .collect()
    };
    let lists = match input {
        Input::Text(text) => return texts(vec![text]),
        Input::Texts(many) => return texts(many),
        Input::Ids(ids) => vec![ids],
        Input::IdLists(lists) => lists,
    };
    if lists.is_empty() || lists.iter().any(Vec::is_empty) {
        return Err(ApiError::new(ErrorKind::Empty, "`input` cannot be empty"));
    }
    let vocab = model.tokenizer.vocab_size();
    lists
        .into_iter()
        .map(|mut ids| {
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::validation(format!(
                    "token id {bad} is outside the vocabulary (0..{vocab})"
                )));
            }
            check_length(model, ids.len(), truncate)?;
            ids.truncate(model.max_input_length);
            Ok(ids)
        })
        .collect()
}

/// The little-endian bytes of `values`, base64 (what OpenAI's clients decode).
fn base64_floats(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
