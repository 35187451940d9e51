//! Backends that rotate by the reference tensor operations ([`super::rotary_reference`]):
//! on the cubecl backends (wgpu, cuda) burn's fusion compiles them into one elementwise
//! kernel.

use super::RotaryBackend;

#[cfg(feature = "cubecl")]
impl<R, F, I, BT> RotaryBackend for burn_cubecl::CubeBackend<R, F, I, BT>
where
    R: burn_cubecl::CubeRuntime,
    F: burn_cubecl::FloatElement,
    I: burn_cubecl::IntElement,
    BT: burn_cubecl::BoolElement,
    Self: burn::tensor::backend::Backend,
{
}

#[cfg(feature = "fusion")]
impl<B: burn_fusion::FusionBackend> RotaryBackend for burn_fusion::Fusion<B> {}

#[cfg(feature = "flex")]
impl RotaryBackend for burn::backend::Flex {}
