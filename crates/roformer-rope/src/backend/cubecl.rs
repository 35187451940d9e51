//! [`RotaryBackend`] on the cubecl backends (burn's `CubeBackend`: wgpu, cuda, rocm): the
//! rotation as one cubecl kernel launch, and a query and key rotated together in one launch.
//!
//! One unit per pair of features rotated together (and per feature past the rotated ones)
//! reads the pair from `x` by `x`'s strides (so a head split by `swap_dims` is read in place,
//! without a copy first) and its row of the tables, also by strides, from `first_position`
//! on, and writes both into a contiguous output; in a query and key pair one unit does the
//! same pair of both, reading the tables' values once for the two. The row's offset is
//! worked out once per pair, not once per element: the index arithmetic, not the memory
//! traffic, is what an element-per-unit kernel spends its time on (`benches/rotary.rs`,
//! `rotary_wgpu`). It works in the tensor's float type as burn's kernels do (the type is a
//! run-time property of a burn 0.21 tensor, so an f16 or bf16 tensor on an f32 backend is
//! rotated as f16 or bf16), reads the tables in theirs, and computes in f32 (f64 for f64
//! tensors) before rounding once: the tables are f32 host values, and casting them to f16
//! first would round them needlessly.

use burn::tensor::{DType, Shape, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::calculate_cube_count_elemwise;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::std::FastDivmod;
use burn_cubecl::kernel::cast;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
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

/// Offset of row `row` of `tensor` by its strides, the rows numbered row-major over the
/// axes before the features, whose sizes `rows` holds (the outermost one's is not needed:
/// what is left of `row` after the others is its coordinate).
#[cube]
fn row_offset<E: CubePrimitive>(
    tensor: &Tensor<E>,
    row: usize,
    rows: &Sequence<FastDivmod<usize>>,
) -> usize {
    let axes = rows.len().comptime();
    let mut rest = row;
    let mut offset = 0;
    #[unroll]
    for i in 0..axes - 1 {
        let axis = axes - 1 - i;
        let (outer, coordinate) = rows.index(axis).div_mod(rest);
        rest = outer;
        offset += coordinate * tensor.stride(axis);
    }
    offset + rest * tensor.stride(0)
}

/// The two features slot `slot` (below `r/2`, `r` the tables' width) rotates together:
/// partner `r/2` away in [`RopeLayout::Half`], next to each other in
/// [`RopeLayout::Interleaved`].
#[cube]
fn pair_features(slot: usize, pairs: usize, #[comptime] half: bool) -> (usize, usize) {
    if half {
        (slot, slot + pairs)
    } else {
        (2 * slot, 2 * slot + 1)
    }
}

/// The tables' values for one pair of features at one position, in the arithmetic type:
/// read once per unit, whether it rotates one tensor or a query and key pair.
#[derive(CubeType, Clone, Copy)]
struct PairTables<A: Float> {
    cos_first: A,
    cos_second: A,
    sin_first: A,
    sin_second: A,
}

/// Row `table_row` of the tables at features `first` and `second`, by their strides.
#[cube]
fn read_pair_tables<T: Float, A: Float>(
    cos: &Tensor<T>,
    signed_sin: &Tensor<T>,
    table_row: usize,
    first: usize,
    second: usize,
) -> PairTables<A> {
    let cos_row = table_row * cos.stride(0);
    let sin_row = table_row * signed_sin.stride(0);
    PairTables::<A> {
        cos_first: A::cast_from(cos[cos_row + first * cos.stride(1)]),
        cos_second: A::cast_from(cos[cos_row + second * cos.stride(1)]),
        sin_first: A::cast_from(signed_sin[sin_row + first * signed_sin.stride(1)]),
        sin_second: A::cast_from(signed_sin[sin_row + second * signed_sin.stride(1)]),
    }
}

/// One pair of features of one row: each `x·cos + partner(x)·signed_sin`, computed in `A`
/// and rounded to `E` once. `x_row` is the row's offset in `x` (by its strides),
/// `output_row` in the contiguous `output`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn rotate_pair<E: Float, A: Float>(
    x: &Tensor<E>,
    x_row: usize,
    output: &mut Tensor<E>,
    output_row: usize,
    first: usize,
    second: usize,
    tables: PairTables<A>,
) {
    let feature_stride = x.stride(x.rank() - 1);
    let x_first = A::cast_from(x[x_row + first * feature_stride]);
    let x_second = A::cast_from(x[x_row + second * feature_stride]);
    output[output_row + first] =
        E::cast_from(x_first * tables.cos_first + x_second * tables.sin_first);
    output[output_row + second] =
        E::cast_from(x_second * tables.cos_second + x_first * tables.sin_second);
}

/// One feature past the rotated ones, copied.
#[cube]
fn copy_feature<E: Float>(
    x: &Tensor<E>,
    x_row: usize,
    output: &mut Tensor<E>,
    output_row: usize,
    feature: usize,
) {
    output[output_row + feature] = x[x_row + feature * x.stride(x.rank() - 1)];
}

