//! A served model: what its directory holds decides which routes it answers. A masked-LM
//! answers fill-mask, a sequence classifier classification, a token classifier tagging;
//! every model answers embeddings (its encoder's).

use std::path::Path;

use roformer::hf_weights::RoFormerWeights;
use roformer::{Precision, RoFormerBackend};
use roformer_infer::InferError;
use roformer_infer::model_dir::{
    InPrecision, LoadedClassifier, LoadedModel, LoadedTagger, TAGGER_ARCHITECTURE, load_classifier,
    load_model, load_tagger, task_architecture,
};
use roformer_infer::task_model::TaskModel;
use roformer_infer::tokenizer::TextTokenizer;
use serde::Serialize;

/// What a model can be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Sentence embeddings (every model).
    Embed,
    /// The tokens of each `[MASK]` (a masked-LM).
    FillMask,
    /// A label per text or text pair (a sequence classifier).
    Classify,
    /// A label per word (a token classifier).
    Tag,
}

/// The model's head beside its encoder.
pub enum Head<B: RoFormerBackend> {
    /// None: the encoder alone (its directory had no masked-LM weights).
    Encoder,
    /// The masked-LM head (inside the encoder's `LoadedModel`).
    MaskedLm,
    /// A sequence classifier.
    Classifier(Box<LoadedClassifier<B>>),
    /// A token classifier.
    Tagger(Box<LoadedTagger<B>>),
}

/// A model loaded for serving, in its compute precision.
pub struct ServedModel<B: RoFormerBackend> {
    /// The encoder (with the masked-LM head when the directory has one), for embeddings
    /// and fill-mask.
    pub encoder: LoadedModel<B>,
    /// The task head.
    pub head: Head<B>,
}

impl<B: RoFormerBackend> ServedModel<B> {
    /// Loads the model directory `dir` in `precision` on `device`.
    pub fn load(dir: &Path, device: &B::Device, precision: Precision) -> Result<Self, InferError> {
        match task_architecture(dir) {
            Some(TAGGER_ARCHITECTURE) => {
                let tagger = load_tagger::<B>(dir, device)?.in_precision(precision, device)?;
                let encoder = shared_encoder(dir, &tagger.model, &tagger.tokenizer, &tagger.config);
                Ok(Self {
                    encoder,
                    head: Head::Tagger(Box::new(tagger)),
                })
            }
            Some(_) => {
                let classifier =
                    load_classifier::<B>(dir, device)?.in_precision(precision, device)?;
                let encoder = shared_encoder(
                    dir,
                    &classifier.model,
                    &classifier.tokenizer,
                    &classifier.config,
                );
                Ok(Self {
                    encoder,
                    head: Head::Classifier(Box::new(classifier)),
                })
            }
            None => {
                let encoder = load_model::<B>(dir, device)?.in_precision(precision, device)?;
                encoder.tokenizer()?;
                let head = match encoder.weights.masked_lm() {
                    Some(_) => Head::MaskedLm,
                    None => Head::Encoder,
                };
                Ok(Self { encoder, head })
            }
        }
    }

    /// The tasks it answers.
    pub fn tasks(&self) -> Vec<Task> {
        let head = match self.head {
            Head::Encoder => None,
            Head::MaskedLm => Some(Task::FillMask),
            Head::Classifier(_) => Some(Task::Classify),
            Head::Tagger(_) => Some(Task::Tag),
        };
        std::iter::once(Task::Embed).chain(head).collect()
    }

    /// Its tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        self.encoder
            .tokenizer()
            .expect("read when the model was loaded")
    }

    /// The labels of a classifier or tagger, by output index.
    pub fn labels(&self) -> Option<&[String]> {
        match &self.head {
            Head::Classifier(model) => Some(&model.labels),
            Head::Tagger(model) => Some(&model.labels),
            _ => None,
        }
    }

    /// Its longest input, in tokens.
    pub fn max_input_length(&self) -> usize {
        self.encoder.config.max_position_embeddings
    }
}

/// A fine-tuned model's encoder as a `LoadedModel` that shares its weights (burn tensors
/// are reference-counted), for the embedding route.
fn shared_encoder<B: RoFormerBackend, M: TaskModel<B>>(
    dir: &Path,
    model: &M,
    tokenizer: &TextTokenizer,
    config: &roformer::RoFormerConfig,
) -> LoadedModel<B> {
    LoadedModel::with_tokenizer(
        dir.to_path_buf(),
        config.clone(),
        RoFormerWeights::Encoder(model.encoder().clone()),
        tokenizer.clone(),
    )
}
