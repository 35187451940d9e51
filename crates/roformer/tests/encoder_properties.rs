//! Properties the encoder must have, checked on values: padding invariance, shift
//! invariance (rotation is the only position signal), the masked-LM loss at
//! initialisation, one optimisation step lowering the loss, the classification heads
//! against a plain-Rust computation, config parsing against HF's defaults, and the
//! position encodings other than rotation (`position_encodings`), linear attention
//! with rotation (`linear_attention`), and inference without padding (`packing`).

#[path = "encoder_properties/linear_attention.rs"]
mod linear_attention;
#[path = "encoder_properties/packing.rs"]
mod packing;
#[path = "encoder_properties/position_encodings.rs"]
mod position_encodings;

use roformer_testing::tensor_values;
use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use roformer::{
    ClassifierPooling, HiddenAct, IGNORE_INDEX, RoFormerConfig, RoFormerForMaskedLM,
    RoFormerForSequenceClassification, RoFormerForTokenClassification, RoFormerInput,
    RoFormerModel, masked_lm_loss,
};
use roformer_testing::max_abs_diff;

type B = NdArray;

fn small_config() -> RoFormerConfig {
    RoFormerConfig {
        vocab_size: 120,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 64,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        // Larger than HF's 0.02 so attention is not uniform and positions matter.
        initializer_range: 0.3,
        ..RoFormerConfig::default()
    }
}

fn ids(rows: &[&[i64]]) -> Tensor<B, 2, Int> {
    let seq = rows[0].len();
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(
        TensorData::new(flat, [rows.len(), seq]),
        &Default::default(),
    )
}

#[test]
fn padding_does_not_change_real_token_outputs() {
    let model = RoFormerModel::<B>::new(&small_config(), &Default::default()).unwrap();
    let sentence: &[i64] = &[5, 17, 99, 3, 42, 8];
    let alone = tensor_values(model.forward(RoFormerInput::new(ids(&[sentence]))));

    let padded: &[i64] = &[5, 17, 99, 3, 42, 8, 0, 0, 0];
    let other: &[i64] = &[7, 7, 1, 2, 3, 4, 5, 6, 9];
    let mask = ids(&[&[1, 1, 1, 1, 1, 1, 0, 0, 0], &[1; 9]]);
    let batch = model.forward(RoFormerInput::new(ids(&[padded, other])).with_attention_mask(mask));
    let first = tensor_values(batch.slice([0..1, 0..6, 0..32]));
    let diff = max_abs_diff(&alone, &first);
    assert!(diff < 1e-5, "padding changed real-token outputs by {diff}");
}

#[test]
fn a_position_offset_leaves_outputs_unchanged() {
    let model = RoFormerModel::<B>::new(&small_config(), &Default::default()).unwrap();
    let tokens: &[i64] = &[11, 4, 87, 23, 23, 60, 2];
    let at_zero = tensor_values(model.forward(RoFormerInput::new(ids(&[tokens]))));
    // 50 + 7 > max_position_embeddings: rows past the table are computed, not wrapped.
    for offset in [1, 13, 50] {
        let shifted = tensor_values(
            model.forward(RoFormerInput::new(ids(&[tokens])).with_position_offset(offset)),
        );
        let diff = max_abs_diff(&at_zero, &shifted);
        assert!(diff < 1e-4, "offset {offset} changed outputs by {diff}");
    }
    // Yet order matters: swapping two distinct tokens changes the other tokens' outputs.
    let swapped: &[i64] = &[4, 11, 87, 23, 23, 60, 2];
    let other = tensor_values(model.forward(RoFormerInput::new(ids(&[swapped]))));
    let last_token = |v: &[f32]| v[6 * 32..].to_vec();
    assert!(max_abs_diff(&last_token(&at_zero), &last_token(&other)) > 1e-3);
}

#[test]
fn masked_lm_loss_at_initialisation_is_near_ln_vocab() {
    let config = RoFormerConfig {
        vocab_size: 1000,
        initializer_range: 0.02,
        ..small_config()
    };
    // Why the loss should be ln(vocab): the head's LayerNorm leaves unit-variance
    // features (γ = 1), so with the tied decoder drawn at std σ_w = 0.02 each logit is
    // ~N(0, σ²) with σ = σ_w·√hidden ≈ 0.11, and the expected loss is
    // ln(vocab) + σ²/2 ≈ ln(vocab) + 0.006. One position's loss spreads by ~σ; over
    // 4 × 64 positions the mean spreads by ~σ/16 ≈ 0.007, so 0.05 is ~6 spreads plus the
    // offset: any initialisation passes, and a wrong loss (not a mean over positions, a
    // missing log, logits scaled by the hidden size) does not.
    let (rows, seq) = (4, 64);
    let tokens: Vec<i64> = (0..rows * seq)
        .map(|i| ((i * 37 + 5) % 1000) as i64)
        .collect();
    // Targets unrelated to the inputs: with the input token as its own target, the tied
    // decoder correlates logit and label and the loss drifts from ln(vocab).
    let shifted: Vec<i64> = tokens.iter().map(|t| (t + 500) % 1000).collect();
    let device = Default::default();
    B::seed(&device, 11);
    let model = RoFormerForMaskedLM::<B>::new(&config, &device).unwrap();
    let rows_of = |v: &[i64]| {
        Tensor::<B, 2, Int>::from_data(TensorData::new(v.to_vec(), [rows, seq]), &device)
    };
    let loss: f32 = masked_lm_loss(
        model.forward(RoFormerInput::new(rows_of(&tokens))),
        rows_of(&shifted),
    )
    .into_scalar();
    let expected = (1000f32).ln();
    assert!(
        (loss - expected).abs() < 0.05,
        "loss {loss}, ln(vocab) {expected}"
    );
}

