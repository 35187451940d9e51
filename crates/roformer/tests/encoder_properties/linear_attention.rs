//! `attention = "linear"` (Su et al. 2021, eq. 19): one layer's attention against the
//! formula computed here in f64 from the weights, with padding; the relative-position
//! property (the rotated scores, and so the outputs, depend on m − n only); and the
//! rotation as the only position signal (without it the encoder is order-blind).

use super::{affine, ids, linear_parts};
use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use roformer::linear_attention::{LINEAR_ATTENTION_EPS, elu_feature_map};
use roformer::{
    AttentionKind, MASKED_SCORE, PositionEmbeddingType, RoFormerConfig, RoFormerInput,
    RoFormerModel,
};
use roformer_testing::{assert_close, max_abs_diff, random_values, tensor_values};

type B = NdArray;

const HIDDEN: usize = 16;
const HEADS: usize = 2;
const HEAD: usize = HIDDEN / HEADS;

fn config(positions: PositionEmbeddingType) -> RoFormerConfig {
    RoFormerConfig {
        vocab_size: 60,
        hidden_size: HIDDEN,
        num_hidden_layers: 2,
        num_attention_heads: HEADS,
        intermediate_size: 32,
        max_position_embeddings: 16,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        initializer_range: 0.4,
        position_embedding_type: positions,
        attention: AttentionKind::Linear,
        ..RoFormerConfig::default()
    }
}

/// HF RoFormer's rotation of one head's features at `position` (pairs (2i, 2i+1), angle
/// position · 10000^(−2i/d)), in f64.
fn rotate(x: &[f64], position: usize) -> Vec<f64> {
    let mut out = x.to_vec();
    for i in 0..x.len() / 2 {
        let angle = position as f64 * 10000f64.powf(-2.0 * i as f64 / x.len() as f64);
        let (sin, cos) = angle.sin_cos();
        out[2 * i] = x[2 * i] * cos - x[2 * i + 1] * sin;
        out[2 * i + 1] = x[2 * i + 1] * cos + x[2 * i] * sin;
    }
    out
}

