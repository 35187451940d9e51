//! RoFormer (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position
//! Embedding", arXiv 2104.09864) on [burn]: a BERT-style post-LayerNorm encoder whose
//! attention rotates queries and keys by position instead of adding position embeddings.
//!
//! The modules port HF transformers' `modeling_roformer.py` one to one, and their
//! parameter names map onto HF's state-dict names through a short table
//! ([`hf_weights::HF_KEY_TABLE`]). Everything is generic over the burn backend.
//!
//! A complete forward pass, from a config to masked-LM logits and a loss:
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::{Int, Tensor, TensorData};
//! use roformer::{RoFormerConfig, RoFormerForMaskedLM, RoFormerInput, masked_lm_loss};
//!
//! let device = Default::default();
//! let config = RoFormerConfig {
//!     vocab_size: 100,
//!     hidden_size: 32,
//!     num_hidden_layers: 2,
//!     num_attention_heads: 4,
//!     intermediate_size: 64,
//!     ..RoFormerConfig::default()
//! };
//! let model = RoFormerForMaskedLM::<NdArray>::new(&config, &device).unwrap();
//!
//! // Two sequences, the second padded after three tokens.
//! let ids = Tensor::<NdArray, 2, Int>::from_data(
//!     TensorData::new(vec![2i64, 17, 45, 9, 3, 2, 60, 3, 0, 0], [2, 5]),
//!     &device,
//! );
//! let mask = Tensor::<NdArray, 2, Int>::from_data(
//!     TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 1, 0, 0], [2, 5]),
//!     &device,
//! );
//! let input = RoFormerInput::new(ids).with_attention_mask(mask);
//!
//! let hidden = model.roformer.forward(input.clone()); // [2, 5, 32]
//! assert_eq!(hidden.dims(), [2, 5, 32]);
//! let logits = model.forward(input); // [2, 5, 100]
//!
//! // Predict token 45 at position 2 of the first sequence; -100 elsewhere.
//! let mut labels = vec![-100i64; 10];
//! labels[2] = 45;
//! let labels = Tensor::<NdArray, 2, Int>::from_data(TensorData::new(labels, [2, 5]), &device);
//! let loss: f32 = masked_lm_loss(logits, labels).into_scalar();
//! assert!((loss - (100f32).ln()).abs() < 0.5); // near ln(vocab) at initialisation
//! ```

mod activation;
mod attention;
pub mod backend;
mod config;
mod dense;
mod embeddings;
mod encoder;
mod error;
pub mod heads;
pub mod hf_weights;
mod init;
mod layer;
pub mod layout;
pub mod linear_attention;
mod model;
mod packing;
pub mod positions;
pub mod precision;

pub use activation::{HiddenAct, gelu_exact};
pub use attention::RoFormerSelfAttention;
pub use backend::{RoFormerBackend, RoFormerTrainingBackend};
pub use config::{AttentionKind, ClassifierPooling, PositionEmbeddingType, RoFormerConfig};
pub use embeddings::RoFormerEmbeddings;
pub use encoder::{MASKED_SCORE, RoFormerEncoder};
pub use error::RoFormerError;
pub use heads::{
    IGNORE_INDEX, RoFormerForMaskedLM, RoFormerForSequenceClassification,
    RoFormerForTokenClassification, masked_lm_loss,
};
pub use layer::{ResidualOutput, RoFormerAttention, RoFormerIntermediate, RoFormerLayer};
pub use model::{RoFormerInput, RoFormerModel};
pub use packing::Packing;
pub use precision::{Precision, cast_parameters};
pub use roformer_rope;
