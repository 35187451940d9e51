//! Token embeddings: HF `RoFormerEmbeddings`. Word + token-type embeddings, LayerNorm,
//! dropout. A RoFormer (`position_embedding_type = "rotary"`) has no position embedding
//! here: position enters only through the rotation in attention. The other kinds add
//! BERT's learned table (`absolute`) or the fixed sinusoidal one (`sinusoidal`) to the
//! word embeddings first, as BERT and the Transformer do.
//!
//! The sinusoidal table is added with amplitude `initializer_range`. The Transformer
//! multiplies embeddings of standard deviation d^-1/2 by √d before adding a table of
//! amplitude 1, so tokens and positions start in proportion 1 : 1 (in amplitude); here
//! the word embeddings start with standard deviation `initializer_range` (0.02), and a
//! table of amplitude 1 would drown them before the LayerNorm.

use crate::backend::RoFormerBackend;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::config::{PositionEmbeddingType, RoFormerConfig};
use crate::dense::add_layer_norm;
use crate::init::normal_embedding;
use crate::positions::{position_ids, sinusoidal_rows};

/// Word and token-type embeddings, normalised. Parameter names follow HF
/// (`word_embeddings`, `token_type_embeddings`, `LayerNorm` → `layer_norm`).
#[derive(Module, Debug)]
pub struct RoFormerEmbeddings<B: Backend> {
    /// `[vocab_size, embedding_size]`; also the masked-LM decoder (tied).
    pub word_embeddings: Embedding<B>,
    /// `[type_vocab_size, embedding_size]`.
    pub token_type_embeddings: Embedding<B>,
    /// `[max_position_embeddings, embedding_size]`, learned; only with
    /// `position_embedding_type = "absolute"` (BERT's `position_embeddings`).
    pub position_embeddings: Option<Embedding<B>>,
    /// Add the fixed sinusoidal table (`position_embedding_type = "sinusoidal"`).
    sinusoidal: bool,
    /// Amplitude of the sinusoidal table: `initializer_range`.
    sinusoidal_amplitude: f64,
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
            position_embeddings: (config.position_embedding_type
                == PositionEmbeddingType::Absolute)
                .then(|| {
                    normal_embedding(
                        config.max_position_embeddings,
                        size,
                        config.initializer_range,
                        None,
                        device,
                    )
                }),
            sinusoidal: config.position_embedding_type == PositionEmbeddingType::Sinusoidal,
            sinusoidal_amplitude: config.initializer_range,
            layer_norm: LayerNormConfig::new(size)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    /// `[batch, seq]` ids and token types to `[batch, seq, embedding_size]`; the first
    /// token is at position `position_offset`.
    ///
    /// # Panics
    /// With a learned position table, if a position reaches past its
    /// `max_position_embeddings` rows (the model has no embedding for it).
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        position_offset: usize,
    ) -> Tensor<B, 3> {
        let [batch, seq] = input_ids.dims();
        let words = self.word_embeddings.forward(input_ids);
        let words = if let Some(table) = &self.position_embeddings {
            let [rows, width] = table.weight.dims();
            assert!(
                position_offset + seq <= rows,
                "positions up to {} but the learned position table has {rows} rows",
                position_offset + seq
            );
            let positions = table.forward(position_ids::<B>(position_offset, seq, &words.device()));
            words + positions.expand([batch, seq, width])
        } else if self.sinusoidal {
            let [_, _, width] = words.dims();
            let positions = sinusoidal_rows(position_offset, seq, width, &words)
                .mul_scalar(self.sinusoidal_amplitude);
            words + positions.expand([batch, seq, width])
        } else {
            words
        };
        let normalised = add_layer_norm(
            &self.layer_norm,
            self.layer_norm_eps,
            words,
            self.token_type_embeddings.forward(token_type_ids),
        );
        self.dropout.forward(normalised)
    }
}
