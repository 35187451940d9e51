//! [`RoFormerBackend`] on burn-ndarray: f32 tensors go through the CPU kernels of
//! `roformer-kernels` (read in place, whatever their strides); other float types (f64, the
//! tests' reference precision) take the references.
//!
//! A kernel refuses only shapes that do not fit together, which the model never passes, so
//! a refusal is a panic naming the operation rather than a silent switch to another path.

use burn::backend::NdArray;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Distribution, Int, Shape, Tensor, TensorData};
use burn_ndarray::{
    FloatNdArrayElement, IntNdArrayElement, NdArrayTensor, QuantElement, SharedArray,
};
use roformer_kernels::{self as kernels, Array};

use super::{
    AdamWStep, AdamWUpdate, AttentionSaved, CrossEntropy, CrossEntropySaved, KeyMask,
    LayerNormGradients, LayerNormSaved, RoFormerBackend, reference,
};

/// The f32 array of a float primitive (shared, not copied); `None` for other float types.
fn f32_array(tensor: &NdArrayTensor) -> Option<Array> {
    match tensor {
        NdArrayTensor::F32(storage) => Some(storage.clone().into_shared()),
        _ => None,
    }
}

/// The f32 arrays of all of `tensors`, when every one is f32.
fn f32_arrays<const N: usize>(tensors: [&NdArrayTensor; N]) -> Option<[Array; N]> {
    let arrays: Vec<Array> = tensors
        .iter()
        .map(|t| f32_array(t))
        .collect::<Option<_>>()?;
    arrays.try_into().ok()
}

/// The f32 arrays of optional tensors: `Some(None)` for an absent one.
fn optional_f32(tensor: Option<&NdArrayTensor>) -> Option<Option<Array>> {
    match tensor {
        Some(tensor) => f32_array(tensor).map(Some),
        None => Some(None),
    }
}

/// The array a primitive owns, taken out of it (so a buffer it alone holds stays unshared).
fn into_f32(tensor: NdArrayTensor) -> Result<Array, NdArrayTensor> {
    match tensor {
        NdArrayTensor::F32(storage) => Ok(storage.into_shared()),
        other => Err(other),
    }
}

/// The kernel's result, or a panic naming the operation whose shapes did not fit.
fn fitted<T>(operation: &str, result: Option<T>) -> T {
    result.unwrap_or_else(|| panic!("{operation}: the tensors' shapes do not fit together"))
}

/// Host copy of int labels.
fn host_labels<B: burn::tensor::backend::Backend>(labels: IntTensor<B>) -> Vec<i64> {
    Tensor::<B, 1, Int>::from_primitive(labels)
        .into_data()
        .convert::<i64>()
        .to_vec()
        .expect("labels convert to i64")
}

