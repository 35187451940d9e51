//! Turning a text (or a pair of texts) into the classifier's input: `[CLS] a [SEP]` or
//! `[CLS] a [SEP] b [SEP]` with segment ids 0 for the first part and 1 for the second,
//! truncated as HF's `longest_first` truncates (a token off the longer text until both
//! fit), and padding such inputs into a batch. For token classification, words become
//! `[CLS] w1-pieces w2-pieces … [SEP]` windows that hold whole words, each word read at
//! its first piece (HF's `is_split_into_words` with `word_ids()`).

use std::ops::Range;

use burn::tensor::{Int, Tensor, TensorData};
use roformer::{Packing, RoFormerBackend, RoFormerInput};

use crate::error::InferError;
use crate::tokenizer::TextTokenizer;

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
) -> Result<PairInput, InferError> {
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
    // Sized by the input, not by `max_len`, which may be far longer.
    let mut ids = Vec::with_capacity(first.len() + second.as_ref().map_or(0, Vec::len) + 3);
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

/// [`pair_batch`] computed without its padding ([`Packing`]): for inference, which reads
/// real tokens only.
pub fn packed_pair_batch<B: RoFormerBackend>(
    inputs: &[&PairInput],
    pad: u32,
    device: &B::Device,
) -> RoFormerInput<B> {
    let lengths: Vec<usize> = inputs.iter().map(|i| i.ids.len()).collect();
    let longest = lengths.iter().copied().max().unwrap_or(0);
    pair_batch(inputs, pad, device).with_packing(Packing::from_lengths(&lengths, longest, device))
}

/// Class indices as a `[rows]` tensor.
pub fn label_tensor<B: RoFormerBackend>(labels: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let values: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(values, [labels.len()]), device)
}

/// A window of words as one input, and where each of its words starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordWindow {
    /// The input, `[CLS] … [SEP]`, segment ids all 0.
    pub input: PairInput,
    /// Index in `input.ids` of the first piece of each word of the window.
    pub word_starts: Vec<usize>,
    /// The words of the window, as indices into the whole list.
    pub words: Range<usize>,
}

/// Splits `words` into consecutive windows of at most `max_len` tokens (at least 3) that
/// each hold whole words (a single word longer than a window keeps its first pieces). A
/// word the tokenizer turns into nothing is `[UNK]`, so every word is read.
pub fn word_windows(
    tokenizer: &TextTokenizer,
    words: &[String],
    max_len: usize,
) -> Result<Vec<WordWindow>, InferError> {
    let special = tokenizer.special();
    let budget = max_len.saturating_sub(2).max(1);
    let pieces: Vec<Vec<u32>> = words
        .iter()
        .map(|word| {
            let ids = tokenizer.encode_plain(word)?;
            Ok(if ids.is_empty() {
                vec![special.unk]
            } else {
                ids
            })
        })
        .collect::<Result<_, InferError>>()?;
    let mut windows = Vec::new();
    let mut next = 0;
    while next < words.len() {
        let start = next;
        let mut ids = vec![special.cls];
        let mut word_starts = Vec::new();
        while next < words.len() {
            let word = &pieces[next];
            let room = budget + 1 - ids.len();
            if word.len() > room && next > start {
                break;
            }
            word_starts.push(ids.len());
            ids.extend(&word[..word.len().min(room)]);
            next += 1;
            if ids.len() > budget {
                break;
            }
        }
        ids.push(special.sep);
        windows.push(WordWindow {
            input: PairInput {
                type_ids: vec![0; ids.len()],
                ids,
            },
            word_starts,
            words: start..next,
        });
    }
    Ok(windows)
}

/// The rows of a padded `[batch × seq]` batch at which each input's words start (input by
/// input, word by word), `seq` being the batch's longest input.
pub fn word_rows<B: RoFormerBackend>(
    inputs: &[&PairInput],
    word_starts: &[&[usize]],
    device: &B::Device,
) -> Tensor<B, 1, Int> {
    let seq = inputs.iter().map(|i| i.ids.len()).max().unwrap_or(0);
    let rows: Vec<i64> = word_starts
        .iter()
        .enumerate()
        .flat_map(|(i, starts)| starts.iter().map(move |&s| (i * seq + s) as i64))
        .collect();
    let len = rows.len();
    Tensor::from_data(TensorData::new(rows, [len]), device)
}

/// `[rows, longest]` id and mask tensors for `sequences`, right-padded with `pad`.
pub fn pad_ids<B: RoFormerBackend>(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows hold whole words in order, every word once, each read at its first piece,
    /// and a word longer than a window keeps its first pieces.
    #[test]
    fn word_windows_hold_whole_words() {
        let tokenizer = TextTokenizer::train(
            ["the quick brown fox jumps over the lazy dog"].into_iter(),
            40,
            1,
            true,
        )
        .unwrap();
        let special = tokenizer.special();
        let words: Vec<String> = "the foxes quicker jumps dog dumpsoveroxenuphow the"
            .split(' ')
            .map(str::to_string)
            .collect();
        let pieces: Vec<Vec<u32>> = words
            .iter()
            .map(|w| tokenizer.encode_plain(w).unwrap())
            .collect();
        assert!(
            pieces[5].len() > 6,
            "a word longer than a window: {pieces:?}"
        );
        let windows = word_windows(&tokenizer, &words, 8).unwrap();
        let mut next_word = 0;
        for window in &windows {
            let ids = &window.input.ids;
            assert!(ids.len() <= 8, "{windows:?}");
            assert_eq!((ids[0], ids[ids.len() - 1]), (special.cls, special.sep));
            assert_eq!(window.input.type_ids, vec![0; ids.len()]);
            assert_eq!(window.words.start, next_word, "{windows:?}");
            assert_eq!(window.word_starts.len(), window.words.len());
            let mut expected = vec![special.cls];
            for (word, &start) in window.words.clone().zip(&window.word_starts) {
                assert_eq!(start, expected.len());
                expected.extend(&pieces[word]);
            }
            expected.truncate(7);
            expected.push(special.sep);
            assert_eq!(ids, &expected, "{windows:?}");
            next_word = window.words.end;
        }
        assert_eq!(next_word, words.len());
        let long = windows.iter().find(|w| w.words.contains(&5)).unwrap();
        assert_eq!(long.words, 5..6, "the long word is alone in its window");
    }
}
