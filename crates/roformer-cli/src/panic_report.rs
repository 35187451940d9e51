//! Panics as one error line. A panic anywhere in a run (a GPU backend's device thread that
//! cannot allocate a buffer, and then the thread waiting on it) is kept instead of printed,
//! and the run ends with one `error:` line giving the first panic's message and where it
//! was raised, exit status 1. With `RUST_BACKTRACE` set (and not `0`), panics print as
//! Rust prints them, for debugging.

use std::panic::PanicHookInfo;
use std::sync::Mutex;

/// The panics kept so far, each as `message (at file:line)` on one line.
static KEPT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether panics should print as Rust prints them (`RUST_BACKTRACE` asks for details).
pub fn printed_in_full() -> bool {
    std::env::var_os("RUST_BACKTRACE").is_some_and(|value| value != "0")
}

/// The panic's message: its payload when that is a string.
pub fn message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Keeps the panic for [`first`].
pub fn keep(info: &PanicHookInfo<'_>) {
    let line = message(info).replace('\n', " ");
    let kept = match info.location() {
        Some(location) => format!(
            "{line} (at {}:{})",
            crate_relative(location.file()),
            location.line()
        ),
        None => line,
    };
    lock().push(kept);
}

/// Whether any panic has been kept.
pub fn any() -> bool {
    !lock().is_empty()
}

/// The first panic kept: the cause, where later ones are threads giving up on it.
pub fn first() -> Option<String> {
    lock().first().cloned()
}

/// A dependency's source path from its crate folder on (`cubecl-wgpu-0.10.0/src/…`), not
/// from the cargo registry's.
fn crate_relative(file: &str) -> &str {
    const REGISTRY: &str = "/registry/src/";
    match file.find(REGISTRY) {
        Some(start) => {
            let index_and_crate = &file[start + REGISTRY.len()..];
            index_and_crate
                .split_once('/')
                .map_or(index_and_crate, |(_, from_crate)| from_crate)
        }
        None => file,
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<String>> {
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_path_starts_at_the_crate_folder() {
        assert_eq!(
            crate_relative(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cubecl-wgpu-0.10.0/src/compute/server.rs"
            ),
            "cubecl-wgpu-0.10.0/src/compute/server.rs"
        );
        assert_eq!(
            crate_relative("crates/roformer-cli/src/main.rs"),
            "crates/roformer-cli/src/main.rs"
        );
    }
}
