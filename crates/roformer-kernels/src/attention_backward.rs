//! The backward step of [`attention`](crate::attention).
//!
//! With `P` the attention probabilities, `M` the dropout multipliers (all 1 without
//! dropout), `P̃ = P ⊙ M` and `O = P̃·V` per (batch, head):
//! `dV = P̃ᵀ·dO`, `dP = (dO·Vᵀ) ⊙ M`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))` (softmax),
//! `dQ = scale·dS·K`, `dK = scale·dSᵀ·Q`. The products read q, k, v and the context
//! gradient in place, as the forward does.

use rayon::prelude::*;

use crate::attention::{Dims, unit_last_stride};
use crate::buffer::Unwritten;
use crate::dispatch::{self, Kernel};
use crate::gemm::{Threads, sgemm};
use crate::parallel::SharedPtr;
use crate::vectorize::{self, multiversion};
use crate::{Array, row_major};

/// The gradients of q, k and v (row-major, shaped like them).
#[derive(Debug)]
pub struct AttentionGradients {
    pub query: Array,
    pub key: Array,
    pub value: Array,
}

/// The gradients of [`crate::attention`]'s q, k and v from the gradient of its context
/// (`[b, s_q, h·d_v]`), with the probabilities and dropout multipliers it returned.
/// `None` when the shapes do not fit.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    query: &Array,
    key: &Array,
    value: &Array,
    probabilities: &Array,
    multipliers: Option<&Array>,
    scale: f32,
    context_gradient: &Array,
) -> Option<AttentionGradients> {
    let dims = Dims::of(query, key, value)?;
    let saved_shape = [dims.batch, dims.heads, dims.seq_q, dims.seq_k];
    let fits = probabilities.shape() == saved_shape
        && multipliers.is_none_or(|m| m.shape() == saved_shape)
        && context_gradient.shape() == dims.context_shape();
    if !fits {
        return None;
    }
    dispatch::record(Kernel::AttentionBackward);
    let probabilities = probabilities.as_standard_layout();
    let multipliers = multipliers.map(|m| m.as_standard_layout());
    let saved = Saved {
        q: unit_last_stride(query),
        k: unit_last_stride(key),
        v: unit_last_stride(value),
        probabilities: probabilities.as_slice()?,
        multipliers: match &multipliers {
            Some(m) => Some(m.as_slice()?),
            None => None,
        },
        dims,
        scale,
    };
    let [query, key, value] = gradients(&saved, context_gradient);
    Some(AttentionGradients { query, key, value })
}

/// The forward's inputs and probabilities, as the products read them.
struct Saved<'a> {
    q: Array,
    k: Array,
    v: Array,
    /// `P`, `[b, h, s_q, s_k]` row-major.
    probabilities: &'a [f32],
    /// `M`, same layout; `None` without dropout.
    multipliers: Option<&'a [f32]>,
    dims: Dims,
    scale: f32,
}

