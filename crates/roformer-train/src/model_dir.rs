//! A model directory: what `--model DIR` reads and `roformer train` writes.
//!
//! It is laid out as HF transformers lays out a RoFormer checkpoint: `config.json`,
//! `model.safetensors` (HF parameter names) and `tokenizer.json` (or a BERT `vocab.txt`),
//! so a run directory can be loaded by `RoFormerForMaskedLM.from_pretrained` and an HF
//! directory with `model.safetensors` by this crate.

use std::path::Path;

use burn::tensor::backend::Backend;
use roformer::hf_weights::{load_hf_safetensors, save_hf_safetensors};
use roformer::{RoFormerConfig, RoFormerForMaskedLM};

use crate::data::TextTokenizer;
use crate::error::TrainError;
use crate::fs_atomic::{produce_atomic, write_atomic};

/// Model config file name.
pub const CONFIG_FILE: &str = "config.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Tokenizer file name.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// BERT vocabulary file name (a fallback tokenizer).
pub const VOCAB_FILE: &str = "vocab.txt";

/// A model ready for inference, with its config and tokenizer.
pub struct LoadedModel<B: Backend> {
    /// The encoder config.
    pub config: RoFormerConfig,
    /// The tokenizer.
    pub tokenizer: TextTokenizer,
    /// The encoder with its masked-LM head.
    pub model: RoFormerForMaskedLM<B>,
}

/// Writes `config.json` and `model.safetensors` (each atomically).
pub fn save_model<B: Backend>(
    dir: &Path,
    config: &RoFormerConfig,
    model: &RoFormerForMaskedLM<B>,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    write_atomic(&dir.join(CONFIG_FILE), config.to_hf_json().as_bytes())?;
    produce_atomic(&dir.join(WEIGHTS_FILE), |tmp| {
        Ok(save_hf_safetensors(model, tmp)?)
    })
}

/// Loads a model directory (a run directory or an HF RoFormer directory).
pub fn load_model<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<LoadedModel<B>, TrainError> {
    if !dir.is_dir() {
        return Err(TrainError::model_dir(dir, "no such model directory"));
    }
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Err(TrainError::model_dir(
            dir,
            format!("not a model directory: no {CONFIG_FILE}"),
        ));
    }
    let config = RoFormerConfig::from_json_file(&config_path)?;
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        return Err(TrainError::model_dir(dir, format!("no {WEIGHTS_FILE}")));
    }
    let tokenizer_path = [TOKENIZER_FILE, VOCAB_FILE]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            TrainError::model_dir(dir, format!("no {TOKENIZER_FILE} or {VOCAB_FILE}"))
        })?;
    let tokenizer = TextTokenizer::from_file(&tokenizer_path)?;
    let model = RoFormerForMaskedLM::new(&config, device)?;
    let model = load_hf_safetensors(model, &weights)?;
    Ok(LoadedModel {
        config,
        tokenizer,
        model,
    })
}
