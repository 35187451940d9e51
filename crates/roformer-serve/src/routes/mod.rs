//! The HTTP front end over the models' workers: the router, the state every handler
//! shares, and what the routes have in common (reading a JSON body, the API key, picking
//! the model, running a request's jobs within the limits, the timing headers).
//!
//! - [`tei`]: text-embeddings-inference's `/embed`, `/predict`, `/tokenize`, `/health`,
//!   `/info`, `/metrics`;
//! - [`openai`]: OpenAI's `/v1/embeddings`;
//! - [`pipelines`]: transformers-pipeline-shaped `/fill-mask`, `/tag`, `/similarity`.

mod openai;
mod pipelines;
mod tei;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ErrorKind, OpenAiError};
use crate::job::{Answer, Entry, Job};
use crate::metrics;
use crate::model::Task;
use crate::options::ServeOptions;
use crate::worker::ModelHandle;

/// What every handler shares.
pub struct AppState {
    /// The models; the first is the default.
    pub models: Vec<ModelHandle>,
    /// The server's settings.
    pub options: ServeOptions,
    /// One permit per input in flight.
    pub in_flight: Arc<Semaphore>,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
}

impl AppState {
    /// The model a request names (`"model"`), or the default one.
    pub fn model(&self, name: Option<&str>) -> Result<&ModelHandle, ApiError> {
        match name {
            None => Ok(&self.models[0]),
            Some(name) => self.models.iter().find(|m| m.name == name).ok_or_else(|| {
                let served: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
                ApiError::validation(format!(
                    "model `{name}` is not served here (served: {})",
                    served.join(", ")
                ))
            }),
        }
    }
}

/// The router of every route over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let payload_limit = state.options.payload_limit;
    let inference = Router::new()
        .route("/embed", post(tei::embed))
        .route("/predict", post(tei::predict))
        .route("/tokenize", post(tei::tokenize))
        .route("/fill-mask", post(pipelines::fill_mask))
        .route("/tag", post(pipelines::tag))
        .route("/similarity", post(pipelines::similarity))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    let openai = Router::new()
        .route("/v1/embeddings", post(openai::embeddings))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_key_openai,
        ));
    Router::new()
        .route("/health", get(tei::health))
        .route("/info", get(tei::info))
        .route("/metrics", get(tei::metrics))
        .merge(inference)
        .merge(openai)
        .layer(DefaultBodyLimit::max(payload_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_answer,
        ))
        .with_state(state)
}

/// A handler's panic: a 500 for that request; the server goes on.
fn panic_answer(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(ErrorKind::Backend, "the server failed on this request").into_response()
}

/// Whether the request carries the API key (when the server has one).
fn has_key(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(key) = &state.options.api_key else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given == key)
}

fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorKind::Unauthorized,
        "this route needs `Authorization: Bearer KEY` with the server's API key",
    )
}

async fn require_key(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if has_key(&state, request.headers()) {
        next.run(request).await
    } else {
        unauthorized().into_response()
    }
}

async fn require_key_openai(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if has_key(&state, request.headers()) {
        next.run(request).await
    } else {
        OpenAiError(unauthorized()).into_response()
    }
}

/// A JSON body, its rejections as the server's errors: 413 over the payload limit, 422 for
/// anything that is not the route's JSON.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(
                ApiError::new(ErrorKind::PayloadTooLarge, rejection.body_text()),
            ),
            Err(rejection) => Err(ApiError::validation(rejection.body_text())),
        }
    }
}

/// Text inputs: one, or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Texts {
    /// One text.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Texts {
    /// The texts, and whether one was given alone (answered without the outer list).
    pub fn into_list(self) -> Result<(Vec<String>, bool), ApiError> {
        let (texts, single) = match self {
            Texts::One(text) => (vec![text], true),
            Texts::Many(texts) => (texts, false),
        };
        non_empty_texts(&texts, "inputs")?;
        Ok((texts, single))
    }
}

/// Refuses (400) an empty list of texts, or an empty text among them; `field` names the
/// request's key.
pub fn non_empty_texts(texts: &[String], field: &str) -> Result<(), ApiError> {
    if texts.is_empty() {
        return Err(ApiError::new(
            ErrorKind::Empty,
            format!("`{field}` cannot be empty"),
        ));
    }
    if texts.iter().any(|t| t.trim().is_empty()) {
        return Err(ApiError::new(
            ErrorKind::Empty,
            format!("`{field}` cannot hold an empty text"),
        ));
    }
    Ok(())
}

/// Checks that `model` serves `task`.
pub fn serves(model: &ModelHandle, task: Task) -> Result<(), ApiError> {
    if model.tasks.contains(&task) {
        return Ok(());
    }
    let tasks: Vec<String> = model.tasks.iter().map(|t| format!("{t:?}")).collect();
    Err(ApiError::new(
        ErrorKind::NotSupported,
        format!(
            "model `{}` cannot serve this route (it answers: {})",
            model.name,
            tasks.join(", ")
        ),
    ))
}

