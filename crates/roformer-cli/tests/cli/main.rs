//! Tests that run the `roformer` binary, in one test target (one build and link for all):
//! bad input to every command, `bench --products`, `kill -9` and resume, token ids without
//! a tokenizer, and the position encodings end to end, embeddings and similarity,
//! fine-tuning and classification, and training on two nodes.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod bench;
mod embeddings;
mod eval_mlm;
mod finetune;
mod finetune_runs;
mod kill_resume;
mod multi_node;
mod position_encodings_run;
mod serve;
mod tagging;
mod token_ids_input;
