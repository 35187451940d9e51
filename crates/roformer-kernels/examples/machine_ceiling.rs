//! How fast this machine can multiply f32 matrices: the ceiling under the model's speed.
//!
//! 1. The cores' fp32 peak, measured: each thread runs a loop of 12 independent fused
//!    multiply-adds on full vector registers (AVX-512: 16 lanes, else AVX2: 8), which keeps
//!    every FMA unit busy; FLOP/s = threads · FMAs/s · lanes · 2.
//! 2. The `gemm` crate (the kernels' matrix product) on the products of one `small`
//!    inference step at 8×128 tokens (the q/k/v/output projections, the feed-forward pair,
//!    the head's dense layer, the vocabulary projection, and the per-head attention
//!    products), on rayon's threads, and their total time per step.
//!
//! ```sh
//! cargo run --release -p roformer-kernels --example machine_ceiling
//! python scripts/matmul_pytorch.py   # the same products through PyTorch (MKL), for comparison
//! ```
//!
//! Development tooling only (prints; nothing in the libraries calls it).

use std::time::Instant;

use rayon::prelude::*;

/// Iterations of the 12-FMA loop per thread.
const FMA_ITERATIONS: u64 = 100_000_000;

fn main() {
    let threads = rayon::current_num_threads();
    match fma_peak_gflops(1) {
        Some(single) => {
            let all = fma_peak_gflops(threads).unwrap_or(0.0);
            println!("fp32 FMA peak: {single:.0} GFLOP/s on 1 thread, {all:.0} on {threads}");
        }
        None => println!("fp32 FMA peak: not measured (needs x86-64 with AVX2+FMA)"),
    }
    let (batch, seq, hidden, intermediate, vocab, heads) = (8, 128, 256, 1024, 8000, 4);
    let rows = batch * seq;
    let layers = 4;
    let mut total_ms = 0.0;
    let products = [
        ("q/k/v/output projections", rows, hidden, hidden, 4 * layers),
        ("feed-forward expansion", rows, hidden, intermediate, layers),
        (
            "feed-forward contraction",
            rows,
            intermediate,
            hidden,
            layers,
        ),
        ("head dense", rows, hidden, hidden, 1),
        ("vocabulary projection", rows, hidden, vocab, 1),
    ];
    println!("products of one small-config inference step at {batch}x{seq} ({threads} threads):");
    for (name, m, k, n, count) in products {
        let (a, b, mut c) = (vec![0.5f32; m * k], vec![0.25f32; k * n], vec![0f32; m * n]);
        let ms = median_ms(|| product(m, k, n, &a, &b, &mut c));
        total_ms += ms * count as f64;
        let gflops = 2.0 * (m * k * n) as f64 / ms / 1e6;
        println!(
            "  {name:26} [{m},{k}]·[{k},{n}] x{count:2}: {ms:7.3} ms each, {gflops:4.0} GFLOP/s"
        );
    }
    let head_size = hidden / heads;
    let mut attention_heads: Vec<_> = (0..batch * heads)
        .map(|_| AttentionHead::new(seq, head_size))
        .collect();
    let ms = median_ms(|| attention_products(&mut attention_heads, seq, head_size));
    total_ms += ms * layers as f64;
    let flops = 4.0 * (batch * heads * seq * seq * head_size) as f64;
    println!(
        "  {:26} {} heads of [{seq},{head_size}]·[{head_size},{seq}] and back x{layers}: {ms:7.3} ms each, {:4.0} GFLOP/s",
        "attention scores, context",
        batch * heads,
        flops / ms / 1e6
    );
    println!("  all products of the step: {total_ms:.1} ms");
}

/// Median of 9 timings of `f` (after one untimed call), in milliseconds.
fn median_ms(mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `c = a·b`, row-major `[m,k]·[k,n]`, on all of rayon's threads.
fn product(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    matmul(m, k, n, a, b, c, gemm::Parallelism::Rayon(0));
    std::hint::black_box(c);
}

/// Scores `q·kᵀ` and context `p·v` per head, heads split across threads, one thread each;
/// `kᵀ` row-major, as the attention kernel lays it out.
fn attention_products(heads: &mut [AttentionHead], seq: usize, d: usize) {
    heads.par_iter_mut().for_each(|head| {
        let one = gemm::Parallelism::None;
        matmul(
            seq,
            d,
            seq,
            &head.q,
            &head.k_transposed,
            &mut head.scores,
            one,
        );
        // The context reads q as v: same shape, and the values do not matter here.
        matmul(seq, seq, d, &head.scores, &head.q, &mut head.context, one);
        std::hint::black_box(&head.context);
    });
}

/// `c = a·b` for row-major `[m,k]`, `[k,n]` and `[m,n]` (checked).
fn matmul(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    parallelism: gemm::Parallelism,
) {
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    // SAFETY: row-major buffers of exactly these sizes (checked above), alive for the call;
    // `gemm` takes column strides before row strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// One head's operands and outputs (allocated once, outside the timing).
struct AttentionHead {
    q: Vec<f32>,
    k_transposed: Vec<f32>,
    scores: Vec<f32>,
    context: Vec<f32>,
}

impl AttentionHead {
    fn new(seq: usize, d: usize) -> Self {
        Self {
            q: vec![0.5; seq * d],
            k_transposed: vec![0.25; d * seq],
            scores: vec![0.0; seq * seq],
            context: vec![0.0; seq * d],
        }
    }
}

/// Measured FMA throughput of `threads` threads, in GFLOP/s; `None` off x86-64 or without
/// AVX2+FMA.
fn fma_peak_gflops(threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let lanes = if std::arch::is_x86_feature_detected!("avx512f") {
            16
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            8
        } else {
            return None;
        };
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(move || {
                    // SAFETY: the instruction set was detected above.
                    unsafe {
                        if lanes == 16 {
                            fma_loop_avx512(FMA_ITERATIONS)
                        } else {
                            fma_loop_avx2(FMA_ITERATIONS)
                        }
                    }
                });
            }
        });
        let seconds = start.elapsed().as_secs_f64();
        let flops = (threads as u64 * FMA_ITERATIONS * 12 * lanes * 2) as f64;
        Some(flops / seconds / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        None
    }
}

