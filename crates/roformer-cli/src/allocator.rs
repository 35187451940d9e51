//! The process's allocator settings: large buffers stay mapped for reuse.
//!
//! A step of the model frees and allocates the same large buffers again (the vocabulary
//! logits of a 32 × 128 batch are 131 MB). glibc's malloc hands memory back to the kernel
//! when it is freed, so each step page-faults its buffers in again, zeroed by the kernel:
//! about 1 GB of page faults in a 16-step `roformer bench --batch 32 --seq 128`. Keeping
//! freed memory (no trimming) and growing the heap in large steps cuts those faults by
//! about six, which is a tenth to a fifth of that step's time, and lowers peak memory
//! (docs/performance.md, "Allocation").

/// Bytes the heap grows by at least, each time it grows.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 256 << 20;

/// Sets glibc malloc's tunables; called first thing in `main`, before any other thread
/// exists. Elsewhere (musl, macOS) a no-op.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes malloc's parameters, with values it accepts; no
    // other thread is running yet, so no allocation is in flight.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
    }
}
