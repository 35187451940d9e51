//! The server's errors and their HTTP answers: TEI's `{"error", "error_type"}` with TEI's
//! status codes, or OpenAI's `{"error": {"message", "type", "code"}}` on its routes. Every
//! core error becomes an answer here, in one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roformer_infer::InferError;
use serde_json::json;

/// What went wrong with a request, by the answer it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: an empty input.
    Empty,
    /// 401: no or a wrong API key.
    Unauthorized,
    /// 413: a body over the payload limit.
    PayloadTooLarge,
    /// 422: a body that is not the route's JSON, or an input the model refuses.
    Validation,
    /// 424: a route the model cannot serve, or an unknown model.
    NotSupported,
    /// 429: too many inputs in flight.
    Overloaded,
    /// 500: the model failed on the batch.
    Backend,
    /// 503: the model's worker stopped.
    Unhealthy,
    /// 504: the answer took longer than the request timeout.
    Timeout,
}

impl ErrorKind {
    fn status(self) -> StatusCode {
        match self {
            ErrorKind::Empty => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotSupported => StatusCode::FAILED_DEPENDENCY,
            ErrorKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Backend => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// TEI's `error_type`.
    fn name(self) -> &'static str {
        match self {
            ErrorKind::Empty => "empty",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Validation => "validation",
            ErrorKind::NotSupported => "not_supported",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Backend => "backend",
            ErrorKind::Unhealthy => "unhealthy",
            ErrorKind::Timeout => "timeout",
        }
    }
}

/// An error answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What kind it is.
    pub kind: ErrorKind,
    /// What was wrong, for the client.
    pub message: String,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// 422: the input is not what the route takes.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl From<InferError> for ApiError {
    fn from(error: InferError) -> Self {
        let kind = match error {
            InferError::Data { .. } | InferError::Tokenizer { .. } => ErrorKind::Validation,
            _ => ErrorKind::Backend,
        };
        Self::new(kind, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "error_type": self.kind.name() });
        (self.status(), Json(body)).into_response()
    }
}

/// The same error in OpenAI's shape, for the `/v1` routes.
#[derive(Debug, Clone)]
pub struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let kind = match self.0.kind {
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Overloaded => "rate_limit_error",
            ErrorKind::Backend | ErrorKind::Unhealthy | ErrorKind::Timeout => "server_error",
            _ => "invalid_request_error",
        };
        let body = json!({ "error": {
            "message": self.0.message,
            "type": kind,
            "code": self.0.kind.name(),
        }});
        (self.0.status(), Json(body)).into_response()
    }
}