/// 12 independent FMA chains on zmm registers (more than latency × units, so the units,
/// not the dependencies, set the pace); operands 1.0, so sums stay finite and normal.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(iterations: u64) {
    // SAFETY: register-only arithmetic; the caller checked AVX-512F.
    unsafe {
        std::arch::asm!(
            "mov {one:e}, 0x3f800000", "vpbroadcastd zmm12, {one:e}", "vmovaps zmm13, zmm12",
            "vxorps zmm0, zmm0, zmm0", "vxorps zmm1, zmm1, zmm1", "vxorps zmm2, zmm2, zmm2",
            "vxorps zmm3, zmm3, zmm3", "vxorps zmm4, zmm4, zmm4", "vxorps zmm5, zmm5, zmm5",
            "vxorps zmm6, zmm6, zmm6", "vxorps zmm7, zmm7, zmm7", "vxorps zmm8, zmm8, zmm8",
            "vxorps zmm9, zmm9, zmm9", "vxorps zmm10, zmm10, zmm10", "vxorps zmm11, zmm11, zmm11",
            "2:",
            "vfmadd231ps zmm0, zmm12, zmm13", "vfmadd231ps zmm1, zmm12, zmm13",
            "vfmadd231ps zmm2, zmm12, zmm13", "vfmadd231ps zmm3, zmm12, zmm13",
            "vfmadd231ps zmm4, zmm12, zmm13", "vfmadd231ps zmm5, zmm12, zmm13",
            "vfmadd231ps zmm6, zmm12, zmm13", "vfmadd231ps zmm7, zmm12, zmm13",
            "vfmadd231ps zmm8, zmm12, zmm13", "vfmadd231ps zmm9, zmm12, zmm13",
            "vfmadd231ps zmm10, zmm12, zmm13", "vfmadd231ps zmm11, zmm12, zmm13",
            "dec {n}", "jnz 2b",
            n = inout(reg) iterations => _,
            one = out(reg) _,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _,
            out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _,
            out("zmm10") _, out("zmm11") _, out("zmm12") _, out("zmm13") _,
            options(nomem, nostack),
        );
    }
}

/// The same on ymm registers (AVX2 + FMA).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(iterations: u64) {
    // SAFETY: register-only arithmetic; the caller checked AVX2 and FMA.
    unsafe {
        std::arch::asm!(
            "mov {one:e}, 0x3f800000", "vmovd xmm12, {one:e}", "vpbroadcastd ymm12, xmm12",
            "vmovaps ymm13, ymm12",
            "vxorps ymm0, ymm0, ymm0", "vxorps ymm1, ymm1, ymm1", "vxorps ymm2, ymm2, ymm2",
            "vxorps ymm3, ymm3, ymm3", "vxorps ymm4, ymm4, ymm4", "vxorps ymm5, ymm5, ymm5",
            "vxorps ymm6, ymm6, ymm6", "vxorps ymm7, ymm7, ymm7", "vxorps ymm8, ymm8, ymm8",
            "vxorps ymm9, ymm9, ymm9", "vxorps ymm10, ymm10, ymm10", "vxorps ymm11, ymm11, ymm11",
            "2:",
            "vfmadd231ps ymm0, ymm12, ymm13", "vfmadd231ps ymm1, ymm12, ymm13",
            "vfmadd231ps ymm2, ymm12, ymm13", "vfmadd231ps ymm3, ymm12, ymm13",
            "vfmadd231ps ymm4, ymm12, ymm13", "vfmadd231ps ymm5, ymm12, ymm13",
            "vfmadd231ps ymm6, ymm12, ymm13", "vfmadd231ps ymm7, ymm12, ymm13",
            "vfmadd231ps ymm8, ymm12, ymm13", "vfmadd231ps ymm9, ymm12, ymm13",
            "vfmadd231ps ymm10, ymm12, ymm13", "vfmadd231ps ymm11, ymm12, ymm13",
            "dec {n}", "jnz 2b",
            n = inout(reg) iterations => _,
            one = out(reg) _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _,
            out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _,
            out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _,
            options(nomem, nostack),
        );
    }
}
