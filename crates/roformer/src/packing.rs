//! Inference without padding: the tokens of a right-padded batch packed into one row, so
//! that every per-token operation (the projections, the feed-forward layers, LayerNorm)
//! runs on real tokens only. Attention alone needs the batch's shape: its q, k and v are
//! scattered back into the padded layout, attend there under the usual key mask, and the
//! context is gathered again. This is the unpadding of text-embeddings-inference's varlen
//! attention and ModernBERT's `_unpad_modernbert_input`, done with a padded attention
//! step in between.
//!
//! A batch of mixed lengths pays for its padding in the matrix products (the bulk of an
//! encoder's work) only through attention; each real token's output is that of the
//! padded computation, up to f32 rounding of the products.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive};

use crate::backend::RoFormerBackend;

/// Which positions of a right-padded `[batch, seq]` batch hold real tokens.
#[derive(Debug, Clone)]
pub struct Packing<B: Backend> {
    /// Indices of the real tokens in the flattened `[batch · seq]` positions, in order.
    rows: Tensor<B, 1, Int>,
    /// The same on the host, for the CPU kernels.
    host_rows: Arc<Vec<usize>>,
    batch: usize,
    seq: usize,
}

impl<B: RoFormerBackend> Packing<B> {
    /// The packing of a batch whose row `i` has its first `lengths[i]` positions real and
    /// the rest padding; `None` when no row is padded (there is nothing to leave out).
    ///
    /// # Panics
    /// When a length is 0 or longer than `seq`.
    pub fn from_lengths(lengths: &[usize], seq: usize, device: &B::Device) -> Option<Self> {
        assert!(
            lengths.iter().all(|&n| n > 0 && n <= seq),
            "every row needs between 1 and {seq} real tokens"
        );
        if lengths.iter().all(|&n| n == seq) {
            return None;
        }
        let host_rows: Vec<usize> = lengths
            .iter()
            .enumerate()
            .flat_map(|(row, &n)| (0..n).map(move |position| row * seq + position))
            .collect();
        let rows: Vec<i64> = host_rows.iter().map(|&r| r as i64).collect();
        let tokens = rows.len();
        Some(Self {
            rows: Tensor::from_data(TensorData::new(rows, [tokens]), device),
            host_rows: Arc::new(host_rows),
            batch: lengths.len(),
            seq,
        })
    }

    /// Rows of the padded batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Positions per row of the padded batch.
    pub fn seq(&self) -> usize {
        self.seq
    }

    /// Real tokens in the batch.
    pub fn tokens(&self) -> usize {
        self.host_rows.len()
    }

    /// `[batch, seq, width]` to the real tokens, `[1, tokens, width]`.
    pub fn pack(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let width = x.dims()[2];
        let gathered = B::gather_rows(
            x.reshape([self.batch * self.seq, width])
                .into_primitive()
                .tensor(),
            self.rows.clone().into_primitive(),
            &self.host_rows,
        );
        Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(gathered)).reshape([
            1,
            self.tokens(),
            width,
        ])
    }

    /// `[1, tokens, width]` back to `[batch, seq, width]`, with zeros at the padding.
    pub fn unpack(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let width = x.dims()[2];
        let scattered = B::scatter_rows(
            x.reshape([self.tokens(), width]).into_primitive().tensor(),
            self.rows.clone().into_primitive(),
            &self.host_rows,
            self.batch * self.seq,
        );
        Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(scattered))
            .reshape([self.batch, self.seq, width])
    }
}

/// `x` packed by `packing` ([`Packing::pack`]), or as it is without one.
pub(crate) fn pack_if<B: RoFormerBackend>(
    packing: Option<&Packing<B>>,
    x: Tensor<B, 3>,
) -> Tensor<B, 3> {
    match packing {
        Some(packing) => packing.pack(x),
        None => x,
    }
}

/// `x` unpacked by `packing` ([`Packing::unpack`]), or as it is without one.
pub(crate) fn unpack_if<B: RoFormerBackend>(
    packing: Option<&Packing<B>>,
    x: Tensor<B, 3>,
) -> Tensor<B, 3> {
    match packing {
        Some(packing) => packing.unpack(x),
        None => x,
    }
}
