//! The kernels' single-precision matrix product, `C = alpha·A·B + beta·C` on strided
//! operands, computed by the `gemm` crate.
//!
//! `gemm` picks AVX-512 micro-kernels at run time on CPUs that have them (its `x86-v4`
//! feature, stable Rust since 1.89), where `matrixmultiply` — burn-ndarray's product —
//! stays at AVX2 register blocking and packs more, so on such CPUs these products run
//! faster than burn-ndarray's (`cargo run --release -p roformer-kernels --example
//! machine_ceiling` prints `gemm`'s rates on the model's shapes next to the cores' FMA
//! peak). On other CPUs `gemm` falls back to AVX2/FMA or SSE kernels itself.
//!
//! The argument order is `matrixmultiply::sgemm`'s (rows, inner, columns, then each
//! operand's pointer with its row and column strides).

/// Whether a product may split its work across rayon's thread pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Threads {
    /// The calling thread only: the product already runs inside a parallel task.
    One,
    /// All of rayon's threads (`gemm` itself stays on one thread for small products).
    All,
}

/// `C = alpha·A·B + beta·C` for `A: [m, k]`, `B: [k, n]`, `C: [m, n]`, each given by a
/// pointer and its (row, column) strides in elements. `C` is not read when `beta == 0`.
///
/// # Safety
/// Every element addressed by the shapes and strides must lie inside a live allocation;
/// `C` must not overlap `A` or `B`, and no other thread may access `C` during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    a_row_stride: isize,
    a_col_stride: isize,
    b: *const f32,
    b_row_stride: isize,
    b_col_stride: isize,
    beta: f32,
    c: *mut f32,
    c_row_stride: isize,
    c_col_stride: isize,
    threads: Threads,
) {
    let parallelism = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::All => gemm::Parallelism::Rayon(0),
    };
    // `gemm::gemm` computes `dst = alpha·dst + beta·lhs·rhs` (`alpha` on the destination),
    // takes column strides before row strides, and reads `dst` only when asked.
    // SAFETY: forwarded from this function's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            c_col_stride,
            c_row_stride,
            beta != 0.0,
            a,
            a_col_stride,
            a_row_stride,
            b,
            b_col_stride,
            b_row_stride,
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}
