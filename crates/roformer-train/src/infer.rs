//! Inference on text: fill-mask, sentence embeddings, and raw encoder outputs.
//!
//! Inputs longer than the model's `max_position_embeddings` are truncated (keeping
//! `[SEP]` for text) and reported in the result's `warnings`; the binary prints them.
//! `embed` and `encode` run the model on a few dozen sequences at a time.

use roformer::RoFormerBackend;
use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use roformer::RoFormerInput;
use roformer::precision::widened;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::model_dir::LoadedModel;

/// Sequences per forward pass for `embed` and `encode`, which bounds the memory a long
/// input file takes.
const BATCH: usize = 32;

/// One candidate for a masked position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The token.
    pub token: String,
    /// Its id.
    pub id: u32,
    /// Its probability.
    pub probability: f32,
}

/// The predictions for one `[MASK]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaskPrediction {
    /// Token position of the mask in the encoded input (0 is `[CLS]`).
    pub position: usize,
    /// The top candidates, most probable first.
    pub candidates: Vec<Candidate>,
}

/// Result of an inference call with the warnings it raised.
#[derive(Debug, Clone)]
pub struct WithWarnings<T> {
    /// The result.
    pub value: T,
    /// One line per truncated input.
    pub warnings: Vec<String>,
}

/// One sequence for the encoder: token ids with their attention mask and token types.
struct Row {
    ids: Vec<u32>,
    mask: Vec<i64>,
    types: Vec<i64>,
}

impl Row {
    /// Tokenized text: every token real, all of segment 0.
    fn text(ids: Vec<u32>) -> Self {
        let n = ids.len();
        Self {
            ids,
            mask: vec![1; n],
            types: vec![0; n],
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Rows padded into one batch: `[rows, width]` tensors, and the attention mask's values,
/// which `encode` returns.
struct Padded<B: Backend> {
    input_ids: Tensor<B, 2, Int>,
    attention_mask: Tensor<B, 2, Int>,
    token_type_ids: Tensor<B, 2, Int>,
    mask: Vec<i64>,
}

/// Right-pads `rows` to `width` tokens: ids with `pad`, attention mask and token types
/// with 0.
fn pad_rows<B: RoFormerBackend>(
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

/// The longest row's length.
fn longest(rows: &[Row]) -> usize {
    rows.iter().map(Row::len).max().unwrap_or(0)
}

/// A model output's values, row-major, as f32 (whatever the compute precision).
fn values<B: RoFormerBackend, const D: usize>(
    tensor: Tensor<B, D>,
) -> Result<Vec<f32>, TrainError> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| TrainError::data("model output", format!("{e:?}")))
}

fn truncation_warning(what: &str, len: usize, max_len: usize) -> String {
    format!("{what}: {len} tokens, truncated to the model's maximum of {max_len}")
}

/// Cuts tokenized text to `max_len` tokens, keeping `[SEP]` last.
fn truncate(ids: &mut Vec<u32>, max_len: usize, sep: u32, what: &str, warnings: &mut Vec<String>) {
    if ids.len() > max_len {
        warnings.push(truncation_warning(what, ids.len(), max_len));
        ids.truncate(max_len - 1);
        ids.push(sep);
    }
}

/// The `top_k` most likely tokens for every `[MASK]` in `text`.
pub fn fill_mask<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    text: &str,
    top_k: usize,
    device: &B::Device,
) -> Result<WithWarnings<Vec<MaskPrediction>>, TrainError> {
    let model = loaded.masked_lm()?;
    let tokenizer = loaded.tokenizer()?;
    let special = tokenizer.special();
    if text.trim().is_empty() {
        return Err(TrainError::data("input", "empty text"));
    }
    let mut ids = tokenizer.encode_with_special(text)?;
    if !ids.contains(&special.mask) {
        return Err(TrainError::data(
            "input",
            "the text has no [MASK] token to fill",
        ));
    }
    let mut warnings = Vec::new();
    truncate(
        &mut ids,
        loaded.config.max_position_embeddings,
        special.sep,
        "input",
        &mut warnings,
    );
    let positions: Vec<usize> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| **id == special.mask)
        .map(|(i, _)| i)
        .collect();
    if positions.is_empty() {
        return Err(TrainError::data(
            "input",
            "every [MASK] lies past the model's maximum length",
        ));
    }
    let width = ids.len();
    let padded = pad_rows::<B>(&[Row::text(ids)], width, special.pad, device);
    // One row has no padding, so no attention mask.
    let logits = model.forward(RoFormerInput::new(padded.input_ids));
    let [_, seq, vocab] = logits.dims();
    let probabilities = softmax(logits.reshape([seq, vocab]), 1);
    let mut predictions = Vec::with_capacity(positions.len());
    for position in positions {
        let row = values(
            probabilities
                .clone()
                .slice([position..position + 1, 0..vocab]),
        )?;
        let mut ranked: Vec<(usize, f32)> = row.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let candidates = ranked
            .into_iter()
            .take(top_k)
            .map(|(id, probability)| Candidate {
                token: tokenizer.token(id as u32),
                id: id as u32,
                probability,
            })
            .collect();
        predictions.push(MaskPrediction {
            position,
            candidates,
        });
    }
    Ok(WithWarnings {
        value: predictions,
        warnings,
    })
}

