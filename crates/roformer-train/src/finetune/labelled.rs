//! Labelled examples read from JSON lines (`.jsonl`, `.json`), CSV (`.csv`) or TSV
//! (`.tsv`), chosen by the file's extension. Each example has a text, an optional second
//! text (sentence pairs) and a label; labels are strings (a JSON number or boolean becomes
//! its text). CSV and TSV files start with a header row naming the columns.
//!
//! Token classification reads tagged sentences: JSON lines whose words are an array of
//! strings (or a text, split at whitespace) with an array of labels, one per word; or
//! CoNLL files (`.conll`): a word per line with its label in the last column, a blank line
//! between sentences, `-DOCSTART-` lines skipped.

use roformer_infer::json_lines;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::TrainError;

/// The field (JSON) or column (CSV/TSV) names of a labelled file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFields {
    /// The text. Conventionally `text`.
    pub text: String,
    /// The second text of a pair, when the task has one. Conventionally `text_pair`.
    pub text_pair: Option<String>,
    /// The label. Conventionally `label`.
    pub label: String,
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledExample {
    /// The (first) text.
    pub text: String,
    /// The second text of a pair.
    pub text_pair: Option<String>,
    /// The label, as text.
    pub label: String,
}

/// The formats a labelled file can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    JsonLines,
    Delimited(u8),
}

fn format_of(path: &Path) -> Result<Format, TrainError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "json") => Ok(Format::JsonLines),
        Some("csv") => Ok(Format::Delimited(b',')),
        Some("tsv") => Ok(Format::Delimited(b'\t')),
        _ => Err(TrainError::data(
            path.display().to_string(),
            "unknown format: expected a .jsonl, .csv or .tsv file",
        )),
    }
}

/// Reads every example of `path`. With `labels`, a label outside the list is an error.
/// Errors name the file and the line: a malformed line, a missing field, an empty text,
/// an unknown label, or a file without examples.
pub fn read_labelled(
    path: &Path,
    fields: &LabelFields,
    labels: Option<&[String]>,
) -> Result<Vec<LabelledExample>, TrainError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let rows = match format_of(path)? {
        Format::JsonLines => json_rows(&text, fields, &source)?,
        Format::Delimited(delimiter) => delimited_rows(&text, delimiter, fields, &source)?,
    };
    let mut examples = Vec::with_capacity(rows.len());
    for (line, example) in rows {
        let at = |message: String| TrainError::data(&source, format!("line {line}: {message}"));
        if example.text.trim().is_empty() {
            return Err(at(format!("empty `{}`", fields.text)));
        }
        if let (Some(pair), Some(name)) = (&example.text_pair, &fields.text_pair)
            && pair.trim().is_empty()
        {
            return Err(at(format!("empty `{name}`")));
        }
        if let Some(labels) = labels
            && !labels.contains(&example.label)
        {
            return Err(at(format!(
                "unknown label {:?} (task.labels: {})",
                example.label,
                labels.join(", ")
            )));
        }
        examples.push(example);
    }
    if examples.is_empty() {
        return Err(TrainError::data(&source, "no examples"));
    }
    Ok(examples)
}

/// A JSON value as label text: strings as they are, numbers and booleans as written.
fn label_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_rows(
    text: &str,
    fields: &LabelFields,
    source: &str,
) -> Result<Vec<(usize, LabelledExample)>, TrainError> {
    json_object_rows(text, source, |object, at| {
        let string = |name: &str| -> Result<String, TrainError> {
            match object.get(name) {
                None => Err(at(format!("missing field `{name}`"))),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(at(format!("field `{name}` is not a string"))),
            }
        };
        let label = match object.get(&fields.label) {
            None => return Err(at(format!("missing field `{}`", fields.label))),
            Some(value) => label_text(value).ok_or_else(|| {
                at(format!(
                    "field `{}` is not a string, number or boolean",
                    fields.label
                ))
            })?,
        };
        Ok(LabelledExample {
            text: string(&fields.text)?,
            text_pair: fields.text_pair.as_deref().map(string).transpose()?,
            label,
        })
    })
}

/// Makes an error that names the file and the line being read.
type LineError<'a> = &'a dyn Fn(String) -> TrainError;

