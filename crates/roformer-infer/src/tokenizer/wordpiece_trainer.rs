//! WordPiece vocabulary training: the BPE-style training of HF tokenizers' `BpeTrainer` as
//! its `WordPieceTrainer` configures it (continuation prefix `##`), with a stable
//! tie-break, so that the same corpus and settings give the same vocabulary in every
//! process.
//!
//! The `tokenizers` trainer numbers the `##c` continuation symbols, and lists the words, in
//! the iteration order of hash maps seeded at random per process, and breaks ties between
//! equally frequent pairs by those numbers; two runs on the same corpus can then train
//! different vocabularies. Here every step is ordered:
//!
//! 1. Words: each text is normalised and pre-tokenised by the tokenizer's own normalizer
//!    and pre-tokenizer, and the words are counted.
//! 2. Ids: the special tokens first, in the order given; then every character seen, by
//!    code point; then every `##c` continuation symbol seen (a character that is not the
//!    first of its word), by code point; then the merged tokens in the order they are made.
//! 3. Merges: the adjacent pair of symbols with the highest count (summed over the words'
//!    occurrences, each weighted by the word's frequency) is merged in every word, left to
//!    right; `a` + `##b` makes `ab`, `##a` + `##b` makes `##ab`. A tie goes to the pair
//!    with the smallest ids (first symbol, then second), which is `tokenizers`' own rule;
//!    with the ids above it no longer depends on the process: characters come before
//!    continuations, and merged tokens in the order they were made. A merge whose token
//!    already existed would reuse its id, as in `tokenizers`, rather than list the token
//!    twice. Training stops when the vocabulary has `vocab_size` entries, or the best
//!    count is below `min_frequency` (or zero).
//!
//! Unlike `tokenizers`, which after a merge queues a pair with only the words where it
//! just appeared (and so can merge a pair in some of its words first, the rest later), a
//! merge here always applies to every word holding the pair: plain greedy BPE, as the
//! from-scratch reference in the tests computes it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::{
    NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
};

use crate::error::InferError;

/// WordPiece's prefix of a symbol that continues a word.
const CONTINUATION_PREFIX: &str = "##";

/// The token for characters and pieces outside the vocabulary.
const UNK_TOKEN: &str = "[UNK]";

/// Two adjacent symbols, by id.
type Pair = (u32, u32);

fn training_error(error: impl std::fmt::Display) -> InferError {
    InferError::Tokenizer {
        source_name: "training".into(),
        message: error.to_string(),
    }
}

/// How often each word occurs in `texts` after `normalizer` and `pre_tokenizer`, the
/// words in byte order.
pub(crate) fn count_words<'a>(
    texts: impl Iterator<Item = &'a str>,
    normalizer: &impl Normalizer,
    pre_tokenizer: &impl PreTokenizer,
) -> Result<BTreeMap<String, u64>, InferError> {
    // Hashing is faster than a B-tree for the ~1M words of the shipped corpus; the counts
    // do not depend on the order, and the result is sorted.
    let mut counts: HashMap<String, u64> = HashMap::new();
    for text in texts {
        let mut normalized = NormalizedString::from(text);
        normalizer
            .normalize(&mut normalized)
            .map_err(training_error)?;
        let mut pre_tokenized = PreTokenizedString::from(normalized);
        pre_tokenizer
            .pre_tokenize(&mut pre_tokenized)
            .map_err(training_error)?;
        for (word, _, _) in pre_tokenized.get_splits(OffsetReferential::Original, OffsetType::Byte)
        {
            match counts.get_mut(word) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(word.to_string(), 1);
                }
            }
        }
    }
    Ok(counts.into_iter().collect())
}

/// A vocabulary under construction: tokens in id order, and the id of each.
#[derive(Debug, Default)]
struct Vocabulary {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocabulary {
    /// The id of `token`, added at the end if new.
    fn insert(&mut self, token: String) -> u32 {
        if let Some(&id) = self.ids.get(&token) {
            return id;
        }
        let id = self.tokens.len() as u32;
        self.ids.insert(token.clone(), id);
        self.tokens.push(token);
        id
    }

