//! Sentence embeddings: the last hidden state pooled (mean over real tokens, or `[CLS]`),
//! and the cosine similarity of two texts' embeddings.

use roformer::precision::widened;
use roformer::{RoFormerBackend, RoFormerInput};

use crate::error::InferError;
use crate::model_dir::LoadedModel;
use crate::pipelines::input_line::{EncodeLine, embed_line};
use crate::pipelines::rows::{BATCH, WithWarnings, longest, model_rows, packing, pad_rows, values};

/// How a sentence embedding is made from the last hidden state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Pooling {
    /// The mean over the real (unpadded) tokens, `[CLS]` and `[SEP]` included.
    #[default]
    Mean,
    /// The hidden state of the first token, `[CLS]` (what the roformer-sim models use).
    Cls,
}

/// One sentence embedding per input line, pooled as `pooling` says, 32 lines per forward
/// pass. Lines of text are tokenized (with `[CLS]` and `[SEP]`); lines of token ids are
/// used as they are and need no tokenizer.
pub fn embed<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    lines: &[EncodeLine],
    pooling: Pooling,
    device: &B::Device,
) -> Result<WithWarnings<Vec<Vec<f32>>>, InferError> {
    embed_in_batches(loaded, lines, pooling, BATCH, device)
}

/// [`embed`] with `batch_size` lines per forward pass, each batch computed without its
/// padding; the embeddings do not depend on it (to f32 rounding).
pub fn embed_in_batches<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    lines: &[EncodeLine],
    pooling: Pooling,
    batch_size: usize,
    device: &B::Device,
) -> Result<WithWarnings<Vec<Vec<f32>>>, InferError> {
    if lines.is_empty() {
        return Err(InferError::data("input", "no lines to embed"));
    }
    if batch_size == 0 {
        return Err(InferError::data("batch size", "must be at least 1"));
    }
    let mut warnings = Vec::new();
    let rows = model_rows(loaded, lines, &mut warnings)?;
    let pad = loaded.pad_id();
    let mut embeddings = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(batch_size) {
        let width = longest(chunk);
        let padded = pad_rows::<B>(chunk, width, pad, device);
        let mask = padded.attention_mask;
        // Pooled in f32 whatever the compute precision.
        let hidden = widened(
            loaded.encoder().forward(
                RoFormerInput::new(padded.input_ids)
                    .with_attention_mask(mask.clone())
                    .with_token_type_ids(padded.token_type_ids)
                    .with_packing(packing(chunk, width, device)),
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
) -> Result<WithWarnings<f32>, InferError> {
    for (text, which) in [(a, "first"), (b, "second")] {
        if text.trim().is_empty() {
            return Err(InferError::data(
                "input",
                format!("the {which} text is empty"),
            ));
        }
    }
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

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;
    use roformer_testing::max_abs_diff;

    use super::*;
    use crate::pipelines::rows::{Row, packing, tiny_masked_lm};

    type B = NdArray;

    /// Lines of many lengths embedded one at a time (no padding), in batches of 5 and in
    /// one batch (both packed, [`packing`]) give the same embeddings, mean and `[CLS]`.
    #[test]
    fn embeddings_do_not_depend_on_the_batch() {
        let device = Default::default();
        let text = "the quick brown fox jumps over the lazy dog to be or not to be";
        let loaded = tiny_masked_lm(text, 2, 0.3);
        let words: Vec<&str> = text.split(' ').collect();
        let lines: Vec<EncodeLine> = (0..11)
            .map(|i| embed_line(&words[..(i * 7) % words.len() + 1].join(" ")))
            .collect();
        let rows: Vec<Row> = model_rows(&loaded, &lines, &mut Vec::new()).unwrap();
        let packed = packing::<B>(&rows, longest(&rows), &device).expect("mixed lengths");
        let lengths: usize = rows.iter().map(Row::len).sum();
        assert_eq!(packed.tokens(), lengths);

        for pooling in [Pooling::Mean, Pooling::Cls] {
            let alone = embed_in_batches(&loaded, &lines, pooling, 1, &device).unwrap();
            for batch in [5, lines.len()] {
                let batched = embed_in_batches(&loaded, &lines, pooling, batch, &device);
                for (a, b) in alone.value.iter().zip(&batched.unwrap().value) {
                    let gap = max_abs_diff(a, b);
                    assert!(gap < 1e-5, "{pooling:?}, batch {batch}: {gap}");
                }
            }
        }
        assert!(embed_in_batches(&loaded, &lines, Pooling::Mean, 0, &device).is_err());
    }
}