/// Token ids of `text` with `[CLS]`/`[SEP]`, refused (422) when longer than the model
/// takes unless truncated (keeping `[SEP]`).
pub fn model_ids(model: &ModelHandle, text: &str, truncate: bool) -> Result<Vec<u32>, ApiError> {
    let mut ids = model.tokenizer.encode_with_special(text)?;
    check_length(model, ids.len(), truncate)?;
    if ids.len() > model.max_input_length {
        ids.truncate(model.max_input_length - 1);
        ids.push(model.tokenizer.special().sep);
    }
    Ok(ids)
}

/// Refuses an input of `tokens` tokens longer than the model takes, unless `truncate`.
pub fn check_length(model: &ModelHandle, tokens: usize, truncate: bool) -> Result<(), ApiError> {
    if tokens > model.max_input_length && !truncate {
        return Err(ApiError::validation(format!(
            "Input validation error: `inputs` must have less than {} tokens. Given: {tokens}",
            model.max_input_length,
        )));
    }
    Ok(())
}

/// What running a request's jobs took.
pub struct Timing {
    started: Instant,
    queued: Duration,
    inference: Duration,
    tokens: usize,
    batch_tokens: usize,
}

impl Timing {
    /// The timing headers of the answer.
    pub fn headers(&self) -> [(&'static str, HeaderValue); 5] {
        let ms = |d: Duration| HeaderValue::from(d.as_millis() as u64);
        [
            ("x-queue-time", ms(self.queued)),
            ("x-inference-time", ms(self.inference)),
            ("x-total-time", ms(self.started.elapsed())),
            ("x-compute-tokens", HeaderValue::from(self.tokens as u64)),
            (
                "x-batch-tokens",
                HeaderValue::from(self.batch_tokens as u64),
            ),
        ]
    }
}

/// Runs `jobs` (each with its length in tokens) on `model`, at most
/// `--max-client-batch-size` of them queued at once, within `--max-concurrent-requests`
/// and `--request-timeout`; the answers in order.
pub async fn run_jobs(
    state: &AppState,
    route: &str,
    model: &ModelHandle,
    jobs: Vec<(Job, usize)>,
) -> Result<(Vec<Answer>, Timing), ApiError> {
    let started = Instant::now();
    let permits = u32::try_from(jobs.len()).unwrap_or(u32::MAX);
    let _permit = state
        .in_flight
        .clone()
        .try_acquire_many_owned(permits)
        .map_err(|_| {
            ApiError::new(
                ErrorKind::Overloaded,
                format!(
                    "too many inputs in flight (at most {}); retry later",
                    state.options.max_concurrent_requests
                ),
            )
        })?;
    let tokens = jobs.iter().map(|(_, t)| t).sum();
    let work = answer_in_chunks(model, jobs, state.options.max_client_batch_size.max(1));
    let answers = match state.options.request_timeout() {
        Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| {
            ApiError::new(
                ErrorKind::Timeout,
                format!(
                    "no answer within the request timeout of {} s",
                    limit.as_secs()
                ),
            )
        })?,
        None => work.await,
    };
    let answers = answers.inspect_err(|e| {
        metrics::request(
            route,
            e.status().as_u16(),
            Duration::ZERO,
            started.elapsed(),
        )
    })?;
    let timing = Timing {
        started,
        queued: answers.iter().map(|a| a.queued).max().unwrap_or_default(),
        inference: answers
            .iter()
            .map(|a| a.inference)
            .max()
            .unwrap_or_default(),
        tokens,
        batch_tokens: answers.iter().map(|a| a.batch_tokens).max().unwrap_or(0),
    };
    metrics::request(route, 200, timing.queued, started.elapsed());
    Ok((answers, timing))
}

/// Queues the jobs a client batch at a time and waits for their answers.
async fn answer_in_chunks(
    model: &ModelHandle,
    jobs: Vec<(Job, usize)>,
    chunk: usize,
) -> Result<Vec<Answer>, ApiError> {
    let mut answers = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let mut waiting = Vec::with_capacity(chunk);
        for (job, tokens) in jobs.by_ref().take(chunk) {
            let (entry, answer) = Entry::new(job, tokens);
            model.submit(entry)?;
            waiting.push(answer);
        }
        for answer in waiting {
            let answer = answer
                .await
                .map_err(|_| ApiError::new(ErrorKind::Unhealthy, "the model's worker stopped"))??;
            answers.push(answer);
        }
    }
    Ok(answers)
}

/// A JSON answer with the timing headers.
pub fn answer<T: serde::Serialize>(value: T, timing: &Timing) -> Response {
    let mut response = Json(value).into_response();
    for (name, value) in timing.headers() {
        response.headers_mut().insert(name, value);
    }
    response
}
