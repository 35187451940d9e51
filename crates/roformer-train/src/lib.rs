//! Training, data, tokenizer and inference for RoFormer on burn; the library behind the
//! `roformer` binary. Everything is generic over the burn backend (training over
//! `B: AutodiffBackend`); the binary picks the backend by cargo feature. This library
//! never prints: progress comes as [`train::TrainEvent`]s, problems as [`TrainError`]s.

pub mod bench;
pub mod classify;
pub mod config;
pub mod data;
mod error;
pub mod eval_mlm;
pub mod finetune;
pub mod fs_atomic;
pub mod infer;
pub mod model_dir;
pub mod tag;
pub mod train;

pub use config::TrainConfig;
pub use error::TrainError;
