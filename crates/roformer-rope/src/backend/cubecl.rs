//! [`RotaryBackend`] on the cubecl backends (burn's `CubeBackend`: wgpu, cuda, rocm): the
//! rotation as one cubecl kernel launch, and a query and key rotated together in one launch.
//!
//! One unit per output element reads its feature and that feature's partner from `x` by
//! `x`'s strides (so a head split by `swap_dims` is read in place, without a copy first), and
//! its row of the tables, also by strides, from `first_position` on. It works in the
//! tensor's float type as burn's kernels do (the type is a run-time property of a burn 0.21
//! tensor, so an f16 or bf16 tensor on an f32 backend is rotated as f16 or bf16), reads the
//! tables in theirs, and computes in f32 (f64 for f64 tensors) before rounding once: the
//! tables are f32 host values, and casting them to f16 first would round them needlessly.

use burn::tensor::{DType, Shape, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::calculate_cube_count_elemwise;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::std::FastDivmod;
use burn_cubecl::kernel::cast;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};

use super::{RotaryBackend, assert_same_shape, assert_tables_fit};
use crate::dispatch::{self, Launch};
use crate::layout::RopeLayout;

impl<R, F, I, BT> RotaryBackend for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn rotary(
        x: CubeTensor<R>,
        cos: CubeTensor<R>,
        signed_sin: CubeTensor<R>,
        first_position: usize,
        layout: RopeLayout,
    ) -> CubeTensor<R> {
        rotary(x, cos, signed_sin, first_position, layout)
    }

    fn rotary_pair(
        q: CubeTensor<R>,
        k: CubeTensor<R>,
        cos: CubeTensor<R>,
        signed_sin: CubeTensor<R>,
        first_position: usize,
        layout: RopeLayout,
    ) -> (CubeTensor<R>, CubeTensor<R>) {
        rotary_pair(q, k, cos, signed_sin, first_position, layout)
    }
}

/// Row-major offset of the element at logical `position` of a tensor of `shape`, by its
/// strides.
#[cube]
fn offset_in<E: CubePrimitive>(
    tensor: &Tensor<E>,
    position: usize,
    shape: &Sequence<FastDivmod<usize>>,
) -> usize {
    let rank = shape.len().comptime();
    let mut rest = position;
    let mut offset = 0;
    #[unroll]
    for i in 0..rank {
        let dim = rank - i - 1;
        let (outer, coordinate) = shape.index(dim).div_mod(rest);
        rest = outer;
        offset += coordinate * tensor.stride(dim);
    }
    offset
}

/// The feature rotated together with `feature` (< `width`): its neighbour in
/// [`RopeLayout::Interleaved`], the feature `width / 2` away in [`RopeLayout::Half`].
#[cube]
fn partner_of(feature: usize, width: usize, #[comptime] half: bool) -> usize {
    if half {
        (feature + width / 2) % width
    } else {
        // 2i ↔ 2i + 1, without a branch.
        feature + 1 - 2 * (feature % 2)
    }
}

/// `x·cos + partner(x)·signed_sin` at `offset` of `x` (whose feature `feature` is there), in
/// `A`, rounded to `E` once.
#[cube]
fn rotated<E: Float, A: Float>(
    x: &Tensor<E>,
    offset: usize,
    feature: usize,
    partner: usize,
    cos: A,
    signed_sin: A,
) -> E {
    let feature_stride = x.stride(x.rank() - 1);
    let partner_offset = offset - feature * feature_stride + partner * feature_stride;
    E::cast_from(A::cast_from(x[offset]) * cos + A::cast_from(x[partner_offset]) * signed_sin)
}

