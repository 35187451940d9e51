//! The model configuration, mirroring HF transformers' `RoFormerConfig`
//! (`configuration_roformer.py`): same field names, same defaults, so an HF
//! `config.json` deserializes into [`RoFormerConfig`] unchanged.

use std::path::Path;

use serde::{Deserialize, Serialize};

use roformer_rope::RopeScaling;

use crate::activation::HiddenAct;
use crate::error::RoFormerError;

/// Hyper-parameters of a RoFormer encoder. Defaults are HF's (the `roformer_chinese_base`
/// shape). Keys of an HF `config.json` that this crate does not use (`architectures`,
/// `torch_dtype`, `use_cache`, …) are ignored when reading one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoFormerConfig {
    /// Size of the token vocabulary. Default: 50000.
    pub vocab_size: usize,
    /// Width of the token embeddings; `None` (or absent) means `hidden_size`. When it
    /// differs, a linear `embeddings_project` maps embeddings to `hidden_size`.
    pub embedding_size: Option<usize>,
    /// Width of the encoder's hidden states. Default: 768.
    pub hidden_size: usize,
    /// Number of encoder layers. Default: 12.
    pub num_hidden_layers: usize,
    /// Number of attention heads; must divide `hidden_size` into an even head size. Default: 12.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer. Default: 3072.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer and of the heads. Default: `gelu` (exact, erf).
    pub hidden_act: HiddenAct,
    /// Dropout on embeddings and sub-layer outputs. Default: 0.1.
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities. Default: 0.1.
    pub attention_probs_dropout_prob: f64,
    /// Longest sequence the model is meant for; the rotary table is precomputed up to it
    /// (longer inputs still rotate correctly). Default: 1536.
    pub max_position_embeddings: usize,
    /// Number of token types (segments). Default: 2.
    pub type_vocab_size: usize,
    /// Standard deviation of the normal initialisation of weights. Default: 0.02.
    pub initializer_range: f64,
    /// Epsilon of every LayerNorm. Default: 1e-12.
    pub layer_norm_eps: f64,
    /// Id of the padding token. Default: 0.
    pub pad_token_id: Option<usize>,
    /// Rotate the values as well as queries and keys (RoFormer-sim, the small
    /// discriminator/generator checkpoints). Default: false.
    pub rotary_value: bool,
    /// How positions enter the model. Default: `rotary` (RoFormer; the only kind HF
    /// transformers' RoFormer has, so the key is left out of an exported `config.json`).
    #[serde(skip_serializing_if = "PositionEmbeddingType::is_rotary")]
    pub position_embedding_type: PositionEmbeddingType,
    /// How rotary positions past the trained context are mapped onto angles (linear
    /// interpolation, NTK-aware, dynamic NTK, YaRN; `{"type": "linear", "factor": 4.0}`).
    /// RoFormer checkpoints have none, and HF's RoFormer ignores the key. Default: none.
    #[serde(skip_serializing_if = "is_unscaled")]
    pub rope_scaling: RopeScaling,
    /// How attention weighs the values: `softmax` (default; RoFormer, HF) or `linear`
    /// (kernelised, Su et al. 2021 §3.3). Left out of an exported `config.json` when softmax.
    #[serde(skip_serializing_if = "AttentionKind::is_softmax")]
    pub attention: AttentionKind,
    /// What a sequence classifier reads: `cls`, the first token (default; HF's
    /// `RoFormerClassificationHead`), or `mean`, the mean of the real tokens' hidden states
    /// (ModernBERT's `classifier_pooling`). Left out of an exported `config.json` when cls.
    #[serde(skip_serializing_if = "ClassifierPooling::is_cls")]
    pub classifier_pooling: ClassifierPooling,
}

fn is_unscaled(scaling: &RopeScaling) -> bool {
    *scaling == RopeScaling::None
}

/// How a model knows where each token is: the comparison of Su et al. 2021 (Fig. 3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionEmbeddingType {
    /// Queries and keys rotated by position in every attention layer (RoFormer).
    #[default]
    Rotary,
    /// A learned table of `max_position_embeddings` rows added to the token embeddings
    /// (BERT's `position_embeddings`).
    Absolute,
    /// The fixed sine/cosine table of Vaswani et al. 2017, with amplitude
    /// `initializer_range`, added to the token embeddings.
    Sinusoidal,
    /// No position information at all (attention is then order-blind).
    None,
}

