//! The final report of a fine-tuning run, for the model it kept: `scores.json` (accuracy,
//! macro-F1, per-class precision/recall/F1 and the confusion matrix, with the labels) and
//! `confusion.png` (the confusion matrix drawn, rows the true labels).

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::error::TrainError;
use crate::finetune::scores::Scores;
use roformer_infer::fs_atomic::write_atomic;

/// The scores file of a run directory.
pub const SCORES_FILE: &str = "scores.json";
/// The confusion-matrix plot of a run directory.
pub const CONFUSION_PLOT_FILE: &str = "confusion.png";

#[derive(Serialize)]
struct ScoresFile<'a> {
    step: usize,
    labels: &'a [String],
    #[serde(flatten)]
    scores: &'a Scores,
}

/// Writes `scores.json` and `confusion.png` into `run_dir` for the model kept at `step`.
pub fn write_report(
    run_dir: &Path,
    step: usize,
    labels: &[String],
    scores: &Scores,
) -> Result<(), TrainError> {
    let json = serde_json::to_string_pretty(&ScoresFile {
        step,
        labels,
        scores,
    })
    .expect("scores serialize");
    write_atomic(&run_dir.join(SCORES_FILE), json.as_bytes())?;
    // plotters picks the image format by extension, so the partial file ends in `.png`.
    let partial = run_dir.join("confusion.partial.png");
    plot_confusion(labels, &scores.confusion, &partial)?;
    let path = run_dir.join(CONFUSION_PLOT_FILE);
    std::fs::rename(&partial, &path).map_err(|e| TrainError::io(&path, e))
}

/// Draws `confusion` (`[target][predicted]` counts) as a grid of shaded cells with their
/// counts, shaded by the fraction of the true label's examples.
fn plot_confusion(
    labels: &[String],
    confusion: &[Vec<usize>],
    path: &Path,
) -> Result<(), TrainError> {
    crate::run::metrics::register_font();
    let plot_error = |e: &dyn std::fmt::Display| {
        TrainError::io(path, format!("cannot draw the confusion matrix: {e}"))
    };
    let n = labels.len();
    let cell = 90;
    let (left, top) = (120, 60);
    let size = (left + cell * n as u32 + 20, top + cell * n as u32 + 60);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let text = |size: u32| ("sans-serif", size).into_font().color(&BLACK);
    root.draw(&Text::new(
        "confusion matrix (rows: true, columns: predicted)",
        (10, 15),
        text(18),
    ))
    .map_err(|e| plot_error(&e))?;
    for (row, counts) in confusion.iter().enumerate() {
        let total = counts.iter().sum::<usize>().max(1) as f64;
        let y = top + cell * row as u32;
        root.draw(&Text::new(
            labels[row].clone(),
            (10, (y + cell / 2) as i32),
            text(15),
        ))
        .map_err(|e| plot_error(&e))?;
        for (column, &count) in counts.iter().enumerate() {
            let x = left + cell * column as u32;
            let shade = 1.0 - count as f64 / total;
            let level = (90.0 + 165.0 * shade) as u8;
            let color = RGBColor(level, level, 255);
            let corners = [
                (x as i32, y as i32),
                ((x + cell - 2) as i32, (y + cell - 2) as i32),
            ];
            root.draw(&Rectangle::new(corners, color.filled()))
                .map_err(|e| plot_error(&e))?;
            let label = Text::new(
                count.to_string(),
                ((x + cell / 2 - 10) as i32, (y + cell / 2 - 8) as i32),
                text(18),
            );
            root.draw(&label).map_err(|e| plot_error(&e))?;
        }
    }
    let bottom = (top + cell * n as u32 + 10) as i32;
    for (column, label) in labels.iter().enumerate() {
        let x = (left + cell * column as u32 + 4) as i32;
        root.draw(&Text::new(label.clone(), (x, bottom), text(15)))
            .map_err(|e| plot_error(&e))?;
    }
    root.present().map_err(|e| plot_error(&e))
}
