//! Parity with HF transformers: small `RoFormerForMaskedLM`, `RoFormerForSequenceClassification`
//! and `RoFormerForTokenClassification` models with order-1 random weights, saved by
//! `scripts/make_hf_fixtures.py` together with their inputs and transformers' outputs, are
//! loaded here and must reproduce every layer's output and `last_hidden_state` to
//! [`HIDDEN_TOLERANCE`] and the heads' logits to [`LOGITS_TOLERANCE`] (max absolute
//! difference over real tokens; any NaN fails).

use std::path::Path;

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use roformer::hf_weights::{
    load_hf_masked_lm, load_hf_sequence_classification, load_hf_token_classification,
    save_hf_safetensors, save_hf_sequence_classification, save_hf_token_classification,
};
use roformer::{HiddenAct, RoFormerConfig, RoFormerForMaskedLM, RoFormerInput, RoFormerModel};
use roformer_testing::hf_fixture::{Expected, HIDDEN_TOLERANCE, LOGITS_TOLERANCE, fixture_dir};
use roformer_testing::{max_abs_diff, rows_where};
use safetensors::SafeTensors;

type B = NdArray;

fn int_tensor(expected: &Expected, name: &str) -> Tensor<B, 2, Int> {
    let (shape, values) = expected.i64(name);
    Tensor::from_data(
        TensorData::new(values, [shape[0], shape[1]]),
        &Default::default(),
    )
}

/// max |got − expected| over the rows `[batch, seq, width]` whose attention mask is 1;
/// fails on a non-finite value or a length mismatch.
fn max_diff_on_real_tokens(got: &[f32], expected: &[f32], mask: &[i64], width: usize) -> f64 {
    max_abs_diff(
        &rows_where(got, width, mask),
        &rows_where(expected, width, mask),
    )
}

fn fixture_config(case: &str) -> RoFormerConfig {
    RoFormerConfig::from_json_file(&fixture_dir(case).join("config.json")).unwrap()
}

