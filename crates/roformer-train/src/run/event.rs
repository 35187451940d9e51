//! What the run loop reports while it runs (the library never prints; the binary renders
//! these).

use std::path::PathBuf;

/// What a run reports when data, tokenizer and model are ready. `D` is what the kind of
/// run adds (the vocabulary, or the labels).
#[derive(Debug, Clone)]
pub struct RunStarted<D> {
    /// Steps already done (non-zero when resuming).
    pub start_step: usize,
    /// Steps the run will have done when it ends.
    pub total_steps: usize,
    /// Training examples.
    pub train_examples: usize,
    /// Validation examples.
    pub valid_examples: usize,
    /// Trainable parameters of the model.
    pub parameters: usize,
    /// What the kind of run adds.
    pub details: D,
}

/// A run's progress. `R` is its evaluation record; `D` what the kind of run says when it
/// starts (the vocabulary, or the labels).
#[derive(Debug, Clone)]
pub enum RunEvent<R, D> {
    /// Data, tokenizer and model are ready.
    Started(RunStarted<D>),
    /// One optimisation step is done.
    Step {
        /// Steps done.
        step: usize,
        /// Steps the run will do.
        total_steps: usize,
        /// This step's loss.
        loss: f64,
        /// Learning rate used.
        learning_rate: f64,
        /// Real tokens per second over the steps since the last evaluation.
        tokens_per_second: f64,
    },
    /// An evaluation on the validation split; `best` when the model directory now holds
    /// this model (always, for a run that keeps its last model).
    Evaluated {
        /// The record appended to `metrics.jsonl`.
        record: R,
        /// Whether this is the model kept so far.
        best: bool,
    },
    /// A checkpoint was written.
    Checkpointed {
        /// Steps done.
        step: usize,
        /// The checkpoint folder.
        path: PathBuf,
    },
}