/// The objects of a JSON-lines text, one per non-blank line, each made into a row by
/// `row` with its line number (from 1); `row` gets the object and a maker of errors that
/// name the file and the line.
fn json_object_rows<T>(
    text: &str,
    source: &str,
    mut row: impl FnMut(&Map<String, Value>, LineError<'_>) -> Result<T, TrainError>,
) -> Result<Vec<(usize, T)>, TrainError> {
    let mut rows = Vec::new();
    for line in json_lines::lines(text, source) {
        let at = |message: String| TrainError::from(line.error(message));
        let value: Value =
            serde_json::from_str(line.text).map_err(|e| at(format!("not a JSON object: {e}")))?;
        let Value::Object(object) = value else {
            return Err(at("not a JSON object".into()));
        };
        rows.push((line.number, row(&object, &at)?));
    }
    Ok(rows)
}

fn delimited_rows(
    text: &str,
    delimiter: u8,
    fields: &LabelFields,
    source: &str,
) -> Result<Vec<(usize, LabelledExample)>, TrainError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header_error = |message: String| TrainError::data(source, format!("line 1: {message}"));
    let headers = reader
        .headers()
        .map_err(|e| header_error(format!("malformed header: {e}")))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| header_error(format!("missing column `{name}`")))
    };
    let text_column = column(&fields.text)?;
    let pair_column = fields.text_pair.as_deref().map(column).transpose()?;
    let label_column = column(&fields.label)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            TrainError::data(source, format!("line {line}: malformed row: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line()) as usize;
        let cell = |index: usize| record.get(index).unwrap_or_default().to_string();
        rows.push((
            line,
            LabelledExample {
                text: cell(text_column),
                text_pair: pair_column.map(cell),
                label: cell(label_column),
            },
        ));
    }
    Ok(rows)
}

/// The field names of a tagged JSON-lines file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFields {
    /// The words: an array of strings, or a text split at whitespace.
    pub words: String,
    /// The labels, one per word.
    pub labels: String,
}

/// One tagged sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedExample {
    /// The words.
    pub words: Vec<String>,
    /// One label per word.
    pub labels: Vec<String>,
}

/// Reads every tagged sentence of `path` (`.jsonl`/`.json` or `.conll`). With `labels`, a
/// label outside the list is an error. Errors name the file and the line: a malformed
/// line, a missing field, no words, as many labels as words not given, an unknown label,
/// or a file without sentences.
pub fn read_tagged(
    path: &Path,
    fields: &TagFields,
    labels: Option<&[String]>,
) -> Result<Vec<TaggedExample>, TrainError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let rows = match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "json") => tagged_json_rows(&text, fields, &source)?,
        Some("conll") => conll_rows(&text, &source)?,
        _ => {
            return Err(TrainError::data(
                &source,
                "unknown format for token classification: expected a .jsonl or .conll file",
            ));
        }
    };
    let mut examples = Vec::with_capacity(rows.len());
    for (line, example) in rows {
        let at = |message: String| TrainError::data(&source, format!("line {line}: {message}"));
        if example.words.is_empty() {
            return Err(at(format!("no words in `{}`", fields.words)));
        }
        if example.words.len() != example.labels.len() {
            return Err(at(format!(
                "{} words but {} labels",
                example.words.len(),
                example.labels.len()
            )));
        }
        if let Some(labels) = labels
            && let Some(unknown) = example.labels.iter().find(|l| !labels.contains(l))
        {
            return Err(at(format!(
                "unknown label {unknown:?} (task.labels: {})",
                labels.join(", ")
            )));
        }
        examples.push(example);
    }
    if examples.is_empty() {
        return Err(TrainError::data(&source, "no sentences"));
    }
    Ok(examples)
}