fn phi(x: f64) -> f64 {
    if x > 0.0 { x + 1.0 } else { x.exp() }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn linear_attention_is_equation_19() {
    let model =
        RoFormerModel::<B>::new(&config(PositionEmbeddingType::Rotary), &Default::default())
            .unwrap();
    let attention = &model.encoder.layer[0].attention.self_attention;
    let (batch, seq, offset) = (2, 7, 3);
    let hidden_values = random_values(batch * seq * HIDDEN, 11);
    let hidden = Tensor::<B, 3>::from_data(
        TensorData::new(hidden_values.clone(), [batch, seq, HIDDEN]),
        &Default::default(),
    );
    // The second sequence's last two keys are padding.
    let real = |b: usize, n: usize| b == 0 || n < seq - 2;
    let bias: Vec<f32> = (0..batch * seq)
        .map(|i| {
            if real(i / seq, i % seq) {
                0.0
            } else {
                MASKED_SCORE
            }
        })
        .collect();
    let bias = Tensor::<B, 4>::from_data(
        TensorData::new(bias, [batch, 1, 1, seq]),
        &Default::default(),
    );
    let key_mask = attention.key_mask(bias, seq);
    let got = tensor_values(attention.forward(hidden, Some(key_mask), &model.encoder.rope, offset));

    let project = |linear: &burn::nn::Linear<B>| {
        let (weight, bias) = linear_parts(linear);
        hidden_values
            .chunks(HIDDEN)
            .map(|row| affine(row, &weight, &bias))
            .map(|row| row.into_iter().map(f64::from).collect::<Vec<f64>>())
            .collect::<Vec<_>>()
    };
    let (q, k, v) = (
        project(&attention.query),
        project(&attention.key),
        project(&attention.value),
    );
    let mut expected = vec![0f64; batch * seq * HIDDEN];
    for b in 0..batch {
        for h in 0..HEADS {
            let head = |rows: &Vec<Vec<f64>>, n: usize| {
                rows[b * seq + n][h * HEAD..(h + 1) * HEAD].to_vec()
            };
            let features = |rows: &Vec<Vec<f64>>, n: usize| {
                head(rows, n).into_iter().map(phi).collect::<Vec<f64>>()
            };
            for m in 0..seq {
                let query = features(&q, m);
                let rotated_query = rotate(&query, offset + m);
                let mut numerator = [0f64; HEAD];
                let mut normaliser = LINEAR_ATTENTION_EPS;
                for n in (0..seq).filter(|&n| real(b, n)) {
                    let key = features(&k, n);
                    let score = dot(&rotated_query, &rotate(&key, offset + n));
                    for (acc, value) in numerator.iter_mut().zip(head(&v, n)) {
                        *acc += score * value;
                    }
                    normaliser += dot(&query, &key);
                }
                for (j, value) in numerator.iter().enumerate() {
                    expected[(b * seq + m) * HIDDEN + h * HEAD + j] = value / normaliser;
                }
            }
        }
    }
    assert_close("linear attention", &got, &expected, 1e-5);
}

#[test]
fn rotated_linear_scores_depend_on_m_minus_n_only() {
    let model =
        RoFormerModel::<B>::new(&config(PositionEmbeddingType::Rotary), &Default::default())
            .unwrap();
    let rope = &model.encoder.rope;
    let features = |seed| {
        let values = random_values(10 * HEAD, seed);
        elu_feature_map(Tensor::<B, 4>::from_data(
            TensorData::new(values, [1, 1, 10, HEAD]),
            &Default::default(),
        ))
    };
    let (query, key) = (features(5), features(6));
    // The numerator's scores (R_m φ(q_m))ᵀ (R_n φ(k_n)) for positions offset..offset + 10.
    let scores = |offset| {
        tensor_values(
            rope.apply(query.clone(), offset)
                .matmul(rope.apply(key.clone(), offset).swap_dims(2, 3)),
        )
    };
    let at_zero = scores(0);
    for offset in [1, 9, 250] {
        let gap = max_abs_diff(&scores(offset), &at_zero);
        assert!(
            gap < 1e-5,
            "scores moved by {gap} under a shift of {offset}"
        );
    }
    // Not trivially so: unrotated, the same features give other scores.
    let plain = tensor_values(query.clone().matmul(key.clone().swap_dims(2, 3)));
    assert!(max_abs_diff(&plain, &at_zero) > 1e-2);

    // So the whole encoder's outputs do not move when every position shifts.
    let sentence: &[i64] = &[5, 17, 33, 3, 42, 8];
    let run = |offset| {
        tensor_values(
            model.forward(RoFormerInput::new(ids(&[sentence])).with_position_offset(offset)),
        )
    };
    let gap = max_abs_diff(&run(40), &run(0));
    assert!(gap < 1e-5, "linear-attention outputs moved by {gap}");
}

#[test]
fn under_linear_attention_rotation_is_the_only_order_signal() {
    let sentence: [i64; 6] = [5, 17, 33, 3, 42, 8];
    let order = [3, 0, 5, 1, 4, 2];
    let permuted: Vec<i64> = order.iter().map(|&i| sentence[i]).collect();
    let gap = |positions| {
        let model = RoFormerModel::<B>::new(&config(positions), &Default::default()).unwrap();
        let straight = tensor_values(model.forward(RoFormerInput::new(ids(&[&sentence]))));
        let shuffled = tensor_values(model.forward(RoFormerInput::new(ids(&[&permuted]))));
        let rearranged: Vec<f32> = order
            .iter()
            .flat_map(|&i| straight[i * HIDDEN..(i + 1) * HIDDEN].to_vec())
            .collect();
        max_abs_diff(&shuffled, &rearranged)
    };
    let none = gap(PositionEmbeddingType::None);
    let rotary = gap(PositionEmbeddingType::Rotary);
    assert!(
        none < 1e-5,
        "no positions: permuted outputs differ by {none}"
    );
    assert!(
        rotary > 1e-2,
        "rotary: permuting changed outputs only by {rotary}"
    );
}
