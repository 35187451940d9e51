//! The files of a model directory and its tokenizer. The tokenizer is chosen as HF's
//! `AutoTokenizer` chooses it: `tokenizer_config.json`'s `tokenizer_class` when there is
//! one (`RoFormerTokenizer` means jieba segmentation); without one, a RoFormer checkpoint
//! gets `RoFormerTokenizer` (jieba), except our own run directories from before
//! `tokenizer_config.json` was written (they hold `config.toml`).

use std::path::{Path, PathBuf};

use roformer::RoFormerConfig;
use serde::Deserialize;

use crate::error::InferError;
use crate::fs_atomic::write_atomic;
use crate::tokenizer::{SPECIAL_TOKENS, TextTokenizer, TokenizerOptions};

/// Model config file name.
pub const CONFIG_FILE: &str = "config.json";
/// Weights file name (what we write, and read first).
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// PyTorch pickle weights file name (read only).
pub const PYTORCH_WEIGHTS_FILE: &str = "pytorch_model.bin";
/// Tokenizer file name.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// BERT vocabulary file name.
pub const VOCAB_FILE: &str = "vocab.txt";
/// HF tokenizer settings file name.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// Present only in run directories made by `roformer train`.
pub(crate) const RUN_MARKER_FILE: &str = "config.toml";

/// The subset of HF's `tokenizer_config.json` that changes how text is tokenized.
#[derive(Debug, Default, Deserialize)]
struct HfTokenizerConfig {
    tokenizer_class: Option<String>,
    do_lower_case: Option<bool>,
}

/// Writes the tokenizer as HF does: `tokenizer.json`, `vocab.txt` when the model is
/// WordPiece, and `tokenizer_config.json` naming the class that reproduces it
/// (`RoFormerTokenizer` with jieba, otherwise the generic `PreTrainedTokenizerFast`,
/// which runs `tokenizer.json` as it is).
pub fn save_tokenizer(dir: &Path, tokenizer: &TextTokenizer) -> Result<(), InferError> {
    std::fs::create_dir_all(dir).map_err(|e| InferError::io(dir, e))?;
    tokenizer.save(&dir.join(TOKENIZER_FILE))?;
    if let Some(vocab) = tokenizer.wordpiece_vocab() {
        let mut text = vocab.join("\n");
        text.push('\n');
        write_atomic(&dir.join(VOCAB_FILE), text.as_bytes())?;
    }
    let class = if tokenizer.uses_jieba() {
        "RoFormerTokenizer"
    } else {
        "PreTrainedTokenizerFast"
    };
    let [pad, unk, cls, sep, mask] = SPECIAL_TOKENS;
    let settings = serde_json::json!({
        "tokenizer_class": class,
        "do_lower_case": tokenizer.lowercases(),
        "pad_token": pad,
        "unk_token": unk,
        "cls_token": cls,
        "sep_token": sep,
        "mask_token": mask,
    });
    let json = serde_json::to_string_pretty(&settings).expect("JSON always serializes");
    write_atomic(&dir.join(TOKENIZER_CONFIG_FILE), json.as_bytes())
}

/// Loads the tokenizer of a model directory, chosen as described in the module docs.
pub fn load_tokenizer(dir: &Path) -> Result<TextTokenizer, InferError> {
    let settings_path = dir.join(TOKENIZER_CONFIG_FILE);
    let settings: Option<HfTokenizerConfig> = if settings_path.is_file() {
        let text = std::fs::read_to_string(&settings_path)
            .map_err(|e| InferError::io(&settings_path, e))?;
        Some(serde_json::from_str(&text).map_err(|e| {
            InferError::model_dir(&settings_path, format!("not a tokenizer config: {e}"))
        })?)
    } else {
        None
    };
    let jieba = match settings.as_ref().and_then(|s| s.tokenizer_class.as_deref()) {
        Some(class) => class.starts_with("RoFormerTokenizer"),
        None => !dir.join(RUN_MARKER_FILE).is_file(),
    };
    let options = TokenizerOptions {
        jieba,
        lowercase: settings.and_then(|s| s.do_lower_case).unwrap_or(true),
    };
    // HF's RoFormerTokenizer is built from vocab.txt; anything else prefers tokenizer.json.
    let preference = if jieba {
        [VOCAB_FILE, TOKENIZER_FILE]
    } else {
        [TOKENIZER_FILE, VOCAB_FILE]
    };
    let path = preference
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            InferError::model_dir(dir, format!("no {TOKENIZER_FILE} or {VOCAB_FILE}"))
        })?;
    TextTokenizer::load(&path, options)
}

/// The weights file of a model directory: `model.safetensors`, else `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> Result<PathBuf, InferError> {
    [WEIGHTS_FILE, PYTORCH_WEIGHTS_FILE]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            InferError::model_dir(
                dir,
                format!("no weights: neither {WEIGHTS_FILE} nor {PYTORCH_WEIGHTS_FILE}"),
            )
        })
}

/// Whether `dir` holds a `tokenizer.json` or a `vocab.txt`.
pub fn has_tokenizer_files(dir: &Path) -> bool {
    [TOKENIZER_FILE, VOCAB_FILE]
        .iter()
        .any(|name| dir.join(name).is_file())
}

/// Checks that a model with `config`, read from `from`, can be written in HF layout to
/// `out`, which must not already hold a model, and creates `out`.
pub fn prepare_hf_dir(config: &RoFormerConfig, from: &Path, out: &Path) -> Result<(), InferError> {
    if let Some(reason) = config.hf_incompatibility() {
        return Err(InferError::model_dir(from, reason));
    }
    if out.join(CONFIG_FILE).exists() || out.join(WEIGHTS_FILE).exists() {
        return Err(InferError::model_dir(
            out,
            "already holds a model; choose an empty or new directory",
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| InferError::io(out, e))
}

/// The path of `dir`'s `config.json` and the model config it holds.
pub fn read_config(dir: &Path) -> Result<(PathBuf, RoFormerConfig), InferError> {
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Err(InferError::model_dir(
            dir,
            format!("not a model directory: no {CONFIG_FILE}"),
        ));
    }
    let config = RoFormerConfig::from_json_file(&config_path)?;
    Ok((config_path, config))
}