/// One unit per element of `x` (`[..., seq, d]`, logical shape `shape`).
#[cube(launch, address_type = "dynamic")]
fn rotary_kernel<E: Float, T: Float, A: Float>(
    x: &Tensor<E>,
    cos: &Tensor<T>,
    signed_sin: &Tensor<T>,
    output: &mut Tensor<E>,
    shape: Sequence<FastDivmod<usize>>,
    first_position: usize,
    #[comptime] half: bool,
    #[define(E, T, A)] _dtypes: [StorageType; 3],
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let rank = shape.len().comptime();
    let (rows, feature) = shape.index(rank - 1).div_mod(ABSOLUTE_POS);
    let row = shape.index(rank - 2).modulo(rows);
    let x_offset = offset_in(x, ABSOLUTE_POS, &shape);
    let output_offset = offset_in(output, ABSOLUTE_POS, &shape);
    let width = cos.shape(1);
    if feature < width {
        let partner = partner_of(feature, width, half);
        let table_row = first_position + row;
        let c = A::cast_from(cos[table_row * cos.stride(0) + feature * cos.stride(1)]);
        let s = A::cast_from(
            signed_sin[table_row * signed_sin.stride(0) + feature * signed_sin.stride(1)],
        );
        output[output_offset] = rotated::<E, A>(x, x_offset, feature, partner, c, s);
    } else {
        output[output_offset] = x[x_offset];
    }
}

/// One unit per element of `q` and the same element of `k` (both of logical shape
/// `shape`): the table row and the index arithmetic are shared.
#[cube(launch, address_type = "dynamic")]
#[allow(clippy::too_many_arguments)]
fn rotary_pair_kernel<E: Float, T: Float, A: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    cos: &Tensor<T>,
    signed_sin: &Tensor<T>,
    q_output: &mut Tensor<E>,
    k_output: &mut Tensor<E>,
    shape: Sequence<FastDivmod<usize>>,
    first_position: usize,
    #[comptime] half: bool,
    #[define(E, T, A)] _dtypes: [StorageType; 3],
) {
    if ABSOLUTE_POS >= q_output.len() {
        terminate!();
    }
    let rank = shape.len().comptime();
    let (rows, feature) = shape.index(rank - 1).div_mod(ABSOLUTE_POS);
    let row = shape.index(rank - 2).modulo(rows);
    let q_offset = offset_in(q, ABSOLUTE_POS, &shape);
    let k_offset = offset_in(k, ABSOLUTE_POS, &shape);
    let q_output_offset = offset_in(q_output, ABSOLUTE_POS, &shape);
    let k_output_offset = offset_in(k_output, ABSOLUTE_POS, &shape);
    let width = cos.shape(1);
    if feature < width {
        let partner = partner_of(feature, width, half);
        let table_row = first_position + row;
        let c = A::cast_from(cos[table_row * cos.stride(0) + feature * cos.stride(1)]);
        let s = A::cast_from(
            signed_sin[table_row * signed_sin.stride(0) + feature * signed_sin.stride(1)],
        );
        q_output[q_output_offset] = rotated::<E, A>(q, q_offset, feature, partner, c, s);
        k_output[k_output_offset] = rotated::<E, A>(k, k_offset, feature, partner, c, s);
    } else {
        q_output[q_output_offset] = q[q_offset];
        k_output[k_output_offset] = k[k_offset];
    }
}

/// What a launch needs besides the tensors: the three types of the kernel, and the tables
/// in one type. Panics, naming the operation, when the shapes or types do not fit.
fn prepare<R: CubeRuntime>(
    x_dtype: DType,
    x_shape: &Shape,
    cos: &CubeTensor<R>,
    signed_sin: CubeTensor<R>,
    first_position: usize,
) -> ([StorageType; 3], CubeTensor<R>) {
    assert_tables_fit(x_shape, &cos.shape(), &signed_sin.shape(), first_position);
    let arithmetic = match x_dtype {
        DType::F64 => DType::F64,
        DType::F32 | DType::Flex32 | DType::F16 | DType::BF16 => DType::F32,
        other => panic!("rotary embedding of a {other:?} tensor: needs a float tensor"),
    };
    assert!(
        matches!(
            cos.dtype,
            DType::F64 | DType::F32 | DType::Flex32 | DType::F16 | DType::BF16
        ),
        "rotary embedding with {:?} tables: needs float tables",
        cos.dtype
    );
    // The kernel reads both tables as one type.
    let signed_sin = cast(signed_sin, cos.dtype);
    (
        [x_dtype.into(), cos.dtype.into(), arithmetic.into()],
        signed_sin,
    )
}

