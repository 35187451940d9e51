//! The one run loop of masked-LM pretraining and fine-tuning, and what it is made of:
//! the learning-rate schedule, the optimizer and its loss scale, checkpoints, the metrics
//! file and loss curves, and the run directory's common files.
//!
//! The loop owns the schedule, the epoch order, the dropout seeds, the evaluation and
//! checkpoint cadence, `metrics.jsonl` and `loss.png` (drawn after every evaluation), and
//! which model the directory keeps (the last, or the best by a validation score); a
//! [`Task`] owns the model and says how a step and an evaluation are computed.
//! Deterministic for a seed on a backend: the example order derives from (seed, epoch)
//! and the dropout masks from (seed, step), so a resumed run repeats an uninterrupted one.

pub mod checkpoint;
mod epochs;
mod event;
pub mod grad_clip;
pub mod loss_scale;
pub mod metrics;
pub mod optimizer;
mod run_dir;
pub mod schedule;
mod task;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use roformer::RoFormerTrainingBackend;

use crate::config::TrainingConfig;
use crate::data::mask_seed;
use crate::error::TrainError;
use crate::run::metrics::{append_record, plot_losses, read_step_records, truncate_step_records};

pub(crate) use epochs::Epochs;
pub use epochs::epoch_order;
pub use event::{RunEvent, RunStarted};
pub use metrics::EvalRecord;
pub use optimizer::{FusedAdamW, FusedAdamWConfig};
pub(crate) use run_dir::refuse_taken;
pub use run_dir::{METRICS_FILE, PLOT_FILE, RunStart};
pub use task::{RunRecord, StepBatch, StepLoss, Task, TaskSizes, TrainFigures};

/// Salt of the per-step seeds of the backend's random stream (dropout masks).
const DROPOUT_SALT: u64 = 0xD20F_0A75_7EED;

/// The backend's seed for `step`: dropout masks are a function of (seed, step) alone, so a
/// run resumed from a checkpoint draws the same masks as one never stopped.
pub(crate) fn dropout_seed(seed: u64, step: usize) -> u64 {
    mask_seed(seed ^ DROPOUT_SALT, step as u64, u64::MAX)
}

/// How a run is driven.
pub(crate) struct RunSettings<'a, D> {
    /// The `[training]` keys: batch size, duration, schedule, cadence, seed.
    pub training: &'a TrainingConfig,
    /// The run directory.
    pub run_dir: &'a Path,
    /// Steps already done (the checkpoint's, when resuming).
    pub start_step: usize,
    /// Whether the run continues from a checkpoint (evaluations past it are redone).
    pub resuming: bool,
    /// The caption of `loss.png`.
    pub loss_caption: &'static str,
    /// What the `Started` event adds.
    pub details: D,
}

/// What the loop leaves: the last evaluation, the kept model's, and whether the run
/// reached its last step (rather than stopping at a checkpoint).
pub(crate) struct RunOutcome<R> {
    pub last: Option<R>,
    pub best: Option<R>,
    pub finished: bool,
}

/// Training totals since the last evaluation.
#[derive(Debug, Default)]
struct SinceEvaluation {
    loss_sum: f64,
    steps: usize,
    tokens: usize,
    seconds: f64,
}

impl SinceEvaluation {
    fn add(&mut self, step: StepLoss, seconds: f64) {
        self.loss_sum += step.loss;
        self.steps += 1;
        self.tokens += step.tokens;
        self.seconds += seconds;
    }

    fn figures(&self, learning_rate: f64) -> TrainFigures {
        TrainFigures {
            mean_loss: self.loss_sum / self.steps.max(1) as f64,
            tokens_per_second: self.tokens as f64 / self.seconds.max(1e-9),
            learning_rate,
        }
    }
}

/// The run's evaluations: `metrics.jsonl`, `loss.png`, the last and the kept record.
struct Records<R> {
    metrics_path: PathBuf,
    plot_path: PathBuf,
    caption: &'static str,
    history: Vec<R>,
    best: Option<R>,
}

impl<R: RunRecord> Records<R> {
    /// The records of `run_dir` (those past `start_step` dropped when resuming: they are
    /// redone).
    fn open(
        run_dir: &Path,
        start_step: usize,
        resuming: bool,
        caption: &'static str,
    ) -> Result<Self, TrainError> {
        let metrics_path = run_dir.join(METRICS_FILE);
        if resuming {
            truncate_step_records::<R>(&metrics_path, start_step)?;
        }
        let history: Vec<R> = read_step_records(&metrics_path)?;
        // The first of equals, as the run chose it.
        let best = history.iter().cloned().reduce(|a, b| {
            if b.selection_score() > a.selection_score() {
                b
            } else {
                a
            }
        });
        Ok(Self {
            metrics_path,
            plot_path: run_dir.join(PLOT_FILE),
            caption,
            history,
            best,
        })
    }

