//! Counts of kernel calls, per thread, so that a test can check that a fast path was taken
//! (and fail when a backend silently runs the reference instead).
//!
//! The counters are thread-local: a test reads the calls made on its own thread (burn runs
//! the forward pass and the backward steps on the calling thread), unaffected by tests
//! running beside it. Incrementing one is a thread-local add, nothing next to a kernel.

use core::cell::Cell;

/// The kernels whose calls are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Rotary,
    Attention,
    AttentionBackward,
    Affine,
    AffineBackward,
    AffineGelu,
    AffineAddLayerNorm,
    LayerNorm,
    LayerNormBackward,
    Gelu,
    GeluBackward,
    CrossEntropy,
    CrossEntropyBackward,
    Reshape,
    AdamW,
    GatherRows,
    ScatterRows,
}

impl Kernel {
    /// Every kernel, in declaration order.
    pub const ALL: [Kernel; 17] = [
        Kernel::Rotary,
        Kernel::Attention,
        Kernel::AttentionBackward,
        Kernel::Affine,
        Kernel::AffineBackward,
        Kernel::AffineGelu,
        Kernel::AffineAddLayerNorm,
        Kernel::LayerNorm,
        Kernel::LayerNormBackward,
        Kernel::Gelu,
        Kernel::GeluBackward,
        Kernel::CrossEntropy,
        Kernel::CrossEntropyBackward,
        Kernel::Reshape,
        Kernel::AdamW,
        Kernel::GatherRows,
        Kernel::ScatterRows,
    ];
}

thread_local! {
    static CALLS: [Cell<u64>; Kernel::ALL.len()] = const { [const { Cell::new(0) }; Kernel::ALL.len()] };
}

/// Notes one call of `kernel` on this thread.
pub fn record(kernel: Kernel) {
    CALLS.with(|calls| {
        let cell = &calls[kernel as usize];
        cell.set(cell.get() + 1);
    });
}

/// Calls of `kernel` made on this thread so far.
pub fn calls(kernel: Kernel) -> u64 {
    CALLS.with(|calls| calls[kernel as usize].get())
}

/// Calls of each kernel on this thread so far, in [`Kernel::ALL`] order.
pub fn snapshot() -> [u64; Kernel::ALL.len()] {
    Kernel::ALL.map(calls)
}

/// Runs `run` and returns its output with the kernels called on this thread while it ran,
/// in [`Kernel::ALL`] order.
pub fn ran_during<T>(run: impl FnOnce() -> T) -> (T, Vec<Kernel>) {
    let before = snapshot();
    let output = run();
    let after = snapshot();
    let ran = Kernel::ALL
        .into_iter()
        .zip(before.iter().zip(&after))
        .filter(|(_, (before, after))| after > before)
        .map(|(kernel, _)| kernel)
        .collect();
    (output, ran)
}
