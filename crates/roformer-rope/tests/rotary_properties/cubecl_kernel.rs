//! The cubecl rotation kernel on WGPU (lavapipe on a machine without a GPU), as burn's
//! CubeBackend (`Wgpu` without burn's `fusion` feature) and under burn's fusion wrapper
//! (what the project's `wgpu` feature builds), against [`rotary_reference`] on ndarray in
//! f64: both layouts, partial rotation, tables read from a row past 0, a head split by
//! `swap_dims` (not contiguous), f16 tensors, a query and key rotated together, and the
//! backward step against burn's autodiff of the reference. Each check also reads the launch
//! counts: the kernel ran (no silent fallback to the reference), and a pair is one launch.
//!
//! The tables here are random, not cosines and sines: the operation is
//! `x·cos + partner(x)·signed_sin` for any tables, and random ones catch a swapped or
//! misplaced read that a rotation's structure could hide.

use burn::backend::wgpu::{CubeBackend, WgpuRuntime};
use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_fusion::Fusion;
use roformer_rope::dispatch::{self, Launch};
use roformer_rope::{RopeLayout, RotaryBackend, RotaryEmbeddingConfig, rotary_reference};
use roformer_testing::{gap, random_values, tensor_values};

/// burn's CubeBackend on WGPU (named in full: burn's `Wgpu` alias is the fusion wrapper
/// when burn's `fusion` feature is on in the build).
type Cube = CubeBackend<WgpuRuntime, f32, i32, u32>;
/// burn's fusion wrapper of it.
type Fused = Fusion<Cube>;
/// Where the expected values come from: the reference on ndarray, with f64 tensors.
/// (`NdArray<f64>` would not do: burn 0.21 keeps one default float type per device, set by
/// the first backend to use it, and `NdArray<f32>` shares the device.)
type Reference = NdArray;

/// Largest |difference| from the f64 reference for f32 tensors. Inputs and tables are in
/// [-1, 1), so outputs are below 2 and one f32 rounding of each product and the sum is at
/// most ~4e-7.
const F32_TOLERANCE: f64 = 1e-6;
/// The same for f16 tensors: the output is rounded to f16 once, at most 2^-11 · 2 ≈ 1e-3
/// below 2 (the reference is computed on the f16-rounded input).
const F16_TOLERANCE: f64 = 1.5e-3;

/// One shape of the operation: `x` of `dims`, tables `[positions, rotated]` read from
/// row `first`.
#[derive(Debug, Clone, Copy)]
struct Case {
    dims: [usize; 4],
    rotated: usize,
    positions: usize,
    first: usize,
    layout: RopeLayout,
}

/// Both layouts, each with full and partial rotation, from row 0 and from a later row.
const CASES: [Case; 4] = [
    Case {
        dims: [2, 3, 7, 16],
        rotated: 16,
        positions: 7,
        first: 0,
        layout: RopeLayout::Interleaved,
    },
    Case {
        dims: [2, 3, 7, 16],
        rotated: 16,
        positions: 9,
        first: 2,
        layout: RopeLayout::Half,
    },
    Case {
        dims: [1, 2, 5, 12],
        rotated: 6,
        positions: 20,
        first: 11,
        layout: RopeLayout::Interleaved,
    },
    Case {
        dims: [2, 2, 6, 20],
        rotated: 12,
        positions: 10,
        first: 3,
        layout: RopeLayout::Half,
    },
];

/// A tensor of `dtype` on `B`'s default device.
fn tensor_of<B: Backend, const D: usize>(
    values: &[f32],
    dims: [usize; D],
    dtype: DType,
) -> Tensor<B, D> {
    let data = TensorData::new(values.to_vec(), dims);
    let tensor = Tensor::from_data(data, (&Default::default(), dtype));
    assert_eq!(tensor.dtype(), dtype);
    tensor
}

/// An f32 tensor, for the backends under test.
fn tensor<B: Backend, const D: usize>(values: &[f32], dims: [usize; D]) -> Tensor<B, D> {
    tensor_of(values, dims, DType::F32)
}

/// An f64 tensor, for the reference.
fn tensor_f64<const D: usize>(values: &[f32], dims: [usize; D]) -> Tensor<Reference, D> {
    tensor_of(values, dims, DType::F64)
}

