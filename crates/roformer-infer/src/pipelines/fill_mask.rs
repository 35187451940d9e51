//! Fill-mask: the most likely tokens for each `[MASK]` of a text (HF `FillMaskPipeline`).

use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, TensorData};
use roformer::{RoFormerBackend, RoFormerInput};
use serde::Serialize;

use crate::error::InferError;
use crate::model_dir::LoadedModel;
use crate::pipelines::rows::{Row, WithWarnings, longest, packing, pad_rows, truncate, values};
use crate::tokenizer::TextTokenizer;

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

/// Which candidates a fill-mask answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillMaskOptions {
    /// Candidates per mask, most likely first.
    pub top_k: usize,
    /// Only these token ids are candidates (HF's `targets`); all tokens when `None`.
    pub targets: Option<Vec<u32>>,
}

/// The `top_k` most likely tokens for every `[MASK]` in `text`.
pub fn fill_mask<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    text: &str,
    top_k: usize,
    device: &B::Device,
) -> Result<WithWarnings<Vec<MaskPrediction>>, InferError> {
    let options = FillMaskOptions {
        top_k,
        targets: None,
    };
    let WithWarnings { value, warnings } = fill_masks(loaded, &[text], &options, device)?;
    Ok(WithWarnings {
        value: value.into_iter().next().expect("one text, one answer"),
        warnings,
    })
}

/// The candidates for every `[MASK]` of each text, the texts run as one padded batch.
pub fn fill_masks<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    texts: &[&str],
    options: &FillMaskOptions,
    device: &B::Device,
) -> Result<WithWarnings<Vec<Vec<MaskPrediction>>>, InferError> {
    let model = loaded.masked_lm()?;
    let tokenizer = loaded.tokenizer()?;
    let special = tokenizer.special();
    let mut warnings = Vec::new();
    let mut rows = Vec::with_capacity(texts.len());
    let mut positions = Vec::with_capacity(texts.len());
    for text in texts {
        let (row, at) = mask_row(loaded, text, &mut warnings)?;
        rows.push(row);
        positions.push(at);
    }
    let width = longest(&rows);
    let padded = pad_rows::<B>(&rows, width, special.pad, device);
    // One row has no padding, so no attention mask.
    let input = match rows.len() {
        1 => RoFormerInput::new(padded.input_ids),
        _ => RoFormerInput::new(padded.input_ids)
            .with_attention_mask(padded.attention_mask)
            .with_packing(packing(&rows, width, device)),
    };
    let hidden = model.roformer.forward(input);
    let [batch, seq, hidden_size] = hidden.dims();
    // Only the masks go through the head and its vocabulary projection.
    let masked: Vec<i64> = positions
        .iter()
        .enumerate()
        .flat_map(|(row, at)| at.iter().map(move |&p| (row * seq + p) as i64))
        .collect();
    let count = masked.len();
    let masked = Tensor::<B, 1, Int>::from_data(TensorData::new(masked, [count]), device);
    let logits = model.logits(hidden.reshape([batch * seq, hidden_size]).select(0, masked));
    let vocab = logits.dims()[1];
    let probabilities = values(softmax(logits, 1))?;
    let mut rows_of_masks = probabilities.chunks(vocab);
    let mut answers = Vec::with_capacity(texts.len());
    for at in positions {
        let mut predictions = Vec::with_capacity(at.len());
        for position in at {
            let row_values = rows_of_masks.next().expect("one row per mask");
            predictions.push(MaskPrediction {
                position,
                candidates: candidates(row_values, options, tokenizer),
            });
        }
        answers.push(predictions);
    }
    Ok(WithWarnings {
        value: answers,
        warnings,
    })
}

/// The candidates of one mask from its probabilities over the vocabulary.
fn candidates(
    probabilities: &[f32],
    options: &FillMaskOptions,
    tokenizer: &TextTokenizer,
) -> Vec<Candidate> {
    let mut ranked: Vec<(usize, f32)> = match &options.targets {
        Some(targets) => targets
            .iter()
            .map(|&id| (id as usize, probabilities[id as usize]))
            .collect(),
        None => probabilities.iter().copied().enumerate().collect(),
    };
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
        .into_iter()
        .take(options.top_k)
        .map(|(id, probability)| Candidate {
            token: tokenizer.token(id as u32),
            id: id as u32,
            probability,
        })
        .collect()
}

/// `text` tokenized with `[CLS]`/`[SEP]` and cut to the model's length, and the positions
/// of its masks; a text without one (or with every one cut off) is refused.
fn mask_row<B: RoFormerBackend>(
    loaded: &LoadedModel<B>,
    text: &str,
    warnings: &mut Vec<String>,
) -> Result<(Row, Vec<usize>), InferError> {
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
    let max_len = loaded.config.max_position_embeddings;
    truncate(&mut ids, max_len, special.sep, "input", warnings);
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
    Ok((Row::text(ids), positions))
}
