//! Masked-LM pretraining: schedule, metrics, checkpoints, the run directory, the data
//! splits and the loop.

pub mod checkpoint;
mod data_parallel;
pub mod loss_scale;
pub mod metrics;
pub mod nodes;
pub mod optimizer;
pub mod run_dir;
pub mod schedule;
mod split;
pub mod trainer;

pub use metrics::EvalRecord;
pub use nodes::Coordinator;
pub use optimizer::{FusedAdamW, FusedAdamWConfig};
pub use run_dir::{METRICS_FILE, PLOT_FILE, RUN_CONFIG_FILE};
pub use trainer::{RunStart, TrainEvent, TrainSummary, train};
pub(crate) use trainer::{dropout_seed, masked_lm_step};
