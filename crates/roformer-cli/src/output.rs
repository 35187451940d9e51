//! What the commands share for input and output: warnings to stderr, input lines from a
//! file or stdin, results files.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use roformer_infer::json_lines;
use roformer_infer::pipelines::WithWarnings;

/// Prints an inference call's warnings to stderr and returns its value.
pub fn with_warnings<T>(result: WithWarnings<T>) -> T {
    for warning in &result.warnings {
        eprintln!("warning: {warning}");
    }
    result.value
}

/// The non-blank lines of `input`, or of stdin without one; none is an error.
pub fn read_input_lines(input: Option<PathBuf>) -> Result<Vec<String>> {
    let lines: Vec<String> = match input {
        Some(path) => std::fs::read_to_string(&path)
            .with_context(|| path.display().to_string())?
            .lines()
            .map(str::to_string)
            .collect(),
        None => std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .context("stdin")?,
    };
    let lines: Vec<String> = lines.into_iter().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        bail!("no input lines to embed");
    }
    Ok(lines)
}

/// Writes one JSON object per result to `output` (atomically) and says so.
pub fn write_results<T: serde::Serialize>(output: &Path, results: &[T]) -> Result<()> {
    json_lines::write(output, results)?;
    eprintln!("wrote {} ({} lines)", output.display(), results.len());
    Ok(())
}

/// Says so when `path` is read as a built-in config (no such file here).
pub fn note_built_in_config(path: &Path) {
    if roformer_train::shipped_configs::shipped_config(path).is_some() {
        eprintln!(
            "{}: no such file here; using the built-in copy of the shipped config",
            path.display()
        );
    }
}
