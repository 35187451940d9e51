//! The HF transformers fixtures of `crates/roformer/tests/fixtures/hf/<case>/`, made by
//! `scripts/make_hf_fixtures.py`: a model directory per case and `expected.safetensors`
//! with its inputs (`input_ids`, `attention_mask`, `token_type_ids`, int64) and
//! transformers' outputs (`last_hidden_state`, `logits`, `hidden_states.N`, float32).

use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

use crate::{gap, rows_where};

/// Hidden states must match transformers' to this (max |diff| over real tokens).
/// PyTorch's own run-to-run noise on the fixtures is ~2e-6; a wrong `layer_norm_eps`
/// (1e-5 for 1e-12) moves the default-eps fixtures' hidden states by ~1.5e-5.
pub const HIDDEN_TOLERANCE: f64 = 1e-5;
/// Logits (masked-LM or a head's) must match to this. PyTorch's noise is ~1.2e-5; the
/// wrong epsilon above moves masked-LM logits by ~1.2e-4.
pub const LOGITS_TOLERANCE: f64 = 1e-4;

/// The folder of a fixture case (`base`, `padding`, …). Found from the manifest folder
/// of the crate under test, which `cargo test` sets at run time (every crate is a sibling
/// under `crates/`): a build of this crate reused from another clone of the repository
/// then still reads this clone's fixtures.
pub fn fixture_dir(case: &str) -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    crate_dir.join("../roformer/tests/fixtures/hf").join(case)
}

/// A case's `expected.safetensors`.
pub struct Expected {
    bytes: Vec<u8>,
}

impl Expected {
    /// Reads the file of `case`.
    pub fn read(case: &str) -> Self {
        let path = fixture_dir(case).join("expected.safetensors");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self { bytes }
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("a valid safetensors file")
    }

    /// Whether the file holds `name`.
    pub fn has(&self, name: &str) -> bool {
        self.tensors().tensor(name).is_ok()
    }

    /// A float32 tensor as (shape, values).
    pub fn f32(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let tensors = self.tensors();
        let view = tensors
            .tensor(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        (view.shape().to_vec(), values)
    }

    /// An int64 tensor as (shape, values).
    pub fn i64(&self, name: &str) -> (Vec<usize>, Vec<i64>) {
        let tensors = self.tensors();
        let view = tensors
            .tensor(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(view.dtype(), Dtype::I64, "{name}");
        let values = view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        (view.shape().to_vec(), values)
    }

    /// The attention mask, one 0/1 per token.
    pub fn mask(&self) -> Vec<i64> {
        self.i64("attention_mask").1
    }

    /// max |got − expected| between `got` and the stored `name`, over the tokens whose
    /// attention mask is 1 (`got` and `name` are `[batch, seq, width]`).
    #[track_caller]
    pub fn gap_on_real_tokens(&self, name: &str, got: &[f32]) -> f64 {
        let (shape, expected) = self.f32(name);
        let mask = self.mask();
        assert_eq!(got.len(), expected.len(), "{name}: {shape:?}");
        let width = expected.len() / mask.len();
        gap(
            &rows_where(got, width, &mask),
            &rows_where(&expected, width, &mask),
        )
        .max_abs
    }
}
