//! Inference without padding ([`Packing`]): a packed batch's outputs equal the padded
//! batch's at every real token (1e-5) and are zero at the padding, for softmax attention
//! with and without the rotated values, and for linear attention; every hidden state
//! alike; and a batch with no padding is not packed.

use super::{ids, small_config};
use burn::backend::NdArray;
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
    let packed = tensor_values(model.forward(batch().with_packing(packing.clone())));
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