/// The tables of `case`, as host values.
fn tables(case: &Case, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let n = case.positions * case.rotated;
    (random_values(n, seed), random_values(n, seed + 1))
}

/// `B::rotary` on tensors.
fn rotate<B: RotaryBackend, const D: usize>(
    x: Tensor<B, D>,
    (cos, signed_sin): (Tensor<B, 2>, Tensor<B, 2>),
    case: &Case,
) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(B::rotary(
        x.into_primitive().tensor(),
        cos.into_primitive().tensor(),
        signed_sin.into_primitive().tensor(),
        case.first,
        case.layout,
    )))
}

/// `B::rotary_pair` on tensors.
fn rotate_pair<B: RotaryBackend, const D: usize>(
    q: Tensor<B, D>,
    k: Tensor<B, D>,
    (cos, signed_sin): (Tensor<B, 2>, Tensor<B, 2>),
    case: &Case,
) -> (Tensor<B, D>, Tensor<B, D>) {
    let (q, k) = B::rotary_pair(
        q.into_primitive().tensor(),
        k.into_primitive().tensor(),
        cos.into_primitive().tensor(),
        signed_sin.into_primitive().tensor(),
        case.first,
        case.layout,
    );
    let float = |x| Tensor::from_primitive(TensorPrimitive::Float(x));
    (float(q), float(k))
}

/// [`rotary_reference`] in f64 on host values of `x` and the tables.
fn expected(x: &[f32], (cos, signed_sin): &(Vec<f32>, Vec<f32>), case: &Case) -> Vec<f32> {
    let table = |values: &[f32]| tensor_f64(values, [case.positions, case.rotated]);
    let x = tensor_f64(x, case.dims);
    let rotated = Tensor::<Reference, 4>::from_primitive(TensorPrimitive::Float(
        rotary_reference::<Reference>(
            x.into_primitive().tensor(),
            table(cos).into_primitive().tensor(),
            table(signed_sin).into_primitive().tensor(),
            case.first,
            case.layout,
        ),
    ));
    assert_eq!(rotated.dtype(), DType::F64);
    tensor_values(rotated)
}

/// Fails unless `got` is within `tolerance` of `expected` (and finite); prints the gap.
#[track_caller]
fn assert_near(what: &str, got: &[f32], expected: &[f32], tolerance: f64) {
    let gap = gap(got, expected);
    eprintln!("{what}: {gap}");
    assert!(
        gap.max_abs < tolerance,
        "{what}: {gap} (tolerance {tolerance:e})"
    );
}

/// Runs `run` and returns its output with the launches of each kernel it asked for.
fn launched<T>(run: impl FnOnce() -> T) -> (T, [u64; 2]) {
    let count = || [Launch::Rotary, Launch::RotaryPair].map(dispatch::launches);
    let before = count();
    let output = run();
    let after = count();
    (output, [after[0] - before[0], after[1] - before[1]])
}

/// `G`'s rotation of each case, of a contiguous `x` and of one split into heads by
/// `swap_dims`, against the reference: one launch each.
fn matches_reference<G: RotaryBackend>(name: &str) {
    for (index, case) in CASES.iter().enumerate() {
        let seed = 10 * index as u64;
        let x = random_values(case.dims.iter().product(), seed);
        let tables_host = tables(case, seed + 2);
        let table = |values: &[f32]| tensor::<G, 2>(values, [case.positions, case.rotated]);
        let gpu_tables = || (table(&tables_host.0), table(&tables_host.1));

        let (got, launches) =
            launched(|| tensor_values(rotate(tensor::<G, 4>(&x, case.dims), gpu_tables(), case)));
        assert_near(
            &format!("{name} {case:?}"),
            &got,
            &expected(&x, &tables_host, case),
            F32_TOLERANCE,
        );
        assert_eq!(launches, [1, 0], "{name} {case:?}: launches");

        // [b, s, h, d] viewed as [b, h, s, d], as attention splits heads.
        let [b, h, s, d] = case.dims;
        let (split, launches) = launched(|| {
            let x = tensor::<G, 4>(&x, [b, s, h, d]).swap_dims(1, 2);
            tensor_values(rotate(x, gpu_tables(), case))
        });
        let x_split = tensor_values(tensor_f64(&x, [b, s, h, d]).swap_dims(1, 2));
        assert_near(
            &format!("{name} {case:?} after swap_dims"),
            &split,
            &expected(&x_split, &tables_host, case),
            F32_TOLERANCE,
        );
        assert_eq!(
            launches,
            [1, 0],
            "{name} {case:?} after swap_dims: launches"
        );
    }
}

