//! Masked-LM loss and accuracy on held-out text cut into sequences of several lengths:
//! how a model trained on short sequences extrapolates to longer ones (Su et al. 2021
//! argue that RoPE's relative form decays with distance; this measures it), optionally
//! with a rotary scaling rule of `roformer-rope` (linear interpolation, NTK-aware, dynamic
//! NTK, YaRN) whose factor is the length over the trained length.
//!
//! Every length predicts the same tokens: the text is tokenized once, a token is masked
//! when a hash of (seed, its index in the text) falls below the mask probability, and a
//! masked token becomes `[MASK]` (no random replacement, no kept tokens). Each length
//! cuts the token stream into windows of `length − 2` tokens wrapped in `[CLS]`/`[SEP]`,
//! dropping the last partial window, so lengths differ only in the context each
//! prediction sees.

mod defaults;

pub use defaults::{EvalText, eval_text, run_config, trained_length};

use burn::module::Module;
use burn::tensor::ElementConversion;
use roformer::roformer_rope::RopeScaling;
use roformer::{PositionEmbeddingType, RoFormerBackend, RoFormerConfig, RoFormerForMaskedLM};
use serde::Serialize;

use crate::data::{MaskedExample, mask_seed, mlm_batch};
use crate::error::TrainError;
use crate::train::masked_lm_step;
use roformer_infer::tokenizer::TextTokenizer;

/// Salt of the evaluation masks.
const EVAL_SALT: u64 = 0xE7A1_3A5C_0001;

/// Which rotary scaling rule to apply past the trained length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ScalingRule {
    /// Positions as trained (the paper's RoPE).
    None,
    /// Linear position interpolation.
    Linear,
    /// NTK-aware base scaling.
    Ntk,
    /// Dynamic NTK (no change up to the trained length).
    DynamicNtk,
    /// YaRN.
    Yarn,
}

