//! The encoder's directory: a masked-LM (or a bare encoder) in HF layout, as
//! `roformer train` and `roformer import` write it and `roformer export-hf` writes it for
//! transformers. A fine-tuned model's directory also loads here, as its encoder.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::backend::Backend;
use roformer::RoFormerBackend;
use roformer::hf_weights::{
    RoFormerWeights, load_hf_sequence_classification, load_hf_token_classification,
    load_hf_weights, save_hf_weights,
};
use roformer::{Precision, RoFormerConfig, RoFormerForMaskedLM, RoFormerModel};

use crate::error::InferError;
use crate::fs_atomic::{produce_atomic, write_atomic};
use crate::model_dir::architecture::{TAGGER_ARCHITECTURE, read_labels, task_architecture};
use crate::model_dir::files::{
    CONFIG_FILE, WEIGHTS_FILE, has_tokenizer_files, load_tokenizer, prepare_hf_dir, read_config,
    save_tokenizer, weights_file,
};
use crate::model_dir::precision::InPrecision;
use crate::tokenizer::TextTokenizer;

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

impl<B: RoFormerBackend> InPrecision<B> for LoadedModel<B> {
    fn cast_to(mut self, precision: Precision) -> Self {
        self.weights = self.weights.in_precision(precision);
        self
    }
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
    pub fn tokenizer(&self) -> Result<&TextTokenizer, InferError> {
        if let Some(tokenizer) = self.tokenizer.get() {
            return Ok(tokenizer);
        }
        let tokenizer = load_tokenizer(&self.dir).map_err(|e| match e {
            InferError::ModelDir { path, message } if !has_tokenizer_files(&self.dir) => {
                InferError::ModelDir {
                    path,
                    message: format!("{message}: text input needs a tokenizer (token ids do not)"),
                }
            }
            other => other,
        })?;
        if tokenizer.vocab_size() > self.config.vocab_size {
            return Err(InferError::model_dir(
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

    /// The encoder.
    pub fn encoder(&self) -> &RoFormerModel<B> {
        self.weights.encoder()
    }

    /// The encoder with its masked-LM head; an error naming the directory if the
    /// checkpoint has none (a bare `RoFormerModel`).
    pub fn masked_lm(&self) -> Result<&RoFormerForMaskedLM<B>, InferError> {
        self.weights.masked_lm().ok_or_else(|| {
            InferError::model_dir(
                &self.dir,
                "the checkpoint has no masked-LM head (only RoFormerModel weights, no `cls.` tensors); use `embed` or `encode` without --mlm-logits",
            )
        })
    }
}

/// Writes `config.json` and `model.safetensors` (each atomically).
pub fn save_model<B: RoFormerBackend>(
    dir: &Path,
    config: &RoFormerConfig,
    model: &RoFormerForMaskedLM<B>,
) -> Result<(), InferError> {
    std::fs::create_dir_all(dir).map_err(|e| InferError::io(dir, e))?;
    write_atomic(&dir.join(CONFIG_FILE), config.to_hf_json().as_bytes())?;
    produce_atomic(&dir.join(WEIGHTS_FILE), |tmp| {
        Ok(roformer::hf_weights::save_hf_safetensors(
            model, config, tmp,
        )?)
    })
}

/// Loads a model directory (a run directory or an HF RoFormer directory; a sequence
/// classifier's directory loads as its encoder).
pub fn load_model<B: RoFormerBackend>(
    dir: &Path,
    device: &B::Device,
) -> Result<LoadedModel<B>, InferError> {
    if !dir.is_dir() {
        return Err(InferError::model_dir(dir, "no such model directory"));
    }
    let (config_path, config) = read_config(dir)?;
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

/// Writes `model` as an HF directory at `out` (`config.json`, `model.safetensors`, and the
/// tokenizer files when the model has a tokenizer). Used by `import` (into our run layout)
/// and `export-hf`. Refuses to write into a directory that already holds a model. Returns
/// the tokenizer written, if any.
pub fn write_model_dir<'m, B: RoFormerBackend>(
    model: &'m LoadedModel<B>,
    out: &Path,
) -> Result<Option<&'m TextTokenizer>, InferError> {
    prepare_hf_dir(&model.config, &model.dir, out)?;
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
