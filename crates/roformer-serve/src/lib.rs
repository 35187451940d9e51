//! `roformer serve`: an HTTP inference server for RoFormer models, built on
//! `roformer-infer` (the pipelines the command line runs). One process serves several
//! model directories; each model has one worker thread that owns it and a queue batched
//! by a token budget across all of its routes (text-embeddings-inference's design). The
//! routes speak text-embeddings-inference's, OpenAI's and transformers pipelines' JSON.
//!
//! ```no_run
//! # async fn run() -> Result<(), roformer_serve::ServeError> {
//! use roformer_serve::{ModelSpec, ServeOptions, Server};
//! let models = vec![ModelSpec::parse("runs/tiny")];
//! let server = Server::start::<burn::backend::NdArray>(&models, ServeOptions::default(), Default::default()).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(roformer_serve::shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```

mod error;
mod job;
mod metrics;
mod model;
mod options;
mod queue;
mod routes;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use roformer::RoFormerBackend;
use roformer_infer::InferError;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use error::{ApiError, ErrorKind};
pub use model::Task;
pub use options::ServeOptions;

use crate::queue::BatchLimits;
use crate::routes::AppState;

/// What can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A model that cannot be loaded.
    #[error("model `{name}`: {source}")]
    Model {
        /// Its name.
        name: String,
        /// Why.
        source: InferError,
    },
    /// Two models with one name, or none.
    #[error("{0}")]
    Models(String),
    /// The address cannot be listened on, or the server failed.
    #[error("{address}: {message}")]
    Listen {
        /// The address.
        address: String,
        /// The system's message.
        message: String,
    },
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every request in flight was answered.
    Drained,
    /// The drain timeout passed with requests still in flight.
    DrainTimeout,
}

/// A model to serve: its name in requests and its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The name requests give in `"model"`.
    pub name: String,
    /// The model directory.
    pub dir: PathBuf,
}

impl ModelSpec {
    /// `NAME=DIR`, or `DIR` alone (named after its last component).
    pub fn parse(spec: &str) -> Self {
        if let Some((name, dir)) = spec.split_once('=')
            && !name.is_empty()
            && !name.contains(['/', '\\'])
        {
            return Self {
                name: name.to_string(),
                dir: PathBuf::from(dir),
            };
        }
        let dir = PathBuf::from(spec);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.to_string());
        Self { name, dir }
    }
}

/// A server with its models loaded, listening.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Server {
    /// Loads every model (each on a worker thread of its own), then binds the address.
    pub async fn start<B: RoFormerBackend>(
        models: &[ModelSpec],
        options: ServeOptions,
        device: B::Device,
    ) -> Result<Self, ServeError> {
        check_names(models)?;
        let limits = BatchLimits {
            max_tokens: options.max_batch_tokens.max(1),
            max_entries: options.max_batch_requests.unwrap_or(usize::MAX).max(1),
        };
        let mut handles = Vec::with_capacity(models.len());
        for spec in models {
            let (name, dir, device) = (spec.name.clone(), spec.dir.clone(), device.clone());
            let precision = options.precision;
            let handle = tokio::task::spawn_blocking(move || {
                worker::spawn::<B>(name, dir, device, precision, limits)
            })
            .await
            .map_err(|e| ServeError::Models(format!("loading `{}`: {e}", spec.name)))?
            .map_err(|source| ServeError::Model {
                name: spec.name.clone(),
                source,
            })?;
            handles.push(handle);
        }
        let address = format!("{}:{}", options.host, options.port);
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|e| ServeError::Listen {
                address: address.clone(),
                message: e.to_string(),
            })?;
        let state = Arc::new(AppState {
            models: handles,
            in_flight: Arc::new(Semaphore::new(options.max_concurrent_requests)),
            prometheus: metrics::install(),
            options,
        });
        Ok(Self { listener, state })
    }

    /// The address it listens on (the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting and lets the requests in
    /// flight finish (for at most `--drain-timeout` seconds).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Stopped, ServeError> {
        let address = self.local_addr().to_string();
        let drain = Duration::from_secs(self.state.options.drain_timeout);
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let app = routes::router(self.state);
        let serving = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping.send(true);
        });
        let mut stopped = stopped;
        let drain_deadline = async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            result = serving => result
                .map(|()| Stopped::Drained)
                .map_err(|e| ServeError::Listen { address, message: e.to_string() }),
            () = drain_deadline => Ok(Stopped::DrainTimeout),
        }
    }
}

/// Refuses two models of one name, or no model.
fn check_names(models: &[ModelSpec]) -> Result<(), ServeError> {
    if models.is_empty() {
        return Err(ServeError::Models("give at least one --model".into()));
    }
    for (index, spec) in models.iter().enumerate() {
        if models[..index].iter().any(|other| other.name == spec.name) {
            return Err(ServeError::Models(format!(
                "two models are named `{}`: name them with --model NAME=DIR",
                spec.name
            )));
        }
    }
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs_take_a_name_or_the_directory_name() {
        assert_eq!(
            ModelSpec::parse("tagger=runs/tag"),
            ModelSpec {
                name: "tagger".into(),
                dir: "runs/tag".into()
            }
        );
        assert_eq!(
            ModelSpec::parse("runs/tiny"),
            ModelSpec {
                name: "tiny".into(),
                dir: "runs/tiny".into()
            }
        );
        // A directory whose path holds `=` after a slash is a directory.
        assert_eq!(
            ModelSpec::parse("runs/a=b"),
            ModelSpec {
                name: "a=b".into(),
                dir: "runs/a=b".into()
            }
        );
        assert!(check_names(&[ModelSpec::parse("a=x"), ModelSpec::parse("a=y")]).is_err());
        assert!(check_names(&[]).is_err());
    }
}
