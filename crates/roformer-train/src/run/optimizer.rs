//! AdamW for training: burn's `AdamW` (same defaults, same state record, so checkpoints
//! written before or after this type load either way; no AMSGrad or cautious weight
//! decay, which this project does not use), with the update of each parameter done by the
//! backend ([`RoFormerBackend::adamw_step`]: one pass on the CPU; burn's own `AdamW::step`,
//! its reference, elsewhere).
//!
//! burn evaluates an AdamW step as about fifteen whole-tensor operations per parameter;
//! at the `small` config they cost as much as the backward pass of the attention.

use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{
    AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, SimpleOptimizer,
};
use burn::tensor::Tensor;
use roformer::{RoFormerBackend, RoFormerTrainingBackend};

use roformer::backend::{AdamWStep, AdamWUpdate};

/// Settings of [`FusedAdamW`]; the defaults are burn's `AdamWConfig` defaults.
#[derive(Config, Debug)]
pub struct FusedAdamWConfig {
    /// Decay of the first-moment estimate (β₁).
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Decay of the second-moment estimate (β₂).
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Added to `√v̂` in the denominator (ε).
    #[config(default = 1e-5)]
    pub epsilon: f32,
    /// Decoupled weight decay (λ).
    #[config(default = 1e-4)]
    pub weight_decay: f32,
    /// Gradient clipping before the update, if any.
    pub grad_clipping: Option<GradientClippingConfig>,
}

impl FusedAdamWConfig {
    /// burn's `AdamWConfig` with the same settings (the reference the tests compare with).
    pub fn reference(&self) -> AdamWConfig {
        AdamWConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(self.weight_decay)
            .with_grad_clipping(self.grad_clipping.clone())
    }

    /// The optimizer for a module on the autodiff backend `B`.
    pub fn init<B: RoFormerTrainingBackend, M: AutodiffModule<B>>(
        &self,
    ) -> OptimizerAdaptor<FusedAdamW, M, B> {
        let optimizer = FusedAdamW {
            config: self.clone(),
        };
        let adaptor = OptimizerAdaptor::from(optimizer);
        match self
            .grad_clipping
            .as_ref()
            .map(GradientClippingConfig::init)
        {
            Some(clipping) => adaptor.with_grad_clipping(clipping),
            None => adaptor,
        }
    }
}

/// burn's `AdamW` with the backend's update.
#[derive(Clone)]
pub struct FusedAdamW {
    config: FusedAdamWConfig,
}

