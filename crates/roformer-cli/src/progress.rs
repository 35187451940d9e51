//! Training progress on stderr, for `train` and `finetune` alike: a bar with the step's
//! figures and an ETA on a terminal; plain lines every ten seconds otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between plain progress lines.
const LINE_EVERY_SECONDS: u64 = 10;

pub struct Progress {
    /// Printed when training starts (after the data and the tokenizer are ready), so a
    /// run refused on its input prints only the error.
    header: String,
    bar: Option<ProgressBar>,
    last_line: Instant,
    started: Instant,
    /// When the steps started (the ETA's pace; a fine-tuning run may adapt first).
    steps_started: Instant,
    first_step: usize,
}

impl Progress {
    pub fn new(header: String) -> Self {
        Self {
            header,
            bar: None,
            last_line: Instant::now(),
            started: Instant::now(),
            steps_started: Instant::now(),
            first_step: 0,
        }
    }

    /// Training starts at `start_step` of `total_steps`: the header, then `lines`.
    pub fn start(&mut self, lines: &[String], start_step: usize, total_steps: usize) {
        eprintln!("{}", self.header);
        for line in lines {
            eprintln!("{line}");
        }
        self.first_step = start_step;
        self.steps_started = Instant::now();
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total_steps as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
                )
                .expect("valid template"),
            );
            bar.set_position(start_step as u64);
            self.bar = Some(bar);
        }
    }

    /// A step done; `message` holds its figures.
    pub fn step(&mut self, step: usize, total_steps: usize, message: String) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(step as u64);
                bar.set_message(message);
            }
            None if self.last_line.elapsed().as_secs() >= LINE_EVERY_SECONDS
                || step == total_steps =>
            {
                eprintln!("step {step}/{total_steps} {message}");
                self.last_line = Instant::now();
            }
            None => {}
        }
    }

    /// The time left at `step` of `total_steps`, at the pace since the steps started.
    pub fn eta(&self, step: usize, total_steps: usize) -> String {
        let done = (step - self.first_step).max(1) as f64;
        let left = self.steps_started.elapsed().as_secs_f64() / done * (total_steps - step) as f64;
        format_duration(left)
    }

    /// A line of its own (an evaluation, a checkpoint), above the bar if there is one.
    pub fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// A checkpoint written after `step` steps.
    pub fn checkpointed(&self, step: usize, path: &std::path::Path) {
        self.line(format!("checkpoint at step {step}: {}", path.display()));
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Minutes since the command started.
    pub fn minutes(&self) -> f64 {
        self.started.elapsed().as_secs_f64() / 60.0
    }
}

/// `seconds` as `1h02m`, `3m05s` or `42s`.
fn format_duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}h{minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m{secs:02}s")
    } else {
        format!("{secs}s")
    }
}