impl PositionEmbeddingType {
    /// Whether this is RoFormer's rotation.
    pub fn is_rotary(&self) -> bool {
        *self == Self::Rotary
    }

    /// The name a config file uses.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rotary => "rotary",
            Self::Absolute => "absolute",
            Self::Sinusoidal => "sinusoidal",
            Self::None => "none",
        }
    }
}

/// The attention of every layer: the comparison of Su et al. 2021 §3.3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// Softmax of scaled dot products (RoFormer, BERT; the only kind HF has).
    #[default]
    Softmax,
    /// Linear attention with φ(x) = elu(x) + 1 and the rotation in the numerator only
    /// (Su et al. 2021, eq. 19): time and memory linear in the sequence length.
    Linear,
}

impl AttentionKind {
    /// Whether this is softmax attention.
    pub fn is_softmax(&self) -> bool {
        *self == Self::Softmax
    }

    /// The name a config file uses.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::Linear => "linear",
        }
    }
}

/// The input of a sequence classifier's head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierPooling {
    /// The first token's hidden state, `[CLS]` (HF RoFormer).
    #[default]
    Cls,
    /// The mean of the hidden states of the real (unpadded) tokens.
    Mean,
}

impl ClassifierPooling {
    /// Whether this is the first token (HF's head).
    pub fn is_cls(&self) -> bool {
        *self == Self::Cls
    }

    /// The name a config file uses.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Cls => "cls",
            Self::Mean => "mean",
        }
    }
}

impl Default for RoFormerConfig {
    fn default() -> Self {
        Self {
            vocab_size: 50000,
            embedding_size: None,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: HiddenAct::Gelu,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 1536,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: Some(0),
            rotary_value: false,
            position_embedding_type: PositionEmbeddingType::Rotary,
            rope_scaling: RopeScaling::None,
            attention: AttentionKind::Softmax,
            classifier_pooling: ClassifierPooling::Cls,
        }
    }
}

/// The keys of an HF `config.json` that say which model it is, checked before the rest.
#[derive(Deserialize)]
struct HfHeader {
    model_type: Option<String>,
    tie_word_embeddings: Option<bool>,
}

/// Refuses a config of another model type (a BERT `config.json` would otherwise parse,
/// every field having a default) and an untied decoder, which this crate cannot express.
fn check_hf_header(json: &str, source: &str) -> Result<(), RoFormerError> {
    let parse_error = |key: &str, message: String| RoFormerError::ConfigParse {
        source_name: source.to_string(),
        key: key.to_string(),
        message,
    };
    let Ok(header) = serde_json::from_str::<HfHeader>(json) else {
        return Ok(()); // the full parse below reports where the JSON is wrong
    };
    match header.model_type.as_deref() {
        None | Some("roformer") => {}
        Some(other) => {
            return Err(parse_error(
                "model_type",
                format!("expected \"roformer\", got \"{other}\": not a RoFormer model"),
            ));
        }
    }
    if header.tie_word_embeddings == Some(false) {
        return Err(parse_error(
            "tie_word_embeddings",
            "expected true: the masked-LM decoder is always tied to the word embeddings here"
                .into(),
        ));
    }
    Ok(())
}

impl RoFormerConfig {
    /// Width of the token embeddings (`embedding_size`, or `hidden_size` when unset).
    pub fn embedding_size(&self) -> usize {
        self.embedding_size.unwrap_or(self.hidden_size)
    }