fn tagged_json_rows(
    text: &str,
    fields: &TagFields,
    source: &str,
) -> Result<Vec<(usize, TaggedExample)>, TrainError> {
    json_object_rows(text, source, |object, at| {
        // `words` is what `roformer tag --input` and HF's token-classification data sets
        // call the field, so a line that has it needs no `text_field` setting.
        let words = match object.get(&fields.words).or_else(|| object.get("words")) {
            None => return Err(at(format!("missing field `{}`", fields.words))),
            Some(Value::String(text)) => text.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(word) if !word.trim().is_empty() => Ok(word.clone()),
                    _ => Err(at(format!(
                        "field `{}` must hold non-empty strings",
                        fields.words
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(at(format!(
                    "field `{}` is not an array of words or a text",
                    fields.words
                )));
            }
        };
        let labels = match object.get(&fields.labels) {
            None => return Err(at(format!("missing field `{}`", fields.labels))),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    label_text(item).ok_or_else(|| {
                        at(format!(
                            "field `{}` must hold strings, numbers or booleans",
                            fields.labels
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(at(format!(
                    "field `{}` is not an array of labels",
                    fields.labels
                )));
            }
        };
        Ok(TaggedExample { words, labels })
    })
}

fn conll_rows(text: &str, source: &str) -> Result<Vec<(usize, TaggedExample)>, TrainError> {
    let mut rows = Vec::new();
    let mut current: Option<(usize, TaggedExample)> = None;
    for (index, line) in text.lines().enumerate() {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.first() == Some(&"-DOCSTART-") {
            continue;
        }
        if columns.is_empty() {
            rows.extend(current.take());
            continue;
        }
        if columns.len() < 2 {
            return Err(TrainError::data(
                source,
                format!("line {}: expected a word and a label", index + 1),
            ));
        }
        let (_, sentence) = current.get_or_insert_with(|| {
            (
                index + 1,
                TaggedExample {
                    words: Vec::new(),
                    labels: Vec::new(),
                },
            )
        });
        sentence.words.push(columns[0].to_string());
        sentence.labels.push(columns[columns.len() - 1].to_string());
    }
    rows.extend(current);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pair: bool) -> LabelFields {
        LabelFields {
            text: "text".into(),
            text_pair: pair.then(|| "text_pair".into()),
            label: "label".into(),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_the_three_formats_alike() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = write(
            dir.path(),
            "a.jsonl",
            "{\"text\": \"a b\", \"text_pair\": \"c\", \"label\": 1}\n\n{\"text\": \"d\", \"text_pair\": \"e, f\", \"label\": \"x\"}\n",
        );
        let csv = write(
            dir.path(),
            "a.csv",
            "label,text,text_pair\n1,a b,c\nx,d,\"e, f\"\n",
        );
        let tsv = write(
            dir.path(),
            "a.tsv",
            "text\ttext_pair\tlabel\na b\tc\t1\nd\te, f\tx\n",
        );
        let expected = vec![
            LabelledExample {
                text: "a b".into(),
                text_pair: Some("c".into()),
                label: "1".into(),
            },
            LabelledExample {
                text: "d".into(),
                text_pair: Some("e, f".into()),
                label: "x".into(),
            },
        ];
        for path in [jsonl, csv, tsv] {
            assert_eq!(read_labelled(&path, &fields(true), None).unwrap(), expected);
        }
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let labels = ["0".to_string(), "1".to_string()];
        let cases = [
            (
                "a.jsonl",
                "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\"\n",
                "line 2: not a JSON object",
            ),
            (
                "b.jsonl",
                "{\"text\": \"a\", \"label\": 0}\n{\"label\": 1}\n",
                "line 2: missing field `text`",
            ),
            (
                "c.jsonl",
                "{\"text\": \"a\", \"label\": 0}\n\n{\"text\": \" \", \"label\": 1}\n",
                "line 3: empty `text`",
            ),
            (
                "d.jsonl",
                "{\"text\": \"a\", \"label\": 2}\n",
                "line 1: unknown label \"2\"",
            ),
            ("e.csv", "text,label\na,0\n,1\n", "line 3: empty `text`"),
            (
                "f.csv",
                "text,label\na,0\nb,1,extra\n",
                "line 3: malformed row",
            ),
            ("g.tsv", "text\nb\n", "line 1: missing column `label`"),
            ("h.csv", "text,label\na,7\n", "line 2: unknown label \"7\""),
        ];
        for (name, text, expected) in cases {
            let path = write(dir.path(), name, text);
            let error = read_labelled(&path, &fields(false), Some(&labels))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&path.display().to_string()) && error.contains(expected),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn reads_tagged_json_lines_and_conll_alike() {
        let dir = tempfile::tempdir().unwrap();
        let fields = TagFields {
            words: "tokens".into(),
            labels: "tags".into(),
        };
        let jsonl = write(
            dir.path(),
            "a.jsonl",
            "{\"tokens\": [\"Good\", \"Hamlet\"], \"tags\": [\"O\", \"B-PER\"]}\n\n{\"tokens\": \"my  lord\", \"tags\": [\"O\", \"O\"]}\n",
        );
        let conll = write(
            dir.path(),
            "a.conll",
            "-DOCSTART- O\n\nGood x O\nHamlet x B-PER\n\n\nmy x O\nlord x O\n",
        );
        let expected = vec![
            TaggedExample {
                words: vec!["Good".into(), "Hamlet".into()],
                labels: vec!["O".into(), "B-PER".into()],
            },
            TaggedExample {
                words: vec!["my".into(), "lord".into()],
                labels: vec!["O".into(), "O".into()],
            },
        ];
        for path in [jsonl, conll] {
            assert_eq!(read_tagged(&path, &fields, None).unwrap(), expected);
        }
    }

    #[test]
    fn bad_tagged_rows_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let fields = TagFields {
            words: "words".into(),
            labels: "labels".into(),
        };
        let labels = ["O".to_string(), "B-X".to_string()];
        let cases = [
            (
                "a.jsonl",
                "{\"words\": [\"a\", \"b\"], \"labels\": [\"O\"]}\n",
                "line 1: 2 words but 1 labels",
            ),
            (
                "b.jsonl",
                "{\"words\": [\"a\"], \"labels\": [\"O\"]}\n{\"words\": [], \"labels\": []}\n",
                "line 2: no words",
            ),
            (
                "c.jsonl",
                "{\"words\": [\"a\"], \"labels\": [\"I-Y\"]}\n",
                "line 1: unknown label \"I-Y\"",
            ),
            (
                "d.jsonl",
                "{\"words\": [\"a\"], \"labels\": \"O\"}\n",
                "line 1: field `labels` is not an array",
            ),
            ("e.conll", "a O\nb\n", "line 2: expected a word and a label"),
            (
                "f.csv",
                "words,labels\n",
                "expected a .jsonl or .conll file",
            ),
            ("g.conll", "\n\n", "no sentences"),
        ];
        for (name, text, expected) in cases {
            let path = write(dir.path(), name, text);
            let error = read_tagged(&path, &fields, Some(&labels))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&path.display().to_string()) && error.contains(expected),
                "{name}: {error}"
            );
        }
    }
}
