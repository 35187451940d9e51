//! BERT's masked-LM corruption (Devlin et al. 2019, §3.1; HF
//! `DataCollatorForLanguageModeling`): each non-special token is selected with probability
//! p; a selected token becomes `[MASK]` 80% of the time, a random token 10%, and stays
//! 10%. Only selected positions carry a label; a sequence where nothing was selected gets
//! its first ordinary token masked.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use roformer::IGNORE_INDEX;

use roformer_infer::tokenizer::SpecialIds;

/// One corrupted sequence: model input and labels ([`IGNORE_INDEX`] where not selected).
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedExample {
    /// Token ids fed to the model.
    pub input_ids: Vec<u32>,
    /// The original id at selected positions, [`IGNORE_INDEX`] elsewhere.
    pub labels: Vec<i64>,
}

/// Seed of the masks of example `index` in `epoch`: masks are fresh every epoch, yet the
/// same for the same seed whatever the batch order or a resume in between.
pub fn mask_seed(seed: u64, epoch: u64, index: u64) -> u64 {
    // SplitMix64 over the three inputs.
    let mut z = seed
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Corrupts `ids` for masked-LM training. `vocab_size` bounds the random replacements,
/// which are never special tokens.
pub fn mask_tokens(
    ids: &[u32],
    special: &SpecialIds,
    vocab_size: usize,
    probability: f64,
    seed: u64,
) -> MaskedExample {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut input_ids = ids.to_vec();
    let mut labels = vec![IGNORE_INDEX; ids.len()];
    for (position, &id) in ids.iter().enumerate() {
        if special.contains(id) || !rng.random_bool(probability) {
            continue;
        }
        labels[position] = id as i64;
        let roll: f64 = rng.random();
        input_ids[position] = if roll < 0.8 {
            special.mask
        } else if roll < 0.9 {
            loop {
                let candidate = rng.random_range(0..vocab_size as u32);
                if !special.contains(candidate) {
                    break candidate;
                }
            }
        } else {
            id
        };
    }
    // Every example predicts something, so no batch is without a loss.
    if labels.iter().all(|&l| l == IGNORE_INDEX)
        && let Some(position) = ids.iter().position(|&id| !special.contains(id))
    {
        labels[position] = ids[position] as i64;
        input_ids[position] = special.mask;
    }
    MaskedExample { input_ids, labels }
}
