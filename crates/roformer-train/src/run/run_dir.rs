//! What every run directory has: the metrics and loss-curve files, and the check that a
//! fresh run does not overwrite a run or a model already there.

use std::path::Path;

use crate::error::TrainError;
use crate::run::checkpoint::latest_checkpoint;

/// Evaluation history, a JSON object a line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Loss curves.
pub const PLOT_FILE: &str = "loss.png";

/// Where a run starts.
pub enum RunStart<C> {
    /// A new run into an empty (or new) directory.
    Fresh(Box<C>),
    /// Continue the run in this directory from its last checkpoint.
    Resume,
}

/// A fresh run refuses a directory that holds a run (a checkpoint or `run_config`) or
/// any of `model_files`, which `what` ("training", "fine-tuning") would overwrite.
pub(crate) fn refuse_taken(
    run_dir: &Path,
    run_config: &str,
    model_files: &[&str],
    what: &str,
) -> Result<(), TrainError> {
    if latest_checkpoint(run_dir).is_some() || run_dir.join(run_config).exists() {
        return Err(TrainError::model_dir(
            run_dir,
            "already holds a run; continue it with --resume or choose another --output",
        ));
    }
    if let Some(name) = model_files.iter().find(|name| run_dir.join(name).exists()) {
        return Err(TrainError::model_dir(
            run_dir,
            format!("already holds {name}, which {what} would overwrite; choose another --output"),
        ));
    }
    Ok(())
}