    /// Features per attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Parses a JSON config (an HF `config.json` or one of ours) and validates it. `source`
    /// names the file in error messages.
    pub fn from_json_str(json: &str, source: &str) -> Result<Self, RoFormerError> {
        check_hf_header(json, source)?;
        let deserializer = &mut serde_json::Deserializer::from_str(json);
        let config: Self = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            RoFormerError::ConfigParse {
                source_name: source.to_string(),
                key: error.path().to_string(),
                message: error.into_inner().to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates a JSON config file.
    pub fn from_json_file(path: &Path) -> Result<Self, RoFormerError> {
        let json = std::fs::read_to_string(path).map_err(|error| RoFormerError::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        })?;
        Self::from_json_str(&json, &path.display().to_string())
    }

    /// The config as an HF `config.json` for `RoFormerForMaskedLM` (our fields plus
    /// `model_type`, `architectures` and the tied-embedding flag).
    pub fn to_hf_json(&self) -> String {
        self.to_hf_json_for("RoFormerForMaskedLM")
    }

    /// The config as an HF `config.json` whose `architectures` names `architecture`
    /// (`RoFormerForMaskedLM`, or `RoFormerModel` for a checkpoint without a head).
    pub fn to_hf_json_for(&self, architecture: &str) -> String {
        let mut value = serde_json::to_value(self).expect("a config always serializes");
        let object = value.as_object_mut().expect("a config is a JSON object");
        object.insert("embedding_size".into(), self.embedding_size().into());
        object.insert("model_type".into(), "roformer".into());
        object.insert("architectures".into(), serde_json::json!([architecture]));
        object.insert("tie_word_embeddings".into(), true.into());
        serde_json::to_string_pretty(&value).expect("JSON always serializes")
    }

    /// Why HF transformers' RoFormer cannot run this model, if it cannot: it only rotates,
    /// only has softmax attention, and ignores `rope_scaling` (so a scaled model would run
    /// there with other angles than here).
    pub fn hf_incompatibility(&self) -> Option<String> {
        if !self.position_embedding_type.is_rotary() {
            return Some(format!(
                "position_embedding_type \"{}\" has no HF RoFormer equivalent (transformers' RoFormer only rotates); only rotary models export",
                self.position_embedding_type.name()
            ));
        }
        if !self.attention.is_softmax() {
            return Some(format!(
                "attention \"{}\" has no HF RoFormer equivalent (transformers' RoFormer has softmax attention only); only softmax models export",
                self.attention.name()
            ));
        }
        if !self.classifier_pooling.is_cls() {
            return Some(format!(
                "classifier_pooling \"{}\" has no HF RoFormer equivalent (transformers' RoFormerForSequenceClassification reads the first token); only cls models export",
                self.classifier_pooling.name()
            ));
        }
        if self.rope_scaling != RopeScaling::None {
            return Some(
                "rope_scaling is set, and transformers' RoFormer ignores it (it would rotate by other angles); remove it from config.json to export the unscaled model".into(),
            );
        }
        None
    }

    /// Checks every value a model cannot be built from; the error names the field.
    pub fn validate(&self) -> Result<(), RoFormerError> {
        self.validate_shape()?;
        self.validate_values()
    }

    /// The sizes: positive, and heads that split the width into even halves.
    fn validate_shape(&self) -> Result<(), RoFormerError> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
            ("embedding_size", self.embedding_size()),
        ];
        for (field, value) in positive {
            if value == 0 {
                return invalid(field, "a positive integer", value.to_string());
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return invalid(
                "hidden_size",
                &format!(
                    "a multiple of num_attention_heads ({})",
                    self.num_attention_heads
                ),
                self.hidden_size.to_string(),
            );
        }
        if !self.head_size().is_multiple_of(2) {
            return invalid(
                "num_attention_heads",
                "a head count giving an even head size (hidden_size / num_attention_heads), as rotation pairs features",
                format!(
                    "{} (head size {})",
                    self.num_attention_heads,
                    self.head_size()
                ),
            );
        }
        Ok(())
    }

    /// Probabilities, epsilons, and the fields that depend on others.
    fn validate_values(&self) -> Result<(), RoFormerError> {
        for (field, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return invalid(field, "a probability in [0, 1)", p.to_string());
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return invalid(
                "layer_norm_eps",
                "a positive number",
                self.layer_norm_eps.to_string(),
            );
        }
        if !(self.initializer_range.is_finite() && self.initializer_range >= 0.0) {
            return invalid(
                "initializer_range",
                "a non-negative number",
                self.initializer_range.to_string(),
            );
        }
        if self.rotary_value && !self.position_embedding_type.is_rotary() {
            return invalid(
                "rotary_value",
                "false unless position_embedding_type is \"rotary\"",
                "true".into(),
            );
        }
        if let Some(pad) = self.pad_token_id
            && pad >= self.vocab_size
        {
            return invalid(
                "pad_token_id",
                &format!("an id below vocab_size ({})", self.vocab_size),
                pad.to_string(),
            );
        }
        Ok(())
    }
}

/// A config error naming `field`, what it should be and what it is.
fn invalid(field: &'static str, expected: &str, found: String) -> Result<(), RoFormerError> {
    Err(RoFormerError::InvalidConfig {
        field,
        expected: expected.to_string(),
        found,
    })
}
