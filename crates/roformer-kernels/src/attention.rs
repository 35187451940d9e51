//! Scaled dot-product attention in one pass per block of queries: HF
//! `RoFormerSelfAttention.forward` from the rotated q, k, v to the merged context.
//!
//! For each (batch, head, block of up to [`QUERY_BLOCK`] queries): scores = `scale·q·kᵀ`
//! by [`crate::gemm::sgemm`] reading q in place (any row stride) and a per-head transposed
//! copy of k, `+ bias` and softmax along the keys (`softmax.rs`), dropout when training,
//! then `probabilities·v` written straight into the `[batch, seq, heads·d]` context (for
//! inference, divided there by the softmax sums). Only k is copied (its `[d, s_k]` layout
//! is what the score product reads fastest), and for inference nothing of size
//! `[batch, heads, seq, seq]` is allocated. On `Autodiff<NdArray>` the probabilities (and
//! dropout multipliers) are kept for the backward step (`attention_backward.rs`), as burn's
//! own operations would keep them.

use core::mem::MaybeUninit;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::buffer::Unwritten;
use crate::dispatch::{self, Kernel};
use crate::gemm::{Threads, sgemm};
use crate::parallel::SharedPtr;
use crate::softmax::{Normalise, softmax_rows};
use crate::vectorize::multiversion;
use crate::{Array, row_major};

/// Queries per task: a `[QUERY_BLOCK, keys]` score block stays in cache for moderate key
/// counts, and there are enough tasks to keep every core busy at batch 1. 48 rather than 64:
/// `gemm` (single-threaded) repacks its left operand — k, then vᵀ — when a product has more
/// than 8 × 6 columns of queries; at 48 or fewer it reads them in place.
const QUERY_BLOCK: usize = 48;

/// Dropout of attention probabilities: each is kept with probability `keep` (and scaled by
/// `1/keep`), from masks that are a function of `seed` and the (batch, head, query).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub keep: f32,
    pub seed: u64,
}

/// What [`attention`] returns.
#[derive(Debug)]
pub struct AttentionOutput {
    /// The merged context `[b, s_q, h·d_v]`.
    pub context: Array,
    /// The attention probabilities `P` `[b, h, s_q, s_k]`, when asked for (training).
    pub probabilities: Option<Array>,
    /// The dropout multipliers `M` (0 or `1/keep`, same shape), with dropout and when
    /// asked for.
    pub multipliers: Option<Array>,
}

/// `softmax(scale·q·kᵀ + bias)·v` with the heads merged: q `[b, h, s_q, d]`, k
/// `[b, h, s_k, d]`, v `[b, h, s_k, d_v]` (any strides), bias `[b or 1, 1, 1, s_k]` (added
/// to every query's scores), output `[b, s_q, h·d_v]`. With `dropout`, probabilities are
/// dropped before the product with v; with `keep_probabilities` they (and the dropout
/// multipliers) are returned for the backward step. `None` when the shapes do not fit.
pub fn attention(
    query: &Array,
    key: &Array,
    value: &Array,
    score_bias: Option<&Array>,
    scale: f32,
    dropout: Option<Dropout>,
    keep_probabilities: bool,
) -> Option<AttentionOutput> {
    let dims = Dims::of(query, key, value)?;
    let bias = match score_bias {
        Some(bias) => Some(KeyBias::new(bias, dims.batch, dims.seq_k)?),
        None => None,
    };
    dispatch::record(Kernel::Attention);
    let inputs = Inputs {
        q: unit_last_stride(query),
        k: unit_last_stride(key),
        v: unit_last_stride(value),
        bias,
        dims,
        scale,
    };
    let (context, saved) = forward(&inputs, dropout, keep_probabilities, QUERY_BLOCK);
    let saved_shape = [dims.batch, dims.heads, dims.seq_q, dims.seq_k];
    let (probabilities, multipliers) = match saved {
        Some((probabilities, multipliers)) => (
            Some(row_major(probabilities, &saved_shape)),
            multipliers.map(|m| row_major(m, &saved_shape)),
        ),
        None => (None, None),
    };
    Some(AttentionOutput {
        context: row_major(context, &dims.context_shape()),
        probabilities,
        multipliers,
    })
}

/// `array` itself when its rows are contiguous (unit last stride), else a row-major copy.
pub(crate) fn unit_last_stride(array: &Array) -> Array {
    if array.strides().last() == Some(&1) {
        array.clone()
    } else {
        array.as_standard_layout().into_shared()
    }
}

