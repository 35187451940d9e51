//! Jieba word segmentation before WordPiece, as HF's `RoFormerTokenizer` does for the
//! Chinese RoFormer checkpoints (`transformers/models/roformer/tokenization_utils.py`,
//! `JiebaPreTokenizer`; the `rjieba` package it calls is a binding of the `jieba-rs` crate
//! used here, with the same built-in dictionary).
//!
//! The text is first normalised (BERT's cleaning and lower-casing, without spacing out CJK
//! characters), then cut by jieba with `HMM=False`. A word found in the vocabulary stays
//! whole; any other word is split as BERT would split it (each CJK character alone, runs
//! of other characters together, whitespace dropped) and each piece goes through WordPiece.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use jieba_rs::Jieba;
use tokenizers::normalizer::Range;
use tokenizers::{NormalizedString, PreTokenizedString, PreTokenizer};

/// The jieba dictionary is large to build (~0.2 s); one per process.
fn shared_jieba() -> Arc<Jieba> {
    static JIEBA: OnceLock<Arc<Jieba>> = OnceLock::new();
    JIEBA.get_or_init(|| Arc::new(Jieba::new())).clone()
}

/// BERT's definition of a CJK character (the CJK Unicode blocks), as in
/// `BertNormalizer`'s `handle_chinese_chars`.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// Character lengths of `normalize_str(word).split()` in HF's fallback: CJK characters
/// alone, other characters grouped between whitespace.
fn fallback_piece_lengths(word: &str) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut run = 0;
    for c in word.chars() {
        if c.is_whitespace() || is_cjk(c) {
            if run > 0 {
                lengths.push(run);
                run = 0;
            }
            if is_cjk(c) {
                lengths.push(1);
            }
        } else {
            run += 1;
        }
    }
    if run > 0 {
        lengths.push(run);
    }
    lengths
}

/// The pre-tokenizer: jieba words kept whole when in the vocabulary, BERT-split otherwise.
#[derive(Clone)]
pub struct JiebaPreTokenizer {
    jieba: Arc<Jieba>,
    vocab: Arc<HashSet<String>>,
}

impl JiebaPreTokenizer {
    /// A pre-tokenizer that keeps the jieba words present in `vocab`.
    pub fn new(vocab: impl IntoIterator<Item = String>) -> Self {
        Self {
            jieba: shared_jieba(),
            vocab: Arc::new(vocab.into_iter().collect()),
        }
    }

    fn split(&self, normalized: NormalizedString) -> Vec<NormalizedString> {
        let text = normalized.get();
        // Byte offset of every character (and of the end), to slice by character index.
        let mut char_bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        char_bytes.push(text.len());
        let chars = char_bytes.len() - 1;
        let slice = |start: usize, end: usize| {
            let (start, end) = (start.min(chars), end.min(chars));
            normalized.slice(Range::Normalized(char_bytes[start]..char_bytes[end]))
        };
        let mut splits = Vec::new();
        for token in self.jieba.cut(text, false) {
            if self.vocab.contains(token.word) {
                splits.extend(slice(token.start, token.end));
            } else {
                // HF slices consecutive pieces of these lengths from the word's start.
                let mut start = token.start;
                for length in fallback_piece_lengths(token.word) {
                    splits.extend(slice(start, start + length));
                    start += length;
                }
            }
        }
        splits
    }
}

impl PreTokenizer for JiebaPreTokenizer {
    fn pre_tokenize(&self, pretokenized: &mut PreTokenizedString) -> tokenizers::Result<()> {
        pretokenized.split(|_, normalized| Ok(self.split(normalized)))
    }
}

#[cfg(test)]
mod tests {
    use super::fallback_piece_lengths;

    #[test]
    fn fallback_pieces_split_cjk_characters_and_drop_whitespace() {
        assert_eq!(fallback_piece_lengths("天气"), vec![1, 1]);
        assert_eq!(fallback_piece_lengths("abc"), vec![3]);
        assert_eq!(fallback_piece_lengths("ab天c"), vec![2, 1, 1]);
        assert_eq!(fallback_piece_lengths("  "), Vec::<usize>::new());
    }
}