/// `x`'s logical shape, for the kernels' index arithmetic.
fn shape_arg<R: CubeRuntime>(shape: &Shape) -> SequenceArg<R, FastDivmod<usize>> {
    let mut arg = SequenceArg::new();
    for &dim in shape.iter() {
        arg.push(dim);
    }
    arg
}

/// One launch of [`rotary_kernel`].
pub(crate) fn rotary<R: CubeRuntime>(
    x: CubeTensor<R>,
    cos: CubeTensor<R>,
    signed_sin: CubeTensor<R>,
    first_position: usize,
    layout: RopeLayout,
) -> CubeTensor<R> {
    let shape = x.shape();
    let (dtypes, signed_sin) = prepare(x.dtype, &shape, &cos, signed_sin, first_position);
    let output = empty_device_dtype(x.client.clone(), x.device.clone(), shape.clone(), x.dtype);
    let elements = shape.num_elements();
    if elements == 0 {
        return output;
    }
    let client = x.client.clone();
    let cube_dim = CubeDim::new(&client, elements);
    let cube_count = calculate_cube_count_elemwise(&client, elements, cube_dim);
    let address_type = [&x, &cos, &signed_sin, &output]
        .map(CubeTensor::required_address_type)
        .into_iter()
        .max()
        .unwrap_or_default();
    rotary_kernel::launch(
        &client,
        cube_count,
        cube_dim,
        address_type,
        x.into_tensor_arg(),
        cos.into_tensor_arg(),
        signed_sin.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        shape_arg(&shape),
        first_position,
        layout == RopeLayout::Half,
        dtypes,
    );
    dispatch::record(Launch::Rotary);
    output
}

/// One launch of [`rotary_pair_kernel`].
pub(crate) fn rotary_pair<R: CubeRuntime>(
    q: CubeTensor<R>,
    k: CubeTensor<R>,
    cos: CubeTensor<R>,
    signed_sin: CubeTensor<R>,
    first_position: usize,
    layout: RopeLayout,
) -> (CubeTensor<R>, CubeTensor<R>) {
    let shape = q.shape();
    assert_same_shape(&shape, &k.shape());
    assert!(
        q.dtype == k.dtype,
        "rotary embedding of a query and key pair needs one float type, got {:?} and {:?}",
        q.dtype,
        k.dtype
    );
    let (dtypes, signed_sin) = prepare(q.dtype, &shape, &cos, signed_sin, first_position);
    let empty = || empty_device_dtype(q.client.clone(), q.device.clone(), shape.clone(), q.dtype);
    let (q_output, k_output) = (empty(), empty());
    let elements = shape.num_elements();
    if elements == 0 {
        return (q_output, k_output);
    }
    let client = q.client.clone();
    let cube_dim = CubeDim::new(&client, elements);
    let cube_count = calculate_cube_count_elemwise(&client, elements, cube_dim);
    let address_type = [&q, &k, &cos, &signed_sin, &q_output, &k_output]
        .map(CubeTensor::required_address_type)
        .into_iter()
        .max()
        .unwrap_or_default();
    rotary_pair_kernel::launch(
        &client,
        cube_count,
        cube_dim,
        address_type,
        q.into_tensor_arg(),
        k.into_tensor_arg(),
        cos.into_tensor_arg(),
        signed_sin.into_tensor_arg(),
        q_output.clone().into_tensor_arg(),
        k_output.clone().into_tensor_arg(),
        shape_arg(&shape),
        first_position,
        layout == RopeLayout::Half,
        dtypes,
    );
    dispatch::record(Launch::RotaryPair);
    (q_output, k_output)
}