/// The extents of one attention call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub(crate) batch: usize,
    pub(crate) heads: usize,
    pub(crate) seq_q: usize,
    pub(crate) seq_k: usize,
    pub(crate) d: usize,
    pub(crate) d_v: usize,
}

impl Dims {
    /// Checks q `[b, h, s_q, d]`, k `[b, h, s_k, d]`, v `[b, h, s_k, d_v]`.
    pub(crate) fn of(q: &Array, k: &Array, v: &Array) -> Option<Self> {
        if q.ndim() != 4 || v.ndim() != 4 {
            return None;
        }
        let (qs, vs) = (q.shape(), v.shape());
        let dims = Self {
            batch: qs[0],
            heads: qs[1],
            seq_q: qs[2],
            d: qs[3],
            seq_k: vs[2],
            d_v: vs[3],
        };
        let shapes_fit = k.shape() == [dims.batch, dims.heads, dims.seq_k, dims.d]
            && vs[..2] == [dims.batch, dims.heads];
        (shapes_fit && !q.is_empty() && dims.seq_k > 0).then_some(dims)
    }

    /// `[b, s_q, h·d_v]`.
    pub(crate) fn context_shape(&self) -> [usize; 3] {
        [self.batch, self.seq_q, self.heads * self.d_v]
    }
}

/// Inputs of one call, with unit last strides.
struct Inputs {
    q: Array,
    k: Array,
    v: Array,
    bias: Option<KeyBias>,
    dims: Dims,
    scale: f32,
}