/// `[dQ, dK, dV]`, shaped like q, k, v (row-major).
fn gradients(saved: &Saved<'_>, context_gradient: &Array) -> [Array; 3] {
    let Dims {
        batch,
        heads,
        seq_q,
        seq_k,
        d,
        d_v,
    } = saved.dims;
    let width = heads * d_v;
    let d_out = context_gradient.as_standard_layout();
    let d_out = d_out.as_slice().expect("standard layout");
    // Written completely by the per-head products below (beta = 0).
    let mut dq = Unwritten::new(batch * heads * seq_q * d);
    let mut dk = Unwritten::new(batch * heads * seq_k * d);
    let mut dv = Unwritten::new(batch * heads * seq_k * d_v);
    let (dq_p, dk_p, dv_p) = (
        SharedPtr(dq.as_mut_ptr()),
        SharedPtr(dk.as_mut_ptr()),
        SharedPtr(dv.as_mut_ptr()),
    );
    let (q, k, v) = (&saved.q, &saved.k, &saved.v);
    let (qp, kp, vp, op) = (
        SharedPtr::new_const(q.as_ptr()),
        SharedPtr::new_const(k.as_ptr()),
        SharedPtr::new_const(v.as_ptr()),
        SharedPtr::new_const(d_out.as_ptr()),
    );
    let (qs, ks, vs) = (q.strides(), k.strides(), v.strides());
    let scale = saved.scale;
    (0..batch * heads).into_par_iter().for_each(|bh| {
        let (b, h) = (bh / heads, bh % heads);
        let (b_i, h_i) = (b as isize, h as isize);
        let head = bh * seq_q * seq_k..(bh + 1) * seq_q * seq_k;
        let probabilities = &saved.probabilities[head.clone()];
        let multipliers = saved.multipliers.map(|m| &m[head]);
        let dropped: Vec<f32>;
        let weights = match multipliers {
            Some(m) => {
                dropped = probabilities.iter().zip(m).map(|(p, m)| p * m).collect();
                &dropped[..]
            }
            None => probabilities,
        };
        // SAFETY: head `h`'s first column of sequence `b`'s context gradient rows, inside
        // the `[b, s_q, h·d_v]` gradient.
        let d_out_head = unsafe { op.at(((b * seq_q) * width + h * d_v) as isize) };
        // Written completely by the dP̃ product (beta = 0).
        let mut d_scores = Unwritten::new(seq_q * seq_k);
        // SAFETY: pointers are elements of their arrays, offset within the shapes in `Dims`
        // by each array's strides; each task writes only head `bh` of dq, dk, dv and its own
        // `d_scores`; everything outlives the loop (the same for the products below).
        unsafe {
            // dV = P̃ᵀ · dO
            sgemm(
                seq_k,
                seq_q,
                d_v,
                1.0,
                weights.as_ptr(),
                1,
                seq_k as isize,
                d_out_head,
                width as isize,
                1,
                0.0,
                dv_p.at((bh * seq_k * d_v) as isize),
                d_v as isize,
                1,
                Threads::One,
            );
        }
        // SAFETY: as above.
        unsafe {
            // dP̃ = dO · Vᵀ
            sgemm(
                seq_q,
                d_v,
                seq_k,
                1.0,
                d_out_head,
                width as isize,
                1,
                vp.at(b_i * vs[0] + h_i * vs[1]),
                1,
                vs[2],
                0.0,
                d_scores.as_mut_ptr(),
                seq_k as isize,
                1,
                Threads::One,
            );
        }
        // SAFETY: the dP̃ product above wrote all `seq_q·seq_k` elements.
        let mut d_scores = unsafe { d_scores.assume_written() };
        if let Some(m) = multipliers {
            for (g, m) in d_scores.iter_mut().zip(m) {
                *g *= m;
            }
        }
        softmax_backward_rows(&mut d_scores, probabilities, seq_k);
        // SAFETY: as above.
        unsafe {
            // dQ = scale · dS · K
            sgemm(
                seq_q,
                seq_k,
                d,
                scale,
                d_scores.as_ptr(),
                seq_k as isize,
                1,
                kp.at(b_i * ks[0] + h_i * ks[1]),
                ks[2],
                1,
                0.0,
                dq_p.at((bh * seq_q * d) as isize),
                d as isize,
                1,
                Threads::One,
            );
        }
        // SAFETY: as above.
        unsafe {
            // dK = scale · dSᵀ · Q
            sgemm(
                seq_k,
                seq_q,
                d,
                scale,
                d_scores.as_ptr(),
                1,
                seq_k as isize,
                qp.at(b_i * qs[0] + h_i * qs[1]),
                qs[2],
                1,
                0.0,
                dk_p.at((bh * seq_k * d) as isize),
                d as isize,
                1,
                Threads::One,
            );
        }
    });
    // SAFETY: each (batch, head) task wrote its whole block of dq, dk and dv.
    let (dq, dk, dv) = unsafe {
        (
            dq.assume_written(),
            dk.assume_written(),
            dv.assume_written(),
        )
    };
    [
        row_major(dq, &[batch, heads, seq_q, d]),
        row_major(dk, &[batch, heads, seq_k, d]),
        row_major(dv, &[batch, heads, seq_k, d_v]),
    ]
}

multiversion! {
    /// In place: `dP` → `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, rows of `width`.
    fn softmax_backward_rows(d_probabilities: &mut [f32], probabilities: &[f32], width: usize) {
        let rows = d_probabilities.chunks_exact_mut(width).zip(probabilities.chunks_exact(width));
        for (g, p) in rows {
            let dot = vectorize::dot(g, p);
            for (g, &p) in g.iter_mut().zip(p) {
                *g = p * (*g - dot);
            }
        }
    }
}
