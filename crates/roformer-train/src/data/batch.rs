//! Padding examples into tensors: every batch is padded to its longest sequence, with an
//! attention mask (1 real, 0 padding).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use roformer::RoFormerBackend;
use roformer::{IGNORE_INDEX, RoFormerInput};

use roformer_infer::inputs::pad_ids;

use crate::data::masking::MaskedExample;

/// A padded masked-LM batch. Only the selected positions carry targets, flattened over
/// `[batch, seq]`, so the vocabulary projection runs on those rows alone.
#[derive(Debug, Clone)]
pub struct MlmBatch<B: Backend> {
    /// Corrupted input, `[batch, seq]`.
    pub input: RoFormerInput<B>,
    /// Row-major indices into `[batch * seq]` of the positions to predict, `[masked]`.
    pub masked_positions: Tensor<B, 1, Int>,
    /// The original token at each of those positions, `[masked]`.
    pub masked_labels: Tensor<B, 1, Int>,
    /// Number of positions to predict.
    pub masked_count: usize,
    /// Real (non-padding) tokens in the batch.
    pub real_tokens: usize,
}

/// Pads masked examples into one batch.
pub fn mlm_batch<B: RoFormerBackend>(
    examples: &[MaskedExample],
    pad: u32,
    device: &B::Device,
) -> MlmBatch<B> {
    let inputs: Vec<&[u32]> = examples.iter().map(|e| e.input_ids.as_slice()).collect();
    let (input_ids, attention_mask) = pad_ids::<B>(&inputs, pad, device);
    let longest = input_ids.dims()[1];
    let (mut positions, mut labels) = (Vec::new(), Vec::new());
    for (row, example) in examples.iter().enumerate() {
        for (column, &label) in example.labels.iter().enumerate() {
            if label != IGNORE_INDEX {
                positions.push((row * longest + column) as i64);
                labels.push(label);
            }
        }
    }
    let count = positions.len();
    let int = |values: Vec<i64>| Tensor::from_data(TensorData::new(values, [count]), device);
    MlmBatch {
        input: RoFormerInput::new(input_ids).with_attention_mask(attention_mask),
        masked_positions: int(positions),
        masked_labels: int(labels),
        masked_count: count,
        real_tokens: inputs.iter().map(|s| s.len()).sum(),
    }
}
