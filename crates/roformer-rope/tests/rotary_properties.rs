//! Numerical tests of the rotary embedding: against a plain-Rust complex-multiplication
//! reference, against burn's own `RotaryEncoding`, and the mathematical properties that
//! define RoPE (relative positions, norm preservation, layout equivalence, gradients); and,
//! in [`cubecl_kernel`], the cubecl kernel on WGPU against the reference.

#[path = "rotary_properties/cubecl_kernel.rs"]
mod cubecl_kernel;

use burn::backend::{Autodiff, NdArray};
use burn::nn::RotaryEncodingConfig;
use burn::tensor::{Int, Tensor, TensorData};
use roformer_rope::{
    RopeLayout, RopeScaling, RotaryEmbedding, RotaryEmbeddingConfig, inverse_frequencies,
};
use roformer_testing::max_abs_diff;
use roformer_testing::{random_values, tensor_values};

type B = NdArray;

fn tensor4(dims: [usize; 4], seed: u64) -> Tensor<B, 4> {
    let n = dims.iter().product();
    Tensor::from_data(
        TensorData::new(random_values(n, seed), dims),
        &Default::default(),
    )
}

fn rope(config: RotaryEmbeddingConfig) -> RotaryEmbedding<B> {
    config.init::<B>(&Default::default()).unwrap()
}

/// Reference: each interleaved plane (x_2i, x_2i+1) as the complex number x_2i + i·x_2i+1,
/// multiplied by e^{i·m·θ_i} (Su et al. 2021, eq. 12), in f64.
fn complex_reference(x: &[f32], dims: [usize; 4], offset: usize, rotary_dim: usize) -> Vec<f32> {
    let [_, _, seq, d] = dims;
    let theta = inverse_frequencies(10000.0, rotary_dim);
    let mut out = x.to_vec();
    for (row_index, row) in out.chunks_mut(d).enumerate() {
        let m = (offset + row_index % seq) as f64;
        for (i, theta_i) in theta.iter().enumerate() {
            let (re, im) = (row[2 * i] as f64, row[2 * i + 1] as f64);
            let (s, c) = (m * theta_i).sin_cos();
            row[2 * i] = (re * c - im * s) as f32;
            row[2 * i + 1] = (re * s + im * c) as f32;
        }
    }
    out
}

#[test]
fn matches_complex_multiplication_reference() {
    let dims = [2, 3, 7, 16];
    let x = tensor4(dims, 1);
    let x_host = tensor_values(x.clone());
    // Full rotation inside the table, past its end (offset 5 + 7 > 8), and partial rotation.
    for (max_positions, offset, rotary_dim) in [(64, 0, 16), (64, 20, 16), (8, 5, 16), (64, 3, 10)]
    {
        let layer = rope(
            RotaryEmbeddingConfig::new(16)
                .with_max_positions(max_positions)
                .with_rotary_dim(Some(rotary_dim)),
        );
        let got = tensor_values(layer.apply(x.clone(), offset));
        let expected = complex_reference(&x_host, dims, offset, rotary_dim);
        let diff = max_abs_diff(&got, &expected);
        assert!(
            diff < 1e-6,
            "max_positions={max_positions} offset={offset} rotary_dim={rotary_dim}: max |diff| {diff}"
        );
    }
}