#[test]
fn cube_kernel_matches_reference() {
    matches_reference::<Cube>("CubeBackend");
}

#[test]
fn fused_kernel_matches_reference() {
    matches_reference::<Fused>("Fusion");
}

/// A pair is one launch and gives what two single rotations give, for a query and key
/// split into heads by `swap_dims` as attention has them.
fn pair_is_one_launch<G: RotaryBackend>(name: &str) {
    for (index, case) in CASES.iter().enumerate() {
        let seed = 100 + 10 * index as u64;
        let [b, h, s, d] = case.dims;
        let n = b * h * s * d;
        let (q, k) = (random_values(n, seed), random_values(n, seed + 1));
        let tables_host = tables(case, seed + 2);
        let table = |values: &[f32]| tensor::<G, 2>(values, [case.positions, case.rotated]);
        let gpu_tables = || (table(&tables_host.0), table(&tables_host.1));
        let heads = |values: &[f32]| tensor::<G, 4>(values, [b, s, h, d]).swap_dims(1, 2);

        let ((q_pair, k_pair), launches) = launched(|| {
            let (q, k) = rotate_pair(heads(&q), heads(&k), gpu_tables(), case);
            (tensor_values(q), tensor_values(k))
        });
        assert_eq!(launches, [0, 1], "{name} {case:?}: a pair is one launch");
        let ((q_single, k_single), launches) = launched(|| {
            (
                tensor_values(rotate(heads(&q), gpu_tables(), case)),
                tensor_values(rotate(heads(&k), gpu_tables(), case)),
            )
        });
        assert_eq!(launches, [2, 0], "{name} {case:?}: two single rotations");
        assert_near(
            &format!("{name} {case:?} q pair vs single"),
            &q_pair,
            &q_single,
            1e-7,
        );
        assert_near(
            &format!("{name} {case:?} k pair vs single"),
            &k_pair,
            &k_single,
            1e-7,
        );

        let host_heads =
            |values: &[f32]| tensor_values(tensor_f64(values, [b, s, h, d]).swap_dims(1, 2));
        let what = format!("{name} {case:?} pair");
        let reference = |x: &[f32]| expected(&host_heads(x), &tables_host, case);
        assert_near(&format!("{what} q"), &q_pair, &reference(&q), F32_TOLERANCE);
        assert_near(&format!("{what} k"), &k_pair, &reference(&k), F32_TOLERANCE);
    }
}

#[test]
fn cube_pair_is_one_launch() {
    pair_is_one_launch::<Cube>("CubeBackend");
}

#[test]
fn fused_pair_is_one_launch() {
    pair_is_one_launch::<Fused>("Fusion");
}

/// f16 tensors on an f32 backend (f32 tables) rotate as f16, alone and in pairs.
fn f16_tensors<G: RotaryBackend>(name: &str) {
    let case = &CASES[3];
    let n = case.dims.iter().product();
    let (q, k) = (random_values(n, 200), random_values(n, 201));
    let tables_host = tables(case, 202);
    let table = |values: &[f32]| tensor::<G, 2>(values, [case.positions, case.rotated]);
    let gpu_tables = || (table(&tables_host.0), table(&tables_host.1));
    let half = |values: &[f32]| tensor::<G, 4>(values, case.dims).cast(DType::F16);
    // The reference rotates the f16-rounded values.
    let (q_half, k_half) = (tensor_values(half(&q)), tensor_values(half(&k)));

    let (rotated, launches) = launched(|| {
        let rotated = rotate(half(&q), gpu_tables(), case);
        assert_eq!(rotated.dtype(), DType::F16, "{name}: the output stays f16");
        tensor_values(rotated)
    });
    assert_eq!(launches, [1, 0], "{name} f16: launches");
    let reference = |x: &[f32]| expected(x, &tables_host, case);
    assert_near(
        &format!("{name} f16"),
        &rotated,
        &reference(&q_half),
        F16_TOLERANCE,
    );

    let ((q_rotated, k_rotated), launches) = launched(|| {
        let (q, k) = rotate_pair(half(&q), half(&k), gpu_tables(), case);
        assert_eq!((q.dtype(), k.dtype()), (DType::F16, DType::F16));
        (tensor_values(q), tensor_values(k))
    });
    assert_eq!(launches, [0, 1], "{name} f16 pair: launches");
    assert_near(
        &format!("{name} f16 pair q"),
        &q_rotated,
        &reference(&q_half),
        F16_TOLERANCE,
    );
    assert_near(
        &format!("{name} f16 pair k"),
        &k_rotated,
        &reference(&k_half),
        F16_TOLERANCE,
    );
}

