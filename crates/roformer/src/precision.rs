//! Compute precision: the float type the model's activations and matrix products run in.
//!
//! Mixed precision as PyTorch's autocast and Micikevicius et al. 2018 ("Mixed Precision
//! Training", arXiv 1710.03740) do it: with a reduced precision (`bf16`, `f16`) the dense
//! layers, the attention products and the activations between them run in that type,
//! while what rounding would spoil stays in f32: LayerNorm statistics (each LayerNorm
//! widens its input to f32 and narrows its output), the attention softmax and its
//! backward's row sums, the logits the loss and the probabilities are computed from, and,
//! in training, the parameters themselves (master weights, cast to the compute type where
//! they are used, so their gradients, the optimizer state and the update are f32).
//! Inference can instead store the parameters in the compute type ([`cast_parameters`]).
//!
//! Which types a device runs is the backend's to say (`Backend::supports_dtype`): the
//! CPU backends have f32 only; CUDA has all three; WGPU has f16 where the adapter has
//! shader f16 and no bf16.

use core::fmt;
use core::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::RoFormerError;
use crate::layout::in_float_type;

/// The float type activations and matrix products run in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Full precision throughout (the default): the backend's own float type, which is f32
    /// on every backend the binary builds (an f64 backend stays f64).
    #[default]
    F32,
    /// bfloat16 (8-bit exponent, 8-bit significand) activations and products; needs no
    /// loss scaling in training, since its range is f32's.
    Bf16,
    /// IEEE half precision (5-bit exponent, 11-bit significand) activations and
    /// products; training scales the loss so that small gradients do not flush to zero.
    F16,
}

impl Precision {
    /// Every precision, in the order they are listed to users.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::F16];

    /// The precision's name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// The tensor float type.
    pub fn float_dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
            Precision::F16 => FloatDType::F16,
        }
    }

    /// The tensor data type.
    pub fn dtype(self) -> DType {
        self.float_dtype().into()
    }

    /// Whether activations are narrower than f32 (so LayerNorm and softmax widen them).
    pub fn is_reduced(self) -> bool {
        self != Precision::F32
    }

    /// Checks that `device` computes in this precision (f32 always does).
    pub fn check_supported<B: Backend>(self, device: &B::Device) -> Result<(), RoFormerError> {
        if !self.is_reduced() || B::supports_dtype(device, self.dtype()) {
            Ok(())
        } else {
            Err(RoFormerError::UnsupportedPrecision {
                precision: self.name(),
                device: format!("{device:?}"),
            })
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| format!("unknown precision `{text}`: expected f32, bf16 or f16"))
    }
}

/// Whether `dtype` is a float type narrower than f32.
pub(crate) fn is_reduced(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

/// `x` in f32 when it is narrower (for statistics and probabilities).
pub fn widened<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if is_reduced(x.dtype()) {
        x.cast(DType::F32)
    } else {
        x
    }
}

/// `module` with every float parameter stored in `precision` (for inference: the weights
/// then take no cast per use); f32 leaves it as it is. Training keeps f32 parameters
/// instead and sets the compute precision only (e.g. `RoFormerModel::with_precision`).
pub fn cast_parameters<B: Backend, M: Module<B>>(module: M, precision: Precision) -> M {
    if !precision.is_reduced() {
        return module;
    }
    module.map(&mut CastParameters {
        dtype: precision.dtype(),
    })
}

struct CastParameters {
    dtype: DType,
}

impl<B: Backend> ModuleMapper<B> for CastParameters {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let dtype = self.dtype;
        param.map(|tensor| in_float_type(tensor, dtype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn names_parse_back_and_unknown_ones_are_refused() {
        for precision in Precision::ALL {
            assert_eq!(precision.name().parse::<Precision>(), Ok(precision));
            assert_eq!(precision.to_string(), precision.name());
        }
        let error = "fp16".parse::<Precision>().unwrap_err();
        assert!(
            error.contains("`fp16`") && error.contains("bf16"),
            "{error}"
        );
        assert_eq!(
            serde_json::from_str::<Precision>("\"bf16\"").unwrap(),
            Precision::Bf16
        );
        assert!(serde_json::from_str::<Precision>("\"half\"").is_err());
    }

    #[test]
    fn the_cpu_backend_takes_f32_only() {
        let device = Default::default();
        assert!(Precision::F32.check_supported::<NdArray>(&device).is_ok());
        for precision in [Precision::Bf16, Precision::F16] {
            let error = precision
                .check_supported::<NdArray>(&device)
                .unwrap_err()
                .to_string();
            assert!(error.contains(precision.name()), "{error}");
        }
    }
}
