//! A model directory: what `--model DIR` reads, `roformer train` and `roformer import`
//! write, and `roformer export-hf` writes for transformers.
//!
//! It is laid out as HF transformers lays out a RoFormer checkpoint: `config.json`,
//! `model.safetensors` (HF parameter names; `pytorch_model.bin` is read too),
//! `tokenizer.json` and/or a BERT `vocab.txt`, and `tokenizer_config.json`. So a run
//! directory loads with `RoFormerForMaskedLM.from_pretrained`, and an HF RoFormer
//! directory loads here as it is.
//!
//! The tokenizer is chosen as HF's `AutoTokenizer` chooses it: `tokenizer_config.json`'s
//! `tokenizer_class` when there is one (`RoFormerTokenizer` means jieba segmentation);
//! without one, a RoFormer checkpoint gets `RoFormerTokenizer` (jieba), except our own run
//! directories from before `tokenizer_config.json` was written (they hold `config.toml`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::backend::Backend;
use roformer::RoFormerBackend;
use roformer::hf_weights::{
    RoFormerWeights, load_hf_sequence_classification, load_hf_token_classification,
    load_hf_weights, save_hf_weights,
};
use roformer::{Precision, RoFormerConfig, RoFormerForMaskedLM, RoFormerModel};
use serde::Deserialize;

use crate::data::{SPECIAL_TOKENS, TextTokenizer, TokenizerOptions};
use crate::error::TrainError;
use crate::finetune::classifier_dir::{TAGGER_ARCHITECTURE, read_labels, task_architecture};
use crate::fs_atomic::{produce_atomic, write_atomic};

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
const RUN_MARKER_FILE: &str = "config.toml";

/// A model ready for inference, with its config; its tokenizer is read on first use, so
/// a directory without tokenizer files still runs on token ids.
pub struct LoadedModel<B: Backend> {
    /// The directory it came from.
    pub dir: PathBuf,
    /// The encoder config.
    pub config: RoFormerConfig,
    /// The encoder, with its masked-LM head when the checkpoint has one.
    pub weights: RoFormerWeights<B>,
    tokenizer: OnceLock<TextTokenizer>,
}

impl<B: RoFormerBackend> LoadedModel<B> {
    /// A loaded model whose tokenizer is `tokenizer` rather than the directory's files.
    pub fn with_tokenizer(
        dir: PathBuf,
        config: RoFormerConfig,
        weights: RoFormerWeights<B>,
        tokenizer: TextTokenizer,
    ) -> Self {
        Self {
            dir,
            config,
            weights,
            tokenizer: OnceLock::from(tokenizer),
        }
    }

    /// The model's tokenizer, read from its directory the first time it is needed; an
    /// error naming the directory when it has no tokenizer files or they do not fit the
    /// model.
    pub fn tokenizer(&self) -> Result<&TextTokenizer, TrainError> {
        if let Some(tokenizer) = self.tokenizer.get() {
            return Ok(tokenizer);
        }
        let tokenizer = load_tokenizer(&self.dir).map_err(|e| match e {
            TrainError::ModelDir { path, message } if !has_tokenizer_files(&self.dir) => {
                TrainError::ModelDir {
                    path,
                    message: format!("{message}: text input needs a tokenizer (token ids do not)"),
                }
            }
            other => other,
        })?;
        if tokenizer.vocab_size() > self.config.vocab_size {
            return Err(TrainError::model_dir(
                &self.dir,
                format!(
                    "the tokenizer has {} tokens but config.json's vocab_size is {}",
                    tokenizer.vocab_size(),
                    self.config.vocab_size
                ),
            ));
        }
        Ok(self.tokenizer.get_or_init(|| tokenizer))
    }

    /// The id that pads a batch: the tokenizer's `[PAD]` once it is loaded, else
    /// `config.json`'s `pad_token_id` (HF's default 0).
    pub fn pad_id(&self) -> u32 {
        match self.tokenizer.get() {
            Some(tokenizer) => tokenizer.special().pad,
            None => self.config.pad_token_id.unwrap_or(0) as u32,
        }
    }

    /// The model for inference in `precision` (weights stored in it); an error when the
    /// device does not compute in it.
    pub fn in_precision(
        mut self,
        precision: Precision,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        precision.check_supported::<B>(device)?;
        self.weights = self.weights.in_precision(precision);
        Ok(self)
    }

    /// The encoder.
    pub fn encoder(&self) -> &RoFormerModel<B> {
        self.weights.encoder()
    }

    /// The encoder with its masked-LM head; an error naming the directory if the
    /// checkpoint has none (a bare `RoFormerModel`).
    pub fn masked_lm(&self) -> Result<&RoFormerForMaskedLM<B>, TrainError> {
        self.weights.masked_lm().ok_or_else(|| {
            TrainError::model_dir(
                &self.dir,
                "the checkpoint has no masked-LM head (only RoFormerModel weights, no `cls.` tensors); use `embed` or `encode` without --mlm-logits",
            )
        })
    }
}

/// The subset of HF's `tokenizer_config.json` that changes how text is tokenized.
#[derive(Debug, Default, Deserialize)]
struct HfTokenizerConfig {
    tokenizer_class: Option<String>,
    do_lower_case: Option<bool>,
}

