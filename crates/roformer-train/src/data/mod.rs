//! Data: the corpus, the tokenizer (with jieba segmentation for Chinese), packing text into examples, masking, batching.

pub mod batch;
pub mod corpus;
pub mod examples;
pub mod jieba;
pub mod masking;
pub mod tokenizer;
mod wordpiece_trainer;

pub use batch::{MlmBatch, mlm_batch, pad_ids};
pub use corpus::{Corpus, DEFAULT_CORPUS_DIR, DEFAULT_VALIDATION_WORKS, Work};
pub use examples::pack_lines;
pub use masking::{MaskedExample, mask_seed, mask_tokens};
pub use tokenizer::{SPECIAL_TOKENS, SpecialIds, TextTokenizer, TokenizerOptions};
