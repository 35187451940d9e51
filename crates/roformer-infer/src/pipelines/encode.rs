//! Raw encoder outputs (last hidden state, optionally the masked-LM logits) of a whole
//! input file as one padded batch, and their safetensors file.

use std::path::Path;

use roformer::{RoFormerBackend, RoFormerInput};

use crate::error::InferError;
use crate::model_dir::LoadedModel;
use crate::pipelines::input_line::EncodeLine;
use crate::pipelines::rows::{BATCH, WithWarnings, longest, model_rows, pad_rows, values};

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

/// Runs the encoder (and, with `with_logits`, the masked-LM head) on `lines`, giving one
/// padded batch of outputs.
pub fn encode<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    lines: &[EncodeLine],
    with_logits: bool,
    device: &B::Device,
) -> Result<WithWarnings<Encoded>, InferError> {
    let config = &loaded.config;
    let mut warnings = Vec::new();
    let rows = model_rows(loaded, lines, &mut warnings)?;
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
pub fn write_encoded(encoded: &Encoded, path: &Path) -> Result<(), InferError> {
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
        safetensors::serialize_to_file(tensors, None, tmp).map_err(|e| InferError::io(tmp, e))
    })
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;
    use roformer_testing::max_abs_diff;

    use super::*;
    use crate::pipelines::rows::{Row, model_row, tiny_masked_lm};

    type B = NdArray;

    /// A file longer than one chunk, with lines of many lengths, padding of their own and
    /// both token types: every row comes out as in one pass over the whole file.
    #[test]
    fn encode_in_chunks_matches_one_batch() {
        let device = Default::default();
        let text = "the quick brown fox jumps over the lazy dog to be or not to be";
        let default_init = roformer::RoFormerConfig::default().initializer_range;
        let loaded = tiny_masked_lm(text, 1, default_init);
        let vocab = loaded.config.vocab_size;
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