    /// Records an evaluation and redraws the loss curves; returns whether its model is
    /// the one to keep (always, for a run that keeps its last model).
    fn add(&mut self, record: &R) -> Result<bool, TrainError> {
        append_record(&self.metrics_path, record)?;
        self.history.push(record.clone());
        plot_losses(&self.history, self.caption, &self.plot_path)?;
        let kept = !R::KEEPS_BEST
            || self
                .best
                .as_ref()
                .is_none_or(|b| record.selection_score() > b.selection_score());
        if kept && R::KEEPS_BEST {
            self.best = Some(record.clone());
        }
        Ok(kept)
    }
}

/// Evaluates after `done` steps, records it and, for a run that keeps its best model,
/// saves a better one.
fn evaluate<B, T, D>(
    task: &mut T,
    records: &mut Records<T::Record>,
    run_dir: &Path,
    done: usize,
    figures: TrainFigures,
    observe: &mut dyn FnMut(RunEvent<T::Record, D>) -> ControlFlow<()>,
) -> Result<T::Record, TrainError>
where
    B: RoFormerTrainingBackend,
    T: Task<B>,
{
    let record = task.evaluate(done, figures);
    let best = records.add(&record)?;
    if best && T::Record::KEEPS_BEST {
        task.save_model(run_dir)?;
    }
    let _ = observe(RunEvent::Evaluated {
        record: record.clone(),
        best,
    });
    Ok(record)
}

/// Writes a checkpoint after `done` steps (and, for a run that keeps its last model, the
/// model beside it, so a stopped run's directory is usable as it is); `observe` may stop
/// the run there.
fn checkpoint<B, T, D>(
    task: &mut T,
    run_dir: &Path,
    done: usize,
    observe: &mut dyn FnMut(RunEvent<T::Record, D>) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, TrainError>
where
    B: RoFormerTrainingBackend,
    T: Task<B>,
{
    let path = task.checkpoint(run_dir, done)?;
    if !T::Record::KEEPS_BEST {
        task.save_model(run_dir)?;
    }
    Ok(observe(RunEvent::Checkpointed { step: done, path }))
}

/// Runs `task` from `settings.start_step` to the end of its training (or until `observe`
/// answers `Break` to a checkpoint).
pub(crate) fn run_loop<B, T, D>(
    task: &mut T,
    settings: RunSettings<'_, D>,
    observe: &mut dyn FnMut(RunEvent<T::Record, D>) -> ControlFlow<()>,
) -> Result<RunOutcome<T::Record>, TrainError>
where
    B: RoFormerTrainingBackend,
    T: Task<B>,
{
    let RunSettings {
        training,
        run_dir,
        start_step,
        resuming,
        loss_caption,
        details,
    } = settings;
    let sizes = task.sizes();
    let train_len = sizes.train;
    let total_steps = training.total_steps(train_len);
    let schedule = training.schedule(total_steps);
    let mut epochs = Epochs::new(training, train_len);
    let mut records = Records::<T::Record>::open(run_dir, start_step, resuming, loss_caption)?;
    let mut last = records.history.last().cloned();
    let _ = observe(RunEvent::Started(RunStarted {
        start_step,
        total_steps,
        train_examples: train_len,
        valid_examples: sizes.valid,
        parameters: sizes.parameters,
        details,
    }));
    let mut since = SinceEvaluation::default();
    let mut finished = start_step == total_steps;
    for step in start_step..total_steps {
        let learning_rate = schedule.at(step);
        let started = Instant::now();
        let outcome = task.step(epochs.step(step, learning_rate))?;
        since.add(outcome, started.elapsed().as_secs_f64());
        let done = step + 1;
        let figures = since.figures(learning_rate);
        let _ = observe(RunEvent::Step {
            step: done,
            total_steps,
            loss: outcome.loss,
            learning_rate,
            tokens_per_second: figures.tokens_per_second,
        });
        let due = |every: usize| done.is_multiple_of(every) || done == total_steps;
        if due(training.eval_every) && task.evaluates() {
            since = SinceEvaluation::default();
            last = Some(evaluate(
                task,
                &mut records,
                run_dir,
                done,
                figures,
                observe,
            )?);
        }
        finished = done == total_steps;
        if due(training.checkpoint_every) && checkpoint(task, run_dir, done, observe)?.is_break() {
            break;
        }
    }
    if !T::Record::KEEPS_BEST {
        task.save_model(run_dir)?;
    }
    task.finish()?;
    Ok(RunOutcome {
        last,
        best: records.best,
        finished,
    })
}
