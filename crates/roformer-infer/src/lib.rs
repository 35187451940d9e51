//! Inference with RoFormer models on burn: model directories (ours and Hugging Face's),
//! the tokenizer, and the pipelines (fill-mask, embeddings, raw encoder outputs,
//! classification, tagging). Everything is generic over `B: RoFormerBackend`; the caller
//! picks the backend. This library never prints: warnings come back with the results,
//! problems as [`InferError`]s.
//!
//! ```no_run
//! # fn main() -> Result<(), roformer_infer::InferError> {
//! use burn::backend::NdArray;
//! use roformer::Precision;
//! use roformer_infer::pipelines::{EncodeLine, Pooling, cosine};
//! use roformer_infer::{Embed, FillMask};
//!
//! let device = Default::default();
//! let dir = std::path::Path::new("runs/tiny");
//! let fill = FillMask::<NdArray>::load(dir, &device, Precision::F32)?;
//! for mask in fill.run("to be or not to [MASK]", 5)?.value {
//!     println!("{:?}", mask.candidates.first());
//! }
//! let embed = Embed::<NdArray>::load(dir, &device, Precision::F32)?;
//! let lines = ["to be or not to be", "the lady doth protest"]
//!     .map(|text| EncodeLine::Text { text: text.into() });
//! let vectors = embed.run(&lines, Pooling::Mean)?.value;
//! println!("cosine {}", cosine(&vectors[0], &vectors[1]));
//! # Ok(())
//! # }
//! ```

pub mod entities;
mod error;
pub mod fs_atomic;
pub mod inputs;
pub mod json_lines;
pub mod model_dir;
mod pipeline;
pub mod pipelines;
pub mod task_model;
pub mod tokenizer;

pub use error::InferError;
pub use pipeline::{Classify, Embed, Encode, FillMask, Tag};