    fn id(&self, token: &str) -> u32 {
        self.ids[token]
    }

    /// The id of the token `pair` merges into (added if new).
    fn merge(&mut self, (first, second): Pair) -> u32 {
        let second = &self.tokens[second as usize];
        let second = second.strip_prefix(CONTINUATION_PREFIX).unwrap_or(second);
        let merged = format!("{}{second}", self.tokens[first as usize]);
        self.insert(merged)
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }
}

/// The words as symbol ids (first character, then `##` continuations), in the order of
/// `word_counts`, their counts, and the vocabulary of special tokens and symbols.
fn initial_symbols(
    word_counts: &BTreeMap<String, u64>,
    special_tokens: &[&str],
) -> (Vocabulary, Vec<Vec<u32>>, Vec<u64>) {
    let mut vocabulary = Vocabulary::default();
    for token in special_tokens {
        vocabulary.insert(token.to_string());
    }
    let mut alphabet = BTreeSet::new();
    let mut continuations = BTreeSet::new();
    for word in word_counts.keys() {
        let mut chars = word.chars();
        alphabet.extend(chars.next());
        continuations.extend(chars.clone());
        alphabet.extend(chars);
    }
    for c in alphabet {
        vocabulary.insert(c.to_string());
    }
    for c in continuations {
        vocabulary.insert(format!("{CONTINUATION_PREFIX}{c}"));
    }
    let words = word_counts
        .keys()
        .map(|word| {
            let mut buffer = [0; 4];
            word.chars()
                .enumerate()
                .map(|(i, c)| {
                    let c = c.encode_utf8(&mut buffer);
                    if i == 0 {
                        vocabulary.id(c)
                    } else {
                        vocabulary.id(&format!("{CONTINUATION_PREFIX}{c}"))
                    }
                })
                .collect()
        })
        .collect();
    (vocabulary, words, word_counts.values().copied().collect())
}

/// Replaces every occurrence of `pair` in `word`, left to right, by `merged`.
fn merge_word(word: &mut Vec<u32>, pair: Pair, merged: u32) {
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        if i + 1 < word.len() && (word[i], word[i + 1]) == pair {
            out.push(merged);
            i += 2;
        } else {
            out.push(word[i]);
            i += 1;
        }
    }
    *word = out;
}

fn pairs(word: &[u32]) -> impl Iterator<Item = Pair> + '_ {
    word.windows(2).map(|w| (w[0], w[1]))
}

/// Merges until the vocabulary has `vocab_size` tokens or no pair occurs
/// `min_frequency` times, keeping the pair counts up to date incrementally: only the words
/// holding the merged pair are recounted, and a max-heap yields the best pair, its stale
/// entries (counts that have dropped since) pushed back with the current count when met.
fn merge_pairs(
    vocabulary: &mut Vocabulary,
    words: &mut [Vec<u32>],
    counts: &[u64],
    vocab_size: usize,
    min_frequency: u64,
) {
    let mut pair_counts: HashMap<Pair, u64> = HashMap::new();
    // Word indices as sorted sets, so that words are merged in one order every time
    // (the result would not depend on it, but nothing here iterates a hash map).
    let mut pair_words: HashMap<Pair, BTreeSet<usize>> = HashMap::new();
    for (i, word) in words.iter().enumerate() {
        for pair in pairs(word) {
            *pair_counts.entry(pair).or_default() += counts[i];
            pair_words.entry(pair).or_default().insert(i);
        }
    }
    // Ordered by count, then by the smallest pair: `Reverse` puts small ids on top.
    // Entries equal in both are interchangeable, so the order of pushes cannot matter.
    let mut queue: BinaryHeap<(u64, Reverse<Pair>)> = pair_counts
        .iter()
        .map(|(&pair, &count)| (count, Reverse(pair)))
        .collect();
    while vocabulary.len() < vocab_size {
        let Some((count, Reverse(pair))) = queue.pop() else {
            break;
        };
        let current = pair_counts.get(&pair).copied().unwrap_or(0);
        if count != current {
            if current > 0 {
                queue.push((current, Reverse(pair)));
            }
            continue;
        }
        if count == 0 || count < min_frequency {
            break;
        }
        let merged = vocabulary.merge(pair);
        // Net change per pair over all words: a pair that only gains needs a new queue
        // entry (its old one is too low); one that only loses is corrected when popped.
        let mut changes: BTreeMap<Pair, i64> = BTreeMap::new();
        for i in pair_words.remove(&pair).unwrap_or_default() {
            let word = &mut words[i];
            let count = counts[i];
            for old in pairs(word) {
                if let Some(total) = pair_counts.get_mut(&old) {
                    *total -= count;
                    if *total == 0 {
                        pair_counts.remove(&old);
                    }
                }
                *changes.entry(old).or_default() -= count as i64;
                if let Some(holders) = pair_words.get_mut(&old) {
                    holders.remove(&i);
                }
            }
            merge_word(word, pair, merged);
            for new in pairs(word) {
                *pair_counts.entry(new).or_default() += count;
                *changes.entry(new).or_default() += count as i64;
                pair_words.entry(new).or_default().insert(i);
            }
        }
        for (changed, change) in changes {
            if change > 0 {
                queue.push((pair_counts[&changed], Reverse(changed)));
            }
        }
    }
}

