//! Masked-LM pretraining: schedule, metrics, checkpoints and the loop.

pub mod checkpoint;
pub mod metrics;
pub mod optimizer;
pub mod schedule;
pub mod trainer;

pub use metrics::EvalRecord;
pub use optimizer::{FusedAdamW, FusedAdamWConfig};
pub(crate) use trainer::masked_lm_step;
pub use trainer::{
    METRICS_FILE, PLOT_FILE, RUN_CONFIG_FILE, RunStart, TrainEvent, TrainSummary, train,
};
