//! How the server runs: where it listens, its batching limits, and what it refuses.
//! Each field's doc is its `roformer serve` flag's help.

use std::time::Duration;

use roformer::Precision;

/// The server's settings (the models are given apart, as [`crate::ModelSpec`]s).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ServeOptions {
    /// The address to listen on.
    #[cfg_attr(feature = "clap", arg(long, default_value = "127.0.0.1"))]
    pub host: String,
    /// The port to listen on (0: a free one, printed when the server starts).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8080))]
    pub port: u16,
    /// Compute precision: f32, or bf16 / f16 on a GPU build whose device has it.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "f32", value_name = "f32|bf16|f16")
    )]
    pub precision: Precision,
    /// Tokens in a batch at most, padding counted (one input longer than that runs alone).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 16384))]
    pub max_batch_tokens: usize,
    /// Inputs in a batch at most (default: no limit but the tokens).
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_batch_requests: Option<usize>,
    /// Inputs in flight at most; more are answered 429.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 512))]
    pub max_concurrent_requests: usize,
    /// Inputs of one request run together at most; a larger request is split into
    /// batches of this size and answered whole.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 32))]
    pub max_client_batch_size: usize,
    /// Request bodies larger than this many bytes are answered 413.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2_000_000))]
    pub payload_limit: usize,
    /// Seconds a request may wait for its answer before a 504 (default: no limit).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SECS"))]
    pub request_timeout: Option<f64>,
    /// Inference routes need `Authorization: Bearer KEY`.
    #[cfg_attr(feature = "clap", arg(long, value_name = "KEY"))]
    pub api_key: Option<String>,
    /// Cut inputs longer than the model's maximum instead of refusing them (a request's
    /// own `truncate` wins).
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "true|false")
    )]
    pub auto_truncate: bool,
    /// Seconds requests in flight may take to finish after SIGTERM or Ctrl-C.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 30, value_name = "SECS"))]
    pub drain_timeout: u64,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            precision: Precision::F32,
            max_batch_tokens: 16384,
            max_batch_requests: None,
            max_concurrent_requests: 512,
            max_client_batch_size: 32,
            payload_limit: 2_000_000,
            request_timeout: None,
            api_key: None,
            auto_truncate: false,
            drain_timeout: 30,
        }
    }
}

impl ServeOptions {
    /// The wait for an answer, when limited.
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
            .map(|seconds| Duration::from_secs_f64(seconds.max(0.0)))
    }
}
