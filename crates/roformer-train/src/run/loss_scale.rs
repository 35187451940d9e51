//! One optimisation step from a loss, with dynamic loss scaling for f16 training
//! (Micikevicius et al. 2018, "Mixed Precision Training", §3.2; the rule of PyTorch's
//! `GradScaler`).
//!
//! f16 flushes gradients below 6e-8 to zero, and a transformer's are often that small, so
//! the loss is multiplied by a scale `S` before the backward pass and the (f32) gradients
//! of the master weights are divided by `S` before the optimizer sees them. A step whose
//! gradients hold an infinity or a NaN (`S` too large) is skipped and `S` halved; after
//! [`GROWTH_INTERVAL`] steps without one, `S` doubles. bf16 has f32's range and f32 needs
//! nothing, so their steps are plain.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use roformer::Precision;

use crate::run::grad_clip::{clip_global_norm, clip_with_square_sum};
use serde::{Deserialize, Serialize};

/// The scale of the first step: 2^16, as PyTorch's.
pub const INITIAL_SCALE: f64 = 65536.0;
/// Clean steps after which the scale doubles.
pub const GROWTH_INTERVAL: u32 = 2000;
/// The scale never goes below 1 (a loss that overflows unscaled is not a scaling matter).
const MIN_SCALE: f64 = 1.0;

/// The dynamic loss scale and its count of clean steps (saved in checkpoints, so a
/// resumed run scales as an uninterrupted one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    /// The factor the loss is multiplied by.
    pub scale: f64,
    /// Steps since the last overflow or growth.
    pub clean_steps: u32,
}

impl Default for LossScale {
    fn default() -> Self {
        Self {
            scale: INITIAL_SCALE,
            clean_steps: 0,
        }
    }
}

impl LossScale {
    /// The scaler a precision trains with: f16 only.
    pub fn for_precision(precision: Precision) -> Option<Self> {
        (precision == Precision::F16).then(Self::default)
    }

    /// Records a step's outcome: halves on overflow, doubles after enough clean steps.
    pub fn update(&mut self, overflowed: bool) {
        if overflowed {
            self.scale = (self.scale / 2.0).max(MIN_SCALE);
            self.clean_steps = 0;
        } else {
            self.clean_steps += 1;
            if self.clean_steps >= GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
        }
    }
}

/// What [`optimise`] did.
pub struct Optimised<M> {
    /// The model after the step (unchanged when the step was skipped).
    pub model: M,
    /// Whether the gradients overflowed and the step was skipped.
    pub skipped: bool,
}

/// Backward from `loss`, the gradients clipped to the global norm `max_grad_norm` (0: not
/// clipped; [`clip_global_norm`]), then the optimizer step at `learning_rate`. With a loss
/// scale the loss is scaled first, the gradients unscaled and checked, and the step
/// skipped (and the scale lowered) when one of them is not finite.
pub fn optimise<B, M, O>(
    model: M,
    loss: Tensor<B, 1>,
    optimizer: &mut O,
    learning_rate: f64,
    max_grad_norm: f64,
    loss_scale: Option<&mut LossScale>,
) -> Optimised<M>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let Some(loss_scale) = loss_scale else {
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let grads = clip_global_norm(grads, &model, max_grad_norm);
        return Optimised {
            model: optimizer.step(learning_rate, model, grads),
            skipped: false,
        };
    };
    let grads = GradientsParams::from_grads(loss.mul_scalar(loss_scale.scale).backward(), &model);
    let (grads, square_sum, finite) = unscale(grads, &model, loss_scale.scale);
    loss_scale.update(!finite);
    if finite {
        let grads = match square_sum {
            Some(square_sum) if max_grad_norm > 0.0 => {
                clip_with_square_sum(grads, &model, square_sum, max_grad_norm)
            }
            _ => grads,
        };
        Optimised {
            model: optimizer.step(learning_rate, model, grads),
            skipped: false,
        }
    } else {
        Optimised {
            model,
            skipped: true,
        }
    }
}

/// The gradients divided by `scale`, the sum of their squares, and whether all of them
/// are finite (one value read back from the device).
#[allow(clippy::type_complexity)]
fn unscale<B: AutodiffBackend, M: AutodiffModule<B>>(
    grads: GradientsParams,
    model: &M,
    scale: f64,
) -> (GradientsParams, Option<Tensor<B::InnerBackend, 1>>, bool) {
    let mut visitor = Unscale::<B> {
        grads,
        inverse: 1.0 / scale,
        square_sum: None,
    };
    model.visit(&mut visitor);
    let finite = visitor.square_sum.as_ref().is_none_or(|sum| {
        let sum: f64 = sum.clone().into_scalar().elem();
        sum.is_finite()
    });
    (visitor.grads, visitor.square_sum, finite)
}

