//! Gradient clipping by the global norm, as `max_grad_norm` means in Hugging Face's
//! Trainer (`torch.nn.utils.clip_grad_norm_`): every gradient is multiplied by
//! `min(1, c / (‖g‖ + 1e-6))`, where `‖g‖` is the L2 norm of all the model's gradients
//! taken together. The direction of the whole update is kept; burn's
//! `GradientClippingConfig::Norm` instead clips each tensor to `c` on its own.
//!
//! The factor stays on the device (no value is read back), so a step does not wait for it.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, Tensor};

/// Added to the norm before dividing, as PyTorch's `clip_grad_norm_` does.
const NORM_EPSILON: f64 = 1e-6;

/// The sum of the squares of every gradient of `model` in `grads`, in f32; `None` when
/// `grads` holds none.
pub fn gradient_square_sum<B: AutodiffBackend, M: AutodiffModule<B>>(
    grads: &GradientsParams,
    model: &M,
) -> Option<Tensor<B::InnerBackend, 1>> {
    let mut visitor = SquareSum::<B> { grads, sum: None };
    model.visit(&mut visitor);
    visitor.sum
}

/// `grads` clipped to the global norm `max_norm` (`max_norm <= 0`: unchanged).
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    grads: GradientsParams,
    model: &M,
    max_norm: f64,
) -> GradientsParams {
    if max_norm <= 0.0 {
        return grads;
    }
    match gradient_square_sum(&grads, model) {
        Some(square_sum) => clip_with_square_sum(grads, model, square_sum, max_norm),
        None => grads,
    }
}

/// `grads` clipped to the global norm `max_norm`, their square sum already known (the
/// loss scale's unscaling computes it).
pub fn clip_with_square_sum<B: AutodiffBackend, M: AutodiffModule<B>>(
    grads: GradientsParams,
    model: &M,
    square_sum: Tensor<B::InnerBackend, 1>,
    max_norm: f64,
) -> GradientsParams {
    let factor = square_sum
        .sqrt()
        .add_scalar(NORM_EPSILON)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    let mut visitor = Scale::<B> { grads, factor };
    model.visit(&mut visitor);
    visitor.grads
}

struct SquareSum<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquareSum<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let squares = grad.cast(DType::F32).square().sum();
        self.sum = Some(match self.sum.take() {
            Some(sum) => sum + squares,
            None => squares,
        });
    }
}

struct Scale<B: AutodiffBackend> {
    grads: GradientsParams,
    /// One value, f32.
    factor: Tensor<B::InnerBackend, 1>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let factor = self.factor.clone().cast(grad.dtype()).reshape([1; D]);
        self.grads.register(param.id, grad * factor);
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};
    use burn::module::{Module, Param};
    use burn::tensor::backend::Backend;
    use burn::tensor::{Tensor, TensorData};

    use super::*;

    type B = Autodiff<NdArray>;

    #[derive(Module, Debug)]
    struct Two<B: Backend> {
        matrix: Param<Tensor<B, 2>>,
        vector: Param<Tensor<B, 1>>,
    }

    const MATRIX: [[f32; 3]; 2] = [[0.5, -1.25, 2.0], [3.0, 0.75, -0.5]];
    const VECTOR: [f32; 2] = [1.5, -2.5];

    /// The model and gradients equal to `scale` times its weights (the gradient of
    /// `scale/2 · Σ w²`).
    fn model_and_grads(scale: f32) -> (Two<B>, GradientsParams) {
        let device = Default::default();
        let model = Two::<B> {
            matrix: Param::from_tensor(Tensor::from_data(TensorData::from(MATRIX), &device)),
            vector: Param::from_tensor(Tensor::from_data(TensorData::from(VECTOR), &device)),
        };
        let loss = (model.matrix.val().square().sum() + model.vector.val().square().sum())
            .mul_scalar(scale / 2.0);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (model, grads)
    }

    /// Each gradient's values after clipping, matrix then vector.
    fn clipped(scale: f32, max_norm: f64) -> Vec<f32> {
        let (model, grads) = model_and_grads(scale);
        let mut grads = clip_global_norm(grads, &model, max_norm);
        let matrix = grads.remove::<NdArray, 2>(model.matrix.id).unwrap();
        let vector = grads.remove::<NdArray, 1>(model.vector.id).unwrap();
        let mut values = matrix.into_data().to_vec::<f32>().unwrap();
        values.extend(vector.into_data().to_vec::<f32>().unwrap());
        values
    }

    /// PyTorch's rule in f64: `g · min(1, c / (‖g‖ + 1e-6))` over all gradients at once.
    fn reference(scale: f32, max_norm: f64) -> Vec<f64> {
        let grads: Vec<f64> = MATRIX
            .iter()
            .flatten()
            .chain(VECTOR.iter())
            .map(|&w| f64::from(scale) * f64::from(w))
            .collect();
        let norm = grads.iter().map(|g| g * g).sum::<f64>().sqrt();
        let factor = (max_norm / (norm + NORM_EPSILON)).min(1.0);
        grads.iter().map(|g| g * factor).collect()
    }

    fn assert_matches_reference(scale: f32, max_norm: f64) {
        let got = clipped(scale, max_norm);
        let expected = reference(scale, max_norm);
        for (g, e) in got.iter().zip(&expected) {
            assert!(
                (f64::from(*g) - e).abs() <= 1e-6 * e.abs().max(1.0),
                "scale {scale}, max_norm {max_norm}: {got:?} against {expected:?}"
            );
        }
    }

    #[test]
    fn a_large_gradient_is_scaled_to_the_global_norm_as_pytorch_does() {
        // ‖g‖ = 4·√24.125 ≈ 19.6: clipped to 1 and to 5.
        assert_matches_reference(4.0, 1.0);
        assert_matches_reference(4.0, 5.0);
        // The clipped gradients' global norm is the limit; each tensor keeps its share.
        let values = clipped(4.0, 1.0);
        let norm = values
            .iter()
            .map(|v| f64::from(*v).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }

    #[test]
    fn a_gradient_within_the_norm_and_a_zero_limit_leave_it_unchanged() {
        // ‖g‖ = 0.1·√24.125 ≈ 0.49 < 1.
        assert_matches_reference(0.1, 1.0);
        let unclipped: Vec<f32> = clipped(4.0, 0.0);
        let expected: Vec<f32> = MATRIX
            .iter()
            .flatten()
            .chain(VECTOR.iter())
            .map(|w| 4.0 * w)
            .collect();
        assert_eq!(unclipped, expected);
    }

    #[test]
    fn it_differs_from_clipping_each_tensor_alone() {
        // Per tensor, the matrix (norm 4·√15.625 ≈ 15.8) and the vector (4·√8.5 ≈ 11.7)
        // would each be cut to 1: ratio of their norms 1. Globally it stays √(15.625/8.5).
        let values = clipped(4.0, 1.0);
        let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let ratio = norm(&values[..6]) / norm(&values[6..]);
        assert!(
            (ratio - (15.625f64 / 8.5).sqrt()).abs() < 1e-5,
            "ratio {ratio}"
        );
    }
}