/// The context `[b, s_q, h·d_v]` and, when `keep` is set, the attention probabilities
/// `[b, h, s_q, s_k]` and dropout multipliers (0 or `1/keep`, same shape), in blocks of
/// `query_block` (≤ [`QUERY_BLOCK`]) queries. The result does not depend on the block size.
#[allow(clippy::type_complexity)]
fn forward(
    inputs: &Inputs,
    dropout: Option<Dropout>,
    keep: bool,
    query_block: usize,
) -> (Vec<f32>, Option<(Vec<f32>, Option<Vec<f32>>)>) {
    assert!((1..=QUERY_BLOCK).contains(&query_block));
    let Dims {
        batch,
        heads,
        seq_q,
        seq_k,
        d,
        d_v,
    } = inputs.dims;
    let width = heads * d_v;
    // Every element of these is written below: the context and probability blocks by
    // products with beta = 0, the multipliers by the dropout loop.
    let mut context = Unwritten::new(batch * seq_q * width);
    let saved_len = if keep {
        batch * heads * seq_q * seq_k
    } else {
        0
    };
    let mut probabilities = Unwritten::new(saved_len);
    let mut multipliers = Unwritten::new(if dropout.is_some() { saved_len } else { 0 });
    let out = SharedPtr(context.as_mut_ptr());
    let saved_probabilities = SharedPtr(probabilities.as_mut_ptr());
    let saved_multipliers = SharedPtr(multipliers.as_mut_ptr());
    let (q, k, v) = (&inputs.q, &inputs.k, &inputs.v);
    // kᵀ per head, `[b·h, d, s_k]`, copied once: `gemm` would repack a row-major k for every
    // query block, while a contiguous kᵀ is read in place by each block's score product.
    let keys_transposed = transpose_keys(k, &inputs.dims);
    let (qp, ktp, vp) = (
        SharedPtr::new_const(q.as_ptr()),
        SharedPtr::new_const(keys_transposed.as_ptr()),
        SharedPtr::new_const(v.as_ptr()),
    );
    let (qs, vs) = (q.strides(), v.strides());
    // Inference divides the small `[rows, d_v]` context block by the row sums instead of the
    // `[rows, s_k]` probabilities; training keeps (and drops out) true probabilities.
    let normalise = if keep || dropout.is_some() {
        Normalise::Rows
    } else {
        Normalise::Later
    };
    let blocks = seq_q.div_ceil(query_block);
    (0..batch * heads * blocks)
        .into_par_iter()
        .for_each(|task| {
            let (bh, block) = (task / blocks, task % blocks);
            let (b, h) = (bh / heads, bh % heads);
            let first = block * query_block;
            let rows = query_block.min(seq_q - first);
            let (b_i, h_i) = (b as isize, h as isize);
            let block_offset = ((bh * seq_q + first) * seq_k) as isize;
            let mut scratch = Vec::new();
            // The score block: this task's rows of the kept probabilities, or scratch.
            let scores_start = if keep {
                // SAFETY: rows `first..first + rows` of head `bh` lie inside the
                // probability buffer (`b·h·s_q·s_k` elements) and belong to this task alone.
                unsafe { saved_probabilities.at(block_offset) }
            } else {
                scratch.resize(rows * seq_k, 0f32);
                scratch.as_mut_ptr()
            };
            // SAFETY: every pointer is an element of its array, offset by indices within the
            // shapes checked by `Dims::of` and the array's own strides; the arrays outlive this
            // loop; the destination is this task's score block (beta = 0: written, not read).
            unsafe {
                sgemm(
                    rows,
                    d,
                    seq_k,
                    inputs.scale,
                    qp.at(b_i * qs[0] + h_i * qs[1] + first as isize * qs[2]),
                    qs[2],
                    1,
                    ktp.at((bh * d * seq_k) as isize),
                    seq_k as isize,
                    1,
                    0.0,
                    scores_start,
                    seq_k as isize,
                    1,
                    Threads::One,
                );
            }
            // SAFETY: the product above wrote all `rows·s_k` elements of the block, which
            // this task alone accesses.
            let scores: &mut [f32] =
                unsafe { core::slice::from_raw_parts_mut(scores_start, rows * seq_k) };
            let bias_row = inputs.bias.as_ref().map_or(&[][..], |bias| bias.row(b));
            let mut inverse_sums = [0f32; QUERY_BLOCK];
            softmax_rows(scores, seq_k, bias_row, normalise, &mut inverse_sums);
            let mut dropped = Vec::new();
            let weights: &[f32] = match dropout {
                Some(mask) => {
                    let threshold = (f64::from(mask.keep) * 4_294_967_296.0) as u64;
                    let scale = 1.0 / mask.keep;
                    dropped.reserve(scores.len());
                    let kept: &mut [MaybeUninit<f32>] = if keep {
                        // SAFETY: the same rows of the multiplier buffer (as large as the
                        // probabilities), owned by this task; viewed as unwritten slots.
                        unsafe {
                            core::slice::from_raw_parts_mut(
                                saved_multipliers.at(block_offset).cast(),
                                rows * seq_k,
                            )
                        }
                    } else {
                        &mut []
                    };
                    for (r, row) in scores.chunks_exact(seq_k).enumerate() {
                        // One stream per (batch, head, query), so that the masks do not
                        // depend on how queries are blocked into tasks.
                        let query = (bh * seq_q + first + r) as u64;
                        let mut rng = StdRng::seed_from_u64(
                            mask.seed ^ (query + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        );
                        for (j, &p) in row.iter().enumerate() {
                            let multiplier = if u64::from(rng.random::<u32>()) < threshold {
                                scale
                            } else {
                                0.0
                            };
                            if keep {
                                kept[r * seq_k + j].write(multiplier);
                            }
                            dropped.push(p * multiplier);
                        }
                    }
                    &dropped
                }
                None => scores,
            };
            let context_start = ((b * seq_q + first) * width + h * d_v) as isize;
            // SAFETY: as for the score product; the destination is this task's rows of head
            // `h`'s columns of the context, which no other task writes.
            unsafe {
                sgemm(
                    rows,
                    seq_k,
                    d_v,
                    1.0,
                    weights.as_ptr(),
                    seq_k as isize,
                    1,
                    vp.at(b_i * vs[0] + h_i * vs[1]),
                    vs[2],
                    1,
                    0.0,
                    out.at(context_start),
                    width as isize,
                    1,
                    Threads::One,
                );
            }
            if normalise == Normalise::Later {
                for (row, inverse) in inverse_sums[..rows].iter().enumerate() {
                    let start = ((b * seq_q + first + row) * width + h * d_v) as isize;
                    // SAFETY: this task's context row, just written by the product above.
                    let context = unsafe { core::slice::from_raw_parts_mut(out.at(start), d_v) };
                    context.iter_mut().for_each(|x| *x *= inverse);
                }
            }
        });
    // SAFETY: the loop above wrote every element of each buffer: the context and probability
    // blocks by products with beta = 0, the multipliers by the dropout loop.
    let (context, probabilities, multipliers) = unsafe {
        (
            context.assume_written(),
            probabilities.assume_written(),
            multipliers.assume_written(),
        )
    };
    let saved = keep.then(|| (probabilities, dropout.map(|_| multipliers)));
    (context, saved)
}

/// k `[b, h, s_k, d]` (unit last stride) as `[b·h, d, s_k]` row-major.
fn transpose_keys(k: &Array, dims: &Dims) -> Vec<f32> {
    let Dims { seq_k, d, .. } = *dims;
    let ks = k.strides();
    let (batch_stride, head_stride, row_stride) = (ks[0], ks[1], ks[2]);
    let keys = SharedPtr::new_const(k.as_ptr());
    let mut out = Unwritten::new(dims.batch * dims.heads * d * seq_k);
    out.slots()
        .par_chunks_mut(d * seq_k)
        .enumerate()
        .for_each(|(bh, head)| {
            let (b, h) = ((bh / dims.heads) as isize, (bh % dims.heads) as isize);
            let rows: Vec<&[f32]> = (0..seq_k as isize)
                .map(|j| {
                    // SAFETY: key row `j` of head (b, h): `d` contiguous elements (unit last
                    // stride) inside k by its checked shape and own strides; k outlives this.
                    unsafe {
                        core::slice::from_raw_parts(
                            keys.at(b * batch_stride + h * head_stride + j * row_stride),
                            d,
                        )
                    }
                })
                .collect();
            transpose_head(head, &rows);
        });
    // SAFETY: `transpose_head` wrote every slot of every head.
    unsafe { out.assume_written() }
}

/// Key tiles this wide are moved together: one cache line of every output row.
const TRANSPOSE_TILE: usize = 16;

multiversion! {
    /// `out[i·s + j] = rows[j][i]` for `s = rows.len()` rows of `out.len() / s` features.
    fn transpose_head(out: &mut [MaybeUninit<f32>], rows: &[&[f32]]) {
        let seq = rows.len();
        for (tile, first) in rows.chunks(TRANSPOSE_TILE).zip((0..seq).step_by(TRANSPOSE_TILE)) {
            for (i, out_row) in out.chunks_exact_mut(seq).enumerate() {
                for (o, row) in out_row[first..first + tile.len()].iter_mut().zip(tile) {
                    o.write(row[i]);
                }
            }
        }
    }
}

/// An additive bias over keys, `[b or 1, 1, 1, s_k]`, shared by all heads and queries, kept
/// as contiguous rows (one per sequence, or one for the whole batch) for the softmax.
struct KeyBias {
    rows: Vec<f32>,
    seq_k: usize,
}

impl KeyBias {
    fn new(array: &Array, batch: usize, seq_k: usize) -> Option<Self> {
        let s = array.shape();
        let fits =
            s.len() == 4 && (s[0] == batch || s[0] == 1) && s[1] == 1 && s[2] == 1 && s[3] == seq_k;
        // Row-major iteration of `[b or 1, 1, 1, s_k]` is exactly those rows, any strides.
        fits.then(|| Self {
            rows: array.iter().copied().collect(),
            seq_k,
        })
    }

    /// The bias of sequence `b`'s keys.
    fn row(&self, b: usize) -> &[f32] {
        let shared = self.rows.len() == self.seq_k;
        let start = if shared { 0 } else { b * self.seq_k };
        &self.rows[start..start + self.seq_k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn array(shape: &[usize], seed: u64) -> Array {
        let n: usize = shape.iter().product();
        let values = (0..n as u64)
            .map(|i| {
                let x = (i + 1).wrapping_mul(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        row_major(values, shape)
    }

    /// Blocks of 5, 16 and 48 queries (70 queries: partial last blocks) give the same
    /// context, probabilities and dropout multipliers, bit for bit: each query's mask comes
    /// from its own stream, and each row's products and softmax are the same arithmetic.
    #[test]
    fn results_and_dropout_masks_do_not_depend_on_the_query_block() {
        let (batch, heads, seq, d) = (2, 2, 70, 8);
        let shape = [batch, heads, seq, d];
        let (q, k, v) = (array(&shape, 1), array(&shape, 2), array(&shape, 3));
        let inputs = Inputs {
            dims: Dims::of(&q, &k, &v).unwrap(),
            q,
            k,
            v,
            bias: None,
            scale: 0.4,
        };
        let dropout = Some(Dropout {
            keep: 0.8,
            seed: 12345,
        });
        let run = |block| {
            let (context, saved) = forward(&inputs, dropout, true, block);
            let (probabilities, multipliers) = saved.unwrap();
            (context, probabilities, multipliers.unwrap())
        };
        let reference = run(QUERY_BLOCK);
        let dropped = reference.2.iter().filter(|&&m| m == 0.0).count();
        assert!(dropped > 0 && dropped < reference.2.len() / 2);
        for block in [5, 16] {
            assert!(run(block) == reference, "block of {block} queries differs");
        }
    }
}
