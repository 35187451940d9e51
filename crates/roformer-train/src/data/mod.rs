//! Data: the corpus (the built-in one, or a folder), the tokenizer (with jieba segmentation for Chinese), packing text into examples, masking, batching, labelled passages.

pub mod batch;
pub mod corpus;
pub mod examples;
pub mod jieba;
pub mod masking;
pub mod passages;
pub mod shipped_corpus;
pub mod tokenizer;
mod wordpiece_trainer;

pub use batch::{MlmBatch, mlm_batch, pad_ids};
pub use corpus::{Corpus, DEFAULT_VALIDATION_WORKS, Work};
pub use examples::pack_lines;
pub use masking::{MaskedExample, mask_seed, mask_tokens};
pub use passages::{Passage, PassageSplits, genre_passages};
pub use shipped_corpus::{SHIPPED_CORPUS_NAME, shipped_file, shipped_files};
pub use tokenizer::{SPECIAL_TOKENS, SpecialIds, TextTokenizer, TokenizerOptions};
