//! Training RoFormer on burn: configs, data, one run loop for masked-LM pretraining and
//! fine-tuning (sequence and token classification), data-parallel and multi-node
//! training, eval-mlm and the benchmark. Models, tokenizers and inference are
//! `roformer_infer`'s. Everything is generic over the burn backend (training over
//! `B: AutodiffBackend`); the binary picks the backend by cargo feature. This library
//! never prints: progress comes as [`train::TrainEvent`]s, problems as [`TrainError`]s.

pub mod bench;
pub mod config;
pub mod data;
mod error;
pub mod eval_mlm;
pub mod finetune;
pub mod run;
pub mod shipped_configs;
pub mod train;

pub use config::TrainConfig;
pub use error::TrainError;