#[test]
fn cube_f16_tensors() {
    f16_tensors::<Cube>("CubeBackend");
}

#[test]
fn fused_f16_tensors() {
    f16_tensors::<Fused>("Fusion");
}

/// How [`gradients_of`] rotates.
#[derive(Clone, Copy, PartialEq)]
enum Rotation {
    /// `B::rotary_pair`.
    Pair,
    /// `B::rotary` twice.
    Single,
    /// [`rotary_reference`] twice, differentiated by burn's autodiff: independent of the
    /// recorded backward step under test.
    Reference,
}

/// The gradients of `Σ rotate(q)·w_q + Σ rotate(k)·w_k` with respect to `q` and `k`,
/// through `Autodiff<B>`.
fn gradients_of<B: RotaryBackend>(
    [q, k, w_q, w_k]: [&[f32]; 4],
    tables_host: &(Vec<f32>, Vec<f32>),
    case: &Case,
    rotation: Rotation,
    dtype: DType,
) -> (Vec<f32>, Vec<f32>) {
    type Ad<B> = Autodiff<B>;
    let table =
        |values: &[f32]| tensor_of::<Ad<B>, 2>(values, [case.positions, case.rotated], dtype);
    let ad_tables = || (table(&tables_host.0), table(&tables_host.1));
    let q = tensor_of::<Ad<B>, 4>(q, case.dims, dtype).require_grad();
    let k = tensor_of::<Ad<B>, 4>(k, case.dims, dtype).require_grad();
    let reference = |x: Tensor<Ad<B>, 4>| {
        let (cos, signed_sin) = ad_tables();
        Tensor::from_primitive(TensorPrimitive::Float(rotary_reference::<Ad<B>>(
            x.into_primitive().tensor(),
            cos.into_primitive().tensor(),
            signed_sin.into_primitive().tensor(),
            case.first,
            case.layout,
        )))
    };
    let (q_rotated, k_rotated) = match rotation {
        Rotation::Pair => rotate_pair(q.clone(), k.clone(), ad_tables(), case),
        Rotation::Single => (
            rotate(q.clone(), ad_tables(), case),
            rotate(k.clone(), ad_tables(), case),
        ),
        Rotation::Reference => (reference(q.clone()), reference(k.clone())),
    };
    let loss = (q_rotated * tensor_of::<Ad<B>, 4>(w_q, case.dims, dtype)).sum()
        + (k_rotated * tensor_of::<Ad<B>, 4>(w_k, case.dims, dtype)).sum();
    let grads = loss.backward();
    let gradient = |x: &Tensor<Ad<B>, 4>| {
        let gradient = x.grad(&grads).expect("an input has a gradient");
        assert_eq!(gradient.dtype(), dtype);
        tensor_values(gradient)
    };
    (gradient(&q), gradient(&k))
}