impl ScalingRule {
    /// The rule for sequences of `length` tokens on a model trained on `trained`: no
    /// scaling up to `trained`, factor `length / trained` past it.
    pub fn at(self, trained: usize, length: usize) -> RopeScaling {
        if length <= trained {
            return RopeScaling::None;
        }
        let factor = length as f64 / trained as f64;
        match self {
            ScalingRule::None => RopeScaling::None,
            ScalingRule::Linear => RopeScaling::Linear { factor },
            ScalingRule::Ntk => RopeScaling::NtkAware { factor },
            ScalingRule::DynamicNtk => RopeScaling::DynamicNtk {
                factor: 1.0,
                original_max_positions: trained,
            },
            ScalingRule::Yarn => RopeScaling::Yarn {
                factor,
                original_max_positions: trained,
                beta_fast: 32.0,
                beta_slow: 1.0,
                attention_factor: None,
            },
        }
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalMlmOptions {
    /// Sequence lengths, special tokens included (each at least 3).
    pub lengths: Vec<usize>,
    /// The scaling rule past `trained_length`.
    pub scaling: ScalingRule,
    /// The length the model was trained on.
    pub trained_length: usize,
    /// Tokens of the text used, at most.
    pub max_tokens: usize,
    /// Share of the tokens predicted.
    pub mask_probability: f64,
    /// Seed of the masks.
    pub seed: u64,
    /// Sequences per forward pass.
    pub batch_size: usize,
}

/// The scores at one length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LengthScore {
    /// Sequence length, special tokens included.
    pub length: usize,
    /// Sequences evaluated.
    pub sequences: usize,
    /// Tokens predicted.
    pub masked_tokens: usize,
    /// Mean cross-entropy over the predicted tokens (`None` when skipped).
    pub loss: Option<f64>,
    /// Share of the predicted tokens that are the most likely token.
    pub accuracy: Option<f64>,
    /// The rotary scaling used.
    pub scaling: RopeScaling,
    /// Why the length was not evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Whether the token at `index` of the text is predicted.
pub fn is_predicted(seed: u64, index: usize, probability: f64) -> bool {
    let draw = mask_seed(seed ^ EVAL_SALT, 0, index as u64);
    ((draw >> 11) as f64 / (1u64 << 53) as f64) < probability
}

/// The token stream of `text` (its non-empty lines, tokenized), at most `max_tokens`.
pub fn text_tokens(
    tokenizer: &TextTokenizer,
    text: &str,
    max_tokens: usize,
) -> Result<Vec<u32>, TrainError> {
    let mut tokens = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        tokens.extend(tokenizer.encode_plain(line)?);
        if tokens.len() >= max_tokens {
            tokens.truncate(max_tokens);
            break;
        }
    }
    Ok(tokens)
}

/// The masked sequences of `length` over `tokens`.
pub fn length_examples(
    tokens: &[u32],
    tokenizer: &TextTokenizer,
    length: usize,
    options: &EvalMlmOptions,
) -> Vec<MaskedExample> {
    let special = tokenizer.special();
    let window = length - 2;
    tokens
        .chunks_exact(window)
        .enumerate()
        .map(|(chunk, ids)| {
            let mut input_ids = vec![special.cls];
            let mut labels = vec![roformer::IGNORE_INDEX];
            for (offset, &id) in ids.iter().enumerate() {
                let predicted = !special.contains(id)
                    && is_predicted(
                        options.seed,
                        chunk * window + offset,
                        options.mask_probability,
                    );
                input_ids.push(if predicted { special.mask } else { id });
                labels.push(if predicted {
                    i64::from(id)
                } else {
                    roformer::IGNORE_INDEX
                });
            }
            input_ids.push(special.sep);
            labels.push(roformer::IGNORE_INDEX);
            MaskedExample { input_ids, labels }
        })
        .collect()
}

/// Scores `model` (of `config`) on `tokens` at each length of `options`. A model with a
/// learned position table skips lengths past it; other models get their
/// `max_position_embeddings` raised to the length (rotary and sinusoidal positions are
/// computed) and the scaling rule's rotation.
pub fn eval_mlm<B: RoFormerBackend>(
    config: &RoFormerConfig,
    model: &RoFormerForMaskedLM<B>,
    tokenizer: &TextTokenizer,
    tokens: &[u32],
    options: &EvalMlmOptions,
    device: &B::Device,
) -> Result<Vec<LengthScore>, TrainError> {
    let mut scores = Vec::with_capacity(options.lengths.len());
    for &length in &options.lengths {
        let examples = length_examples(tokens, tokenizer, length, options);
        let scaling = if config.position_embedding_type.is_rotary() {
            options.scaling.at(options.trained_length, length)
        } else {
            RopeScaling::None
        };
        let mut score = LengthScore {
            length,
            sequences: examples.len(),
            masked_tokens: 0,
            loss: None,
            accuracy: None,
            scaling,
            skipped: None,
        };
        if config.position_embedding_type == PositionEmbeddingType::Absolute
            && length > config.max_position_embeddings
        {
            score.skipped = Some(format!(
                "the learned position table has {} rows",
                config.max_position_embeddings
            ));
            scores.push(score);
            continue;
        }
        if examples.is_empty() {
            score.skipped = Some(format!("the text has fewer than {} tokens", length - 2));
            scores.push(score);
            continue;
        }
        let at_length = RoFormerConfig {
            max_position_embeddings: config.max_position_embeddings.max(length),
            rope_scaling: scaling,
            ..config.clone()
        };
        let resized = if at_length == *config {
            model.clone()
        } else {
            RoFormerForMaskedLM::<B>::new(&at_length, device)?
                .with_precision(model.roformer.precision())
                .load_record(model.clone().into_record())
        };
        let pad = tokenizer.special().pad;
        let (mut loss_sum, mut correct, mut count) = (0.0, 0usize, 0usize);
        for batch in examples.chunks(options.batch_size.max(1)) {
            let batch = mlm_batch::<B>(batch, pad, device);
            let masked = batch.masked_count;
            if masked == 0 {
                continue;
            }
            let (loss, hits) = masked_lm_step(&resized, batch);
            let loss: f64 = loss.into_scalar().elem();
            loss_sum += loss * masked as f64;
            correct += hits;
            count += masked;
        }
        score.masked_tokens = count;
        if count > 0 {
            score.loss = Some(loss_sum / count as f64);
            score.accuracy = Some(correct as f64 / count as f64);
        } else {
            score.skipped = Some("no token was selected for prediction".into());
        }
        scores.push(score);
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_select_about_the_probability_and_depend_on_index_only() {
        let picked = (0..100_000).filter(|&i| is_predicted(5, i, 0.15)).count();
        assert!((14_000..16_000).contains(&picked), "{picked}");
        assert_eq!(is_predicted(5, 123, 0.15), is_predicted(5, 123, 0.15));
        let differ = (0..1000)
            .filter(|&i| is_predicted(5, i, 0.5) != is_predicted(6, i, 0.5))
            .count();
        assert!(differ > 300, "seeds give other masks: {differ}");
    }

    #[test]
    fn scaling_starts_past_the_trained_length() {
        assert_eq!(ScalingRule::Linear.at(128, 128), RopeScaling::None);
        assert_eq!(
            ScalingRule::Linear.at(128, 512),
            RopeScaling::Linear { factor: 4.0 }
        );
        assert_eq!(
            ScalingRule::Ntk.at(128, 256),
            RopeScaling::NtkAware { factor: 2.0 }
        );
        assert_eq!(ScalingRule::None.at(128, 2048), RopeScaling::None);
    }
}
