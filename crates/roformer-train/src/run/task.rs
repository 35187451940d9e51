//! What a kind of run brings to the run loop: its model and optimizer, how a step and an
//! evaluation are computed, and what a checkpoint and a kept model hold. Masked-LM
//! pretraining (`crate::train`) and fine-tuning a classification head
//! (`crate::finetune`) implement it; the loop owns everything else.

use std::path::{Path, PathBuf};

use roformer::RoFormerTrainingBackend;

use crate::error::TrainError;
use crate::run::metrics::LossRecord;

/// An evaluation record (a line of `metrics.jsonl`) as the loop uses it.
pub trait RunRecord: LossRecord + Clone {
    /// Whether the run keeps its best model by [`Self::selection_score`] (fine-tuning)
    /// rather than its last one (pretraining).
    const KEEPS_BEST: bool = false;

    /// The score the kept model is chosen by, highest best.
    fn selection_score(&self) -> f64 {
        0.0
    }
}

/// The training examples of one optimisation step.
#[derive(Debug, Clone, Copy)]
pub struct StepBatch<'a> {
    /// The step, 0-based.
    pub step: usize,
    /// Its epoch.
    pub epoch: usize,
    /// Indices of its training examples, in the epoch's order.
    pub examples: &'a [usize],
    /// The learning rate of the step.
    pub learning_rate: f64,
    /// The seed of the step's dropout masks.
    pub dropout_seed: u64,
}

/// What one optimisation step did.
#[derive(Debug, Clone, Copy)]
pub struct StepLoss {
    /// The step's training loss.
    pub loss: f64,
    /// Real (non-padding) tokens it trained on.
    pub tokens: usize,
}

/// The training figures an evaluation reports beside its own.
#[derive(Debug, Clone, Copy)]
pub struct TrainFigures {
    /// Mean training loss since the previous evaluation.
    pub mean_loss: f64,
    /// Real tokens per second since the previous evaluation.
    pub tokens_per_second: f64,
    /// The learning rate of the last step.
    pub learning_rate: f64,
}

/// How large a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSizes {
    /// Training examples: each epoch visits them in a seeded order.
    pub train: usize,
    /// Validation examples.
    pub valid: usize,
    /// Trainable parameters of the model.
    pub parameters: usize,
}

/// A kind of run, holding its model, optimizer and data.
pub trait Task<B: RoFormerTrainingBackend> {
    /// Its evaluation record.
    type Record: RunRecord;

    /// Its examples and parameters.
    fn sizes(&self) -> TaskSizes;

    /// Runs one optimisation step.
    fn step(&mut self, batch: StepBatch<'_>) -> Result<StepLoss, TrainError>;

    /// Whether this process evaluates (in multi-node training, only the first node does).
    fn evaluates(&self) -> bool {
        true
    }

    /// Evaluates the model after `done` steps.
    fn evaluate(&mut self, done: usize, train: TrainFigures) -> Self::Record;

    /// Writes a checkpoint after `done` steps; returns its folder.
    fn checkpoint(&self, run_dir: &Path, done: usize) -> Result<PathBuf, TrainError>;

    /// Writes the model into the run directory (the last one, or the best so far).
    fn save_model(&self, run_dir: &Path) -> Result<(), TrainError>;

    /// Ends the run (after the model is saved): stops data-parallel replicas.
    fn finish(&mut self) -> Result<(), TrainError> {
        Ok(())
    }
}
