//! The training and validation splits as packed sequences, and the masked examples drawn
//! from them: per-epoch order and masks for training, fixed masks for validation.

use crate::data::{Corpus, MaskedExample, Work, mask_seed, mask_tokens, pack_lines};
use crate::error::TrainError;
use roformer_infer::tokenizer::{SpecialIds, TextTokenizer};

/// Salt of the validation masks, so they differ from any training epoch's.
const VALIDATION_SALT: u64 = 0x005E_ED0F_FA11;

/// How sequences are corrupted into masked-LM examples.
#[derive(Debug, Clone, Copy)]
pub(super) struct Masking {
    /// The tokenizer's special tokens (never selected, never drawn as replacements).
    pub special: SpecialIds,
    /// The tokenizer's vocabulary size, which bounds the random replacements.
    pub vocab: usize,
    /// Share of the tokens selected for prediction.
    pub probability: f64,
}

/// Masked-LM examples of a split, packed from its works.
pub(super) struct Split {
    sequences: Vec<Vec<u32>>,
}

impl Split {
    fn new(
        works: &[Work],
        tokenizer: &TextTokenizer,
        max_seq_len: usize,
    ) -> Result<Self, TrainError> {
        let mut sequences = Vec::new();
        for work in works {
            sequences.extend(pack_lines(&work.text, tokenizer, max_seq_len)?);
        }
        Ok(Self { sequences })
    }

    /// Packed sequences in the split.
    pub fn len(&self) -> usize {
        self.sequences.len()
    }

    /// Whether the split has no sequences.
    pub fn is_empty(&self) -> bool {
        self.sequences.is_empty()
    }

    /// Sequence `index` masked with the masks `seed` draws.
    pub fn masked(&self, index: usize, masking: &Masking, seed: u64) -> MaskedExample {
        mask_tokens(
            &self.sequences[index],
            &masking.special,
            masking.vocab,
            masking.probability,
            seed,
        )
    }

    /// Sequence `index` of a training epoch, with that epoch's masks.
    pub fn training_example(
        &self,
        index: usize,
        masking: &Masking,
        seed: u64,
        epoch: usize,
    ) -> MaskedExample {
        self.masked(index, masking, mask_seed(seed, epoch as u64, index as u64))
    }

    /// Sequence `index` with its validation masks, the same at every evaluation.
    pub fn validation_example(&self, index: usize, masking: &Masking, seed: u64) -> MaskedExample {
        self.masked(
            index,
            masking,
            mask_seed(seed ^ VALIDATION_SALT, 0, index as u64),
        )
    }
}

/// Both splits of a corpus.
pub(super) struct Splits {
    /// Sequences trained on.
    pub train: Split,
    /// Sequences evaluated on.
    pub valid: Split,
}

impl Splits {
    /// Packs the corpus's training and validation works into sequences of at most
    /// `max_seq_len` tokens; an empty split is an error.
    pub fn new(
        corpus: &Corpus,
        tokenizer: &TextTokenizer,
        max_seq_len: usize,
    ) -> Result<Self, TrainError> {
        let train = Split::new(&corpus.train, tokenizer, max_seq_len)?;
        let valid = Split::new(&corpus.validation, tokenizer, max_seq_len)?;
        if train.is_empty() || valid.is_empty() {
            return Err(TrainError::data(
                "corpus",
                "the training or validation split has no text",
            ));
        }
        Ok(Self { train, valid })
    }
}
