//! Turning a text (or a pair of texts) into the classifier's input: `[CLS] a [SEP]` or
//! `[CLS] a [SEP] b [SEP]` with segment ids 0 for the first part and 1 for the second,
//! truncated as HF's `longest_first` truncates (a token off the longer text until both
//! fit), and padding such inputs into a batch.

use burn::tensor::{Int, Tensor, TensorData};
use roformer::{RoFormerBackend, RoFormerInput};

use crate::data::{TextTokenizer, pad_ids};
use crate::error::TrainError;

/// Token ids and segment ids of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairInput {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Segment (token type) ids, as long as `ids`.
    pub type_ids: Vec<u32>,
}

/// The input of `text` (and `pair`), at most `max_len` tokens (at least 3; 4 for pairs).
pub fn pair_input(
    tokenizer: &TextTokenizer,
    text: &str,
    pair: Option<&str>,
    max_len: usize,
) -> Result<PairInput, TrainError> {
    let special = tokenizer.special();
    let mut first = tokenizer.encode_plain(text)?;
    let mut second = pair.map(|p| tokenizer.encode_plain(p)).transpose()?;
    let budget = max_len.saturating_sub(if second.is_some() { 3 } else { 2 });
    match &mut second {
        None => first.truncate(budget),
        Some(second) => {
            while first.len() + second.len() > budget {
                if first.len() > second.len() {
                    first.pop();
                } else {
                    second.pop();
                }
            }
        }
    }
    let mut ids = Vec::with_capacity(max_len);
    ids.push(special.cls);
    ids.extend(&first);
    ids.push(special.sep);
    let mut type_ids = vec![0; ids.len()];
    if let Some(second) = second {
        ids.extend(&second);
        ids.push(special.sep);
        type_ids.resize(ids.len(), 1);
    }
    Ok(PairInput { ids, type_ids })
}

/// Pads inputs into one batch (`pad` for ids, 0 for segments, an attention mask).
pub fn pair_batch<B: RoFormerBackend>(
    inputs: &[&PairInput],
    pad: u32,
    device: &B::Device,
) -> RoFormerInput<B> {
    let ids: Vec<&[u32]> = inputs.iter().map(|i| i.ids.as_slice()).collect();
    let types: Vec<&[u32]> = inputs.iter().map(|i| i.type_ids.as_slice()).collect();
    let (input_ids, attention_mask) = pad_ids::<B>(&ids, pad, device);
    let (type_ids, _) = pad_ids::<B>(&types, 0, device);
    RoFormerInput::new(input_ids)
        .with_attention_mask(attention_mask)
        .with_token_type_ids(type_ids)
}

/// Class indices as a `[rows]` tensor.
pub fn label_tensor<B: RoFormerBackend>(labels: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let values: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(values, [labels.len()]), device)
}
