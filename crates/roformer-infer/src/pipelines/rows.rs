//! Inputs as rows for the encoder: tokenized (with `[CLS]` and `[SEP]`) or given as ids,
//! checked against the model, cut to `max_position_embeddings` with a warning, and right-
//! padded into batches. Every pipeline builds its batches here.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use roformer::{Packing, RoFormerBackend};

use crate::error::InferError;
use crate::model_dir::LoadedModel;
use crate::pipelines::input_line::EncodeLine;

/// Sequences per forward pass for `embed` and `encode`, which bounds the memory a long
/// input file takes.
pub(crate) const BATCH: usize = 32;

/// Result of an inference call with the warnings it raised.
#[derive(Debug, Clone)]
pub struct WithWarnings<T> {
    /// The result.
    pub value: T,
    /// One line per truncated input.
    pub warnings: Vec<String>,
}

/// One sequence for the encoder: token ids with their attention mask and token types.
pub(crate) struct Row {
    pub(crate) ids: Vec<u32>,
    pub(crate) mask: Vec<i64>,
    pub(crate) types: Vec<i64>,
}

impl Row {
    /// Tokenized text: every token real, all of segment 0.
    pub(crate) fn text(ids: Vec<u32>) -> Self {
        let n = ids.len();
        Self {
            ids,
            mask: vec![1; n],
            types: vec![0; n],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Rows padded into one batch: `[rows, width]` tensors, and the attention mask's values,
/// which `encode` returns.
pub(crate) struct Padded<B: Backend> {
    pub(crate) input_ids: Tensor<B, 2, Int>,
    pub(crate) attention_mask: Tensor<B, 2, Int>,
    pub(crate) token_type_ids: Tensor<B, 2, Int>,
    pub(crate) mask: Vec<i64>,
}

/// Right-pads `rows` to `width` tokens: ids with `pad`, attention mask and token types
/// with 0.
pub(crate) fn pad_rows<B: RoFormerBackend>(
    rows: &[Row],
    width: usize,
    pad: u32,
    device: &B::Device,
) -> Padded<B> {
    let capacity = rows.len() * width;
    let (mut ids, mut mask, mut types) = (
        Vec::with_capacity(capacity),
        Vec::with_capacity(capacity),
        Vec::with_capacity(capacity),
    );
    for row in rows {
        let padding = width - row.len();
        ids.extend(
            row.ids
                .iter()
                .map(|&id| id as i64)
                .chain(std::iter::repeat_n(pad as i64, padding)),
        );
        mask.extend(
            row.mask
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0, padding)),
        );
        types.extend(
            row.types
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0, padding)),
        );
    }
    let int = |values: Vec<i64>| {
        Tensor::<B, 2, Int>::from_data(TensorData::new(values, [rows.len(), width]), device)
    };
    Padded {
        input_ids: int(ids),
        attention_mask: int(mask.clone()),
        token_type_ids: int(types),
        mask,
    }
}

/// Which tokens of `rows` padded to `width` are real, to compute them without the
/// padding ([`Packing`]); `None` when no row is padded.
pub(crate) fn packing<B: RoFormerBackend>(
    rows: &[Row],
    width: usize,
    device: &B::Device,
) -> Option<Packing<B>> {
    let lengths: Vec<usize> = rows.iter().map(Row::len).collect();
    Packing::from_lengths(&lengths, width, device)
}

/// The longest row's length.
pub(crate) fn longest(rows: &[Row]) -> usize {
    rows.iter().map(Row::len).max().unwrap_or(0)
}

/// A model output's values, row-major, as f32 (whatever the compute precision).
pub(crate) fn values<B: RoFormerBackend, const D: usize>(
    tensor: Tensor<B, D>,
) -> Result<Vec<f32>, InferError> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| InferError::data("model output", format!("{e:?}")))
}

pub(crate) fn truncation_warning(what: &str, len: usize, max_len: usize) -> String {
    format!("{what}: {len} tokens, truncated to the model's maximum of {max_len}")
}

/// Cuts tokenized text to `max_len` tokens, keeping `[SEP]` last.
pub(crate) fn truncate(
    ids: &mut Vec<u32>,
    max_len: usize,
    sep: u32,
    what: &str,
    warnings: &mut Vec<String>,
) {
    if ids.len() > max_len {
        warnings.push(truncation_warning(what, ids.len(), max_len));
        ids.truncate(max_len - 1);
        ids.push(sep);
    }
}

