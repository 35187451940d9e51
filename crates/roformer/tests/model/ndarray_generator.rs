//! burn-ndarray draws every random value (a model's initial weights, when a parameter is
//! first used; the attention kernel's dropout seed) from one generator per process. A test
//! that seeds it and relies on the draws that follow holds [`exclusive`] from the seed to
//! its last draw, and so does a test that draws while such tests run beside it, so that the
//! seeded draws are the same on every run.

use std::sync::{Mutex, MutexGuard};

/// The generator to this test alone until the guard drops.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static GENERATOR: Mutex<()> = Mutex::new(());
    GENERATOR.lock().unwrap_or_else(|e| e.into_inner())
}