/// The number of labels an HF head's `config.json` names (`id2label`).
fn fixture_num_labels(case: &str) -> usize {
    let json = std::fs::read_to_string(fixture_dir(case).join("config.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["id2label"].as_object().unwrap().len()
}

/// The fixture's inputs and its attention mask.
fn fixture_input(expected: &Expected) -> (RoFormerInput<B>, Vec<i64>) {
    let (_, mask) = expected.i64("attention_mask");
    let input = RoFormerInput::new(int_tensor(expected, "input_ids"))
        .with_attention_mask(int_tensor(expected, "attention_mask"))
        .with_token_type_ids(int_tensor(expected, "token_type_ids"));
    (input, mask)
}

/// Every layer's output and the last hidden state against transformers'; returns the last
/// hidden state's gap.
fn check_encoder(case: &str, encoder: &RoFormerModel<B>, config: &RoFormerConfig) -> f64 {
    let expected = Expected::read(case);
    let (input, mask) = fixture_input(&expected);
    // Layer by layer first, so a mismatch names where it starts.
    let states = encoder.forward_hidden_states(input.clone());
    assert_eq!(states.len(), config.num_hidden_layers + 1);
    for (index, state) in states.into_iter().enumerate() {
        let (_, state_expected) = expected.f32(&format!("hidden_states.{index}"));
        let state_got = state.into_data().to_vec::<f32>().unwrap();
        let diff = max_diff_on_real_tokens(&state_got, &state_expected, &mask, config.hidden_size);
        assert!(
            diff < HIDDEN_TOLERANCE,
            "{case}: hidden_states.{index} max |diff| {diff:e}"
        );
    }
    let hidden = encoder.forward(input);
    let (hidden_shape, hidden_expected) = expected.f32("last_hidden_state");
    assert_eq!(hidden.dims().to_vec(), hidden_shape);
    let hidden_got = hidden.into_data().to_vec::<f32>().unwrap();
    let hidden_diff =
        max_diff_on_real_tokens(&hidden_got, &hidden_expected, &mask, config.hidden_size);
    assert!(
        hidden_diff < HIDDEN_TOLERANCE,
        "{case}: last_hidden_state max |diff| {hidden_diff:e}"
    );
    hidden_diff
}

/// A head's logits against transformers': per real token when `per_token`, else per row.
fn check_logits<const D: usize>(case: &str, logits: Tensor<B, D>, per_token: bool) -> f64 {
    let expected = Expected::read(case);
    let (_, mask) = expected.i64("attention_mask");
    let (shape, logits_expected) = expected.f32("logits");
    assert_eq!(logits.dims().to_vec(), shape);
    let got = logits.into_data().to_vec::<f32>().unwrap();
    let diff = if per_token {
        max_diff_on_real_tokens(&got, &logits_expected, &mask, shape[D - 1])
    } else {
        max_abs_diff(&got, &logits_expected)
    };
    assert!(
        diff < LOGITS_TOLERANCE,
        "{case}: logits max |diff| {diff:e}"
    );
    diff
}

fn check_case(case: &str, expect_config: impl Fn(&RoFormerConfig)) {
    let dir = fixture_dir(case);
    let config = fixture_config(case);
    expect_config(&config);
    let model: RoFormerForMaskedLM<B> =
        load_hf_masked_lm(&config, &dir.join("model.safetensors"), &Default::default()).unwrap();
    let hidden_diff = check_encoder(case, &model.roformer, &config);
    let (input, _) = fixture_input(&Expected::read(case));
    let logits_diff = check_logits(case, model.forward(input), true);
    eprintln!(
        "{case}: last_hidden_state max |diff| {hidden_diff:.2e}, logits max |diff| {logits_diff:.2e}"
    );
}

#[test]
fn matches_transformers_base() {
    check_case("base", |c| {
        assert!(!c.rotary_value);
        assert_eq!(c.embedding_size(), c.hidden_size);
    });
}

#[test]
fn matches_transformers_with_rotary_value() {
    check_case("rotary_value", |c| assert!(c.rotary_value));
}

#[test]
fn matches_transformers_with_embedding_projection() {
    check_case("embedding_project", |c| {
        assert_ne!(c.embedding_size(), c.hidden_size)
    });
}

#[test]
fn matches_transformers_with_padding() {
    check_case("padding", |_| {
        let (_, mask) = Expected::read("padding").i64("attention_mask");
        assert!(
            mask.contains(&0),
            "the padding fixture must contain padding"
        );
    });
}

#[test]
fn matches_transformers_with_a_non_default_layer_norm_eps_and_silu() {
    check_case("layer_norm_eps", |c| {
        assert_eq!(c.layer_norm_eps, 1e-3);
        assert_eq!(c.hidden_act, HiddenAct::Silu);
    });
}

#[test]
fn matches_transformers_with_tanh_token_types_and_a_padding_id() {
    check_case("config_variants", |c| {
        assert_eq!(c.hidden_act, HiddenAct::Tanh);
        assert_eq!(c.type_vocab_size, 5);
        assert_eq!(c.pad_token_id, Some(3));
        assert_eq!(c.max_position_embeddings, 40);
        let (_, ids) = Expected::read("config_variants").i64("input_ids");
        let (_, mask) = Expected::read("config_variants").i64("attention_mask");
        assert!(
            ids.iter().zip(&mask).any(|(&id, &m)| m == 0 && id == 3),
            "the fixture must pad with id 3"
        );
    });
}

#[test]
fn matches_transformers_sequence_classification() {
    let case = "sequence_classification";
    let config = fixture_config(case);
    assert_ne!(config.embedding_size(), config.hidden_size);
    let model = load_hf_sequence_classification::<B>(
        &config,
        fixture_num_labels(case),
        &fixture_dir(case).join("model.safetensors"),
        &Default::default(),
    )
    .unwrap();
    check_encoder(case, &model.roformer, &config);
    let (input, mask) = fixture_input(&Expected::read(case));
    assert!(mask.contains(&0), "the fixture must contain padding");
    let diff = check_logits(case, model.forward(input), false);
    eprintln!("{case}: logits max |diff| {diff:.2e}");
}

#[test]
fn matches_transformers_token_classification() {
    let case = "token_classification";
    let config = fixture_config(case);
    assert!(config.rotary_value);
    let model = load_hf_token_classification::<B>(
        &config,
        fixture_num_labels(case),
        &fixture_dir(case).join("model.safetensors"),
        &Default::default(),
    )
    .unwrap();
    check_encoder(case, &model.roformer, &config);
    let (input, _) = fixture_input(&Expected::read(case));
    let diff = check_logits(case, model.forward(input), true);
    eprintln!("{case}: logits max |diff| {diff:.2e}");
}

#[test]
fn a_head_file_loads_only_into_its_own_head() {
    // A token-classification file has no `classifier.dense`; a masked-LM file has no
    // `classifier` at all.
    let config = fixture_config("token_classification");
    let error = load_hf_sequence_classification::<B>(
        &config,
        5,
        &fixture_dir("token_classification").join("model.safetensors"),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("classifier.dense"), "{error}");
    let config = fixture_config("base");
    let error = load_hf_token_classification::<B>(
        &config,
        5,
        &fixture_dir("base").join("model.safetensors"),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("cls.predictions"), "{error}");
}

#[test]
fn a_file_that_does_not_fit_is_an_error_listing_the_tensors() {
    // The embedding-projection checkpoint into a model without the projection: shapes
    // differ and `embeddings_project` is unexpected.
    let device = Default::default();
    let config = RoFormerConfig::from_json_file(&fixture_dir("base").join("config.json")).unwrap();
    let error = load_hf_masked_lm::<B>(
        &config,
        &fixture_dir("embedding_project").join("model.safetensors"),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("embeddings_project"), "{error}");
    assert!(error.contains("word_embeddings"), "{error}");
}

/// The file at `saved` holds exactly the tensors of `original` (a file written by
/// transformers), byte for byte: the transposes and renames invert exactly, the
/// regenerated sinusoidal table included.
fn assert_same_tensors(saved: &Path, original: &Path) {
    let saved_bytes = std::fs::read(saved).unwrap();
    let saved = SafeTensors::deserialize(&saved_bytes).unwrap();
    let original_bytes = std::fs::read(original).unwrap();
    let original = SafeTensors::deserialize(&original_bytes).unwrap();
    let mut saved_names: Vec<String> = saved.names().into_iter().map(str::to_string).collect();
    let mut hf_names: Vec<String> = original.names().into_iter().map(str::to_string).collect();
    saved_names.sort();
    hf_names.sort();
    assert_eq!(saved_names, hf_names);
    for name in &hf_names {
        assert_eq!(
            saved.tensor(name).unwrap().data(),
            original.tensor(name).unwrap().data(),
            "{name}"
        );
    }
}

/// Loads the fixture `case` with `load`, saves it with `save`, and checks that the file is
/// the one transformers wrote (tensor for tensor) and loads back to the same outputs.
fn assert_saved_as_transformers_wrote<M>(
    case: &str,
    load: impl Fn(&std::path::Path) -> M,
    save: impl Fn(&M, &std::path::Path),
    outputs: impl Fn(&M, RoFormerInput<B>) -> Vec<f32>,
) {
    let original = fixture_dir(case).join("model.safetensors");
    let model = load(&original);
    let out = std::env::temp_dir().join(format!(
        "roformer-{case}-roundtrip-{}.safetensors",
        std::process::id()
    ));
    save(&model, &out);
    assert_same_tensors(&out, &original);
    let reloaded = load(&out);
    std::fs::remove_file(&out).unwrap();
    let (input, _) = fixture_input(&Expected::read(case));
    assert_eq!(outputs(&model, input.clone()), outputs(&reloaded, input));
}

/// A classifier saved here is the file transformers wrote (so `from_pretrained` loads it
/// with no missing keys and gives the fixture's logits), and loads back to the same logits.
#[test]
fn saving_a_sequence_classifier_in_hf_layout_round_trips() {
    let case = "sequence_classification";
    let (config, labels) = (fixture_config(case), fixture_num_labels(case));
    assert_saved_as_transformers_wrote(
        case,
        |path| {
            load_hf_sequence_classification::<B>(&config, labels, path, &Default::default())
                .unwrap()
        },
        |model, path| save_hf_sequence_classification(model, &config, path).unwrap(),
        |model, input| model.forward(input).into_data().to_vec::<f32>().unwrap(),
    );
}

/// A token classifier saved here is the file transformers wrote, and loads back to the
/// same logits.
#[test]
fn saving_a_token_classifier_in_hf_layout_round_trips() {
    let case = "token_classification";
    let (config, labels) = (fixture_config(case), fixture_num_labels(case));
    assert_saved_as_transformers_wrote(
        case,
        |path| {
            load_hf_token_classification::<B>(&config, labels, path, &Default::default()).unwrap()
        },
        |model, path| save_hf_token_classification(model, &config, path).unwrap(),
        |model, input| model.forward(input).into_data().to_vec::<f32>().unwrap(),
    );
}

#[test]
fn saving_in_hf_layout_round_trips() {
    let device = Default::default();
    let dir = fixture_dir("embedding_project");
    let config = RoFormerConfig::from_json_file(&dir.join("config.json")).unwrap();
    let model: RoFormerForMaskedLM<B> =
        load_hf_masked_lm(&config, &dir.join("model.safetensors"), &device).unwrap();
    let out = std::env::temp_dir().join(format!(
        "roformer-roundtrip-{}.safetensors",
        std::process::id()
    ));
    save_hf_safetensors(&model, &config, &out).unwrap();

    assert_same_tensors(&out, &dir.join("model.safetensors"));
    let reloaded: RoFormerForMaskedLM<B> = load_hf_masked_lm(&config, &out, &device).unwrap();
    std::fs::remove_file(&out).unwrap();
    let expected = Expected::read("embedding_project");
    let input = RoFormerInput::new(int_tensor(&expected, "input_ids"));
    let a = model
        .forward(input.clone())
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let b = reloaded.forward(input).into_data().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
}
