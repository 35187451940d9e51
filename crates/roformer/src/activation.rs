//! The activations a RoFormer config can name (`hidden_act`), as HF's `ACT2FN`
//! (`transformers/activations.py`) defines them.

use crate::backend::RoFormerBackend;
use burn::tensor::activation;
use burn::tensor::{Tensor, TensorPrimitive, backend::Backend};
use serde::{Deserialize, Serialize};

/// An activation function, by its HF name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// Exact GELU, x·Φ(x) with the error function (HF `gelu`).
    #[default]
    Gelu,
    /// GELU's tanh approximation (HF `gelu_new`, also `gelu_pytorch_tanh` and `gelu_fast`).
    #[serde(alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluNew,
    /// max(0, x).
    Relu,
    /// x·σ(x) (HF `silu`, also `swish`).
    #[serde(alias = "swish")]
    Silu,
    /// tanh(x).
    Tanh,
}

impl HiddenAct {
    /// Applies the activation element-wise.
    pub fn forward<B: RoFormerBackend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            HiddenAct::Gelu => Tensor::from_primitive(TensorPrimitive::Float(B::exact_gelu(
                x.into_primitive().tensor(),
            ))),
            HiddenAct::GeluNew => activation::gelu_approximate(x),
            HiddenAct::Relu => activation::relu(x),
            HiddenAct::Silu => activation::silu(x),
            HiddenAct::Tanh => activation::tanh(x),
        }
    }
}

/// x·Φ(x) = x·(1 + erf(x/√2))/2 written with tensor operations, so that autodiff
/// differentiates it exactly. burn 0.21's `activation::gelu` computes the same forward,
/// but its backward step is the derivative of GELU's tanh approximation (off by up to
/// ~1e-3).
pub fn gelu_exact<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let phi = x
        .clone()
        .div_scalar(std::f64::consts::SQRT_2)
        .erf()
        .add_scalar(1.0);
    x.mul(phi).mul_scalar(0.5)
}
