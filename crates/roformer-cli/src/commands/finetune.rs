//! `roformer finetune`: a pretrained encoder fine-tuned for a task from a config, or a
//! run resumed; ends with the kept model's scores.

use std::ops::ControlFlow;

use anyhow::Result;
use roformer_train::finetune::adapt::ADAPT_DIR;
use roformer_train::finetune::{
    FinetuneConfig, FinetuneDetails, FinetuneEvent, FinetuneSummary, finetune,
};
use roformer_train::run::RunEvent;

use crate::args::FinetuneArgs;
use crate::backend;
use crate::commands::train;
use crate::progress::Progress;

pub fn run(args: FinetuneArgs) -> Result<()> {
    let (start, run_dir) = args.run.start(
        |path| Ok(FinetuneConfig::from_file(path)?),
        |config| config.training.output_dir.clone(),
    )?;
    let device = backend::device()?;
    let mut progress = Progress::new(format!(
        "backend: {} (device {device:?}), run directory: {}",
        backend::NAME,
        run_dir.display()
    ));
    let mut adapting = Progress::new(format!(
        "domain adaptation: masked-LM pretraining on the training texts in {}",
        run_dir.join(ADAPT_DIR).display()
    ));
    let summary = finetune::<backend::Training>(
        start,
        &run_dir,
        &device,
        &mut |event| {
            let last =
                matches!(event, RunEvent::Step { step, total_steps, .. } if step == total_steps);
            train::on_event(&mut adapting, event);
            if last {
                adapting.finish();
            }
            ControlFlow::Continue(())
        },
        &mut |event| {
            on_event(&mut progress, event);
            ControlFlow::Continue(())
        },
    )?;
    adapting.finish();
    progress.finish();
    report_summary(&summary, progress.minutes());
    Ok(())
}

fn on_event(progress: &mut Progress, event: FinetuneEvent) {
    match event {
        RunEvent::Started(started) => {
            let FinetuneDetails { labels, extended_positions_from } = &started.details;
            let mut lines = Vec::new();
            if started.start_step == 0 {
                lines.push(format!(
                    "encoder loaded; new classification head for {} labels (initialised from the seed)",
                    labels.len()
                ));
            }
            if let Some(from) = extended_positions_from {
                lines.push(format!(
                    "max_position_embeddings raised from {from} to task.max_seq_len (rotary positions need no learned table)"
                ));
            }
            lines.push(format!(
                "{} parameters, labels [{}], {} training / {} validation examples, steps {}..{}",
                started.parameters,
                labels.join(", "),
                started.train_examples,
                started.valid_examples,
                started.start_step,
                started.total_steps
            ));
            progress.start(&lines, started.start_step, started.total_steps);
        }
        RunEvent::Step { step, total_steps, loss, learning_rate, .. } => {
            let eta = progress.eta(step, total_steps);
            progress.step(step, total_steps, format!("loss {loss:.3} lr {learning_rate:.2e} ETA {eta}"));
        }
        RunEvent::Evaluated { record, best } => progress.line(format!(
            "eval step {}: train loss {:.3}, valid loss {:.3}, valid accuracy {:.3}, macro-F1 {:.3}{}{}",
            record.step,
            record.train_loss,
            record.valid_loss,
            record.valid_accuracy,
            record.valid_macro_f1,
            entity_f1_text(record.valid_entity_f1),
            if best { " (best so far: saved)" } else { "" }
        )),
        RunEvent::Checkpointed { step, path } => progress.checkpointed(step, &path),
    }
}

/// The kept model's scores: overall, per label with the confusion matrix, entities.
fn report_summary(summary: &FinetuneSummary, minutes: f64) {
    if let Some(best) = &summary.best {
        eprintln!(
            "done in {minutes:.1} min: kept step {} (valid accuracy {:.3}, macro-F1 {:.3}{}; majority-label baseline {:.3})",
            best.step,
            best.valid_accuracy,
            best.valid_macro_f1,
            entity_f1_text(best.valid_entity_f1),
            summary.majority_baseline_accuracy
        );
    }
    if let Some(scores) = &summary.best_scores {
        let labels = &summary.labels;
        eprintln!(
            "{:<16} precision  recall  F1     | predicted as: {}",
            "label",
            labels.join(" ")
        );
        for ((label, class), row) in labels.iter().zip(&scores.per_class).zip(&scores.confusion) {
            let counts: Vec<String> = row.iter().map(usize::to_string).collect();
            eprintln!(
                "{label:<16} {:.3}      {:.3}   {:.3}  | {}",
                class.precision,
                class.recall,
                class.f1,
                counts.join(" ")
            );
        }
    }
    if let Some(entities) = summary.best_scores.as_ref().and_then(|s| s.entities) {
        eprintln!(
            "entities: precision {:.3}, recall {:.3}, F1 {:.3}",
            entities.precision, entities.recall, entities.f1
        );
    }
    eprintln!(
        "model, tokenizer, metrics.jsonl, loss.png, scores.json and confusion.png are in {}",
        summary.run_dir.display()
    );
}

/// `, entity F1 X` when there is one.
fn entity_f1_text(f1: Option<f64>) -> String {
    f1.map(|f1| format!(", entity F1 {f1:.3}"))
        .unwrap_or_default()
}