/// The vocabulary, in id order, trained on `word_counts` (see the module documentation).
pub(crate) fn train_vocabulary(
    word_counts: &BTreeMap<String, u64>,
    special_tokens: &[&str],
    vocab_size: usize,
    min_frequency: u64,
) -> Vec<String> {
    let (mut vocabulary, mut words, counts) = initial_symbols(word_counts, special_tokens);
    merge_pairs(
        &mut vocabulary,
        &mut words,
        &counts,
        vocab_size,
        min_frequency,
    );
    vocabulary.tokens
}

/// A WordPiece model with `vocab` (token `i` takes id `i`), unknown token `[UNK]` and
/// continuation prefix `##`.
pub(crate) fn wordpiece_model(vocab: &[String]) -> Result<WordPiece, InferError> {
    let ids: ahash::AHashMap<String, u32> = vocab
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), id as u32))
        .collect();
    WordPiece::builder()
        .vocab(ids)
        .unk_token(UNK_TOKEN.into())
        .continuing_subword_prefix(CONTINUATION_PREFIX.into())
        .build()
        .map_err(training_error)
}

#[cfg(test)]
mod tests {
    use tokenizers::normalizers::bert::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;

    use super::*;
    use crate::tokenizer::SPECIAL_TOKENS;

    /// The merges recomputed from scratch: every pair recounted over every word before
    /// each merge, the best taken with the same tie-break.
    fn reference_vocabulary(
        word_counts: &BTreeMap<String, u64>,
        vocab_size: usize,
        min_frequency: u64,
    ) -> Vec<String> {
        let (mut vocabulary, mut words, counts) = initial_symbols(word_counts, &SPECIAL_TOKENS);
        while vocabulary.len() < vocab_size {
            let mut pair_counts: BTreeMap<Pair, u64> = BTreeMap::new();
            for (word, &count) in words.iter().zip(&counts) {
                for pair in pairs(word) {
                    *pair_counts.entry(pair).or_default() += count;
                }
            }
            // The highest count; among equals the smallest pair (`max_by_key` keeps the
            // last maximum, and the map is iterated from its largest pair down).
            let Some((&pair, &count)) = pair_counts.iter().rev().max_by_key(|(_, c)| **c) else {
                break;
            };
            if count < min_frequency {
                break;
            }
            let merged = vocabulary.merge(pair);
            for word in &mut words {
                merge_word(word, pair, merged);
            }
        }
        vocabulary.tokens
    }

    fn words(texts: &[&str], lowercase: bool) -> BTreeMap<String, u64> {
        let normalizer = BertNormalizer::new(true, true, None, lowercase);
        count_words(texts.iter().copied(), &normalizer, &BertPreTokenizer).unwrap()
    }

