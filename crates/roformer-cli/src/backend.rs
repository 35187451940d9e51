//! The one place the backend is chosen, by cargo feature: `cuda` (NVIDIA GPU) when enabled,
//! else `wgpu` (GPU through WGPU), else `flex` (burn's gemm-based CPU backend), else
//! `ndarray` (CPU).

#[cfg(feature = "cuda")]
mod chosen {
    /// Inference backend.
    pub type Inference = burn::backend::Cuda;
    /// Human-readable name.
    pub const NAME: &str = "cuda";
    /// Whether data-parallel replicas can share the backend's one device (a CPU's
    /// cores); on a GPU each replica needs a device of its own.
    pub const REPLICAS_SHARE_THE_DEVICE: bool = false;
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod chosen {
    /// Inference backend.
    pub type Inference = burn::backend::Wgpu;
    /// Human-readable name.
    pub const NAME: &str = "wgpu";
    /// Whether data-parallel replicas can share the backend's one device (a CPU's
    /// cores); on a GPU each replica needs a device of its own.
    pub const REPLICAS_SHARE_THE_DEVICE: bool = false;
}

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
mod chosen {
    /// Inference backend.
    pub type Inference = burn::backend::Flex;
    /// Human-readable name.
    pub const NAME: &str = "flex (CPU)";
    /// Whether data-parallel replicas can share the backend's one device.
    pub const REPLICAS_SHARE_THE_DEVICE: bool = true;
}

#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
mod chosen {
    /// Inference backend.
    pub type Inference = burn::backend::NdArray;
    /// Human-readable name.
    pub const NAME: &str = "ndarray (CPU)";
    /// Whether data-parallel replicas can share the backend's one device.
    pub const REPLICAS_SHARE_THE_DEVICE: bool = true;
}

#[cfg(not(any(
    feature = "ndarray",
    feature = "cuda",
    feature = "wgpu",
    feature = "flex"
)))]
compile_error!("enable a backend feature: `ndarray` (default), `flex`, `wgpu` or `cuda`");

pub use chosen::{Inference, NAME, REPLICAS_SHARE_THE_DEVICE};

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;

use burn::tensor::{ElementConversion, Tensor};

/// Training backend: the inference backend with automatic differentiation.
pub type Training = burn::backend::Autodiff<Inference>;
/// The inference backend's device.
pub type Device = burn::tensor::Device<Inference>;

/// Panic messages raised while [`device`] probes the backend, from any thread (the GPU
/// backends start their device on a thread of their own); `None` outside the probe.
static PROBE_PANICS: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// The default device of the chosen backend, once a small computation on it has given
/// the right answer. A GPU build on a machine without the driver it loads (the CUDA driver,
/// a Vulkan adapter) fails here with one error naming the backend and the cause, instead
/// of the backend's panics.
pub fn device() -> anyhow::Result<Device> {
    let device = Device::default();
    *lock_probe() = Some(Vec::new());
    let sum = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let x = Tensor::<Inference, 1>::from_floats([1.0, 2.0], &device);
        x.sum().into_scalar().elem::<f32>()
    }));
    let panics = lock_probe().take().unwrap_or_default();
    match sum {
        Ok(3.0) => Ok(device),
        Ok(sum) => anyhow::bail!("the {NAME} backend computes 1 + 2 = {sum} on this machine"),
        Err(_) => anyhow::bail!(
            "the {NAME} backend cannot start on this machine: {}",
            probe_failure(&panics)
        ),
    }
}

/// Whether a panic happens during [`device`]'s probe: its message is then kept for the
/// probe's error, and the panic hook should print nothing.
pub fn captured_by_probe(info: &std::panic::PanicHookInfo<'_>) -> bool {
    let mut probe = lock_probe();
    let Some(panics) = probe.as_mut() else {
        return false;
    };
    panics.push(crate::panic_report::message(info));
    true
}

/// Whether [`device`] is probing the backend now.
pub fn probing() -> bool {
    lock_probe().is_some()
}

fn lock_probe() -> std::sync::MutexGuard<'static, Option<Vec<String>>> {
    PROBE_PANICS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cause among the probe's panics, on one line: the first (the device's own thread
/// panics before the thread waiting on it), cut before a list of the file names searched.
fn probe_failure(panics: &[String]) -> String {
    let Some(first) = panics.first() else {
        return "it panicked".into();
    };
    let line = first.lines().next().unwrap_or_default();
    let cause = line.split(" - searched").next().unwrap_or(line).trim();
    cause.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_reports_the_first_cause_on_one_line() {
        let cudarc = "Unable to dynamically load the \"cuda\" shared library - searched for \
                      library names: [\"libcuda.so\"]. Ensure that `LD_LIBRARY_PATH` has...";
        let panics = [
            cudarc.to_string(),
            "called `Result::unwrap()`: RecvError".into(),
        ];
        assert_eq!(
            probe_failure(&panics),
            "Unable to dynamically load the \"cuda\" shared library"
        );
        assert_eq!(
            probe_failure(&["no adapter\nsecond line".into()]),
            "no adapter"
        );
        assert_eq!(probe_failure(&[]), "it panicked");
    }

    #[test]
    fn the_chosen_backend_starts_here() {
        assert!(device().is_ok());
        assert!(lock_probe().is_none(), "the probe left its capture on");
    }
}
