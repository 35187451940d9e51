//! Counts of the cubecl rotary kernel's launches, so that a test can check that the kernel
//! runs (and that a query and key rotate in one launch) rather than the reference.
//!
//! A launch counts for the thread that asked for the rotation, so that tests running beside
//! each other do not see each other's launches. On a cubecl backend that is the thread that
//! launches the kernel. Under burn's fusion wrapper the kernel is launched later, by
//! whichever thread runs the fusion stream (burn's device server), so the operation takes
//! its requester's counts along ([`Requester`]) and launches on its behalf. A launch is
//! counted when it is submitted, which with fusion is only once the stream is run: read the
//! output before reading the counts.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The kernels whose launches are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Launch {
    /// One tensor rotated ([`crate::RotaryBackend::rotary`]).
    Rotary,
    /// A query and a key rotated together ([`crate::RotaryBackend::rotary_pair`]).
    RotaryPair,
}

type Counts = [AtomicU64; 2];

thread_local! {
    /// The counts of the rotations this thread asked for.
    static OWN: Arc<Counts> = Arc::default();
    /// Set while this thread launches for another one.
    static ON_BEHALF_OF: RefCell<Option<Arc<Counts>>> = const { RefCell::new(None) };
}

/// Launches of `kernel` asked for by this thread so far.
pub fn launches(kernel: Launch) -> u64 {
    OWN.with(|counts| counts[kernel as usize].load(Ordering::Relaxed))
}

/// Notes one launch of `kernel`, for the thread it is made for.
pub(crate) fn record(kernel: Launch) {
    let add = |counts: &Counts| counts[kernel as usize].fetch_add(1, Ordering::Relaxed);
    ON_BEHALF_OF.with(|requester| match requester.borrow().as_deref() {
        Some(counts) => add(counts),
        None => OWN.with(|counts| add(counts)),
    });
}

/// The thread a deferred launch is made for.
#[cfg_attr(not(feature = "fusion"), allow(dead_code))]
#[derive(Clone, Debug)]
pub(crate) struct Requester(Arc<Counts>);

#[cfg_attr(not(feature = "fusion"), allow(dead_code))]
impl Requester {
    /// The calling thread.
    pub(crate) fn current() -> Self {
        Self(OWN.with(Arc::clone))
    }

    /// Runs `launch`, counting the launches it makes for this requester.
    pub(crate) fn launch<T>(&self, launch: impl FnOnce() -> T) -> T {
        /// Puts the previous requester back, also when `launch` panics.
        struct Restore(Option<Arc<Counts>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                ON_BEHALF_OF.with(|requester| *requester.borrow_mut() = self.0.take());
            }
        }
        let previous = ON_BEHALF_OF.with(|requester| requester.replace(Some(self.0.clone())));
        let _restore = Restore(previous);
        launch()
    }
}
