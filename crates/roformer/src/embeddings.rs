//! Token embeddings: HF `RoFormerEmbeddings`. Word + token-type embeddings, LayerNorm,
//! dropout. There is no absolute position embedding: position enters the model only
//! through the rotation in attention.

use crate::backend::RoFormerBackend;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::config::RoFormerConfig;
use crate::dense::add_layer_norm;
use crate::init::normal_embedding;

/// Word and token-type embeddings, normalised. Parameter names follow HF
/// (`word_embeddings`, `token_type_embeddings`, `LayerNorm` → `layer_norm`).
#[derive(Module, Debug)]
pub struct RoFormerEmbeddings<B: Backend> {
    /// `[vocab_size, embedding_size]`; also the masked-LM decoder (tied).
    pub word_embeddings: Embedding<B>,
    /// `[type_vocab_size, embedding_size]`.
    pub token_type_embeddings: Embedding<B>,
    /// Normalisation over `embedding_size`.
    pub layer_norm: LayerNorm<B>,
    /// Dropout with `hidden_dropout_prob` (active only when training).
    pub dropout: Dropout,
    layer_norm_eps: f64,
}

impl<B: RoFormerBackend> RoFormerEmbeddings<B> {
    /// Fresh embeddings, initialised as HF does (normal with `initializer_range`, the
    /// padding row zero).
    pub fn new(config: &RoFormerConfig, device: &B::Device) -> Self {
        let size = config.embedding_size();
        Self {
            word_embeddings: normal_embedding(
                config.vocab_size,
                size,
                config.initializer_range,
                config.pad_token_id,
                device,
            ),
            token_type_embeddings: normal_embedding(
                config.type_vocab_size,
                size,
                config.initializer_range,
                None,
                device,
            ),
            layer_norm: LayerNormConfig::new(size)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    /// `[batch, seq]` ids and token types to `[batch, seq, embedding_size]`.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        let normalised = add_layer_norm(
            &self.layer_norm,
            self.layer_norm_eps,
            self.word_embeddings.forward(input_ids),
            self.token_type_embeddings.forward(token_type_ids),
        );
        self.dropout.forward(normalised)
    }
}
