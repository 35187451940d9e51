//! The position encodings a model can use instead of RoFormer's rotation
//! (`position_embedding_type`), against direct computations: the learned (`absolute`) and
//! fixed (`sinusoidal`) tables added before the embedding LayerNorm, computed here in f64
//! from the weights; `none` makes the encoder order-blind (permuting the tokens permutes
//! the outputs), which the rotation is not; an absolute model saves and loads exactly.

use super::ids;
use burn::backend::NdArray;
use burn::module::Module;
use roformer::hf_weights::{load_hf_weights, save_hf_safetensors};
use roformer::{
    PositionEmbeddingType, RoFormerConfig, RoFormerEmbeddings, RoFormerError, RoFormerForMaskedLM,
    RoFormerInput, RoFormerModel,
};
use roformer_testing::{assert_close, max_abs_diff, tensor_values};

type B = NdArray;

fn config(kind: PositionEmbeddingType) -> RoFormerConfig {
    RoFormerConfig {
        vocab_size: 50,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 32,
        max_position_embeddings: 12,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        initializer_range: 0.5,
        position_embedding_type: kind,
        ..RoFormerConfig::default()
    }
}

/// LayerNorm(word[id] + type[t] + position[offset + i]) in f64, with `position(p, j)` the
/// position term (0 for none).
fn embeddings_by_hand(
    embeddings: &RoFormerEmbeddings<B>,
    tokens: &[i64],
    types: &[i64],
    offset: usize,
    position: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let words = tensor_values(embeddings.word_embeddings.weight.val());
    let type_rows = tensor_values(embeddings.token_type_embeddings.weight.val());
    let gamma = tensor_values(embeddings.layer_norm.gamma.val());
    let beta = tensor_values(embeddings.layer_norm.beta.as_ref().unwrap().val());
    let width = gamma.len();
    let mut out = Vec::new();
    for (i, (&token, &kind)) in tokens.iter().zip(types).enumerate() {
        let sum: Vec<f64> = (0..width)
            .map(|j| {
                words[token as usize * width + j] as f64
                    + type_rows[kind as usize * width + j] as f64
                    + position(offset + i, j)
            })
            .collect();
        let mean = sum.iter().sum::<f64>() / width as f64;
        let var = sum.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / width as f64;
        let scale = 1.0 / (var + 1e-12).sqrt();
        out.extend((0..width).map(|j| (sum[j] - mean) * scale * gamma[j] as f64 + beta[j] as f64));
    }
    out
}

const TOKENS: [i64; 5] = [3, 41, 7, 7, 19];
const TYPES: [i64; 5] = [0, 0, 1, 1, 0];

fn embed(embeddings: &RoFormerEmbeddings<B>, offset: usize) -> Vec<f32> {
    tensor_values(embeddings.forward(ids(&[&TOKENS]), ids(&[&TYPES]), offset))
}

#[test]
fn learned_table_rows_are_added_at_each_position() {
    let model = RoFormerModel::<B>::new(
        &config(PositionEmbeddingType::Absolute),
        &Default::default(),
    )
    .unwrap();
    let table = tensor_values(
        model
            .embeddings
            .position_embeddings
            .as_ref()
            .unwrap()
            .weight
            .val(),
    );
    assert_eq!(table.len(), 12 * 16);
    for offset in [0, 4, 7] {
        let expected = embeddings_by_hand(&model.embeddings, &TOKENS, &TYPES, offset, |p, j| {
            table[p * 16 + j] as f64
        });
        assert_close(
            "absolute embeddings",
            &embed(&model.embeddings, offset),
            &expected,
            1e-5,
        );
    }
}

#[test]
#[should_panic(expected = "learned position table has 12 rows")]
fn a_learned_table_refuses_positions_past_its_rows() {
    let model = RoFormerModel::<B>::new(
        &config(PositionEmbeddingType::Absolute),
        &Default::default(),
    )
    .unwrap();
    embed(&model.embeddings, 8);
}