/// Unscales each parameter's gradient and sums their squares (not finite if any element
/// is not).
struct Unscale<B: AutodiffBackend> {
    grads: GradientsParams,
    inverse: f64,
    square_sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Unscale<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let grad = grad.mul_scalar(self.inverse);
        let squares = grad.clone().square().sum().cast(burn::tensor::DType::F32);
        self.square_sum = Some(match self.square_sum.take() {
            Some(sum) => sum + squares,
            None => squares,
        });
        self.grads.register(param.id, grad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::Module;
    use burn::optim::SgdConfig;
    use burn::tensor::TensorData;

    #[test]
    fn the_scale_halves_on_overflow_and_doubles_after_clean_steps() {
        let mut scale = LossScale::default();
        scale.update(true);
        assert_eq!(scale.scale, INITIAL_SCALE / 2.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            scale.update(false);
        }
        assert_eq!(
            (scale.scale, scale.clean_steps),
            (INITIAL_SCALE / 2.0, 1999)
        );
        scale.update(false);
        assert_eq!((scale.scale, scale.clean_steps), (INITIAL_SCALE, 0));
        for _ in 0..40 {
            scale.update(true);
        }
        assert_eq!(scale.scale, MIN_SCALE);
        assert_eq!(LossScale::for_precision(Precision::Bf16), None);
        assert_eq!(LossScale::for_precision(Precision::F32), None);
        assert!(LossScale::for_precision(Precision::F16).is_some());
    }

    type Ad = Autodiff<NdArray>;

    #[derive(Module, Debug)]
    struct Weights<B: burn::tensor::backend::Backend> {
        w: Param<Tensor<B, 1>>,
    }

    fn weights(values: [f32; 3]) -> Weights<Ad> {
        let device = Default::default();
        Weights {
            w: Param::from_tensor(Tensor::from_data(TensorData::from(values), &device)),
        }
    }

    fn read(model: &Weights<Ad>) -> Vec<f32> {
        model.w.val().into_data().to_vec::<f32>().unwrap()
    }

    /// `loss = Σ w²/2` (its gradient is w).
    fn half_square_sum(m: &Weights<Ad>) -> Tensor<Ad, 1> {
        m.w.val().square().sum().mul_scalar(0.5)
    }

    /// One SGD step at rate 0.5 from `values`, clipped to `max_grad_norm`, without and
    /// with a fresh loss scale (returned after the step).
    fn plain_and_scaled_steps(
        values: [f32; 3],
        max_grad_norm: f64,
    ) -> (Optimised<Weights<Ad>>, Optimised<Weights<Ad>>, LossScale) {
        let mut sgd = SgdConfig::new().init::<Ad, Weights<Ad>>();
        let model = weights(values);
        let loss = half_square_sum(&model);
        let plain = optimise(model.clone(), loss, &mut sgd, 0.5, max_grad_norm, None);
        let mut scale = LossScale::default();
        let loss = half_square_sum(&model);
        let scaled = optimise(model, loss, &mut sgd, 0.5, max_grad_norm, Some(&mut scale));
        (plain, scaled, scale)
    }

    #[test]
    fn a_scaled_step_equals_an_unscaled_one_and_an_overflow_skips_it() {
        // SGD at rate 0.5 halves w.
        let (plain, scaled, mut scale) = plain_and_scaled_steps([1.0, -2.0, 4.0], 0.0);
        assert!(!scaled.skipped);
        assert_eq!(read(&scaled.model), vec![0.5, -1.0, 2.0]);
        assert_eq!(read(&plain.model), read(&scaled.model));
        assert_eq!(scale.clean_steps, 1);

        // 1e36² overflows f32 once scaled by 2^16: the step is skipped, the scale halves.
        let mut sgd = SgdConfig::new().init::<Ad, Weights<Ad>>();
        let model = weights([1e36, 0.0, 1.0]);
        let overflow = optimise(
            model.clone(),
            half_square_sum(&model).mul_scalar(1e4),
            &mut sgd,
            0.5,
            0.0,
            Some(&mut scale),
        );
        assert!(overflow.skipped);
        assert_eq!(read(&overflow.model), vec![1e36, 0.0, 1.0]);
        assert_eq!((scale.scale, scale.clean_steps), (INITIAL_SCALE / 2.0, 0));
    }

    #[test]
    fn a_clipped_step_scales_the_gradient_to_the_global_norm_scaled_or_not() {
        // The gradient w = (1, -2, 4) has norm √21; clipped to 1, SGD at rate 0.5 moves
        // w by 0.5 · w / (√21 + 1e-6), with the loss scale or without.
        let (plain, scaled, _) = plain_and_scaled_steps([1.0, -2.0, 4.0], 1.0);
        let factor = 1.0 / (21f64.sqrt() + 1e-6);
        let expected: Vec<f64> = [1.0, -2.0, 4.0]
            .iter()
            .map(|w| w - 0.5 * w * factor)
            .collect();
        for got in [read(&plain.model), read(&scaled.model)] {
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    (f64::from(*g) - e).abs() < 1e-6,
                    "{got:?} against {expected:?}"
                );
            }
        }
    }
}
