//! Loading weights saved by HF transformers (`RoFormerForMaskedLM.save_pretrained`)
//! into [`RoFormerForMaskedLM`].
//!
//! HF names map onto ours through one declarative table ([`HF_KEY_TABLE`]) applied by
//! burn-store's `KeyRemapper`; burn-store's `PyTorchToBurnAdapter` transposes linear
//! weights (`[out, in]` → `[in, out]`). Loading is strict: every parameter must be filled and every tensor in
//! the file used or on [`IGNORED_HF_TENSORS`]; anything else is an error listing the names.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn_store::{
    BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};

use crate::error::RoFormerError;
use crate::heads::RoFormerForMaskedLM;

/// HF parameter-name patterns and their replacements, applied in order. Everything not
/// listed is named identically on both sides.
pub const HF_KEY_TABLE: &[(&str, &str)] = &[
    // HF keeps BERT's capitalised module name and PyTorch's parameter names; burn's
    // LayerNorm calls them gamma and beta.
    (r"\.LayerNorm\.weight$", ".layer_norm.gamma"),
    (r"\.LayerNorm\.bias$", ".layer_norm.beta"),
    // `self` is a Rust keyword.
    (r"\.attention\.self\.", ".attention.self_attention."),
];

/// Tensors HF files may hold that are not parameters here: the sinusoidal table (we
/// regenerate it) and the decoder, tied to the word embeddings and the output bias.
pub const IGNORED_HF_TENSORS: &[&str] = &[
    "roformer.encoder.embed_positions.weight",
    "cls.predictions.decoder.weight",
    "cls.predictions.decoder.bias",
];

/// Our parameter-name patterns and their HF names: [`HF_KEY_TABLE`] reversed, for saving.
/// (`BurnToPyTorchAdapter` may already have renamed gamma/beta to weight/bias.)
pub const BURN_TO_HF_KEY_TABLE: &[(&str, &str)] = &[
    (r"\.layer_norm\.(gamma|weight)$", ".LayerNorm.weight"),
    (r"\.layer_norm\.(beta|bias)$", ".LayerNorm.bias"),
    (r"\.attention\.self_attention\.", ".attention.self."),
];

/// Saves `model` as an HF `model.safetensors` (HF names, PyTorch `[out, in]` linear
/// weights), loadable by `RoFormerForMaskedLM.from_pretrained` and by
/// [`load_hf_safetensors`]. The tied decoder and the sinusoidal table are not written,
/// as `save_pretrained` does not write them either.
pub fn save_hf_safetensors<B: Backend>(
    model: &RoFormerForMaskedLM<B>,
    path: &Path,
) -> Result<(), RoFormerError> {
    let remapper = KeyRemapper::from_patterns(BURN_TO_HF_KEY_TABLE.to_vec())
        .expect("BURN_TO_HF_KEY_TABLE patterns are valid regexes");
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .remap(remapper)
        .metadata("format", "pt");
    model
        .save_into(&mut store)
        .map_err(|error| RoFormerError::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        })
}

fn hf_key_remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(HF_KEY_TABLE.to_vec())
        .expect("HF_KEY_TABLE patterns are valid regexes")
}

/// Loads an HF `model.safetensors` of `RoFormerForMaskedLM` into `model` (built from the
/// same config). Fails, naming every tensor at fault, unless the file fills the model exactly.
pub fn load_hf_safetensors<B: Backend>(
    mut model: RoFormerForMaskedLM<B>,
    path: &Path,
) -> Result<RoFormerForMaskedLM<B>, RoFormerError> {
    let path_name = path.display().to_string();
    let mut store = SafetensorsStore::from_file(path)
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(hf_key_remapper())
        .allow_partial(true)
        .validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|error| RoFormerError::WeightsFormat {
            path: path_name.clone(),
            message: error.to_string(),
        })?;

    let mut problems: Vec<String> = Vec::new();
    problems.extend(result.errors.iter().map(|error| format!("  {error}")));
    problems.extend(
        result
            .missing
            .iter()
            .map(|(name, _)| format!("  missing from the file: {name}")),
    );
    problems.extend(
        result
            .unused
            .iter()
            .filter(|name| !IGNORED_HF_TENSORS.contains(&name.as_str()))
            .map(|name| format!("  not a parameter of the model: {name}")),
    );
    if problems.is_empty() {
        Ok(model)
    } else {
        Err(RoFormerError::WeightsMismatch {
            path: path_name,
            problems: problems.join("\n"),
        })
    }
}