/// How a sentence embedding is made from the last hidden state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Pooling {
    /// The mean over the real (unpadded) tokens, `[CLS]` and `[SEP]` included.
    #[default]
    Mean,
    /// The hidden state of the first token, `[CLS]` (what the roformer-sim models use).
    Cls,
}

/// One sentence embedding per input line, pooled as `pooling` says. Lines of text are
/// tokenized (with `[CLS]` and `[SEP]`); lines of token ids are used as they are and need
/// no tokenizer.
pub fn embed<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    lines: &[EncodeLine],
    pooling: Pooling,
    device: &B::Device,
) -> Result<WithWarnings<Vec<Vec<f32>>>, TrainError> {
    if lines.is_empty() {
        return Err(TrainError::data("input", "no lines to embed"));
    }
    let mut warnings = Vec::new();
    let rows = lines
        .iter()
        .enumerate()
        .map(|(index, line)| model_row(loaded, line, &format!("line {}", index + 1), &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    let pad = loaded.pad_id();
    let mut embeddings = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(BATCH) {
        let padded = pad_rows::<B>(chunk, longest(chunk), pad, device);
        let mask = padded.attention_mask;
        // Pooled in f32 whatever the compute precision.
        let hidden = widened(
            loaded.encoder().forward(
                RoFormerInput::new(padded.input_ids)
                    .with_attention_mask(mask.clone())
                    .with_token_type_ids(padded.token_type_ids),
            ),
        );
        let [rows, _, width] = hidden.dims();
        let pooled = match pooling {
            Pooling::Mean => {
                let weights = mask.float().unsqueeze_dim::<3>(2);
                let sums = (hidden * weights.clone()).sum_dim(1).reshape([rows, width]);
                let counts = weights.sum_dim(1).reshape([rows, 1]);
                sums / counts
            }
            Pooling::Cls => hidden
                .slice([0..rows, 0..1, 0..width])
                .reshape([rows, width]),
        };
        embeddings.extend(values(pooled)?.chunks(width).map(<[f32]>::to_vec));
    }
    Ok(WithWarnings {
        value: embeddings,
        warnings,
    })
}

/// Cosine similarity of the sentence embeddings of `a` and `b` (pooled as `pooling`
/// says): in `[-1, 1]`, 1 for the same direction.
pub fn similarity<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    a: &str,
    b: &str,
    pooling: Pooling,
    device: &B::Device,
) -> Result<WithWarnings<f32>, TrainError> {
    let lines = [embed_line(a), embed_line(b)];
    let WithWarnings { value, warnings } = embed(loaded, &lines, pooling, device)?;
    Ok(WithWarnings {
        value: cosine(&value[0], &value[1]),
        warnings,
    })
}

/// `x·y / (‖x‖ ‖y‖)`, accumulated in f64; 0 when either vector is zero.
pub fn cosine(x: &[f32], y: &[f32]) -> f32 {
    let dot = |u: &[f32], v: &[f32]| -> f64 {
        u.iter()
            .zip(v)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum()
    };
    let norms = (dot(x, x) * dot(y, y)).sqrt();
    if norms == 0.0 {
        0.0
    } else {
        (dot(x, y) / norms) as f32
    }
}

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
pub fn read_encode_lines(path: &Path) -> Result<Vec<EncodeLine>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let name = path.display().to_string();
    let lines: Vec<EncodeLine> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|_| {
                TrainError::data(&name, format!(
                    "line {}: expected {{\"text\": ...}} or {{\"input_ids\": [...], \"attention_mask\"?: [...], \"token_type_ids\"?: [...]}}",
                    i + 1
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if lines.is_empty() {
        return Err(TrainError::data(&name, "no input lines"));
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

/// One input line as a row that fits the model: text tokenized with `[CLS]` and `[SEP]`
/// and cut to `max_position_embeddings` keeping `[SEP]`; ids checked by [`ids_row`] and
/// cut as they are. Each cut adds a warning naming `what`.
fn model_row<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    line: &EncodeLine,
    what: &str,
    warnings: &mut Vec<String>,
) -> Result<Row, TrainError> {
    let max_len = loaded.config.max_position_embeddings;
    match line {
        EncodeLine::Text { text } => {
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
fn ids_row<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    input_ids: &[i64],
    attention_mask: &Option<Vec<i64>>,
    token_type_ids: &Option<Vec<i64>>,
    what: &str,
) -> Result<Row, TrainError> {
    let config = &loaded.config;
    let fail = |message: String| Err(TrainError::data("input", format!("{what}: {message}")));
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

/// Runs the encoder (and, with `with_logits`, the masked-LM head) on `lines`, giving one
/// padded batch of outputs.
pub fn encode<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    lines: &[EncodeLine],
    with_logits: bool,
    device: &B::Device,
) -> Result<WithWarnings<Encoded>, TrainError> {
    let config = &loaded.config;
    let mut warnings = Vec::new();
    let rows = lines
        .iter()
        .enumerate()
        .map(|(index, line)| model_row(loaded, line, &format!("line {}", index + 1), &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    let mlm_head = if with_logits {
        Some(loaded.masked_lm()?)
    } else {
        None
    };
    let width = longest(&rows);
    let pad = loaded.pad_id();
    let mut encoded = Encoded {
        shape: [rows.len(), width],
        hidden_size: config.hidden_size,
        vocab_size: config.vocab_size,
        last_hidden_state: Vec::with_capacity(rows.len() * width * config.hidden_size),
        attention_mask: Vec::with_capacity(rows.len() * width),
        mlm_logits: mlm_head.map(|_| Vec::with_capacity(rows.len() * width * config.vocab_size)),
    };
    for chunk in rows.chunks(BATCH) {
        // Every chunk is as wide as the longest line, which the output's shape needs anyway:
        // each row then has the same padding, and so the same outputs, as in one batch.
        let padded = pad_rows::<B>(chunk, width, pad, device);
        let input = RoFormerInput::new(padded.input_ids)
            .with_attention_mask(padded.attention_mask)
            .with_token_type_ids(padded.token_type_ids);
        let hidden = loaded.encoder().forward(input);
        if let (Some(model), Some(logits)) = (mlm_head, encoded.mlm_logits.as_mut()) {
            logits.extend(values(model.logits(hidden.clone()))?);
        }
        encoded.last_hidden_state.extend(values(hidden)?);
        encoded.attention_mask.extend(padded.mask);
    }
    Ok(WithWarnings {
        value: encoded,
        warnings,
    })
}

/// Writes `encoded` as safetensors: `last_hidden_state` f32, `attention_mask` i64, and
/// `mlm_logits` f32 when present.
pub fn write_encoded(encoded: &Encoded, path: &Path) -> Result<(), TrainError> {
    use safetensors::{Dtype, tensor::TensorView};
    let [lines, longest] = encoded.shape;
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let hidden = f32_bytes(&encoded.last_hidden_state);
    let mask: Vec<u8> = encoded
        .attention_mask
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let logits = encoded.mlm_logits.as_deref().map(f32_bytes);
    fn view(dtype: Dtype, shape: Vec<usize>, bytes: &[u8]) -> TensorView<'_> {
        TensorView::new(dtype, shape, bytes).expect("shape matches data")
    }
    let mut tensors = vec![
        (
            "last_hidden_state".to_string(),
            view(
                Dtype::F32,
                vec![lines, longest, encoded.hidden_size],
                &hidden,
            ),
        ),
        (
            "attention_mask".to_string(),
            view(Dtype::I64, vec![lines, longest], &mask),
        ),
    ];
    if let Some(logits) = &logits {
        tensors.push((
            "mlm_logits".to_string(),
            view(Dtype::F32, vec![lines, longest, encoded.vocab_size], logits),
        ));
    }
    crate::fs_atomic::produce_atomic(path, |tmp| {
        safetensors::serialize_to_file(tensors, None, tmp).map_err(|e| TrainError::io(tmp, e))
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use burn::backend::NdArray;
    use roformer::hf_weights::RoFormerWeights;
    use roformer::{RoFormerConfig, RoFormerForMaskedLM};
    use roformer_testing::max_abs_diff;

    use super::*;
    use crate::data::TextTokenizer;

    type B = NdArray;

    /// A file longer than one chunk, with lines of many lengths, padding of their own and
    /// both token types: every row comes out as in one pass over the whole file.
    #[test]
    fn encode_in_chunks_matches_one_batch() {
        let device = Default::default();
        let text = "the quick brown fox jumps over the lazy dog to be or not to be";
        let tokenizer = TextTokenizer::train(std::iter::once(text), 60, 1, true).unwrap();
        let vocab = tokenizer.vocab_size();
        let config = RoFormerConfig {
            vocab_size: vocab,
            hidden_size: 16,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            intermediate_size: 24,
            max_position_embeddings: 64,
            ..Default::default()
        };
        let model = RoFormerForMaskedLM::<B>::new(&config, &device).unwrap();
        let loaded = LoadedModel::with_tokenizer(
            PathBuf::new(),
            config,
            RoFormerWeights::MaskedLm(model),
            tokenizer,
        );
        let words: Vec<&str> = text.split(' ').collect();
        let lines: Vec<EncodeLine> = (0..2 * BATCH + 5)
            .map(|i| match i % 3 {
                0 => {
                    let n = i % 13 + 2;
                    EncodeLine::Ids {
                        input_ids: (0..n).map(|t| ((i + 5 * t) % vocab) as i64).collect(),
                        attention_mask: Some((0..n).map(|t| (t + 1 < n) as i64).collect()),
                        token_type_ids: Some((0..n).map(|t| (2 * t >= n) as i64).collect()),
                    }
                }
                _ => EncodeLine::Text {
                    text: words[..i % words.len() + 1].join(" "),
                },
            })
            .collect();
        let encoded = encode(&loaded, &lines, true, &device).unwrap();
        assert!(encoded.warnings.is_empty(), "{:?}", encoded.warnings);
        let encoded = encoded.value;

        let rows: Vec<Row> = lines
            .iter()
            .map(|line| model_row(&loaded, line, "line", &mut Vec::new()).unwrap())
            .collect();
        let width = longest(&rows);
        assert_eq!(encoded.shape, [lines.len(), width]);
        let padded = pad_rows::<B>(&rows, width, loaded.pad_id(), &device);
        assert_eq!(encoded.attention_mask, padded.mask);
        let hidden = loaded.encoder().forward(
            RoFormerInput::new(padded.input_ids)
                .with_attention_mask(padded.attention_mask)
                .with_token_type_ids(padded.token_type_ids),
        );
        let logits = values(loaded.masked_lm().unwrap().logits(hidden.clone())).unwrap();
        let hidden = values(hidden).unwrap();
        let gaps = (
            max_abs_diff(&encoded.last_hidden_state, &hidden),
            max_abs_diff(encoded.mlm_logits.as_ref().unwrap(), &logits),
        );
        assert!(gaps.0 < 1e-6 && gaps.1 < 1e-6, "{gaps:?}");
    }
}