#[test]
fn far_positions_do_not_wrap_around() {
    // Position 8 past a table of 8 must not reuse row 0.
    let layer = rope(RotaryEmbeddingConfig::new(4).with_max_positions(8));
    let x = tensor4([1, 1, 1, 4], 2);
    let at_zero = tensor_values(layer.apply(x.clone(), 0));
    let at_eight = tensor_values(layer.apply(x.clone(), 8));
    assert!(max_abs_diff(&at_zero, &at_eight) > 1e-2);
    let reference = complex_reference(&tensor_values(x), [1, 1, 1, 4], 8, 4);
    assert!(max_abs_diff(&at_eight, &reference) < 1e-6);
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

#[test]
fn scores_depend_only_on_relative_position() {
    for layout in [RopeLayout::Interleaved, RopeLayout::Half] {
        let layer = rope(RotaryEmbeddingConfig::new(32).with_layout(layout));
        let q = tensor4([1, 1, 1, 32], 3);
        let k = tensor4([1, 1, 1, 32], 4);
        let score = |m: usize, n: usize| {
            dot(
                &tensor_values(layer.apply(q.clone(), m)),
                &tensor_values(layer.apply(k.clone(), n)),
            )
        };
        for (m, n) in [(0, 0), (3, 10), (17, 2), (100, 400)] {
            let base = score(m, n);
            for shift in [1, 7, 250, 1000] {
                let shifted = score(m + shift, n + shift);
                assert!(
                    (base - shifted).abs() < 1e-4 * (1.0 + base.abs()),
                    "{layout:?} m={m} n={n} s={shift}: {base} vs {shifted}"
                );
            }
        }
        // And it does depend on the distance: a sanity check that rotation happened.
        assert!((score(0, 0) - score(0, 5)).abs() > 1e-3);
    }
}

#[test]
fn rotation_preserves_norms() {
    let dims = [2, 2, 50, 24];
    let x = tensor4(dims, 5);
    for layout in [RopeLayout::Interleaved, RopeLayout::Half] {
        let layer = rope(RotaryEmbeddingConfig::new(24).with_layout(layout));
        let before = tensor_values(x.clone());
        let after = tensor_values(layer.apply(x.clone(), 11));
        for (row_in, row_out) in before.chunks(24).zip(after.chunks(24)) {
            let (n_in, n_out) = (dot(row_in, row_in).sqrt(), dot(row_out, row_out).sqrt());
            assert!(
                (n_in - n_out).abs() < 1e-5 * n_in.max(1.0),
                "{n_in} vs {n_out}"
            );
        }
    }
}

#[test]
fn interleaved_matches_burn_rotary_encoding() {
    let device = Default::default();
    let dims = [2, 4, 33, 16];
    let x = tensor4(dims, 6);
    let ours = rope(RotaryEmbeddingConfig::new(16).with_max_positions(64));
    let burns = RotaryEncodingConfig::new(64, 16).init::<B>(&device);
    let diff = max_abs_diff(
        &tensor_values(ours.apply(x.clone(), 0)),
        &tensor_values(burns.forward(x)),
    );
    // burn computes its frequencies in f32, we in f64: agreement to f32 angle precision.
    assert!(diff < 1e-4, "max |diff| {diff}");
}

#[test]
fn half_layout_equals_interleaved_under_permutation() {
    let d = 12;
    let x = tensor4([2, 3, 9, d], 7);
    // P: interleaved feature 2i -> half feature i, 2i+1 -> i + d/2.
    let to_half: Vec<i64> = (0..d)
        .map(|j| {
            if j < d / 2 {
                2 * j as i64
            } else {
                2 * (j - d / 2) as i64 + 1
            }
        })
        .collect();
    let permute = |t: Tensor<B, 4>| {
        let index =
            Tensor::<B, 1, Int>::from_data(TensorData::new(to_half.clone(), [d]), &t.device());
        t.select(3, index)
    };
    let interleaved = rope(RotaryEmbeddingConfig::new(d));
    let half = rope(RotaryEmbeddingConfig::new(d).with_layout(RopeLayout::Half));
    let a = tensor_values(half.apply(permute(x.clone()), 4));
    let b = tensor_values(permute(interleaved.apply(x, 4)));
    assert!(max_abs_diff(&a, &b) < 1e-6);
}

fn assert_close(got: &[f64], expected: &[f64], tolerance: f64) {
    for (g, e) in got.iter().zip(expected) {
        assert!(
            (g - e).abs() <= tolerance * e.abs(),
            "{got:?} vs {expected:?}"
        );
    }
}

#[test]
fn linear_interpolation_divides_frequencies_by_factor() {
    // θ_i = 10000^(-2i/8) = 10^-i; linear scaling by 4 gives 10^-i / 4.
    let scaling = RopeScaling::Linear { factor: 4.0 };
    assert_close(
        &scaling.inverse_frequencies(10000.0, 8, 0),
        &[0.25, 0.025, 0.0025, 0.00025],
        1e-12,
    );
    // Hence position 4m under factor 4 is rotated exactly as position m unscaled.
    let scaled = rope(RotaryEmbeddingConfig::new(8).with_scaling(scaling));
    let plain = rope(RotaryEmbeddingConfig::new(8));
    let x = tensor4([1, 2, 1, 8], 8);
    for m in [1, 10, 77] {
        let diff = max_abs_diff(
            &tensor_values(scaled.apply(x.clone(), 4 * m)),
            &tensor_values(plain.apply(x.clone(), m)),
        );
        assert!(diff < 1e-5, "position {m}: {diff}");
    }
}

#[test]
fn ntk_aware_scales_the_base() {
    // d = 8, s = 2: base' = 10000 · 2^(8/6); θ'_i = base'^(-i/4).
    let base = 10000.0 * 2f64.powf(8.0 / 6.0);
    let expected: Vec<f64> = (0..4).map(|i| base.powf(-(i as f64) / 4.0)).collect();
    assert_close(
        &RopeScaling::NtkAware { factor: 2.0 }.inverse_frequencies(10000.0, 8, 0),
        &expected,
        1e-12,
    );
    // The highest frequency is unchanged: θ_0 = 1 whatever the base.
    assert_eq!(expected[0], 1.0);
}

#[test]
fn dynamic_ntk_scales_only_past_the_original_context() {
    let scaling = RopeScaling::DynamicNtk {
        factor: 2.0,
        original_max_positions: 16,
    };
    assert_close(
        &scaling.inverse_frequencies(10000.0, 8, 16),
        &[1.0, 0.1, 0.01, 0.001],
        1e-12,
    );
    // l = 32: base' = 10000 · (2·32/16 − 1)^(8/6) = 10000 · 3^(4/3).
    let base = 10000.0 * 3f64.powf(4.0 / 3.0);
    let expected: Vec<f64> = (0..4).map(|i| base.powf(-(i as f64) / 4.0)).collect();
    assert_close(
        &scaling.inverse_frequencies(10000.0, 8, 32),
        &expected,
        1e-12,
    );

    // The layer: a 32-token sequence uses the scaled base for every position, a
    // 16-token one the plain base.
    let layer = rope(RotaryEmbeddingConfig::new(8).with_scaling(scaling));
    let plain = rope(RotaryEmbeddingConfig::new(8));
    let short = tensor4([1, 1, 16, 8], 9);
    assert!(
        max_abs_diff(
            &tensor_values(layer.apply(short.clone(), 0)),
            &tensor_values(plain.apply(short, 0))
        ) < 1e-6
    );
    let long = tensor4([1, 1, 32, 8], 10);
    let ntk = rope(RotaryEmbeddingConfig::new(8).with_base(base));
    assert!(
        max_abs_diff(
            &tensor_values(layer.apply(long.clone(), 0)),
            &tensor_values(ntk.apply(long, 0))
        ) < 1e-5
    );
}

#[test]
fn yarn_blends_interpolation_and_extrapolation() {
    // d = 16, base 10000, L = 4096, s = 8, β = 32, α = 1. By hand:
    // low  = floor(16·ln(4096/(32·2π)) / (2·ln 10000)) = floor(2.618) = 2
    // high =  ceil(16·ln(4096/(1·2π))  / (2·ln 10000)) =  ceil(5.628) = 6
    // ramp_i = clamp((i − 2)/4, 0, 1); θ'_i = θ_i·(1 − ramp_i) + (θ_i/8)·ramp_i.
    let scaling = RopeScaling::Yarn {
        factor: 8.0,
        original_max_positions: 4096,
        beta_fast: 32.0,
        beta_slow: 1.0,
        attention_factor: None,
    };
    let ramp = [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0];
    let expected: Vec<f64> = (0..8)
        .map(|i| {
            let theta = 10000f64.powf(-(2.0 * i as f64) / 16.0);
            theta * (1.0 - ramp[i]) + theta / 8.0 * ramp[i]
        })
        .collect();
    assert_close(
        &scaling.inverse_frequencies(10000.0, 16, 0),
        &expected,
        1e-12,
    );

    // Attention factor 0.1·ln 8 + 1 multiplies every rotated value: norms grow by it.
    let factor = 0.1 * 8f64.ln() + 1.0;
    assert!((scaling.attention_factor() - factor).abs() < 1e-12);
    let layer = rope(RotaryEmbeddingConfig::new(16).with_scaling(scaling));
    let x = tensor4([1, 1, 5, 16], 11);
    let (before, after) = (tensor_values(x.clone()), tensor_values(layer.apply(x, 3)));
    for (a, b) in before.chunks(16).zip(after.chunks(16)) {
        let ratio = dot(b, b).sqrt() / dot(a, a).sqrt();
        assert!((ratio - factor).abs() < 1e-5, "{ratio} vs {factor}");
    }
}

#[test]
fn invalid_configs_are_errors_naming_the_field() {
    let device = Default::default();
    let odd = RotaryEmbeddingConfig::new(8)
        .with_rotary_dim(Some(5))
        .init::<B>(&device);
    assert!(odd.unwrap_err().to_string().contains("rotary_dim"));
    let too_wide = RotaryEmbeddingConfig::new(8)
        .with_rotary_dim(Some(10))
        .init::<B>(&device);
    assert!(too_wide.unwrap_err().to_string().contains("rotary_dim"));
    let bad_factor = RotaryEmbeddingConfig::new(8)
        .with_scaling(RopeScaling::Linear { factor: 0.5 })
        .init::<B>(&device);
    assert!(bad_factor.unwrap_err().to_string().contains("scaling"));
}

#[test]
fn gradients_match_finite_differences() {
    type AD = Autodiff<NdArray>;
    let device = Default::default();
    let dims = [1, 2, 5, 8];
    let n: usize = dims.iter().product();
    let x_host = random_values(n, 12);
    let weights_host = random_values(n, 13);
    for layout in [RopeLayout::Interleaved, RopeLayout::Half] {
        let layer = RotaryEmbeddingConfig::new(8)
            .with_layout(layout)
            .with_rotary_dim(Some(6))
            .init::<AD>(&device)
            .unwrap();
        let weights =
            Tensor::<AD, 4>::from_data(TensorData::new(weights_host.clone(), dims), &device);
        let loss_of = |x: Vec<f32>| -> Tensor<AD, 1> {
            let x = Tensor::<AD, 4>::from_data(TensorData::new(x, dims), &device);
            (layer.apply(x, 2) * weights.clone()).sum()
        };

        let x = Tensor::<AD, 4>::from_data(TensorData::new(x_host.clone(), dims), &device)
            .require_grad();
        let loss = (layer.apply(x.clone(), 2) * weights.clone()).sum();
        let grads = loss.backward();
        let analytic = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();

        let eps = 1e-2;
        for k in (0..n).step_by(7) {
            let (mut plus, mut minus) = (x_host.clone(), x_host.clone());
            plus[k] += eps;
            minus[k] -= eps;
            let fd = (loss_of(plus).into_scalar() - loss_of(minus).into_scalar()) / (2.0 * eps);
            assert!(
                (fd - analytic[k]).abs() < 1e-3,
                "{layout:?} feature {k}: finite difference {fd} vs autodiff {}",
                analytic[k]
            );
        }
        // Not vacuous: the rotation mixes features, so gradients differ from the weights.
        assert!(max_abs_diff(&analytic, &weights_host) > 1e-2);
    }
}
