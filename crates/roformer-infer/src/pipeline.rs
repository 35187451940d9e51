//! The pipelines as values: a model directory loaded once, in a precision, on a device,
//! then called many times (`FillMask::<B>::load(dir, &device, precision)?.run(..)`), as a
//! CLI command, a server's worker or a user's program calls them.

use std::path::Path;

use roformer::{Precision, RoFormerBackend};

use crate::error::InferError;
use crate::model_dir::{
    InPrecision, LoadedClassifier, LoadedModel, LoadedTagger, load_classifier, load_model,
    load_tagger,
};
use crate::pipelines::{
    Classification, ClassifyInput, EncodeLine, Encoded, MaskPrediction, Pooling, Tagging,
    WithWarnings, classify, embed, embed_in_batches, encode, fill_mask, similarity, tag,
};

/// A pipeline type: the model it loads with `load_model` (then set to the precision),
/// and the device it runs on.
macro_rules! pipeline {
    ($(#[$doc:meta])* $name:ident, $model:ident, $load:expr) => {
        $(#[$doc])*
        pub struct $name<B: RoFormerBackend> {
            /// The model.
            pub model: $model<B>,
            device: B::Device,
        }

        impl<B: RoFormerBackend> $name<B> {
            /// Loads the model directory `dir` in `precision` on `device`.
            pub fn load(
                dir: &Path,
                device: &B::Device,
                precision: Precision,
            ) -> Result<Self, InferError> {
                let model = $load(dir, device)?.in_precision(precision, device)?;
                Ok(Self {
                    model,
                    device: device.clone(),
                })
            }
        }
    };
}

pipeline!(
    /// Fill-mask on a masked-LM directory.
    FillMask,
    LoadedModel,
    load_model::<B>
);
pipeline!(
    /// Sentence embeddings (and similarity) on any encoder directory.
    Embed,
    LoadedModel,
    load_model::<B>
);
pipeline!(
    /// Raw encoder outputs on any encoder directory.
    Encode,
    LoadedModel,
    load_model::<B>
);
pipeline!(
    /// Classification on a fine-tuned sequence classifier's directory.
    Classify,
    LoadedClassifier,
    load_classifier::<B>
);
pipeline!(
    /// Tagging on a fine-tuned token classifier's directory.
    Tag,
    LoadedTagger,
    load_tagger::<B>
);

impl<B: RoFormerBackend> FillMask<B> {
    /// The `top_k` most likely tokens for each `[MASK]` of `text`.
    pub fn run(
        &self,
        text: &str,
        top_k: usize,
    ) -> Result<WithWarnings<Vec<MaskPrediction>>, InferError> {
        fill_mask(&self.model, text, top_k, &self.device)
    }
}

impl<B: RoFormerBackend> Embed<B> {
    /// One embedding per line, pooled as `pooling` says.
    pub fn run(
        &self,
        lines: &[EncodeLine],
        pooling: Pooling,
    ) -> Result<WithWarnings<Vec<Vec<f32>>>, InferError> {
        embed(&self.model, lines, pooling, &self.device)
    }

    /// [`Self::run`] with `batch_size` lines per forward pass.
    pub fn run_in_batches(
        &self,
        lines: &[EncodeLine],
        pooling: Pooling,
        batch_size: usize,
    ) -> Result<WithWarnings<Vec<Vec<f32>>>, InferError> {
        embed_in_batches(&self.model, lines, pooling, batch_size, &self.device)
    }

    /// The cosine similarity of the embeddings of `a` and `b`.
    pub fn similarity(
        &self,
        a: &str,
        b: &str,
        pooling: Pooling,
    ) -> Result<WithWarnings<f32>, InferError> {
        similarity(&self.model, a, b, pooling, &self.device)
    }
}

impl<B: RoFormerBackend> Encode<B> {
    /// The last hidden state of `lines` as one padded batch (and the masked-LM logits
    /// with `with_logits`).
    pub fn run(
        &self,
        lines: &[EncodeLine],
        with_logits: bool,
    ) -> Result<WithWarnings<Encoded>, InferError> {
        encode(&self.model, lines, with_logits, &self.device)
    }
}

impl<B: RoFormerBackend> Classify<B> {
    /// The `top_k` most probable labels of each input.
    pub fn run(
        &self,
        inputs: &[ClassifyInput],
        top_k: usize,
    ) -> Result<Vec<Classification>, InferError> {
        classify(&self.model, inputs, top_k, &self.device)
    }
}

impl<B: RoFormerBackend> Tag<B> {
    /// A label per word of each input (and the entities of BIO labels).
    pub fn run(&self, inputs: &[Vec<String>]) -> Result<Vec<Tagging>, InferError> {
        tag(&self.model, inputs, &self.device)
    }
}
