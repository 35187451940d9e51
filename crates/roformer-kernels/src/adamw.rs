//! One AdamW update (Loshchilov & Hutter 2019) of a parameter and its two moment
//! estimates in a single pass over memory, in place where the arrays are not shared.
//!
//! The arithmetic is burn 0.21's `AdamW` (`burn_optim::optim::adamw`), operation for
//! operation: `m ← β₁·m + (1−β₁)·g`, `v ← β₂·v + (1−β₂)·g²`, `m̂ = m / (1−β₁ᵗ)`,
//! `v̂ = v / (1−β₂ᵗ)`, `p ← p·(1 − lr·λ) − lr·m̂ / (√v̂ + ε)`. burn evaluates that as about
//! fifteen tensor operations, each reading and writing whole parameter-sized arrays;
//! here each element is read and written once.

use ndarray::IxDyn;
use rayon::prelude::*;

use crate::Array;
use crate::dispatch::{self, Kernel};
use crate::vectorize::multiversion;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// The hyper-parameters of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// Learning rate of this step.
    pub learning_rate: f64,
    /// Decay of the first-moment estimate (β₁).
    pub beta_1: f32,
    /// Decay of the second-moment estimate (β₂).
    pub beta_2: f32,
    /// Added to `√v̂` in the denominator (ε).
    pub epsilon: f32,
    /// Decoupled weight decay (λ), multiplied by the learning rate.
    pub weight_decay: f32,
    /// Number of this step, from 1 (for the bias corrections).
    pub time: usize,
}

/// A parameter and its moment estimates after a step.
#[derive(Debug)]
pub struct AdamWMoments {
    /// The updated parameter.
    pub param: Array,
    /// The first-moment estimate `m`.
    pub moment_1: Array,
    /// The second-moment estimate `v`.
    pub moment_2: Array,
}

/// One AdamW step of `param` with gradient `grad` and the previous moments (`None` on the
/// first step: both start at zero), updated in place where the buffers are not shared.
/// `None` unless all have one shape.
pub fn adamw(
    param: Array,
    grad: &Array,
    moments: Option<(Array, Array)>,
    step: &AdamWStep,
) -> Option<AdamWMoments> {
    let (p, g, moments_arrays) = (param, grad, moments);
    let shape = p.shape().to_vec();
    let same_shape = |a: &Array| a.shape() == shape.as_slice();
    if !same_shape(g)
        || !moments_arrays
            .as_ref()
            .is_none_or(|(m, v)| same_shape(m) && same_shape(v))
    {
        return None;
    }
    dispatch::record(Kernel::AdamW);
    // Unless the caller kept clones, the arrays are the only owners of their buffers, so
    // the updates below happen in place.
    let mut p = row_major_owned(p);
    let (mut m, mut v) = match moments_arrays {
        Some((m, v)) => (row_major_owned(m), row_major_owned(v)),
        None => (
            ndarray::Array::zeros(IxDyn(&shape)),
            ndarray::Array::zeros(IxDyn(&shape)),
        ),
    };
    let g = g.as_standard_layout();
    let coefficients = Coefficients::of(step);
    let (p_slice, m_slice, v_slice, g_slice) = (
        p.as_slice_mut().expect("row-major"),
        m.as_slice_mut().expect("row-major"),
        v.as_slice_mut().expect("row-major"),
        g.as_slice().expect("row-major"),
    );
    p_slice
        .par_chunks_mut(CHUNK)
        .zip(m_slice.par_chunks_mut(CHUNK))
        .zip(v_slice.par_chunks_mut(CHUNK))
        .zip(g_slice.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| update(p, m, v, g, coefficients));
    Some(AdamWMoments {
        param: p.into_shared(),
        moment_1: m.into_shared(),
        moment_2: v.into_shared(),
    })
}

/// `array` as an owned row-major array, copied only when shared or strided.
fn row_major_owned(array: Array) -> ndarray::Array<f32, IxDyn> {
    if array.is_standard_layout() {
        array.into_owned()
    } else {
        array.as_standard_layout().into_owned()
    }
}

/// The scalars of a step, computed once in the precision burn uses for each.
#[derive(Clone, Copy)]
struct Coefficients {
    beta_1: f32,
    one_minus_beta_1: f32,
    beta_2: f32,
    one_minus_beta_2: f32,
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    /// `1 − lr·λ`, computed in f64 as burn does.
    decay: f32,
    learning_rate: f32,
}

impl Coefficients {
    fn of(step: &AdamWStep) -> Self {
        let time = step.time as i32;
        Self {
            beta_1: step.beta_1,
            one_minus_beta_1: 1.0 - step.beta_1,
            beta_2: step.beta_2,
            one_minus_beta_2: 1.0 - step.beta_2,
            correction_1: 1.0 - step.beta_1.powi(time),
            correction_2: 1.0 - step.beta_2.powi(time),
            epsilon: step.epsilon,
            decay: (1.0 - step.learning_rate * step.weight_decay as f64) as f32,
            learning_rate: step.learning_rate as f32,
        }
    }
}

multiversion! {
    fn update(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: Coefficients) {
        for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            *m = *m * c.beta_1 + g * c.one_minus_beta_1;
            *v = *v * c.beta_2 + g * g * c.one_minus_beta_2;
            let m_hat = *m / c.correction_1;
            let v_hat = *v / c.correction_2;
            *p = *p * c.decay - m_hat / (v_hat.sqrt() + c.epsilon) * c.learning_rate;
        }
    }
}
