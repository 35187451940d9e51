//! `roformer train`: masked-LM pretraining from a config, or a run resumed.

use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{Result, bail};
use roformer::Precision;
use roformer_train::TrainConfig;
use roformer_train::run::{RunEvent, RunStart};
use roformer_train::train::{PretrainingDetails, RUN_CONFIG_FILE, TrainEvent, train};

use crate::args::TrainArgs;
use crate::backend;
use crate::output::note_built_in_config;
use crate::progress::Progress;

pub fn run(args: TrainArgs) -> Result<()> {
    let (start, run_dir, saved) = start_of(args)?;
    let (replicas, precision, distributed) = saved
        .map(|c| (c.training.devices, c.training.precision, c.distributed))
        .unwrap_or_default();
    let replicas = replicas.max(1);
    if replicas > 1 && !backend::REPLICAS_SHARE_THE_DEVICE {
        bail!(
            "training.devices = {replicas}: data-parallel replicas run on CPU backends in this build; {} trains on one device per machine",
            backend::NAME
        );
    }
    let device = backend::device()?;
    let replicas = match (replicas, distributed.nodes) {
        (1, 1) => String::new(),
        (n, 1) => format!(", {n} data-parallel replicas"),
        (n, nodes) => format!(
            ", {n} data-parallel replica(s) on node {} of {nodes}, coordinator {}",
            distributed.rank, distributed.coordinator
        ),
    };
    let mut progress = Progress::new(header(&device, &replicas, precision, &run_dir));
    let summary = train::<backend::Training>(start, &run_dir, &device, &mut |event| {
        on_event(&mut progress, event);
        ControlFlow::Continue(())
    })?;
    progress.finish();
    if let Some(last) = &summary.last {
        eprintln!(
            "done in {:.1} min: step {}, valid loss {:.3}, valid accuracy {:.3} (most-frequent-token baseline {:.3})",
            progress.minutes(),
            last.step,
            last.valid_loss,
            last.valid_accuracy,
            summary.majority_baseline_accuracy
        );
    }
    eprintln!(
        "model, tokenizer, metrics.jsonl and loss.png are in {}",
        summary.run_dir.display()
    );
    Ok(())
}

/// A fresh run (the config with the command line's overrides) or a resumed one, its
/// directory, and its config when it can be read.
fn start_of(args: TrainArgs) -> Result<(RunStart<TrainConfig>, PathBuf, Option<TrainConfig>)> {
    let TrainArgs { run, overrides } = args;
    let (start, run_dir) = run.start(
        |path| {
            note_built_in_config(path);
            Ok(TrainConfig::from_file(path)?
                .with_overrides(overrides, &path.display().to_string())?)
        },
        |config| config.training.output_dir.clone(),
    )?;
    let saved = match &start {
        RunStart::Fresh(config) => Some(config.as_ref().clone()),
        RunStart::Resume => TrainConfig::from_file(&run_dir.join(RUN_CONFIG_FILE)).ok(),
    };
    Ok((start, run_dir, saved))
}

fn header(
    device: &backend::Device,
    replicas: &str,
    precision: Precision,
    run_dir: &std::path::Path,
) -> String {
    format!(
        "backend: {} (device {device:?}{replicas}), precision {precision}, run directory: {}",
        backend::NAME,
        run_dir.display()
    )
}

/// Renders a pretraining event (also a fine-tuning run's adaptation phase).
pub(crate) fn on_event(progress: &mut Progress, event: TrainEvent) {
    match event {
        RunEvent::Started(started) => {
            let PretrainingDetails { vocab_size } = started.details;
            let line = format!(
                "{} parameters, vocabulary {vocab_size}, {} training / {} validation sequences, steps {}..{}",
                started.parameters,
                started.train_examples,
                started.valid_examples,
                started.start_step,
                started.total_steps
            );
            progress.start(&[line], started.start_step, started.total_steps);
        }
        RunEvent::Step {
            step,
            total_steps,
            loss,
            learning_rate,
            tokens_per_second,
        } => {
            let message =
                format!("loss {loss:.3} lr {learning_rate:.2e} {tokens_per_second:.0} tok/s");
            progress.step(step, total_steps, message);
        }
        RunEvent::Evaluated { record, .. } => progress.line(format!(
            "eval step {}: train loss {:.3}, valid loss {:.3}, valid accuracy {:.3}, {:.0} tok/s",
            record.step,
            record.train_loss,
            record.valid_loss,
            record.valid_accuracy,
            record.tokens_per_second
        )),
        RunEvent::Checkpointed { step, path } => progress.checkpointed(step, &path),
    }
}
