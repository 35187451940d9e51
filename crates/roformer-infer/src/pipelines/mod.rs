//! The inference pipelines: each loads a model directory once and then answers many
//! inputs, so the CLI, a server and a user's own program run the same code.
//!
//! - [`fill_mask`]: the most likely tokens for each `[MASK]`;
//! - [`embed`]: sentence embeddings and their cosine similarity;
//! - [`encode`]: raw encoder outputs (and masked-LM logits) of a file, as safetensors;
//! - [`classify`]: labels of a text or a text pair;
//! - [`tag`]: a label per word, and the entities of BIO labels.
//!
//! [`rows`] and [`input_line`] are what they share: inputs checked, cut and padded.

pub mod classify;
pub mod embed;
pub mod encode;
pub mod fill_mask;
pub mod input_line;
pub mod rows;
pub mod tag;

pub use classify::{
    Classification, ClassifyInput, LabelProbability, classify, label_probabilities, label_scores,
};
pub use embed::{Pooling, cosine, embed, embed_in_batches, similarity};
pub use encode::{Encoded, encode, write_encoded};
pub use fill_mask::{Candidate, FillMaskOptions, MaskPrediction, fill_mask, fill_masks};
pub use input_line::{EncodeLine, embed_line, read_encode_lines};
pub use rows::WithWarnings;
pub use tag::{TaggedEntity, TaggedWord, Tagging, tag, word_probabilities};