impl<B: RoFormerBackend> SimpleOptimizer<B> for FusedAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let time = state.as_ref().map_or(0, |s| s.momentum.time) + 1;
        let moments = state.map(|s| (s.momentum.moment_1, s.momentum.moment_2));
        let step = AdamWStep {
            learning_rate: lr,
            beta_1: self.config.beta_1,
            beta_2: self.config.beta_2,
            epsilon: self.config.epsilon,
            weight_decay: self.config.weight_decay,
            time,
        };
        let AdamWUpdate {
            param,
            moment_1,
            moment_2,
        } = B::adamw_step(tensor, grad, moments, &step);
        let momentum = AdaptiveMomentumState::new(time, moment_1, moment_2);
        (param, Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <AdamW as SimpleOptimizer<B>>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};
    use burn::module::{Module, Param};
    use burn::optim::{GradientsParams, Optimizer};
    use burn::tensor::backend::Backend;
    use burn::tensor::{Distribution, Tensor, TensorData};
    use roformer_testing::{assert_close_relative, max_abs_diff};

    use super::*;

    /// Two parameters of different ranks, so both the fused path and its state bookkeeping
    /// run for each.
    #[derive(Module, Debug)]
    struct Weights<B: Backend> {
        matrix: Param<Tensor<B, 2>>,
        vector: Param<Tensor<B, 1>>,
    }

    impl<B: RoFormerBackend> Weights<B> {
        fn from_values(matrix: &TensorData, vector: &TensorData, device: &B::Device) -> Self {
            Self {
                matrix: Param::from_tensor(Tensor::from_data(matrix.clone(), device)),
                vector: Param::from_tensor(Tensor::from_data(vector.clone(), device)),
            }
        }

        /// A loss whose gradient changes from step to step: `Σ (M·x + v)² + Σ v³`.
        fn loss(&self, input: &TensorData) -> Tensor<B, 1> {
            let device = self.matrix.device();
            let input = Tensor::<B, 2>::from_data(input.clone(), &device);
            let output = self.matrix.val().matmul(input) + self.vector.val().unsqueeze_dim(1);
            output.powi_scalar(2).sum() + self.vector.val().powi_scalar(3).sum()
        }
    }

    /// Runs four steps (the fourth at a different learning rate) and returns the parameters.
    fn train<B: RoFormerTrainingBackend, O: Optimizer<Weights<B>, B>>(
        mut optimizer: O,
        values: &[TensorData; 3],
    ) -> (Vec<f32>, Vec<f32>) {
        let device = Default::default();
        let mut model = Weights::<B>::from_values(&values[0], &values[1], &device);
        for lr in [1e-2, 1e-2, 1e-2, 3e-3] {
            let grads = GradientsParams::from_grads(model.loss(&values[2]).backward(), &model);
            model = optimizer.step(lr, model, grads);
        }
        let read = |data: TensorData| data.convert::<f32>().to_vec::<f32>().unwrap();
        (
            read(model.matrix.val().into_data()),
            read(model.vector.val().into_data()),
        )
    }

    fn random(shape: [usize; 2], seed: u64) -> TensorData {
        NdArray::<f32>::seed(&Default::default(), seed);
        Tensor::<NdArray, 2>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
            .into_data()
    }

    /// The same four steps in f64 by hand: the loss's analytic gradients
    /// (`∂/∂M = 2·out·xᵀ`, `∂/∂v = 2·Σ_j out[:, j] + 3v²` with `out = M·x + v`), per-tensor
    /// clipping to `clip_norm` (`g · min(1, c / (‖g‖ + tiny))`, burn's `clip_by_norm`), then
    /// AdamW as Loshchilov & Hutter write it: bias-corrected moments, decoupled decay
    /// `θ ← θ(1 − lr·λ) − lr·m̂ / (√v̂ + ε)`.
    fn train_by_hand(
        config: &FusedAdamWConfig,
        clip_norm: f64,
        values: &[TensorData; 3],
    ) -> (Vec<f64>, Vec<f64>) {
        let read = |data: &TensorData| -> Vec<f64> {
            data.to_vec::<f32>()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect()
        };
        let (mut matrix, mut vector, x) = (read(&values[0]), read(&values[1]), read(&values[2]));
        let (rows, inner) = (values[0].shape[0], values[0].shape[1]);
        let cols = values[2].shape[1];
        let (b1, b2) = (f64::from(config.beta_1), f64::from(config.beta_2));
        let (eps, decay) = (f64::from(config.epsilon), f64::from(config.weight_decay));
        let mut moments = [
            (vec![0.0; matrix.len()], vec![0.0; matrix.len()]),
            (vec![0.0; vector.len()], vec![0.0; vector.len()]),
        ];
        for (time, lr) in [1e-2, 1e-2, 1e-2, 3e-3].into_iter().enumerate() {
            let time = time as i32 + 1;
            let out: Vec<f64> = (0..rows * cols)
                .map(|rc| {
                    let (r, c) = (rc / cols, rc % cols);
                    vector[r]
                        + (0..inner)
                            .map(|i| matrix[r * inner + i] * x[i * cols + c])
                            .sum::<f64>()
                })
                .collect();
            let grad_matrix: Vec<f64> = (0..rows * inner)
                .map(|ri| {
                    let (r, i) = (ri / inner, ri % inner);
                    (0..cols)
                        .map(|c| 2.0 * out[r * cols + c] * x[i * cols + c])
                        .sum()
                })
                .collect();
            let grad_vector: Vec<f64> = (0..rows)
                .map(|r| {
                    (0..cols).map(|c| 2.0 * out[r * cols + c]).sum::<f64>()
                        + 3.0 * vector[r] * vector[r]
                })
                .collect();
            for ((param, grad), (m, v)) in [(&mut matrix, grad_matrix), (&mut vector, grad_vector)]
                .into_iter()
                .zip(moments.iter_mut())
            {
                let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
                let clip = (clip_norm / (norm + f64::from(f32::MIN_POSITIVE))).min(1.0);
                for (j, g) in grad.into_iter().enumerate() {
                    let g = g * clip;
                    m[j] = b1 * m[j] + (1.0 - b1) * g;
                    v[j] = b2 * v[j] + (1.0 - b2) * g * g;
                    let m_hat = m[j] / (1.0 - b1.powi(time));
                    let v_hat = v[j] / (1.0 - b2.powi(time));
                    param[j] = param[j] * (1.0 - lr * decay) - lr * m_hat / (v_hat.sqrt() + eps);
                }
            }
        }
        (matrix, vector)
    }

    /// The fused update on `Autodiff<NdArray>`, and burn's `AdamW` on the same backend
    /// (which runs burn's tensor operations), against the f64 loop above: the parameters
    /// after four steps agree to 1e-5 of their largest magnitude (f32 rounding through four
    /// steps; a wrong bias correction, decay or clipping moves them by 1e-3 or more). With
    /// gradient clipping and weight decay both on, every term of the update is exercised.
    #[test]
    fn fused_adamw_matches_an_f64_loop_and_burns_adamw() {
        let matrix = random([8, 6], 1);
        let vector = random([1, 8], 2);
        let vector = TensorData::new(vector.to_vec::<f32>().unwrap(), [8]);
        let values = [matrix, vector, random([6, 5], 3)];
        let config = FusedAdamWConfig::new()
            .with_weight_decay(0.1)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(5.0)));
        type Cpu = Autodiff<NdArray>;
        let fused = train::<Cpu, _>(config.init(), &values);
        let burns = train::<Cpu, _>(config.reference().init(), &values);
        let by_hand = train_by_hand(&config, 5.0, &values);
        for (name, got, reference) in [
            ("fused matrix", &fused.0, &by_hand.0),
            ("fused vector", &fused.1, &by_hand.1),
            ("burn matrix", &burns.0, &by_hand.0),
            ("burn vector", &burns.1, &by_hand.1),
        ] {
            assert_close_relative(name, got, reference, 1e-5);
        }
        // The steps moved the parameters (a no-op optimizer would pass the comparison).
        let initial: Vec<f32> = values[0].to_vec().unwrap();
        assert!(
            max_abs_diff(&fused.0, &initial) > 1e-3,
            "the parameters did not change"
        );
    }

    /// Where no kernel runs (f64 tensors), `FusedAdamW` is burn's `AdamW` exactly.
    #[test]
    fn other_backends_run_burns_adamw() {
        let matrix = random([4, 3], 4);
        let vector = TensorData::new(vec![0.5f32, -0.25, 1.0, 0.0], [4]);
        let values = [matrix, vector, random([3, 2], 5)];
        let config = FusedAdamWConfig::new().with_weight_decay(0.05);
        type Cpu64 = Autodiff<NdArray<f64>>;
        let fused = train::<Cpu64, _>(config.init(), &values);
        let reference = train::<Cpu64, _>(config.reference().init(), &values);
        assert_eq!(fused, reference);
    }
}
