//! Fill-mask: the most likely tokens for each `[MASK]` of a text (HF `FillMaskPipeline`).

use burn::tensor::activation::softmax;
use roformer::{RoFormerBackend, RoFormerInput};
use serde::Serialize;

use crate::error::InferError;
use crate::model_dir::LoadedModel;
use crate::pipelines::rows::{Row, WithWarnings, pad_rows, truncate, values};

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

/// The `top_k` most likely tokens for every `[MASK]` in `text`.
pub fn fill_mask<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    text: &str,
    top_k: usize,
    device: &B::Device,
) -> Result<WithWarnings<Vec<MaskPrediction>>, InferError> {
    let model = loaded.masked_lm()?;
    let tokenizer = loaded.tokenizer()?;
    let special = tokenizer.special();
    if text.trim().is_empty() {
        return Err(InferError::data("input", "empty text"));
    }
    let mut ids = tokenizer.encode_with_special(text)?;
    if !ids.contains(&special.mask) {
        return Err(InferError::data(
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
        return Err(InferError::data(
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
