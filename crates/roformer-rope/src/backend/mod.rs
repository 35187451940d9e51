//! The backend extension trait of the rotary embedding, [`RotaryBackend`], and the backends
//! that implement it.
//!
//! Following burn's pattern for backend-specific code (`examples/custom-cubecl-kernel`),
//! the rotation is an operation of the backend: [`RotaryBackend::rotary`] (one tensor) and
//! [`RotaryBackend::rotary_pair`] (a query and a key) have default bodies built on
//! [`rotary_reference`] (burn tensor operations), and a backend with a faster way overrides
//! them. burn-ndarray runs the one-pass CPU kernel of `roformer-kernels` (feature
//! `ndarray`); the cubecl backends (wgpu, cuda, rocm) run one cubecl kernel launch per
//! rotation, and one for a query and key together, in the tensor's float type (feature
//! `cubecl`, `cubecl.rs`); burn's fusion wrapper records that kernel as a custom operation
//! of its stream (feature `fusion`); `Autodiff<B, C>` runs `B`'s rotation forward and
//! records its backward step, which is a rotation by `B` again (feature `autodiff`); Flex
//! takes the reference (feature `flex`).
//!
//! A new backend gets the rotary embedding by implementing this trait: an empty `impl`
//! takes the reference.

#[cfg(feature = "autodiff")]
mod autodiff;
#[cfg(feature = "cubecl")]
mod cubecl;
#[cfg(feature = "flex")]
mod defaults;
#[cfg(feature = "fusion")]
mod fusion;
#[cfg(feature = "ndarray")]
mod ndarray;

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorMetadata, TensorPrimitive};

use crate::layout::RopeLayout;

/// A backend that can rotate features by position (Su et al. 2021, eq. 34).
pub trait RotaryBackend: Backend {
    /// Rotates `x` (`[..., seq, d]`) by rows `first_position..first_position + seq` of
    /// `cos` and `signed_sin` (`[positions, r]`, `r ≤ d` even, in `x`'s float type or
    /// castable to it): `out = x·cos + partner(x)·signed_sin` on the first `r` features, the
    /// rest unchanged, `partner` pairing features by `layout`.
    ///
    /// # Panics
    /// If the tables do not cover the rows or are wider than `x` (a programming error).
    fn rotary(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        signed_sin: FloatTensor<Self>,
        first_position: usize,
        layout: RopeLayout,
    ) -> FloatTensor<Self> {
        rotary_reference::<Self>(x, cos, signed_sin, first_position, layout)
    }

    /// Rotates a query `q` and a key `k` of the same shape (`[..., seq, d]`) as
    /// [`RotaryBackend::rotary`] does each, by the same rows of the same tables. A backend
    /// may do both in one pass; the default rotates one after the other.
    ///
    /// # Panics
    /// If `q` and `k` differ in shape, or as [`RotaryBackend::rotary`] does.
    fn rotary_pair(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        signed_sin: FloatTensor<Self>,
        first_position: usize,
        layout: RopeLayout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        assert_same_shape(&q.shape(), &k.shape());
        let q = Self::rotary(q, cos.clone(), signed_sin.clone(), first_position, layout);
        let k = Self::rotary(k, cos, signed_sin, first_position, layout);
        (q, k)
    }
}

/// Panics unless a query and a key rotated together have the same shape.
pub(crate) fn assert_same_shape(q: &Shape, k: &Shape) {
    assert!(
        q == k,
        "rotary embedding of a query and key pair needs equal shapes, got q {q:?} and k {k:?}"
    );
}

/// Panics, naming the operation, unless tables `cos` and `signed_sin` (`[positions, r]`)
/// from row `first_position` fit `x` (`[..., seq, d]`).
#[cfg(any(feature = "cubecl", feature = "fusion"))]
pub(crate) fn assert_tables_fit(x: &Shape, cos: &Shape, signed_sin: &Shape, first_position: usize) {
    let rank = x.num_dims();
    assert!(
        rank >= 2,
        "rotary embedding needs [..., seq, d], got rank {rank}"
    );
    let (seq, d) = (x[rank - 2], x[rank - 1]);
    assert!(
        cos.num_dims() == 2 && cos == signed_sin,
        "rotary embedding needs cos and signed sin tables of one shape [positions, r], got {cos:?} and {signed_sin:?}"
    );
    let (positions, width) = (cos[0], cos[1]);
    assert!(
        width <= d && width.is_multiple_of(2),
        "rotary tables of width {width} for heads of {d} features"
    );
    assert!(
        first_position + seq <= positions,
        "rotary embedding: tables of {positions} rows from row {first_position} do not cover {seq} positions"
    );
}

/// [`RotaryBackend::rotary`] by burn tensor operations: the reference every backend's
/// rotation is tested against, and what backends without their own run.
pub fn rotary_reference<B: Backend>(
    x: FloatTensor<B>,
    cos: FloatTensor<B>,
    signed_sin: FloatTensor<B>,
    first_position: usize,
    layout: RopeLayout,
) -> FloatTensor<B> {
    let dtype = x.dtype();
    let shape = x.shape();
    let rank = shape.num_dims();
    assert!(
        rank >= 2,
        "rotary embedding needs [..., seq, d], got rank {rank}"
    );
    let (seq, d) = (shape[rank - 2], shape[rank - 1]);
    let rows = |table: FloatTensor<B>| {
        let table = float::<B, 2>(table);
        let table = if table.dtype() == dtype {
            table
        } else {
            table.cast(dtype)
        };
        table.narrow(0, first_position, seq)
    };
    let (cos, signed_sin) = (rows(cos), rows(signed_sin));
    let rotated_width = cos.dims()[1];
    assert!(
        rotated_width <= d && rotated_width.is_multiple_of(2),
        "rotary tables of width {rotated_width} for heads of {d} features"
    );
    let lead = shape.num_elements() / (seq * d).max(1);
    let flat = float::<B, 3>(B::float_reshape(x, Shape::new([lead, seq, d])));
    let rotate = |x: Tensor<B, 3>| {
        let r = rotated_width;
        let partner = match layout {
            RopeLayout::Interleaved => x.clone().reshape([lead, seq, r / 2, 2]).flip([3]),
            RopeLayout::Half => x.clone().reshape([lead, seq, 2, r / 2]).flip([2]),
        }
        .reshape([lead, seq, r]);
        x * cos.clone().unsqueeze::<3>() + partner * signed_sin.clone().unsqueeze::<3>()
    };
    let rotated = if rotated_width == d {
        rotate(flat)
    } else {
        let passed = flat.clone().narrow(2, rotated_width, d - rotated_width);
        Tensor::cat(vec![rotate(flat.narrow(2, 0, rotated_width)), passed], 2)
    };
    B::float_reshape(rotated.into_primitive().tensor(), shape)
}

/// A float primitive of rank `D` as a tensor.
fn float<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}
