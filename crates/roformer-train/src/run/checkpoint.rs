//! Checkpoints of a run: the model and optimizer records (burn's named MessagePack
//! recorder, which keeps parameter ids so the optimizer state re-attaches) and the step.
//!
//! A checkpoint is written to `checkpoint.tmp/`, then swapped in for `checkpoint/` by
//! renames; a run killed at any moment leaves `checkpoint/` or, mid-swap,
//! `checkpoint.old/` holding the last complete checkpoint.

use roformer::RoFormerTrainingBackend;
use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};

use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::run::loss_scale::LossScale;

const CHECKPOINT: &str = "checkpoint";

/// Fault injection for the crash tests (`tests/cli/kill_resume.rs`):
/// `ROFORMER_PAUSE_CHECKPOINT=STAGE:STEP:FILE` makes the checkpoint write after step STEP
/// create FILE and then wait, at STAGE, until the process is killed. Stages: `records`
/// (the temporary folder holds the model record, not yet the optimizer's) and `swap` (the
/// previous checkpoint is renamed away, the new one is not yet in place).
pub const PAUSE_CHECKPOINT_ENV: &str = "ROFORMER_PAUSE_CHECKPOINT";

fn pause_if_asked(stage: &str, step: usize) {
    let Ok(spec) = std::env::var(PAUSE_CHECKPOINT_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let (Some(at_stage), Some(at_step), Some(marker)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    if at_stage == stage && at_step.parse() == Ok(step) && std::fs::write(marker, stage).is_ok() {
        loop {
            std::thread::park();
        }
    }
}
const STATE_FILE: &str = "state.json";

/// Progress saved beside the records.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Optimisation steps completed.
    pub step: usize,
    /// The dynamic loss scale of f16 training (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<LossScale>,
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::new()
}

fn sibling(run_dir: &Path, suffix: &str) -> PathBuf {
    run_dir.join(format!("{CHECKPOINT}{suffix}"))
}

/// Writes a checkpoint of `model` and `optimizer` after `state.step` steps.
pub fn save_checkpoint<B, M, O>(
    run_dir: &Path,
    state: TrainingState,
    model: &M,
    optimizer: &O,
) -> Result<PathBuf, TrainError>
where
    B: RoFormerTrainingBackend,
    M: AutodiffModule<B> + Clone,
    O: Optimizer<M, B>,
{
    let tmp = sibling(run_dir, ".tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let record_error = |path: &Path, e: burn::record::RecorderError| TrainError::io(path, e);
    let model_path = tmp.join("model");
    model
        .clone()
        .save_file(&model_path, &recorder())
        .map_err(|e| record_error(&model_path, e))?;
    pause_if_asked("records", state.step);
    let optimizer_path = tmp.join("optimizer");
    recorder()
        .record(optimizer.to_record(), optimizer_path.clone())
        .map_err(|e| record_error(&optimizer_path, e))?;
    let state_json = serde_json::to_string_pretty(&state).expect("state serializes");
    roformer_infer::fs_atomic::write_atomic(&tmp.join(STATE_FILE), state_json.as_bytes())?;

    let current = sibling(run_dir, "");
    let old = sibling(run_dir, ".old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    if current.exists() {
        std::fs::rename(&current, &old).map_err(|e| TrainError::io(&current, e))?;
    }
    pause_if_asked("swap", state.step);
    std::fs::rename(&tmp, &current).map_err(|e| TrainError::io(&tmp, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    Ok(current)
}

/// The last complete checkpoint folder of a run, if any.
pub fn latest_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    [sibling(run_dir, ""), sibling(run_dir, ".old")]
        .into_iter()
        .find(|dir| dir.join(STATE_FILE).is_file())
}

/// Restores `model` and `optimizer` from the run's last checkpoint.
pub fn load_checkpoint<B, M, O>(
    run_dir: &Path,
    model: M,
    optimizer: O,
    device: &B::Device,
) -> Result<(TrainingState, M, O), TrainError>
where
    B: RoFormerTrainingBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let dir = latest_checkpoint(run_dir).ok_or_else(|| {
        TrainError::model_dir(
            run_dir,
            "no checkpoint to resume from (expected checkpoint/state.json)",
        )
    })?;
    let state_path = dir.join(STATE_FILE);
    let state_text =
        std::fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let state: TrainingState = serde_json::from_str(&state_text).map_err(|e| {
        TrainError::model_dir(&state_path, format!("corrupt checkpoint state: {e}"))
    })?;
    let corrupt = |path: &Path, e: burn::record::RecorderError| {
        TrainError::model_dir(path, format!("corrupt checkpoint: {e}"))
    };
    let model_path = dir.join("model");
    let model = model
        .load_file(&model_path, &recorder(), device)
        .map_err(|e| corrupt(&model_path, e))?;
    let optimizer_path = dir.join("optimizer");
    let record = recorder()
        .load(optimizer_path.clone(), device)
        .map_err(|e| corrupt(&optimizer_path, e))?;
    Ok((state, model, optimizer.load_record(record)))
}
