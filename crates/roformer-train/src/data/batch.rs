//! Padding examples into tensors: every batch is padded to its longest sequence, with an
//! attention mask (1 real, 0 padding).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use roformer::{IGNORE_INDEX, RoFormerInput};

use crate::data::masking::MaskedExample;

/// A padded masked-LM batch.
#[derive(Debug, Clone)]
pub struct MlmBatch<B: Backend> {
    /// Corrupted input, `[batch, seq]`.
    pub input: RoFormerInput<B>,
    /// Labels, [`IGNORE_INDEX`] at unselected and padded positions, `[batch, seq]`.
    pub labels: Tensor<B, 2, Int>,
    /// Real (non-padding) tokens in the batch.
    pub real_tokens: usize,
}

/// `[rows, longest]` id and mask tensors for `sequences`, right-padded with `pad`.
pub fn pad_ids<B: Backend>(
    sequences: &[&[u32]],
    pad: u32,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let longest = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
    let rows = sequences.len();
    let mut ids = Vec::with_capacity(rows * longest);
    let mut mask = Vec::with_capacity(rows * longest);
    for sequence in sequences {
        ids.extend(sequence.iter().map(|&id| id as i64));
        ids.extend(std::iter::repeat_n(pad as i64, longest - sequence.len()));
        mask.extend(std::iter::repeat_n(1i64, sequence.len()));
        mask.extend(std::iter::repeat_n(0i64, longest - sequence.len()));
    }
    (
        Tensor::from_data(TensorData::new(ids, [rows, longest]), device),
        Tensor::from_data(TensorData::new(mask, [rows, longest]), device),
    )
}

/// Pads masked examples into one batch.
pub fn mlm_batch<B: Backend>(
    examples: &[MaskedExample],
    pad: u32,
    device: &B::Device,
) -> MlmBatch<B> {
    let inputs: Vec<&[u32]> = examples.iter().map(|e| e.input_ids.as_slice()).collect();
    let (input_ids, attention_mask) = pad_ids::<B>(&inputs, pad, device);
    let [rows, longest] = input_ids.dims();
    let mut labels = Vec::with_capacity(rows * longest);
    for example in examples {
        labels.extend_from_slice(&example.labels);
        labels.extend(std::iter::repeat_n(
            IGNORE_INDEX,
            longest - example.labels.len(),
        ));
    }
    MlmBatch {
        input: RoFormerInput::new(input_ids).with_attention_mask(attention_mask),
        labels: Tensor::from_data(TensorData::new(labels, [rows, longest]), device),
        real_tokens: inputs.iter().map(|s| s.len()).sum(),
    }
}
