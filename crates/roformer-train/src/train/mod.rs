//! Masked-LM pretraining: the task the run loop trains ([`trainer`]), its run directory
//! and data splits, and data-parallel and multi-node training.

mod data_parallel;
pub mod nodes;
pub mod run_dir;
mod split;
pub mod trainer;

pub use nodes::Coordinator;
pub use run_dir::RUN_CONFIG_FILE;
pub(crate) use trainer::masked_lm_step;
pub(crate) use trainer::{Continued, train_from};
pub use trainer::{PretrainingDetails, TrainEvent, TrainSummary, train};