#[test]
fn masked_lm_loss_counts_only_labelled_positions() {
    // Two positions over a 3-token vocabulary, computed by hand.
    let device = Default::default();
    let logits = Tensor::<B, 3>::from_data(
        TensorData::new(
            vec![1.0f32, 2.0, 3.0, 0.5, 0.5, 4.0, 9.0, -9.0, 0.0],
            [1, 3, 3],
        ),
        &device,
    );
    let labels = ids(&[&[2, IGNORE_INDEX, 0]]);
    let ln_sum_exp = |v: [f64; 3]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
    let expected =
        ((ln_sum_exp([1.0, 2.0, 3.0]) - 3.0) + (ln_sum_exp([9.0, -9.0, 0.0]) - 9.0)) / 2.0;
    let loss: f32 = masked_lm_loss(logits, labels).into_scalar();
    assert!(
        (loss as f64 - expected).abs() < 1e-6,
        "{loss} vs {expected}"
    );
}

#[test]
fn one_training_step_lowers_the_loss() {
    type AD = Autodiff<NdArray>;
    let device = Default::default();
    let config = RoFormerConfig {
        initializer_range: 0.02,
        ..small_config()
    };
    let mut model = RoFormerForMaskedLM::<AD>::new(&config, &device).unwrap();
    let mut optimizer = AdamWConfig::new().init();
    let batch = |device| {
        let input = Tensor::<AD, 2, Int>::from_data(
            TensorData::new(
                (0..20).map(|i| (i * 13 + 1) % 120).collect::<Vec<i64>>(),
                [2, 10],
            ),
            device,
        );
        (RoFormerInput::new(input.clone()), input)
    };
    let loss_of = |model: &RoFormerForMaskedLM<AD>| {
        let (input, labels) = batch(&device);
        masked_lm_loss(model.forward(input), labels)
    };

    let before = loss_of(&model);
    let before_value: f32 = before.clone().into_scalar();
    let grads = GradientsParams::from_grads(before.backward(), &model);
    model = optimizer.step(1e-2, model, grads);
    let after: f32 = loss_of(&model).into_scalar();
    assert!(
        after < before_value - 0.05,
        "loss {before_value} -> {after}"
    );
}

/// Plain-Rust `x·W + b` for burn's `[in, out]` weight layout.
fn affine(x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let (d_in, d_out) = (x.len(), bias.len());
    (0..d_out)
        .map(|o| bias[o] + (0..d_in).map(|i| x[i] * weight[i * d_out + o]).sum::<f32>())
        .collect()
}

fn linear_parts(linear: &burn::nn::Linear<B>) -> (Vec<f32>, Vec<f32>) {
    (
        tensor_values(linear.weight.val()),
        tensor_values(linear.bias.as_ref().unwrap().val()),
    )
}

#[test]
fn sequence_classification_reads_the_first_token() {
    let config = RoFormerConfig {
        hidden_act: HiddenAct::Relu,
        ..small_config()
    };
    let model =
        RoFormerForSequenceClassification::<B>::new(&config, 3, &Default::default()).unwrap();
    let input = RoFormerInput::new(ids(&[&[2, 40, 41, 3], &[2, 50, 3, 9]]));
    let logits = tensor_values(model.forward(input.clone()));
    let hidden = tensor_values(model.roformer.forward(input));

    let (w1, b1) = linear_parts(&model.classifier.dense);
    let (w2, b2) = linear_parts(&model.classifier.out_proj);
    for row in 0..2 {
        let first = &hidden[row * 4 * 32..row * 4 * 32 + 32];
        let inner: Vec<f32> = affine(first, &w1, &b1)
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        let expected = affine(&inner, &w2, &b2);
        let diff = max_abs_diff(&logits[row * 3..row * 3 + 3], &expected);
        assert!(diff < 1e-4, "row {row}: {diff}");
    }
}