/// Writes `config.json` and `model.safetensors` (each atomically).
pub fn save_model<B: RoFormerBackend>(
    dir: &Path,
    config: &RoFormerConfig,
    model: &RoFormerForMaskedLM<B>,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    write_atomic(&dir.join(CONFIG_FILE), config.to_hf_json().as_bytes())?;
    produce_atomic(&dir.join(WEIGHTS_FILE), |tmp| {
        Ok(roformer::hf_weights::save_hf_safetensors(
            model, config, tmp,
        )?)
    })
}

/// Writes the tokenizer as HF does: `tokenizer.json`, `vocab.txt` when the model is
/// WordPiece, and `tokenizer_config.json` naming the class that reproduces it
/// (`RoFormerTokenizer` with jieba, otherwise the generic `PreTrainedTokenizerFast`,
/// which runs `tokenizer.json` as it is).
pub fn save_tokenizer(dir: &Path, tokenizer: &TextTokenizer) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
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
pub fn load_tokenizer(dir: &Path) -> Result<TextTokenizer, TrainError> {
    let settings_path = dir.join(TOKENIZER_CONFIG_FILE);
    let settings: Option<HfTokenizerConfig> = if settings_path.is_file() {
        let text = std::fs::read_to_string(&settings_path)
            .map_err(|e| TrainError::io(&settings_path, e))?;
        Some(serde_json::from_str(&text).map_err(|e| {
            TrainError::model_dir(&settings_path, format!("not a tokenizer config: {e}"))
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
            TrainError::model_dir(dir, format!("no {TOKENIZER_FILE} or {VOCAB_FILE}"))
        })?;
    TextTokenizer::load(&path, options)
}

/// The weights file of a model directory: `model.safetensors`, else `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> Result<PathBuf, TrainError> {
    [WEIGHTS_FILE, PYTORCH_WEIGHTS_FILE]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            TrainError::model_dir(
                dir,
                format!("no weights: neither {WEIGHTS_FILE} nor {PYTORCH_WEIGHTS_FILE}"),
            )
        })
}

/// Loads a model directory (a run directory or an HF RoFormer directory; a sequence
/// classifier's directory loads as its encoder).
pub fn load_model<B: RoFormerBackend>(
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
    let weights_path = weights_file(dir)?;
    // A fine-tuned classifier serves (and initialises fine-tuning) as its encoder; the
    // head is checked strictly and set aside.
    let weights = match task_architecture(dir) {
        Some(TAGGER_ARCHITECTURE) => {
            let labels = read_labels(&config_path)?;
            let tagger =
                load_hf_token_classification(&config, labels.len(), &weights_path, device)?;
            RoFormerWeights::Encoder(tagger.roformer)
        }
        Some(_) => {
            let labels = read_labels(&config_path)?;
            let classifier =
                load_hf_sequence_classification(&config, labels.len(), &weights_path, device)?;
            RoFormerWeights::Encoder(classifier.roformer)
        }
        None => load_hf_weights(&config, &weights_path, device)?,
    };
    Ok(LoadedModel {
        dir: dir.to_path_buf(),
        config,
        weights,
        tokenizer: OnceLock::new(),
    })
}

/// Whether `dir` holds a `tokenizer.json` or a `vocab.txt`.
pub fn has_tokenizer_files(dir: &Path) -> bool {
    [TOKENIZER_FILE, VOCAB_FILE]
        .iter()
        .any(|name| dir.join(name).is_file())
}

/// Writes `model` as an HF directory at `out` (`config.json`, `model.safetensors`, and the
/// tokenizer files when the model has a tokenizer). Used by `import` (into our run layout)
/// and `export-hf`. Refuses to write into a directory that already holds a model. Returns
/// the tokenizer written, if any.
pub fn write_model_dir<'m, B: RoFormerBackend>(
    model: &'m LoadedModel<B>,
    out: &Path,
) -> Result<Option<&'m TextTokenizer>, TrainError> {
    if let Some(reason) = model.config.hf_incompatibility() {
        return Err(TrainError::model_dir(&model.dir, reason));
    }
    if out.join(CONFIG_FILE).exists() || out.join(WEIGHTS_FILE).exists() {
        return Err(TrainError::model_dir(
            out,
            "already holds a model; choose an empty or new directory",
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let architecture = match model.weights.masked_lm() {
        Some(_) => "RoFormerForMaskedLM",
        None => "RoFormerModel",
    };
    let config_json = model.config.to_hf_json_for(architecture);
    produce_atomic(&out.join(WEIGHTS_FILE), |tmp| {
        Ok(save_hf_weights(&model.weights, &model.config, tmp)?)
    })?;
    let tokenizer = if has_tokenizer_files(&model.dir) || model.tokenizer.get().is_some() {
        let tokenizer = model.tokenizer()?;
        save_tokenizer(out, tokenizer)?;
        Some(tokenizer)
    } else {
        None
    };
    write_atomic(&out.join(CONFIG_FILE), config_json.as_bytes())?;
    Ok(tokenizer)
}