impl<E, I, Q> RoFormerBackend for NdArray<E, I, Q>
where
    E: FloatNdArrayElement,
    I: IntNdArrayElement,
    Q: QuantElement,
    NdArrayTensor: From<SharedArray<E>> + From<SharedArray<I>>,
{
    fn self_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        key_mask: Option<KeyMask<Self>>,
        scale: f32,
        _dropout: f64,
    ) -> FloatTensor<Self> {
        let score_bias = key_mask.map(|mask| mask.bias);
        let (Some([q, k, v]), Some(bias)) = (
            f32_arrays([&query, &key, &value]),
            optional_f32(score_bias.as_ref()),
        ) else {
            return reference::self_attention::<Self>(query, key, value, score_bias, scale);
        };
        let output = kernels::attention(&q, &k, &v, bias.as_ref(), scale, None, false);
        NdArrayTensor::from(fitted("self_attention", output).context)
    }

    fn self_attention_saving(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        key_mask: Option<KeyMask<Self>>,
        scale: f32,
        dropout: f64,
    ) -> (FloatTensor<Self>, AttentionSaved<Self>) {
        let score_bias = key_mask.map(|mask| mask.bias);
        let (Some([q, k, v]), Some(bias)) = (
            f32_arrays([&query, &key, &value]),
            optional_f32(score_bias.as_ref()),
        ) else {
            return reference::self_attention_saving::<Self>(
                query, key, value, score_bias, scale, dropout,
            );
        };
        let dropout = (dropout > 0.0).then(|| kernels::Dropout {
            keep: 1.0 - dropout as f32,
            seed: seed_from_generator::<Self>(),
        });
        let output = kernels::attention(&q, &k, &v, bias.as_ref(), scale, dropout, true);
        let output = fitted("self_attention", output);
        let saved = AttentionSaved {
            probabilities: NdArrayTensor::from(output.probabilities.expect("kept when asked")),
            multipliers: output.multipliers.map(NdArrayTensor::from),
        };
        (NdArrayTensor::from(output.context), saved)
    }

    fn self_attention_backward(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        saved: AttentionSaved<Self>,
        scale: f32,
        context_gradient: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        let arrays = f32_arrays([
            &query,
            &key,
            &value,
            &saved.probabilities,
            &context_gradient,
        ]);
        let (Some([q, k, v, p, d_out]), Some(m)) =
            (arrays, optional_f32(saved.multipliers.as_ref()))
        else {
            return reference::self_attention_backward::<Self>(
                query,
                key,
                value,
                saved,
                scale,
                context_gradient,
            );
        };
        let gradients = kernels::attention_backward(&q, &k, &v, &p, m.as_ref(), scale, &d_out);
        let gradients = fitted("self_attention_backward", gradients);
        [gradients.query, gradients.key, gradients.value].map(NdArrayTensor::from)
    }

    fn affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        let (Some([x_array, w]), Some(b)) =
            (f32_arrays([&x, &weight]), optional_f32(bias.as_ref()))
        else {
            return reference::affine::<Self>(x, weight, bias);
        };
        NdArrayTensor::from(fitted("affine", kernels::affine(&x_array, &w, b.as_ref())))
    }

    fn affine_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_gradient: FloatTensor<Self>,
        wanted: [bool; 3],
    ) -> [Option<FloatTensor<Self>>; 3] {
        let Some([x_array, w, d_y]) = f32_arrays([&x, &weight, &output_gradient]) else {
            return reference::affine_backward::<Self>(x, weight, output_gradient, wanted);
        };
        let gradients = fitted(
            "affine_backward",
            kernels::affine_backward(&x_array, &w, &d_y, wanted),
        );
        [gradients.x, gradients.weight, gradients.bias].map(|g| g.map(NdArrayTensor::from))
    }

    fn affine_gelu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let Some([x_array, w, b]) = f32_arrays([&x, &weight, &bias]) else {
            return reference::exact_gelu::<Self>(reference::affine::<Self>(x, weight, Some(bias)));
        };
        NdArrayTensor::from(fitted(
            "affine_gelu",
            kernels::affine_gelu(&x_array, &w, &b),
        ))
    }

    fn affine_add_layer_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let Some([x_array, w, b, r, g, be]) =
            f32_arrays([&x, &weight, &bias, &residual, &gamma, &beta])
        else {
            let projected = reference::affine::<Self>(x, weight, Some(bias));
            return reference::residual_layer_norm::<Self>(
                projected,
                Some(residual),
                gamma,
                Some(beta),
                epsilon,
            );
        };
        let output = kernels::affine_add_layer_norm(&x_array, &w, &b, &r, &g, &be, epsilon as f32);
        NdArrayTensor::from(fitted("affine_add_layer_norm", output))
    }

    fn residual_layer_norm(
        x: FloatTensor<Self>,
        residual: Option<FloatTensor<Self>>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let arrays = (
            f32_arrays([&x, &gamma]),
            optional_f32(residual.as_ref()),
            optional_f32(beta.as_ref()),
        );
        let (Some([x_array, g]), Some(r), Some(b)) = arrays else {
            return reference::residual_layer_norm::<Self>(x, residual, gamma, beta, epsilon);
        };
        let output =
            kernels::layer_norm(&x_array, r.as_ref(), &g, b.as_ref(), epsilon as f32, false);
        NdArrayTensor::from(fitted("residual_layer_norm", output).output)
    }

    fn residual_layer_norm_saving(
        x: FloatTensor<Self>,
        residual: Option<FloatTensor<Self>>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, LayerNormSaved<Self>) {
        let arrays = (
            f32_arrays([&x, &gamma]),
            optional_f32(residual.as_ref()),
            optional_f32(beta.as_ref()),
        );
        let (Some([x_array, g]), Some(r), Some(b)) = arrays else {
            return reference::residual_layer_norm_saving::<Self>(
                x, residual, gamma, beta, epsilon,
            );
        };
        let output =
            kernels::layer_norm(&x_array, r.as_ref(), &g, b.as_ref(), epsilon as f32, true);
        let output = fitted("residual_layer_norm", output);
        let saved = LayerNormSaved {
            normalised: NdArrayTensor::from(output.normalised.expect("kept when asked")),
            inverse_std: NdArrayTensor::from(output.inverse_std.expect("kept when asked")),
        };
        (NdArrayTensor::from(output.output), saved)
    }

    fn residual_layer_norm_backward(
        output_gradient: FloatTensor<Self>,
        saved: LayerNormSaved<Self>,
        gamma: FloatTensor<Self>,
    ) -> LayerNormGradients<Self> {
        let arrays = f32_arrays([
            &output_gradient,
            &saved.normalised,
            &saved.inverse_std,
            &gamma,
        ]);
        let Some([d_y, n, inverse_std, g]) = arrays else {
            return reference::residual_layer_norm_backward::<Self>(output_gradient, saved, gamma);
        };
        let gradients = kernels::layer_norm_backward(&d_y, &n, &inverse_std, &g);
        let gradients = fitted("residual_layer_norm_backward", gradients);
        LayerNormGradients {
            input: NdArrayTensor::from(gradients.input),
            gamma: NdArrayTensor::from(gradients.gamma),
            beta: NdArrayTensor::from(gradients.beta),
        }
    }

    fn exact_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match into_f32(x) {
            Ok(array) => NdArrayTensor::from(kernels::gelu(array)),
            Err(x) => reference::exact_gelu::<Self>(x),
        }
    }

    fn exact_gelu_backward(x: FloatTensor<Self>, gradient: FloatTensor<Self>) -> FloatTensor<Self> {
        let Some([x_array, g]) = f32_arrays([&x, &gradient]) else {
            return reference::exact_gelu_backward::<Self>(x, gradient);
        };
        NdArrayTensor::from(fitted(
            "exact_gelu_backward",
            kernels::gelu_backward(&x_array, &g),
        ))
    }

    fn cross_entropy(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        ignore_index: i64,
    ) -> CrossEntropy<Self> {
        Self::cross_entropy_saving(logits, labels, ignore_index).0
    }

    fn cross_entropy_saving(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        ignore_index: i64,
    ) -> (CrossEntropy<Self>, CrossEntropySaved<Self>) {
        let Some(array) = f32_array(&logits) else {
            return reference::cross_entropy_saving::<Self>(logits, labels, ignore_index);
        };
        let host = host_labels::<Self>(labels);
        let rows = kernels::cross_entropy(&array, &host, ignore_index).unwrap_or_else(|| {
            panic!(
                "cross_entropy: logits {:?} with {} labels, or a label outside 0..classes \
                 other than the ignore index {ignore_index}",
                array.shape(),
                host.len()
            )
        });
        let device = Default::default();
        let correct = Tensor::<Self, 1, Int>::from_data(
            TensorData::new(vec![rows.correct as i64], [1]),
            &device,
        );
        let output = CrossEntropy {
            loss: NdArrayTensor::from(kernels::row_major(vec![rows.loss], &[1])),
            correct: correct.into_primitive(),
        };
        let saved = CrossEntropySaved {
            counted: NdArrayTensor::from(kernels::row_major(vec![rows.counted as f32], &[1])),
            log_sums: NdArrayTensor::from(kernels::row_major(rows.log_sums, &[host.len()])),
        };
        (output, saved)
    }

    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        ignore_index: i64,
        saved: CrossEntropySaved<Self>,
        loss_gradient: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let arrays = f32_arrays([&logits, &saved.log_sums, &saved.counted, &loss_gradient]);
        let Some([array, log_sums, counted, upstream]) = arrays else {
            return reference::cross_entropy_backward::<Self>(
                logits,
                labels,
                ignore_index,
                saved,
                loss_gradient,
            );
        };
        let host = host_labels::<Self>(labels);
        let log_sums: Vec<f32> = log_sums.iter().copied().collect();
        let counted = counted.iter().next().copied().unwrap_or(0.0) as usize;
        let upstream = upstream.iter().next().copied().unwrap_or(0.0);
        let gradient = kernels::cross_entropy_backward(
            &array,
            &host,
            ignore_index,
            &log_sums,
            counted,
            upstream,
        );
        NdArrayTensor::from(fitted("cross_entropy_backward", gradient))
    }

    fn gather_rows(
        x: FloatTensor<Self>,
        indices: IntTensor<Self>,
        rows: &[usize],
    ) -> FloatTensor<Self> {
        match into_f32(x) {
            Ok(array) => {
                NdArrayTensor::from(fitted("gather_rows", kernels::gather_rows(&array, rows)))
            }
            Err(x) => reference::gather_rows::<Self>(x, indices),
        }
    }

    fn scatter_rows(
        x: FloatTensor<Self>,
        indices: IntTensor<Self>,
        rows: &[usize],
        n: usize,
    ) -> FloatTensor<Self> {
        match into_f32(x) {
            Ok(array) => NdArrayTensor::from(fitted(
                "scatter_rows",
                kernels::scatter_rows(&array, rows, n),
            )),
            Err(x) => reference::scatter_rows::<Self>(x, indices, n),
        }
    }

    fn reshape_in_place(x: FloatTensor<Self>, shape: Shape) -> FloatTensor<Self> {
        match into_f32(x) {
            Ok(array) => {
                let reshaped = kernels::reshaped(array, shape.as_slice());
                NdArrayTensor::from(fitted("reshape_in_place", reshaped))
            }
            Err(x) => <Self as burn::tensor::ops::FloatTensorOps<Self>>::float_reshape(x, shape),
        }
    }

    fn adamw_step<const D: usize>(
        param: Tensor<Self, D>,
        grad: Tensor<Self, D>,
        moments: Option<(Tensor<Self, D>, Tensor<Self, D>)>,
        step: &AdamWStep,
    ) -> AdamWUpdate<Self, D> {
        let primitives = (
            param.into_primitive().tensor(),
            grad.into_primitive().tensor(),
            moments.map(|(m, v)| (m.into_primitive().tensor(), v.into_primitive().tensor())),
        );
        let (p, g, moments) = primitives;
        let all_f32 = [
            Some(&p),
            Some(&g),
            moments.as_ref().map(|m| &m.0),
            moments.as_ref().map(|m| &m.1),
        ]
        .iter()
        .flatten()
        .all(|t| matches!(t, NdArrayTensor::F32(_)));
        if !all_f32 {
            let tensor =
                |t| Tensor::<Self, D>::from_primitive(burn::tensor::TensorPrimitive::Float(t));
            return reference::adamw_step(
                tensor(p),
                tensor(g),
                moments.map(|(m, v)| (tensor(m), tensor(v))),
                step,
            );
        }
        let take =
            |t: NdArrayTensor| into_f32(t).unwrap_or_else(|_| unreachable!("checked to be f32"));
        let grad = take(g);
        let moments = moments.map(|(m, v)| (take(m), take(v)));
        let kernel_step = kernels::AdamWStep {
            learning_rate: step.learning_rate,
            beta_1: step.beta_1,
            beta_2: step.beta_2,
            epsilon: step.epsilon,
            weight_decay: step.weight_decay,
            time: step.time,
        };
        let updated = fitted(
            "adamw_step",
            kernels::adamw(take(p), &grad, moments, &kernel_step),
        );
        let tensor = |a: Array| {
            Tensor::<Self, D>::from_primitive(burn::tensor::TensorPrimitive::Float(
                NdArrayTensor::from(a),
            ))
        };
        AdamWUpdate {
            param: tensor(updated.param),
            moment_1: tensor(updated.moment_1),
            moment_2: tensor(updated.moment_2),
        }
    }
}

/// A seed for the attention kernel's dropout masks drawn from the backend's own generator
/// (two numbers), so that `B::seed` makes the masks repeat.
fn seed_from_generator<B: burn::tensor::backend::Backend>() -> u64 {
    let draw = Tensor::<B, 1>::random([2], Distribution::Default, &Default::default());
    let values = draw.into_data().to_vec::<f32>().unwrap_or_default();
    values.iter().fold(0u64, |seed, v| {
        (seed << 32) ^ u64::from((v * 4_294_967_296.0) as u32)
    })
}
