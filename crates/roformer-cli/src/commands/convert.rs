//! `roformer import` and `roformer export-hf`: any model directory rewritten in HF layout.

use std::path::Path;

use anyhow::Result;
use roformer_infer::model_dir::{Converted, convert};

use crate::backend;

pub fn run(from: &Path, to: &Path) -> Result<()> {
    let device = backend::device()?;
    let what = match convert::<backend::Inference>(from, to, &device)? {
        Converted::Task {
            architecture,
            labels,
            vocab_size,
        } => format!(
            "{architecture}, labels {} (vocabulary {vocab_size})",
            labels.join(", ")
        ),
        Converted::Encoder {
            masked_lm,
            tokenizer,
        } => {
            let architecture = if masked_lm {
                "RoFormerForMaskedLM"
            } else {
                "RoFormerModel (no masked-LM head)"
            };
            let tokenizer = match tokenizer {
                Some((vocab_size, true)) => {
                    format!("vocabulary {vocab_size}, WordPiece after jieba segmentation")
                }
                Some((vocab_size, false)) => format!("vocabulary {vocab_size}, WordPiece"),
                None => "no tokenizer files in the source: weights and config only".to_string(),
            };
            format!("{architecture} ({tokenizer})")
        }
    };
    eprintln!("wrote {} from {}: {what}", to.display(), from.display());
    Ok(())
}
