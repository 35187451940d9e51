//! JSON lines, the one format of inputs and results files: each non-blank line one JSON
//! value. [`lines`] numbers the lines for errors that name them, [`parse`] reads them as
//! one type; [`write`] writes one object per line, atomically.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::InferError;
use crate::fs_atomic::write_atomic;

/// A non-blank line of a JSON-lines file.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// 1-based line number in the file.
    pub number: usize,
    /// The line's text.
    pub text: &'a str,
    source: &'a str,
}

impl Line<'_> {
    /// A data error naming the file and this line.
    pub fn error(&self, message: impl std::fmt::Display) -> InferError {
        InferError::data(self.source, format!("line {}: {message}", self.number))
    }
}

/// The file at `path` as text.
pub fn read(path: &Path) -> Result<String, InferError> {
    std::fs::read_to_string(path).map_err(|e| InferError::io(path, e))
}

/// The non-blank lines of `text`, read from `source` (named in errors).
pub fn lines<'a>(text: &'a str, source: &'a str) -> impl Iterator<Item = Line<'a>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(move |(index, line)| Line {
            number: index + 1,
            text: line,
            source,
        })
}

/// Each non-blank line of `text` (read from `source`) as a `T`; an error names the line
/// and what serde found wrong.
pub fn parse<T: DeserializeOwned>(text: &str, source: &str) -> Result<Vec<T>, InferError> {
    lines(text, source)
        .map(|line| serde_json::from_str(line.text).map_err(|e| line.error(e)))
        .collect()
}

/// `items` as JSON lines, one object a line.
pub fn to_string<T: Serialize>(items: &[T]) -> Result<String, InferError> {
    let mut text = String::new();
    for item in items {
        let line = serde_json::to_string(item)
            .map_err(|e| InferError::data("JSON output", e.to_string()))?;
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// Writes `items` to `path` as JSON lines, atomically (a temporary file, then a rename).
pub fn write<T: Serialize>(path: &Path, items: &[T]) -> Result<(), InferError> {
    write_atomic(path, to_string(items)?.as_bytes())
}
