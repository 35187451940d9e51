//! The server's metrics (the `metrics` crate's facade; `/metrics` renders them as
//! Prometheus text): requests by route and status, the queue size, batch sizes and tokens,
//! and the queue, inference and total durations.

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder (once per process) and returns what renders it.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder already installed (a test process): keep rendering ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A model's queue now.
pub fn queue_size(model: &str, size: usize) {
    metrics::gauge!("roformer_queue_size", "model" => model.to_string()).set(size as f64);
}

/// A batch computed.
pub fn batch(model: &str, entries: usize, tokens: usize, took: Duration) {
    let model = model.to_string();
    metrics::histogram!("roformer_batch_size", "model" => model.clone()).record(entries as f64);
    metrics::histogram!("roformer_batch_tokens", "model" => model.clone()).record(tokens as f64);
    metrics::histogram!("roformer_inference_duration_seconds", "model" => model)
        .record(took.as_secs_f64());
}

/// A request answered.
pub fn request(route: &str, status: u16, queued: Duration, total: Duration) {
    let route = route.to_string();
    metrics::counter!("roformer_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("roformer_queue_duration_seconds", "route" => route.clone())
        .record(queued.as_secs_f64());
    metrics::histogram!("roformer_request_duration_seconds", "route" => route)
        .record(total.as_secs_f64());
}