/// One unit per slot of a row of `x` (`[..., seq, d]`): `slots` per row (`r/2` pairs, then
/// the `d − r` features left as they are), `units` in all. `rows` holds the sizes of the
/// axes before the features; `output` is contiguous.
#[cube(launch, address_type = "dynamic")]
#[allow(clippy::too_many_arguments)]
fn rotary_kernel<E: Float, T: Float, A: Float>(
    x: &Tensor<E>,
    cos: &Tensor<T>,
    signed_sin: &Tensor<T>,
    output: &mut Tensor<E>,
    rows: Sequence<FastDivmod<usize>>,
    slots: FastDivmod<usize>,
    units: usize,
    first_position: usize,
    #[comptime] half: bool,
    #[define(E, T, A)] _dtypes: [StorageType; 3],
) {
    if ABSOLUTE_POS >= units {
        terminate!();
    }
    let axes = rows.len().comptime();
    let (row, slot) = slots.div_mod(ABSOLUTE_POS);
    let table_row = first_position + rows.index(axes - 1).modulo(row);
    let output_row = row * output.shape(axes);
    let x_row = row_offset(x, row, &rows);
    let pairs = cos.shape(1) / 2;
    if slot < pairs {
        let (first, second) = pair_features(slot, pairs, half);
        let tables = read_pair_tables::<T, A>(cos, signed_sin, table_row, first, second);
        rotate_pair::<E, A>(x, x_row, output, output_row, first, second, tables);
    } else {
        // slot − r/2 features past the r rotated ones.
        copy_feature::<E>(x, x_row, output, output_row, slot + pairs);
    }
}

/// [`rotary_kernel`] for a query and a key of one shape: one unit per slot of both, so the
/// row's position and the tables' values are worked out and read once for the two.
#[cube(launch, address_type = "dynamic")]
#[allow(clippy::too_many_arguments)]
fn rotary_pair_kernel<E: Float, T: Float, A: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    cos: &Tensor<T>,
    signed_sin: &Tensor<T>,
    q_output: &mut Tensor<E>,
    k_output: &mut Tensor<E>,
    rows: Sequence<FastDivmod<usize>>,
    slots: FastDivmod<usize>,
    units: usize,
    first_position: usize,
    #[comptime] half: bool,
    #[define(E, T, A)] _dtypes: [StorageType; 3],
) {
    if ABSOLUTE_POS >= units {
        terminate!();
    }
    let axes = rows.len().comptime();
    let (row, slot) = slots.div_mod(ABSOLUTE_POS);
    let table_row = first_position + rows.index(axes - 1).modulo(row);
    let output_row = row * q_output.shape(axes);
    let q_row = row_offset(q, row, &rows);
    let k_row = row_offset(k, row, &rows);
    let pairs = cos.shape(1) / 2;
    if slot < pairs {
        let (first, second) = pair_features(slot, pairs, half);
        let tables = read_pair_tables::<T, A>(cos, signed_sin, table_row, first, second);
        rotate_pair::<E, A>(q, q_row, q_output, output_row, first, second, tables);
        rotate_pair::<E, A>(k, k_row, k_output, output_row, first, second, tables);
    } else {
        copy_feature::<E>(q, q_row, q_output, output_row, slot + pairs);
        copy_feature::<E>(k, k_row, k_output, output_row, slot + pairs);
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

/// How a launch covers `x` (`[..., seq, d]`, tables of width `r`): the sizes of the axes
/// before the features, the slots per row (`r/2` pairs and `d − r` copied features), and
/// the units in all.
struct Slots<R: CubeRuntime> {
    rows: SequenceArg<R, FastDivmod<usize>>,
    per_row: usize,
    units: usize,
}

impl<R: CubeRuntime> Slots<R> {
    fn of(shape: &Shape, width: usize) -> Self {
        let rank = shape.num_dims();
        let mut rows = SequenceArg::new();
        for &dim in shape.iter().take(rank - 1) {
            rows.push(dim);
        }
        let features = shape[rank - 1];
        let per_row = width / 2 + (features - width);
        Self {
            rows,
            per_row,
            units: shape.num_elements() / features.max(1) * per_row,
        }
    }
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
    let output =
        empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), shape.clone(), x.dtype);
    let slots = Slots::of(&shape, cos.shape()[1]);
    if slots.units == 0 {
        return output;
    }
    let client = x.client.clone();
    let cube_dim = CubeDim::new(&client, slots.units);
    let cube_count = calculate_cube_count_elemwise(&client, slots.units, cube_dim);
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
        slots.rows,
        slots.per_row,
        slots.units,
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
    let empty = || {
        empty_device_contiguous_dtype(q.client.clone(), q.device.clone(), shape.clone(), q.dtype)
    };
    let (q_output, k_output) = (empty(), empty());
    let slots = Slots::of(&shape, cos.shape()[1]);
    if slots.units == 0 {
        return (q_output, k_output);
    }
    let client = q.client.clone();
    let cube_dim = CubeDim::new(&client, slots.units);
    let cube_count = calculate_cube_count_elemwise(&client, slots.units, cube_dim);
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
        slots.rows,
        slots.per_row,
        slots.units,
        first_position,
        layout == RopeLayout::Half,
        dtypes,
    );
    dispatch::record(Launch::RotaryPair);
    (q_output, k_output)
}
