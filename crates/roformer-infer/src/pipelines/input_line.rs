//! What the embed and encode pipelines read: a line of text or of token ids.

use std::path::Path;

use serde::Deserialize;

use crate::error::InferError;
use crate::json_lines;

/// One line of an `encode` input file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum EncodeLine {
    /// Text, tokenized by the model's tokenizer with `[CLS]` and `[SEP]`.
    Text {
        /// The text.
        text: String,
    },
    /// Token ids as they are.
    Ids {
        /// Token ids.
        input_ids: Vec<i64>,
        /// 1 for real tokens, 0 for padding; default all ones.
        #[serde(default)]
        attention_mask: Option<Vec<i64>>,
        /// Segment ids; default all zeros.
        #[serde(default)]
        token_type_ids: Option<Vec<i64>>,
    },
}

/// Reads `path` (JSON lines) into id sequences with masks and token types.
pub fn read_encode_lines(path: &Path) -> Result<Vec<EncodeLine>, InferError> {
    let text = json_lines::read(path)?;
    let name = path.display().to_string();
    let lines: Vec<EncodeLine> = json_lines::lines(&text, &name)
        .map(|line| {
            serde_json::from_str(line.text).map_err(|_| {
                line.error("expected {\"text\": ...} or {\"input_ids\": [...], \"attention_mask\"?: [...], \"token_type_ids\"?: [...]}")
            })
        })
        .collect::<Result<_, _>>()?;
    if lines.is_empty() {
        return Err(InferError::data(&name, "no input lines"));
    }
    Ok(lines)
}

/// An `embed` input line: a JSON object of token ids (as `encode` reads them) when it
/// is one, otherwise text.
pub fn embed_line(line: &str) -> EncodeLine {
    let trimmed = line.trim_start();
    if trimmed.starts_with('{')
        && let Ok(parsed) = serde_json::from_str::<EncodeLine>(trimmed)
    {
        return parsed;
    }
    EncodeLine::Text {
        text: line.to_string(),
    }
}