    fn hamlet_head() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/shakespeare/hamlet.txt"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let end = text[..20_000].rfind('\n').unwrap();
        text[..end].to_string()
    }

    /// Text with accents, CJK (one word per character after BERT pre-tokenisation),
    /// punctuation and case.
    const VARIED: &str = "Café naïve coöperate, CAFÉ! Ñandú — ñandú; 東京タワー 東京駅 \
                          déjà vu, déjà-vu; Straße STRASSE straße. 1,000.5 (x+y)=z";

    #[test]
    fn incremental_counts_give_the_reference_vocabulary() {
        let hamlet = hamlet_head();
        for lowercase in [true, false] {
            let words = words(&[&hamlet, VARIED], lowercase);
            for (vocab_size, min_frequency) in [(300, 1), (1000, 2), (100_000, 1), (100_000, 3)] {
                let fast = train_vocabulary(&words, &SPECIAL_TOKENS, vocab_size, min_frequency);
                let reference = reference_vocabulary(&words, vocab_size, min_frequency);
                assert_eq!(
                    fast, reference,
                    "vocab_size {vocab_size}, min_frequency {min_frequency}, lowercase {lowercase}"
                );
                if vocab_size < 100_000 {
                    assert_eq!(fast.len(), vocab_size);
                }
            }
        }
    }

    #[test]
    fn tiny_corpus_merges_by_count_then_smallest_ids() {
        let words = words(&["low lower lowest newer wider"], true);
        let vocab = train_vocabulary(&words, &SPECIAL_TOKENS, 1000, 1);
        // Specials, then the alphabet by code point, then the continuations.
        let symbols: Vec<&str> = "[PAD] [UNK] [CLS] [SEP] [MASK] d e i l n o r s t w \
                                  ##d ##e ##i ##o ##r ##s ##t ##w"
            .split_whitespace()
            .collect();
        assert_eq!(&vocab[..23], symbols.as_slice());
        // Counts: l ##o, ##o ##w, ##w ##e and ##e ##r occur 3 times. The tie goes to the
        // smallest ids: (l 8, ##o 18) first, then (##e 16, ##r 19); then lo ##w is the
        // only pair left with 3. All pairs then occur once; the smallest ids are
        // (n 9, ##e 16), where the smallest strings would have been ##d ##er.
        assert_eq!(&vocab[23..27], ["lo", "##er", "low", "ne"]);
        // Every word ends up whole.
        for word in ["low", "lower", "lowest", "newer", "wider"] {
            assert!(vocab.iter().any(|t| t == word), "{word}");
        }

        assert_eq!(
            train_vocabulary(&words, &SPECIAL_TOKENS, 25, 1)[23..],
            ["lo", "##er"],
            "stops at vocab_size"
        );
        assert_eq!(
            train_vocabulary(&words, &SPECIAL_TOKENS, 1000, 2)[23..],
            ["lo", "##er", "low"],
            "stops when the best pair occurs fewer than min_frequency times"
        );
        assert_eq!(
            train_vocabulary(&words, &SPECIAL_TOKENS, 1000, 4).len(),
            23,
            "no pair occurs 4 times"
        );
    }

    #[test]
    fn word_frequencies_weight_the_pair_counts() {
        // y ##z occurs in one word seen 3 times, a ##b in two words seen once each: by
        // distinct words a ##b would come first (and it has the smaller ids).
        let words = words(&["yz yz yz ab abq"], true);
        assert_eq!(words["yz"], 3);
        let vocab = train_vocabulary(&words, &SPECIAL_TOKENS, 1000, 1);
        // a b q y z, then ##b ##q ##z: the merges start at id 13.
        assert_eq!(vocab[13..15], ["yz", "ab"]);
    }

    #[test]
    fn the_model_holds_the_vocabulary_in_id_order() {
        let words = words(&[&hamlet_head()], true);
        let vocab = train_vocabulary(&words, &SPECIAL_TOKENS, 500, 2);
        let model = wordpiece_model(&vocab).unwrap();
        for (id, token) in vocab.iter().enumerate() {
            assert_eq!(
                tokenizers::Model::token_to_id(&model, token),
                Some(id as u32)
            );
        }
    }
}
