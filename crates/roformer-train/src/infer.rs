//! Inference on text: fill-mask, sentence embeddings, and raw encoder outputs.
//!
//! Inputs longer than the model's `max_position_embeddings` are truncated (keeping
//! `[SEP]`) and reported in the result's `warnings`; the binary prints them.

use roformer::RoFormerBackend;
use std::path::Path;

use burn::tensor::activation::softmax;

use burn::tensor::{Int, Tensor, TensorData};
use roformer::RoFormerInput;
use serde::{Deserialize, Serialize};

use crate::data::pad_ids;
use crate::error::TrainError;
use crate::model_dir::LoadedModel;

/// Sequences per forward pass for `embed`.
const EMBED_BATCH: usize = 32;

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

fn truncate(ids: &mut Vec<u32>, max_len: usize, sep: u32, what: &str, warnings: &mut Vec<String>) {
    if ids.len() > max_len {
        warnings.push(format!(
            "{what}: {} tokens, truncated to the model's maximum of {max_len}",
            ids.len()
        ));
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
    let tokenizer = &loaded.tokenizer;
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
    let (input_ids, _) = pad_ids::<B>(&[&ids], special.pad, device);
    let logits = model.forward(RoFormerInput::new(input_ids));
    let [_, seq, vocab] = logits.dims();
    let probabilities = softmax(logits.reshape([seq, vocab]), 1);
    let mut predictions = Vec::with_capacity(positions.len());
    for position in positions {
        let row: Vec<f32> = probabilities
            .clone()
            .slice([position..position + 1, 0..vocab])
            .into_data()
            .to_vec()
            .map_err(|e| TrainError::data("model output", format!("{e:?}")))?;
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

/// One sentence embedding per text: the mean of the last hidden state over real tokens.
pub fn embed<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    texts: &[String],
    device: &B::Device,
) -> Result<WithWarnings<Vec<Vec<f32>>>, TrainError> {
    if texts.is_empty() {
        return Err(TrainError::data("input", "no lines to embed"));
    }
    let special = loaded.tokenizer.special();
    let mut warnings = Vec::new();
    let mut sequences = Vec::with_capacity(texts.len());
    for (line, text) in texts.iter().enumerate() {
        let mut ids = loaded.tokenizer.encode_with_special(text)?;
        truncate(
            &mut ids,
            loaded.config.max_position_embeddings,
            special.sep,
            &format!("line {}", line + 1),
            &mut warnings,
        );
        sequences.push(ids);
    }
    let mut embeddings = Vec::with_capacity(texts.len());
    for chunk in sequences.chunks(EMBED_BATCH) {
        let refs: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
        let (input_ids, mask) = pad_ids::<B>(&refs, special.pad, device);
        let hidden = loaded
            .encoder()
            .forward(RoFormerInput::new(input_ids).with_attention_mask(mask.clone()));
        let [rows, _, width] = hidden.dims();
        let weights = mask.float().unsqueeze_dim::<3>(2);
        let sums = (hidden * weights.clone()).sum_dim(1).reshape([rows, width]);
        let counts = weights.sum_dim(1).reshape([rows, 1]);
        let means: Vec<f32> = (sums / counts)
            .into_data()
            .to_vec()
            .map_err(|e| TrainError::data("model output", format!("{e:?}")))?;
        embeddings.extend(means.chunks(width).map(<[f32]>::to_vec));
    }
    Ok(WithWarnings {
        value: embeddings,
        warnings,
    })
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

/// Runs all `lines` as one padded batch.
pub fn encode<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    lines: &[EncodeLine],
    with_logits: bool,
    device: &B::Device,
) -> Result<WithWarnings<Encoded>, TrainError> {
    let special = loaded.tokenizer.special();
    let config = &loaded.config;
    let mut warnings = Vec::new();
    let mut rows: Vec<(Vec<u32>, Vec<i64>, Vec<i64>)> = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let what = format!("line {}", index + 1);
        let (ids, mask, types) = match line {
            EncodeLine::Text { text } => {
                let ids = loaded.tokenizer.encode_with_special(text)?;
                let n = ids.len();
                (ids, vec![1; n], vec![0; n])
            }
            EncodeLine::Ids {
                input_ids,
                attention_mask,
                token_type_ids,
            } => {
                let n = input_ids.len();
                if n == 0 {
                    return Err(TrainError::data(
                        "input",
                        format!("{what}: empty input_ids"),
                    ));
                }
                if let Some(bad) = input_ids
                    .iter()
                    .find(|&&id| id < 0 || id as usize >= config.vocab_size)
                {
                    return Err(TrainError::data(
                        "input",
                        format!(
                            "{what}: token id {bad} is outside the vocabulary (0..{})",
                            config.vocab_size
                        ),
                    ));
                }
                let mask = attention_mask.clone().unwrap_or_else(|| vec![1; n]);
                let types = token_type_ids.clone().unwrap_or_else(|| vec![0; n]);
                if mask.len() != n || types.len() != n {
                    return Err(TrainError::data(
                        "input",
                        format!(
                            "{what}: attention_mask and token_type_ids must have as many entries as input_ids ({n})"
                        ),
                    ));
                }
                if let Some(bad) = mask.iter().find(|&&m| m != 0 && m != 1) {
                    return Err(TrainError::data(
                        "input",
                        format!("{what}: attention_mask values must be 0 or 1, got {bad}"),
                    ));
                }
                if let Some(bad) = types
                    .iter()
                    .find(|&&t| t < 0 || t as usize >= config.type_vocab_size)
                {
                    return Err(TrainError::data(
                        "input",
                        format!(
                            "{what}: token type {bad} is outside 0..{}",
                            config.type_vocab_size
                        ),
                    ));
                }
                (input_ids.iter().map(|&id| id as u32).collect(), mask, types)
            }
        };
        let (mut ids, mut mask, mut types) = (ids, mask, types);
        let max = config.max_position_embeddings;
        if ids.len() > max {
            warnings.push(format!(
                "{what}: {} tokens, truncated to the model's maximum of {max}",
                ids.len()
            ));
            ids.truncate(max);
            mask.truncate(max);
            types.truncate(max);
        }
        rows.push((ids, mask, types));
    }
    let longest = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let count = rows.len();
    let mut flat_ids = Vec::with_capacity(count * longest);
    let mut flat_mask = Vec::with_capacity(count * longest);
    let mut flat_types = Vec::with_capacity(count * longest);
    for (ids, mask, types) in &rows {
        let pad = longest - ids.len();
        flat_ids.extend(
            ids.iter()
                .map(|&id| id as i64)
                .chain(std::iter::repeat_n(special.pad as i64, pad)),
        );
        flat_mask.extend(mask.iter().copied().chain(std::iter::repeat_n(0, pad)));
        flat_types.extend(types.iter().copied().chain(std::iter::repeat_n(0, pad)));
    }
    let int = |values: Vec<i64>| {
        Tensor::<B, 2, Int>::from_data(TensorData::new(values, [count, longest]), device)
    };
    let input = RoFormerInput::new(int(flat_ids))
        .with_attention_mask(int(flat_mask.clone()))
        .with_token_type_ids(int(flat_types));
    let mlm_head = if with_logits {
        Some(loaded.masked_lm()?)
    } else {
        None
    };
    let hidden = loaded.encoder().forward(input);
    let mlm_logits = mlm_head.map(|model| model.logits(hidden.clone()));
    let to_vec = |t: Tensor<B, 3>| {
        t.into_data()
            .to_vec::<f32>()
            .map_err(|e| TrainError::data("model output", format!("{e:?}")))
    };
    Ok(WithWarnings {
        value: Encoded {
            shape: [count, longest],
            hidden_size: config.hidden_size,
            vocab_size: config.vocab_size,
            last_hidden_state: to_vec(hidden)?,
            attention_mask: flat_mask,
            mlm_logits: mlm_logits.map(to_vec).transpose()?,
        },
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
