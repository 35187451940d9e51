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

/// Training backend: the inference backend with automatic differentiation.
pub type Training = burn::backend::Autodiff<Inference>;

/// The default device of the chosen backend.
pub fn device() -> burn::tensor::Device<Inference> {
    Default::default()
}
