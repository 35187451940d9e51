//! Any model directory `--model` takes (ours, or HF's, masked-LM, encoder or fine-tuned)
//! rewritten in HF layout: what `roformer import` and `roformer export-hf` do.

use std::path::Path;

use roformer::RoFormerBackend;

use crate::error::InferError;
use crate::model_dir::architecture::{TAGGER_ARCHITECTURE, task_architecture};
use crate::model_dir::encoder::{load_model, write_model_dir};
use crate::model_dir::task::{load_classifier, load_tagger, write_classifier_dir};

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converted {
    /// A fine-tuned classifier or tagger.
    Task {
        /// Its `architectures` name.
        architecture: &'static str,
        /// Its labels, by output index.
        labels: Vec<String>,
        /// The tokenizer's vocabulary size.
        vocab_size: usize,
    },
    /// A masked-LM, or a bare encoder when `masked_lm` is false.
    Encoder {
        /// Whether the weights include the masked-LM head.
        masked_lm: bool,
        /// The tokenizer written: vocabulary size and whether it segments with jieba;
        /// `None` when the source has no tokenizer files.
        tokenizer: Option<(usize, bool)>,
    },
}

/// Loads the model directory `from`, whatever it holds, and writes it in HF layout to
/// `to`, which must not already hold a model.
pub fn convert<B: RoFormerBackend>(
    from: &Path,
    to: &Path,
    device: &B::Device,
) -> Result<Converted, InferError> {
    match task_architecture(from) {
        Some(TAGGER_ARCHITECTURE) => {
            let tagger = load_tagger::<B>(from, device)?;
            write_classifier_dir(&tagger, to)?;
            Ok(Converted::Task {
                architecture: TAGGER_ARCHITECTURE,
                vocab_size: tagger.tokenizer.vocab_size(),
                labels: tagger.labels,
            })
        }
        Some(architecture) => {
            let classifier = load_classifier::<B>(from, device)?;
            write_classifier_dir(&classifier, to)?;
            Ok(Converted::Task {
                architecture,
                vocab_size: classifier.tokenizer.vocab_size(),
                labels: classifier.labels,
            })
        }
        None => {
            let loaded = load_model::<B>(from, device)?;
            let tokenizer = write_model_dir(&loaded, to)?
                .map(|tokenizer| (tokenizer.vocab_size(), tokenizer.uses_jieba()));
            Ok(Converted::Encoder {
                masked_lm: loaded.weights.masked_lm().is_some(),
                tokenizer,
            })
        }
    }
}
