//! Training data: the corpus (the built-in one, or a folder), packing text into examples,
//! masking, masked-LM batches, labelled passages. The tokenizer is the inference
//! library's (`roformer_infer::tokenizer`).

pub mod batch;
pub mod corpus;
pub mod examples;
pub mod masking;
pub mod passages;
pub mod shipped_corpus;

pub use batch::{MlmBatch, mlm_batch};
pub use corpus::{Corpus, DEFAULT_VALIDATION_WORKS, Work, WorkSplit};
pub use examples::pack_lines;
pub use masking::{MaskedExample, mask_seed, mask_tokens};
pub use passages::{Passage, PassageSplits, genre_passages};
pub use shipped_corpus::{SHIPPED_CORPUS_NAME, shipped_file, shipped_files};
