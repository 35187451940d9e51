//! Parity with HF transformers: small `RoFormerForMaskedLM` models with order-1 random
//! weights, saved by `scripts/make_hf_fixtures.py` together with their inputs and
//! transformers' outputs, are loaded here and must reproduce `last_hidden_state` to 1e-4
//! and the MLM logits to 1e-3 (max absolute difference over real tokens).

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use roformer::hf_weights::{load_hf_masked_lm, save_hf_safetensors};
use roformer::{RoFormerConfig, RoFormerForMaskedLM, RoFormerInput};
use safetensors::{Dtype, SafeTensors};

type B = NdArray;

const HIDDEN_TOLERANCE: f32 = 1e-4;
const LOGITS_TOLERANCE: f32 = 1e-3;

fn fixture_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(case)
}

/// A tensor of the expected file as (shape, values); int64 tensors are returned as i64.
struct Expected {
    bytes: Vec<u8>,
}

impl Expected {
    fn read(case: &str) -> Self {
        let bytes = std::fs::read(fixture_dir(case).join("expected.safetensors")).unwrap();
        Self { bytes }
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }

    fn f32(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let tensors = self.tensors();
        let view = tensors.tensor(name).unwrap();
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (view.shape().to_vec(), values)
    }

    fn i64(&self, name: &str) -> (Vec<usize>, Vec<i64>) {
        let tensors = self.tensors();
        let view = tensors.tensor(name).unwrap();
        assert_eq!(view.dtype(), Dtype::I64, "{name}");
        let values = view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (view.shape().to_vec(), values)
    }

    fn int_tensor(&self, name: &str) -> Tensor<B, 2, Int> {
        let (shape, values) = self.i64(name);
        Tensor::from_data(
            TensorData::new(values, [shape[0], shape[1]]),
            &Default::default(),
        )
    }
}

/// Max |a − b| over rows `[batch, seq, width]` whose attention mask is 1.
fn max_diff_on_real_tokens(got: &[f32], expected: &[f32], mask: &[i64], width: usize) -> f32 {
    assert_eq!(got.len(), expected.len());
    got.chunks(width)
        .zip(expected.chunks(width))
        .zip(mask)
        .filter(|(_, m)| **m == 1)
        .flat_map(|((g, e), _)| g.iter().zip(e).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

fn check_case(case: &str, expect_config: impl Fn(&RoFormerConfig)) {
    let dir = fixture_dir(case);
    let device = Default::default();
    let config = RoFormerConfig::from_json_file(&dir.join("config.json")).unwrap();
    expect_config(&config);
    let model: RoFormerForMaskedLM<B> =
        load_hf_masked_lm(&config, &dir.join("model.safetensors"), &device).unwrap();

    let expected = Expected::read(case);
    let (_, mask) = expected.i64("attention_mask");
    let input = RoFormerInput::new(expected.int_tensor("input_ids"))
        .with_attention_mask(expected.int_tensor("attention_mask"))
        .with_token_type_ids(expected.int_tensor("token_type_ids"));

    // Layer by layer first, so a mismatch names where it starts.
    let states = model.roformer.forward_hidden_states(input.clone());
    assert_eq!(states.len(), config.num_hidden_layers + 1);
    for (index, state) in states.into_iter().enumerate() {
        let (_, state_expected) = expected.f32(&format!("hidden_states.{index}"));
        let state_got = state.into_data().to_vec::<f32>().unwrap();
        let diff = max_diff_on_real_tokens(&state_got, &state_expected, &mask, config.hidden_size);
        assert!(
            diff < HIDDEN_TOLERANCE,
            "{case}: hidden_states.{index} max |diff| {diff}"
        );
    }

    let hidden = model.roformer.forward(input.clone());
    let (hidden_shape, hidden_expected) = expected.f32("last_hidden_state");
    assert_eq!(hidden.dims().to_vec(), hidden_shape);
    let hidden_got = hidden.into_data().to_vec::<f32>().unwrap();
    let hidden_diff =
        max_diff_on_real_tokens(&hidden_got, &hidden_expected, &mask, config.hidden_size);
    assert!(
        hidden_diff < HIDDEN_TOLERANCE,
        "{case}: last_hidden_state max |diff| {hidden_diff}"
    );

    let logits = model.forward(input);
    let (logits_shape, logits_expected) = expected.f32("logits");
    assert_eq!(logits.dims().to_vec(), logits_shape);
    let logits_got = logits.into_data().to_vec::<f32>().unwrap();
    let logits_diff =
        max_diff_on_real_tokens(&logits_got, &logits_expected, &mask, config.vocab_size);
    assert!(
        logits_diff < LOGITS_TOLERANCE,
        "{case}: logits max |diff| {logits_diff}"
    );
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

    // The file holds HF's names and every HF tensor, the regenerated table included.
    let bytes = std::fs::read(&out).unwrap();
    let saved = SafeTensors::deserialize(&bytes).unwrap();
    let original_bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let original = SafeTensors::deserialize(&original_bytes).unwrap();
    let mut saved_names: Vec<String> = saved.names().into_iter().map(str::to_string).collect();
    let mut hf_names: Vec<String> = original.names().into_iter().map(str::to_string).collect();
    saved_names.sort();
    hf_names.sort();
    assert_eq!(saved_names, hf_names);
    // Same bytes tensor by tensor: the transposes and renames invert exactly.
    for name in &hf_names {
        assert_eq!(
            saved.tensor(name).unwrap().data(),
            original.tensor(name).unwrap().data(),
            "{name}"
        );
    }
    let reloaded: RoFormerForMaskedLM<B> = load_hf_masked_lm(&config, &out, &device).unwrap();
    std::fs::remove_file(&out).unwrap();
    let expected = Expected::read("embedding_project");
    let input = RoFormerInput::new(expected.int_tensor("input_ids"));
    let a = model
        .forward(input.clone())
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let b = reloaded.forward(input).into_data().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
}