/// The backward steps recorded by `Autodiff<G>` (for a pair and for single rotations)
/// against burn's autodiff of the reference in f64.
fn gradients<G: RotaryBackend>(name: &str) {
    for (index, case) in CASES.iter().enumerate() {
        let seed = 300 + 10 * index as u64;
        let n = case.dims.iter().product();
        let values: Vec<Vec<f32>> = (0..4).map(|i| random_values(n, seed + i)).collect();
        let inputs = [0, 1, 2, 3].map(|i| values[i].as_slice());
        let tables_host = tables(case, seed + 5);
        let (q_expected, k_expected) =
            gradients_of::<Reference>(inputs, &tables_host, case, Rotation::Reference, DType::F64);
        let what = format!("{name} {case:?} gradient");

        let ((q_grad, k_grad), launches) =
            launched(|| gradients_of::<G>(inputs, &tables_host, case, Rotation::Pair, DType::F32));
        // The forward pair, then one transposed rotation per gradient.
        assert_eq!(launches, [2, 1], "{what}s of a pair: launches");
        assert_near(&format!("{what} q"), &q_grad, &q_expected, F32_TOLERANCE);
        assert_near(&format!("{what} k"), &k_grad, &k_expected, F32_TOLERANCE);

        let ((q_grad, k_grad), launches) = launched(|| {
            gradients_of::<G>(inputs, &tables_host, case, Rotation::Single, DType::F32)
        });
        assert_eq!(launches, [4, 0], "{what}s of single rotations: launches");
        assert_near(
            &format!("{what} q single"),
            &q_grad,
            &q_expected,
            F32_TOLERANCE,
        );
        assert_near(
            &format!("{what} k single"),
            &k_grad,
            &k_expected,
            F32_TOLERANCE,
        );
    }
}

#[test]
fn cube_gradients_match_reference_autodiff() {
    gradients::<Cube>("CubeBackend");
}

#[test]
fn fused_gradients_match_reference_autodiff() {
    gradients::<Fused>("Fusion");
}

/// The layer on WGPU gives what it gives on ndarray, inside the precomputed table and past
/// it (rows computed for the call), one pair launch per `apply_pair`.
fn layer_matches_ndarray<G: RotaryBackend>(name: &str) {
    for layout in [RopeLayout::Interleaved, RopeLayout::Half] {
        let config = RotaryEmbeddingConfig::new(16)
            .with_max_positions(8)
            .with_rotary_dim(Some(12))
            .with_layout(layout);
        let gpu = config.init::<G>(&Default::default()).unwrap();
        let cpu = config.init::<NdArray>(&Default::default()).unwrap();
        let dims = [2, 2, 5, 16];
        let n = dims.iter().product();
        let (q, k) = (random_values(n, 400), random_values(n, 401));
        for offset in [0, 6] {
            let ((q_gpu, k_gpu), launches) = launched(|| {
                let (q, k) =
                    gpu.apply_pair(tensor::<G, 4>(&q, dims), tensor::<G, 4>(&k, dims), offset);
                (tensor_values(q), tensor_values(k))
            });
            assert_eq!(
                launches,
                [0, 1],
                "{name} {layout:?} offset {offset}: launches"
            );
            let cpu_apply =
                |x: &[f32]| tensor_values(cpu.apply(tensor::<NdArray, 4>(x, dims), offset));
            let what = format!("{name} layer {layout:?} offset {offset}");
            assert_near(&format!("{what} q"), &q_gpu, &cpu_apply(&q), F32_TOLERANCE);
            assert_near(&format!("{what} k"), &k_gpu, &cpu_apply(&k), F32_TOLERANCE);
        }
    }
}

#[test]
fn cube_layer_matches_ndarray() {
    layer_matches_ndarray::<Cube>("CubeBackend");
}

#[test]
fn fused_layer_matches_ndarray() {
    layer_matches_ndarray::<Fused>("Fusion");
}

/// Tables that end before the rows are a panic naming the operation, before anything runs.
fn short_tables_panic<G: RotaryBackend>() {
    let case = Case {
        positions: 8,
        first: 4,
        ..CASES[0]
    };
    let tables_host = tables(&case, 500);
    let table = |values: &[f32]| tensor::<G, 2>(values, [case.positions, case.rotated]);
    let x = tensor::<G, 4>(&random_values(case.dims.iter().product(), 501), case.dims);
    rotate(x, (table(&tables_host.0), table(&tables_host.1)), &case);
}

#[test]
#[should_panic(expected = "rotary embedding: tables of 8 rows from row 4 do not cover 7 positions")]
fn cube_short_tables_panic() {
    short_tables_panic::<Cube>();
}

#[test]
#[should_panic(expected = "rotary embedding: tables of 8 rows from row 4 do not cover 7 positions")]
fn fused_short_tables_panic() {
    short_tables_panic::<Fused>();
}