/// The input lines as rows that fit the model (see [`model_row`]), each named by its line
/// number in errors and warnings.
pub(crate) fn model_rows<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    lines: &[EncodeLine],
    warnings: &mut Vec<String>,
) -> Result<Vec<Row>, InferError> {
    lines
        .iter()
        .enumerate()
        .map(|(index, line)| model_row(loaded, line, &format!("line {}", index + 1), warnings))
        .collect()
}

/// One input line as a row that fits the model: text tokenized with `[CLS]` and `[SEP]`
/// and cut to `max_position_embeddings` keeping `[SEP]`; ids checked by [`ids_row`] and
/// cut as they are. Each cut adds a warning naming `what`.
pub(crate) fn model_row<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    line: &EncodeLine,
    what: &str,
    warnings: &mut Vec<String>,
) -> Result<Row, InferError> {
    let max_len = loaded.config.max_position_embeddings;
    match line {
        EncodeLine::Text { text } => {
            if text.trim().is_empty() {
                return Err(InferError::data("input", format!("{what}: empty text")));
            }
            let tokenizer = loaded.tokenizer()?;
            let mut ids = tokenizer.encode_with_special(text)?;
            truncate(&mut ids, max_len, tokenizer.special().sep, what, warnings);
            Ok(Row::text(ids))
        }
        EncodeLine::Ids {
            input_ids,
            attention_mask,
            token_type_ids,
        } => {
            let mut row = ids_row(loaded, input_ids, attention_mask, token_type_ids, what)?;
            // Ids are the caller's: cut as they are, with no `[SEP]` put back.
            if row.len() > max_len {
                warnings.push(truncation_warning(what, row.len(), max_len));
                row.ids.truncate(max_len);
                row.mask.truncate(max_len);
                row.types.truncate(max_len);
            }
            Ok(row)
        }
    }
}

/// Token ids as a row, checked against the model: ids inside the vocabulary, a mask of
/// 0s and 1s, token types inside `type_vocab_size`, and as many mask entries and token
/// types as ids. `what` names the line in errors.
pub(crate) fn ids_row<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    input_ids: &[i64],
    attention_mask: &Option<Vec<i64>>,
    token_type_ids: &Option<Vec<i64>>,
    what: &str,
) -> Result<Row, InferError> {
    let config = &loaded.config;
    let fail = |message: String| Err(InferError::data("input", format!("{what}: {message}")));
    let n = input_ids.len();
    if n == 0 {
        return fail("empty input_ids".into());
    }
    if let Some(bad) = input_ids
        .iter()
        .find(|&&id| id < 0 || id as usize >= config.vocab_size)
    {
        return fail(format!(
            "token id {bad} is outside the vocabulary (0..{})",
            config.vocab_size
        ));
    }
    let mask = attention_mask.clone().unwrap_or_else(|| vec![1; n]);
    let types = token_type_ids.clone().unwrap_or_else(|| vec![0; n]);
    if mask.len() != n || types.len() != n {
        return fail(format!(
            "attention_mask and token_type_ids must have as many entries as input_ids ({n})"
        ));
    }
    if let Some(bad) = mask.iter().find(|&&m| m != 0 && m != 1) {
        return fail(format!("attention_mask values must be 0 or 1, got {bad}"));
    }
    if let Some(bad) = types
        .iter()
        .find(|&&t| t < 0 || t as usize >= config.type_vocab_size)
    {
        return fail(format!(
            "token type {bad} is outside 0..{}",
            config.type_vocab_size
        ));
    }
    Ok(Row {
        ids: input_ids.iter().map(|&id| id as u32).collect(),
        mask,
        types,
    })
}

/// A tiny masked-LM (hidden 16, 2 heads, 64 positions) with a tokenizer trained on `text`,
/// for the pipelines' tests.
#[cfg(test)]
pub(crate) fn tiny_masked_lm(
    text: &str,
    num_hidden_layers: usize,
    initializer_range: f64,
) -> LoadedModel<burn::backend::NdArray> {
    use roformer::hf_weights::RoFormerWeights;
    use roformer::{RoFormerConfig, RoFormerForMaskedLM};

    let tokenizer =
        crate::tokenizer::TextTokenizer::train(std::iter::once(text), 60, 1, true).unwrap();
    let config = RoFormerConfig {
        vocab_size: tokenizer.vocab_size(),
        hidden_size: 16,
        num_hidden_layers,
        num_attention_heads: 2,
        intermediate_size: 24,
        max_position_embeddings: 64,
        initializer_range,
        ..Default::default()
    };
    let model = RoFormerForMaskedLM::new(&config, &Default::default()).unwrap();
    LoadedModel::with_tokenizer(
        std::path::PathBuf::new(),
        config,
        RoFormerWeights::MaskedLm(model),
        tokenizer,
    )
}
