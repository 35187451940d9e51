//! Inference without padding ([`Packing`]): a packed batch's outputs equal the padded
//! batch's at every real token (1e-5) and are zero at the padding, for softmax attention
//! with and without the rotated values, and for linear attention; every hidden state
//! alike, packed by the CPU kernels; and a batch with no padding is not packed.

use super::{ids, small_config};
use burn::backend::NdArray;
use roformer::backend::dispatch::{self, Kernel};
use roformer::{AttentionKind, Packing, RoFormerConfig, RoFormerInput, RoFormerModel};
use roformer_testing::tensor_values;

type B = NdArray;

const LENGTHS: [usize; 3] = [9, 4, 6];
const WIDTH: usize = 9;

fn refs(rows: &[Vec<i64>]) -> Vec<&[i64]> {
    rows.iter().map(Vec::as_slice).collect()
}

/// Three right-padded rows of `LENGTHS`, with segment ids that differ within a row.
fn batch() -> RoFormerInput<B> {
    let rows: Vec<Vec<i64>> = LENGTHS
        .iter()
        .enumerate()
        .map(|(r, &n)| {
            (0..WIDTH)
                .map(|p| {
                    if p < n {
                        (7 + 13 * r + 5 * p) as i64 % 120
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    let mask: Vec<Vec<i64>> = LENGTHS
        .iter()
        .map(|&n| (0..WIDTH).map(|p| i64::from(p < n)).collect())
        .collect();
    let types: Vec<Vec<i64>> = LENGTHS
        .iter()
        .map(|&n| (0..WIDTH).map(|p| i64::from(p >= n / 2 && p < n)).collect())
        .collect();
    RoFormerInput::new(ids(&refs(&rows)))
        .with_attention_mask(ids(&refs(&mask)))
        .with_token_type_ids(ids(&refs(&types)))
}

/// Packed against padded, `[rows, WIDTH, width]` values: real tokens within 1e-5, padding
/// exactly zero.
fn assert_packed_matches(what: &str, padded: &[f32], packed: &[f32], width: usize) {
    assert_eq!(padded.len(), packed.len(), "{what}: sizes");
    for (r, &n) in LENGTHS.iter().enumerate() {
        for p in 0..WIDTH {
            let at = (r * WIDTH + p) * width;
            let (want, got) = (&padded[at..at + width], &packed[at..at + width]);
            for (w, g) in want.iter().zip(got) {
                if p < n {
                    assert!(
                        (w - g).abs() < 1e-5,
                        "{what}: row {r} token {p}: {g} vs {w}"
                    );
                } else {
                    assert_eq!(*g, 0.0, "{what}: row {r} padding {p} is not zero");
                }
            }
        }
    }
}

fn check(config: RoFormerConfig) {
    let device = Default::default();
    let model = RoFormerModel::<B>::new(&config, &device).unwrap();
    let packing = Packing::from_lengths(&LENGTHS, WIDTH, &device);
    assert_eq!(packing.as_ref().map(Packing::tokens), Some(19));
    let padded = tensor_values(model.forward(batch()));
    let (packed, ran) =
        dispatch::ran_during(|| model.forward(batch().with_packing(packing.clone())));
    // The CPU kernels pack and unpack (not burn-ndarray's row-by-row select).
    assert!(
        ran.contains(&Kernel::GatherRows) && ran.contains(&Kernel::ScatterRows),
        "{ran:?}"
    );
    let packed = tensor_values(packed);
    let what = format!(
        "{:?} attention, rotary_value {}",
        config.attention, config.rotary_value
    );
    assert_packed_matches(&what, &padded, &packed, config.hidden_size);

    let padded_states = model.forward_hidden_states(batch());
    let packed_states = model.forward_hidden_states(batch().with_packing(packing));
    assert_eq!(packed_states.len(), config.num_hidden_layers + 1);
    for (i, (a, b)) in padded_states.into_iter().zip(packed_states).enumerate() {
        let what = format!("{what}, hidden state {i}");
        assert_packed_matches(
            &what,
            &tensor_values(a),
            &tensor_values(b),
            config.hidden_size,
        );
    }
}

#[test]
fn a_packed_batch_equals_the_padded_one_on_real_tokens_with_softmax_attention() {
    check(small_config());
    check(RoFormerConfig {
        rotary_value: true,
        ..small_config()
    });
}

#[test]
fn a_packed_batch_equals_the_padded_one_on_real_tokens_with_linear_attention() {
    check(RoFormerConfig {
        attention: AttentionKind::Linear,
        ..small_config()
    });
}

#[test]
fn a_batch_without_padding_is_not_packed() {
    let device = Default::default();
    assert!(Packing::<B>::from_lengths(&[5, 5], 5, &device).is_none());
    let packing = Packing::<B>::from_lengths(&[5, 2], 5, &device).unwrap();
    assert_eq!(
        (packing.batch(), packing.seq(), packing.tokens()),
        (2, 5, 7)
    );
}

/// The backends' reference packing (burn's `select` and `select_assign`, here on f64
/// ndarray, which the f32 kernels do not take) picks the real rows in order and puts
/// them back among zero rows.
#[test]
fn the_reference_packing_picks_the_real_rows_and_puts_them_back() {
    type F64 = NdArray<f64>;
    let device = Default::default();
    let values: Vec<f64> = (0..3 * 4 * 2).map(|i| f64::from(i) + 0.5).collect();
    let x = burn::tensor::Tensor::<F64, 3>::from_data(
        burn::tensor::TensorData::new(values.clone(), [3, 4, 2]),
        &device,
    )
    // Host data comes in the device's default float type, f32: the kernels would take it.
    .cast(burn::tensor::DType::F64);
    let packing = Packing::<F64>::from_lengths(&[4, 1, 3], 4, &device).unwrap();
    let (packed, ran) = dispatch::ran_during(|| packing.pack(x));
    assert!(!ran.contains(&Kernel::GatherRows), "{ran:?}");
    assert_eq!(packed.dtype(), burn::tensor::DType::F64);
    let real = [0, 1, 2, 3, 4, 8, 9, 10];
    let expected: Vec<f64> = real
        .iter()
        .flat_map(|&r| values[2 * r..2 * r + 2].to_vec())
        .collect();
    assert_eq!(packed.dims(), [1, 8, 2]);
    assert_eq!(packed.to_data().to_vec::<f64>().unwrap(), expected);
    let (back, ran) = dispatch::ran_during(|| packing.unpack(packed));
    assert!(!ran.contains(&Kernel::ScatterRows), "{ran:?}");
    let back: Vec<f64> = back.to_data().to_vec().unwrap();
    let want: Vec<f64> = (0..12)
        .flat_map(|r| {
            let keep = real.contains(&r);
            values[2 * r..2 * r + 2]
                .iter()
                .map(move |&v| if keep { v } else { 0.0 })
        })
        .collect();
    assert_eq!(back, want);
}
