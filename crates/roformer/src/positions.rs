//! Position tables added to the token embeddings when a model does not rotate
//! (`position_embedding_type = "absolute" | "sinusoidal"`), and the sinusoidal table that
//! HF stores beside a RoFormer checkpoint.

use burn::tensor::{Int, Tensor, TensorData};

use crate::backend::RoFormerBackend;
use crate::layout::in_float_type;

/// HF's `RoFormerSinusoidalPositionalEmbedding.create_weight`: `[n_pos, dim]`, sines of
/// `pos / 10000^(2i/dim)` in the first half of each row and cosines in the second,
/// computed in f64 and stored in f32 as numpy → torch does.
pub fn sinusoidal_position_table(n_pos: usize, dim: usize) -> Vec<f32> {
    let sentinel = dim.div_ceil(2);
    let mut table = vec![0f32; n_pos * dim];
    for pos in 0..n_pos {
        let row = &mut table[pos * dim..(pos + 1) * dim];
        // Column c of HF's `position_enc` uses exponent 2 * (c // 2) / dim.
        let angle = |col: usize| pos as f64 / 10000f64.powf((2 * (col / 2)) as f64 / dim as f64);
        for (j, value) in row.iter_mut().enumerate() {
            *value = if j < sentinel {
                angle(2 * j).sin() as f32
            } else {
                angle(2 * (j - sentinel) + 1).cos() as f32
            };
        }
    }
    table
}

/// Rows `offset..offset + seq` of the sinusoidal table of width `dim` (Vaswani et al.
/// 2017, in HF's layout: sines in the first half of each row, cosines in the second) as a
/// `[1, seq, dim]` tensor of `like`'s float type.
pub fn sinusoidal_rows<B: RoFormerBackend>(
    offset: usize,
    seq: usize,
    dim: usize,
    like: &Tensor<B, 3>,
) -> Tensor<B, 3> {
    let table = sinusoidal_position_table(offset + seq, dim);
    let rows = table[offset * dim..].to_vec();
    let rows = Tensor::<B, 3>::from_data(TensorData::new(rows, [1, seq, dim]), &like.device());
    in_float_type(rows, like.dtype())
}

/// Position ids `offset..offset + seq` as a `[1, seq]` tensor.
pub fn position_ids<B: RoFormerBackend>(
    offset: usize,
    seq: usize,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    Tensor::<B, 1, Int>::arange(offset as i64..(offset + seq) as i64, device).reshape([1, seq])
}
