//! What the embed and encode pipelines read: a line of text or of token ids.

use std::path::Path;

use serde::Deserialize;

use crate::error::InferError;

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

/// Encoder outputs of a whole input file as one padded batch (row-major f32).
#[derive(Debug, Clone)]
pub struct Encoded {
    /// `[lines, longest]`.
    pub shape: [usize; 2],
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Vocabulary size (when logits were asked for).
    pub vocab_size: usize,
    /// `last_hidden_state`, `[lines, longest, hidden]`.
    pub last_hidden_state: Vec<f32>,
    /// `attention_mask`, `[lines, longest]`.
    pub attention_mask: Vec<i64>,
    /// `mlm_logits`, `[lines, longest, vocab]`, if asked for.
    pub mlm_logits: Option<Vec<f32>>,
}

/// Reads `path` (JSON lines) into id sequences with masks and token types.
pub fn read_encode_lines(path: &Path) -> Result<Vec<EncodeLine>, InferError> {
    let text = std::fs::read_to_string(path).map_err(|e| InferError::io(path, e))?;
    let name = path.display().to_string();
    let lines: Vec<EncodeLine> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|_| {
                InferError::data(&name, format!(
                    "line {}: expected {{\"text\": ...}} or {{\"input_ids\": [...], \"attention_mask\"?: [...], \"token_type_ids\"?: [...]}}",
                    i + 1
                ))
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