/// `classifier_pooling = "mean"`: the head reads the mean of the real tokens' hidden
/// states (padding left out), in a padded batch and with no mask.
#[test]
fn sequence_classification_with_mean_pooling_reads_the_mean_of_the_real_tokens() {
    let config = RoFormerConfig {
        hidden_act: HiddenAct::Relu,
        classifier_pooling: ClassifierPooling::Mean,
        ..small_config()
    };
    let model =
        RoFormerForSequenceClassification::<B>::new(&config, 3, &Default::default()).unwrap();
    let (w1, b1) = linear_parts(&model.classifier.dense);
    let (w2, b2) = linear_parts(&model.classifier.out_proj);
    let padded = RoFormerInput::new(ids(&[&[2, 40, 41, 3], &[2, 50, 3, 0]]))
        .with_attention_mask(ids(&[&[1, 1, 1, 1], &[1, 1, 1, 0]]));
    let unmasked = RoFormerInput::new(ids(&[&[2, 40, 41, 3]]));
    for (input, real) in [(padded, vec![4, 3]), (unmasked, vec![4])] {
        let logits = tensor_values(model.forward(input.clone()));
        let hidden = tensor_values(model.roformer.forward(input));
        for (row, &n) in real.iter().enumerate() {
            let mean: Vec<f32> = (0..32)
                .map(|f| (0..n).map(|t| hidden[(row * 4 + t) * 32 + f]).sum::<f32>() / n as f32)
                .collect();
            let inner: Vec<f32> = affine(&mean, &w1, &b1)
                .into_iter()
                .map(|v| v.max(0.0))
                .collect();
            let expected = affine(&inner, &w2, &b2);
            let diff = max_abs_diff(&logits[row * 3..row * 3 + 3], &expected);
            assert!(diff < 1e-4, "row {row} of {}: {diff}", real.len());
        }
    }
}

#[test]
fn token_classification_projects_every_token() {
    let model =
        RoFormerForTokenClassification::<B>::new(&small_config(), 5, &Default::default()).unwrap();
    let input = RoFormerInput::new(ids(&[&[2, 40, 41, 3]]));
    let logits = tensor_values(model.forward(input.clone()));
    let hidden = tensor_values(model.roformer.forward(input));
    let (w, b) = linear_parts(&model.classifier);
    for token in 0..4 {
        let expected = affine(&hidden[token * 32..(token + 1) * 32], &w, &b);
        let diff = max_abs_diff(&logits[token * 5..(token + 1) * 5], &expected);
        assert!(diff < 1e-4, "token {token}: {diff}");
    }
}

#[test]
fn hf_default_config_matches_ours() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/default_config.json");
    let mut hf = RoFormerConfig::from_json_file(&path).unwrap();
    // HF writes `embedding_size` out explicitly as hidden_size.
    assert_eq!(hf.embedding_size, Some(768));
    hf.embedding_size = None;
    assert_eq!(hf, RoFormerConfig::default());
}

#[test]
fn hf_config_keys_we_do_not_use_are_ignored() {
    let json = r#"{"architectures": ["RoFormerForMaskedLM"], "model_type": "roformer",
        "torch_dtype": "float32", "use_cache": true, "vocab_size": 321, "hidden_size": 64,
        "num_attention_heads": 4, "embedding_size": null, "hidden_act": "gelu_pytorch_tanh"}"#;
    let config = RoFormerConfig::from_json_str(json, "config.json").unwrap();
    assert_eq!(config.vocab_size, 321);
    assert_eq!(config.embedding_size(), 64);
    assert_eq!(config.hidden_act, HiddenAct::GeluNew);
    assert_eq!(config.num_hidden_layers, 12);
}

#[test]
fn bad_config_values_are_errors_naming_the_field() {
    let cases = [
        (r#"{"num_attention_heads": 0}"#, "num_attention_heads"),
        (
            r#"{"hidden_size": 100, "num_attention_heads": 12}"#,
            "hidden_size",
        ),
        // 36 / 4 = 9: an odd head size cannot be rotated pairwise.
        (
            r#"{"hidden_size": 36, "num_attention_heads": 4}"#,
            "num_attention_heads",
        ),
        (r#"{"hidden_size": "big"}"#, "hidden_size"),
        (r#"{"hidden_act": "softsign"}"#, "hidden_act"),
        (r#"{"hidden_dropout_prob": 1.5}"#, "hidden_dropout_prob"),
        (r#"{"vocab_size": 10, "pad_token_id": 10}"#, "pad_token_id"),
    ];
    for (json, field) in cases {
        let error = RoFormerConfig::from_json_str(json, "config.json")
            .unwrap_err()
            .to_string();
        assert!(error.contains(field), "{json}: {error}");
        assert!(!error.contains('\n'), "one-line error expected: {error}");
    }
}

#[test]
fn only_rotary_softmax_unscaled_models_are_hf_compatible() {
    let parse = |json: &str| RoFormerConfig::from_json_str(json, "config.json").unwrap();
    assert_eq!(parse("{}").hf_incompatibility(), None);
    let cases = [
        (r#"{"position_embedding_type": "absolute"}"#, "\"absolute\""),
        (r#"{"attention": "linear"}"#, "\"linear\""),
        (r#"{"classifier_pooling": "mean"}"#, "\"mean\""),
        (
            r#"{"rope_scaling": {"type": "linear", "factor": 4.0}}"#,
            "rope_scaling",
        ),
    ];
    for (json, named) in cases {
        let reason = parse(json).hf_incompatibility().expect(json);
        assert!(reason.contains(named), "{json}: {reason}");
    }
}