#[test]
fn sinusoidal_table_is_the_transformer_formula() {
    let model = RoFormerModel::<B>::new(
        &config(PositionEmbeddingType::Sinusoidal),
        &Default::default(),
    )
    .unwrap();
    assert!(model.embeddings.position_embeddings.is_none());
    // Sines of p / 10000^(2i/d) in the first half of a row, cosines in the second, with
    // amplitude initializer_range (0.5 here).
    let formula = |p: usize, j: usize| {
        let (half, d) = (8, 16.0);
        let i = if j < half { j } else { j - half };
        let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / d);
        0.5 * if j < half { angle.sin() } else { angle.cos() }
    };
    // Past max_position_embeddings too: the table is computed, not stored.
    for offset in [0, 3, 40] {
        let expected = embeddings_by_hand(&model.embeddings, &TOKENS, &TYPES, offset, formula);
        assert_close(
            "sinusoidal embeddings",
            &embed(&model.embeddings, offset),
            &expected,
            1e-5,
        );
    }
}

#[test]
fn without_positions_the_encoder_is_order_blind_and_with_rotation_it_is_not() {
    let sentence: [i64; 6] = [5, 17, 33, 3, 42, 8];
    let order = [3, 0, 5, 1, 4, 2];
    let permuted: Vec<i64> = order.iter().map(|&i| sentence[i]).collect();
    let gap = |kind| {
        let model = RoFormerModel::<B>::new(&config(kind), &Default::default()).unwrap();
        let straight = tensor_values(model.forward(RoFormerInput::new(ids(&[&sentence]))));
        let shuffled = tensor_values(model.forward(RoFormerInput::new(ids(&[&permuted]))));
        let rearranged: Vec<f32> = order
            .iter()
            .flat_map(|&i| straight[i * 16..(i + 1) * 16].to_vec())
            .collect();
        max_abs_diff(&shuffled, &rearranged)
    };
    let (none, rotary) = (
        gap(PositionEmbeddingType::None),
        gap(PositionEmbeddingType::Rotary),
    );
    assert!(
        none < 1e-5,
        "no positions: permuted outputs differ by {none}"
    );
    assert!(
        rotary > 1e-2,
        "rotary: permuting tokens changed outputs only by {rotary}"
    );
    // The embedding layer itself adds nothing for `none`.
    let model =
        RoFormerModel::<B>::new(&config(PositionEmbeddingType::None), &Default::default()).unwrap();
    let expected = embeddings_by_hand(&model.embeddings, &TOKENS, &TYPES, 0, |_, _| 0.0);
    assert_close(
        "embeddings without positions",
        &embed(&model.embeddings, 0),
        &expected,
        1e-5,
    );
}

#[test]
fn an_absolute_model_saves_and_loads_exactly() {
    let config = config(PositionEmbeddingType::Absolute);
    let device = Default::default();
    let model = RoFormerForMaskedLM::<B>::new(&config, &device).unwrap();
    let dir = std::env::temp_dir().join(format!("roformer-absolute-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    save_hf_safetensors(&model, &config, &path).unwrap();
    let loaded = load_hf_weights::<B>(&config, &path, &device).unwrap();
    let input = || RoFormerInput::new(ids(&[&TOKENS]));
    let (a, b) = (
        tensor_values(model.forward(input())),
        tensor_values(loaded.masked_lm().unwrap().forward(input())),
    );
    assert_eq!(a, b);
    assert_eq!(model.num_params(), loaded.masked_lm().unwrap().num_params());
    // The same file does not load into a rotary model: the table has no place there.
    let rotary = RoFormerConfig {
        position_embedding_type: PositionEmbeddingType::Rotary,
        ..config
    };
    let error = load_hf_weights::<B>(&rotary, &path, &device).err().unwrap();
    assert!(error.to_string().contains("position_embeddings"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rotating_values_needs_rotary_positions() {
    let config = RoFormerConfig {
        rotary_value: true,
        ..config(PositionEmbeddingType::Absolute)
    };
    match config.validate() {
        Err(RoFormerError::InvalidConfig { field, .. }) => assert_eq!(field, "rotary_value"),
        other => panic!("expected an invalid-config error, got {other:?}"),
    }
}
