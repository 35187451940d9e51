//! Training metrics: one JSON object per evaluation appended to `metrics.jsonl` (any
//! record type with a step: pretraining's [`EvalRecord`], fine-tuning's own), and the
//! loss curves drawn to `loss.png` (plotters, with the DejaVu font embedded).

use roformer_infer::json_lines;
use std::io::Write;
use std::path::Path;

use plotters::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// One evaluation: a line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Optimisation steps done.
    pub step: usize,
    /// Mean training loss since the previous evaluation.
    pub train_loss: f64,
    /// Masked-LM loss on the validation split.
    pub valid_loss: f64,
    /// Fraction of masked validation tokens predicted exactly.
    pub valid_accuracy: f64,
    /// Real (non-padding) training tokens per second since the previous evaluation.
    pub tokens_per_second: f64,
    /// Learning rate at this step.
    pub learning_rate: f64,
}

/// A line of a metrics file: it knows the step it was taken at.
pub trait StepRecord: Serialize + DeserializeOwned {
    /// Optimisation steps done when the record was taken.
    fn step(&self) -> usize;
}

impl StepRecord for EvalRecord {
    fn step(&self) -> usize {
        self.step
    }
}

/// Appends `record` to `path` (one JSON object per line).
pub fn append_record<T: Serialize>(path: &Path, record: &T) -> Result<(), TrainError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TrainError::io(path, e))?;
    let line = serde_json::to_string(record).expect("a record always serializes");
    writeln!(file, "{line}").map_err(|e| TrainError::io(path, e))
}

/// Reads every pretraining record of `path` (none if the file does not exist).
pub fn read_records(path: &Path) -> Result<Vec<EvalRecord>, TrainError> {
    read_step_records(path)
}

/// Reads every record of `path` (none if the file does not exist).
pub fn read_step_records<T: StepRecord>(path: &Path) -> Result<Vec<T>, TrainError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = json_lines::read(path)?;
    Ok(json_lines::parse(&text, &path.display().to_string())?)
}

/// Keeps the pretraining records of steps up to `step` (see [`truncate_step_records`]).
pub fn truncate_records(path: &Path, step: usize) -> Result<(), TrainError> {
    truncate_step_records::<EvalRecord>(path, step)
}

/// Keeps the records of steps up to `step` (after a resume from an earlier checkpoint).
/// A last line cut short by a killed run (no newline, not JSON) is dropped too.
pub fn truncate_step_records<T: StepRecord>(path: &Path, step: usize) -> Result<(), TrainError> {
    if !path.exists() {
        return Ok(());
    }
    let mut text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    if !text.is_empty() && !text.ends_with('\n') {
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        let torn = &text[complete..];
        if serde_json::from_str::<T>(torn).is_err() {
            text.truncate(complete);
        }
    }
    let mut kept: Vec<T> = json_lines::parse(&text, &path.display().to_string())?;
    kept.retain(|record| record.step() <= step);
    let text = json_lines::to_string(&kept)?;
    Ok(roformer_infer::fs_atomic::write_atomic(
        path,
        text.as_bytes(),
    )?)
}

/// A record with a training and a validation loss, as [`plot_losses`] draws it.
pub trait LossRecord: StepRecord {
    /// Mean training loss since the previous evaluation.
    fn train_loss(&self) -> f64;
    /// Validation loss.
    fn valid_loss(&self) -> f64;
}

impl LossRecord for EvalRecord {
    fn train_loss(&self) -> f64 {
        self.train_loss
    }
    fn valid_loss(&self) -> f64 {
        self.valid_loss
    }
}

/// Draws training and validation loss against steps to a PNG, captioned `caption`.
pub fn plot_losses<R: LossRecord>(
    records: &[R],
    caption: &str,
    path: &Path,
) -> Result<(), TrainError> {
    if records.is_empty() {
        return Ok(());
    }
    register_font();
    let plot_error =
        |e: &dyn std::fmt::Display| TrainError::io(path, format!("cannot draw the loss plot: {e}"));
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let max_step = records.iter().map(|r| r.step()).max().unwrap_or(1).max(1) as f64;
    let losses = records
        .iter()
        .flat_map(|r| [r.train_loss(), r.valid_loss()]);
    let (low, high) = losses.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let margin = ((high - low) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_step, (low - margin)..(high + margin))
        .map_err(|e| plot_error(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .draw()
        .map_err(|e| plot_error(&e))?;
    let series = [
        (
            "train",
            BLUE,
            records
                .iter()
                .map(|r| (r.step() as f64, r.train_loss()))
                .collect::<Vec<_>>(),
        ),
        (
            "validation",
            RED,
            records
                .iter()
                .map(|r| (r.step() as f64, r.valid_loss()))
                .collect(),
        ),
    ];
    for (label, color, points) in series {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| plot_error(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(&e))?;
    root.present().map_err(|e| plot_error(&e))
}

pub(crate) fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is valid by construction; registering cannot fail for it.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}
