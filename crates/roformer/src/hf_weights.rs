//! Hugging Face RoFormer weight files: loading `model.safetensors` or `pytorch_model.bin`
//! written by transformers (`RoFormerForMaskedLM` or a bare `RoFormerModel`), and saving
//! ours in the same layout.
//!
//! The task heads' files (`RoFormerForSequenceClassification`,
//! `RoFormerForTokenClassification`) load into the matching models here.
//!
//! HF names map onto ours through one declarative table ([`HF_KEY_TABLE`]) applied by
//! burn-store's `KeyRemapper`; burn-store's `PyTorchToBurnAdapter` transposes linear
//! weights (`[out, in]` → `[in, out]`). f16 and bf16 files are converted to the backend's
//! float type. Loading is strict: every parameter must be filled and every tensor in the
//! file used or on [`IGNORED_HF_TENSORS`]; anything else is an error listing the names.
//! A decoder stored in the file (older `.bin` files keep `cls.predictions.decoder.*`) must
//! equal the word embeddings and the output bias it is tied to.

use crate::backend::RoFormerBackend;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Element};
use burn_store::{
    BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore, TensorSnapshot,
};

use crate::config::RoFormerConfig;
use crate::error::RoFormerError;
use crate::heads::{
    RoFormerForMaskedLM, RoFormerForSequenceClassification, RoFormerForTokenClassification,
};
use crate::model::RoFormerModel;
use crate::precision::{Precision, cast_parameters};

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

/// Tensors HF files may hold that are not parameters here (names as in a
/// `RoFormerForMaskedLM` file; a bare `RoFormerModel` file has them without `roformer.`):
/// the sinusoidal position table (deterministic: we regenerate it; some files omit it) and
/// the decoder, which is tied to the word embeddings and the output bias (checked equal).
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

/// Prefix of the encoder's tensors in a file that also holds a head.
const ENCODER_PREFIX: &str = "roformer.";
/// Prefix of the masked-LM head's tensors.
const MLM_HEAD_PREFIX: &str = "cls.";
const DECODER_WEIGHT: &str = "cls.predictions.decoder.weight";
const DECODER_BIAS: &str = "cls.predictions.decoder.bias";
const WORD_EMBEDDINGS: &str = "roformer.embeddings.word_embeddings.weight";
const OUTPUT_BIAS: &str = "cls.predictions.bias";

/// A checkpoint loaded from an HF file: with its masked-LM head when the file has one
/// (`RoFormerForMaskedLM`), otherwise the bare encoder (`RoFormerModel`).
#[derive(Debug)]
// One per loaded model; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum RoFormerWeights<B: Backend> {
    /// Encoder and masked-LM head.
    MaskedLm(RoFormerForMaskedLM<B>),
    /// Encoder only.
    Encoder(RoFormerModel<B>),
}

impl<B: RoFormerBackend> RoFormerWeights<B> {
    /// The encoder.
    pub fn encoder(&self) -> &RoFormerModel<B> {
        match self {
            Self::MaskedLm(model) => &model.roformer,
            Self::Encoder(model) => model,
        }
    }

    /// The encoder with its masked-LM head, if the checkpoint has one.
    pub fn masked_lm(&self) -> Option<&RoFormerForMaskedLM<B>> {
        match self {
            Self::MaskedLm(model) => Some(model),
            Self::Encoder(_) => None,
        }
    }

    /// For inference in `precision`: the weights stored in it and the model computing in
    /// it ([`crate::precision`]).
    pub fn in_precision(self, precision: Precision) -> Self {
        match self {
            Self::MaskedLm(model) => {
                Self::MaskedLm(cast_parameters(model.with_precision(precision), precision))
            }
            Self::Encoder(model) => {
                Self::Encoder(cast_parameters(model.with_precision(precision), precision))
            }
        }
    }
}

/// Which kind of file `path` is, from its name.
fn is_pytorch_pickle(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "bin" || e == "pt" || e == "pth")
}

/// Reads every tensor of a safetensors or PyTorch (`.bin`, `.pt`, `.pth`) file, by name.
fn read_tensors(path: &Path) -> Result<BTreeMap<String, TensorSnapshot>, RoFormerError> {
    let format_error = |message: String| RoFormerError::WeightsFormat {
        path: path.display().to_string(),
        message,
    };
    if !path.is_file() {
        return Err(format_error("no such file".into()));
    }
    if is_pytorch_pickle(path) {
        PytorchStore::from_file(path)
            .get_all_snapshots()
            .cloned()
            .map_err(|e| format_error(e.to_string()))
    } else {
        SafetensorsStore::from_file(path)
            .get_all_snapshots()
            .cloned()
            .map_err(|e| format_error(e.to_string()))
    }
}

fn renamed(mut snapshot: TensorSnapshot, name: &str) -> TensorSnapshot {
    snapshot.path_stack = Some(name.split('.').map(str::to_string).collect());
    snapshot
}

/// `snapshot` with its data converted to `target` (f16/bf16 files into an f32 model).
fn converted(snapshot: TensorSnapshot, target: DType) -> TensorSnapshot {
    if snapshot.dtype == target {
        return snapshot;
    }
    let read = snapshot.clone_data_fn();
    let mut out = TensorSnapshot::from_closure(
        Rc::new(move || Ok(read()?.convert_dtype(target))),
        target,
        snapshot.shape.clone(),
        snapshot.path_stack.clone().unwrap_or_default(),
        snapshot.container_stack.clone().unwrap_or_default(),
        snapshot.tensor_id.unwrap_or_default(),
    );
    out.container_stack = snapshot.container_stack;
    out.tensor_id = snapshot.tensor_id;
    out
}

fn values(snapshot: &TensorSnapshot) -> Result<Vec<f32>, String> {
    snapshot
        .to_data()
        .map_err(|e| format!("{e:?}"))?
        .convert_dtype(DType::F32)
        .to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))
}

/// Checks that a stored decoder tensor equals the tensor it is tied to.
fn check_tied(
    tensors: &BTreeMap<String, TensorSnapshot>,
    stored: &str,
    tied_to: &str,
    problems: &mut Vec<String>,
) {
    let (Some(stored_tensor), Some(tied_tensor)) = (tensors.get(stored), tensors.get(tied_to))
    else {
        return;
    };
    match (values(stored_tensor), values(tied_tensor)) {
        (Ok(a), Ok(b)) if a.len() == b.len() => {
            // A NaN on either side is a difference too (`f32::max` would drop it).
            let max_diff = a
                .iter()
                .zip(&b)
                .map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() })
                .fold(0.0f32, |m, d| {
                    if m.is_nan() || d.is_nan() {
                        f32::NAN
                    } else {
                        m.max(d)
                    }
                });
            if max_diff.is_nan() || max_diff > 0.0 {
                problems.push(format!(
                    "  {stored} differs from {tied_to} (max |diff| {max_diff:e}): this model ties them, untied decoders are not supported"
                ));
            }
        }
        (Ok(_), Ok(_)) => problems.push(format!(
            "  {stored} {:?} does not match the shape of {tied_to} {:?}",
            stored_tensor.shape, tied_tensor.shape
        )),
        (Err(e), _) | (_, Err(e)) => problems.push(format!("  {stored}: unreadable: {e}")),
    }
}

/// The file's tensors as snapshots for [`apply_strictly`]: the ignored ones dropped (a
/// stored decoder is checked against what it is tied to), dtypes checked and converted to
/// the backend's float type, named as the module to fill names them (`with_prefix`: the
/// `roformer.` prefix of a file with a head; otherwise none, for a bare [`RoFormerModel`])
/// and remapped by [`HF_KEY_TABLE`].
fn prepared_snapshots<B: RoFormerBackend>(
    tensors: &BTreeMap<String, TensorSnapshot>,
    with_prefix: bool,
    problems: &mut Vec<String>,
) -> Vec<TensorSnapshot> {
    let target = <B::FloatElem as Element>::dtype();
    let mut snapshots = Vec::with_capacity(tensors.len());
    for (name, snapshot) in tensors {
        // One naming for the checks: the full one of a file with a head.
        let full_name = if name.starts_with(ENCODER_PREFIX) || with_prefix {
            name.clone()
        } else {
            format!("{ENCODER_PREFIX}{name}")
        };
        if IGNORED_HF_TENSORS.contains(&full_name.as_str()) {
            continue;
        }
        if !matches!(snapshot.dtype, DType::F32 | DType::F16 | DType::BF16) {
            problems.push(format!(
                "  {name}: dtype {:?}, expected F32, F16 or BF16",
                snapshot.dtype
            ));
            continue;
        }
        let module_name = if with_prefix {
            full_name
        } else {
            full_name[ENCODER_PREFIX.len()..].to_string()
        };
        snapshots.push(converted(renamed(snapshot.clone(), &module_name), target));
    }
    check_tied(tensors, DECODER_WEIGHT, WORD_EMBEDDINGS, problems);
    check_tied(tensors, DECODER_BIAS, OUTPUT_BIAS, problems);
    hf_key_remapper().remap(snapshots).0
}

/// Fills `model` from `snapshots` (PyTorch `[out, in]` linear weights transposed), adding
/// to `problems` every tensor that does not fit, is missing or is not a parameter.
fn apply_strictly<B: RoFormerBackend, M: ModuleSnapshot<B>>(
    model: &mut M,
    snapshots: Vec<TensorSnapshot>,
    problems: &mut Vec<String>,
) {
    let result = model.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), true);
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
            .map(|name| format!("  not a parameter of the model: {name}")),
    );
}

/// `value` when nothing went wrong, else the error naming the file and every problem.
fn strictly<T>(value: T, path: &Path, problems: Vec<String>) -> Result<T, RoFormerError> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(RoFormerError::WeightsMismatch {
            path: path.display().to_string(),
            problems: problems.join("\n"),
        })
    }
}

/// Every tensor of a weights file; an empty file is an error.
fn read_nonempty(path: &Path) -> Result<BTreeMap<String, TensorSnapshot>, RoFormerError> {
    let tensors = read_tensors(path)?;
    if tensors.is_empty() {
        return Err(RoFormerError::WeightsFormat {
            path: path.display().to_string(),
            message: "the file holds no tensors".into(),
        });
    }
    Ok(tensors)
}

/// Loads an HF weights file (`model.safetensors` or `pytorch_model.bin`) for a model of
/// `config`: a `RoFormerForMaskedLM` file (or an older one that also stores the tied
/// decoder) gives [`RoFormerWeights::MaskedLm`]; a file without `cls.` tensors (a bare
/// `RoFormerModel`, with or without the `roformer.` prefix) gives
/// [`RoFormerWeights::Encoder`]. Fails, naming the file and every tensor at fault, unless
/// the file fills the model exactly.
pub fn load_hf_weights<B: RoFormerBackend>(
    config: &RoFormerConfig,
    path: &Path,
    device: &B::Device,
) -> Result<RoFormerWeights<B>, RoFormerError> {
    let tensors = read_nonempty(path)?;
    let has_mlm_head = tensors.keys().any(|k| k.starts_with(MLM_HEAD_PREFIX));
    let mut problems = Vec::new();
    let snapshots = prepared_snapshots::<B>(&tensors, has_mlm_head, &mut problems);
    let weights = if has_mlm_head {
        let mut model = RoFormerForMaskedLM::new(config, device)?;
        apply_strictly(&mut model, snapshots, &mut problems);
        RoFormerWeights::MaskedLm(model)
    } else {
        let mut model = RoFormerModel::new(config, device)?;
        apply_strictly(&mut model, snapshots, &mut problems);
        RoFormerWeights::Encoder(model)
    };
    strictly(weights, path, problems)
}

/// Fills a freshly built model with a head (`roformer.*` plus the head's tensors) from an
/// HF weights file, strictly.
fn fill_with_head<B: RoFormerBackend, M: ModuleSnapshot<B>>(
    mut model: M,
    path: &Path,
) -> Result<M, RoFormerError> {
    let tensors = read_nonempty(path)?;
    let mut problems = Vec::new();
    let snapshots = prepared_snapshots::<B>(&tensors, true, &mut problems);
    apply_strictly(&mut model, snapshots, &mut problems);
    strictly(model, path, problems)
}

/// Loads an HF `RoFormerForSequenceClassification` weights file (`roformer.*` and
/// `classifier.{dense,out_proj}.*`) into a model with `num_labels` classes, strictly.
pub fn load_hf_sequence_classification<B: RoFormerBackend>(
    config: &RoFormerConfig,
    num_labels: usize,
    path: &Path,
    device: &B::Device,
) -> Result<RoFormerForSequenceClassification<B>, RoFormerError> {
    fill_with_head(
        RoFormerForSequenceClassification::new(config, num_labels, device)?,
        path,
    )
}

/// Loads an HF `RoFormerForTokenClassification` weights file (`roformer.*` and
/// `classifier.*`) into a model with `num_labels` classes, strictly.
pub fn load_hf_token_classification<B: RoFormerBackend>(
    config: &RoFormerConfig,
    num_labels: usize,
    path: &Path,
    device: &B::Device,
) -> Result<RoFormerForTokenClassification<B>, RoFormerError> {
    fill_with_head(
        RoFormerForTokenClassification::new(config, num_labels, device)?,
        path,
    )
}

/// Loads an HF `RoFormerForMaskedLM` weights file; fails if the file has no masked-LM head.
pub fn load_hf_masked_lm<B: RoFormerBackend>(
    config: &RoFormerConfig,
    path: &Path,
    device: &B::Device,
) -> Result<RoFormerForMaskedLM<B>, RoFormerError> {
    match load_hf_weights(config, path, device)? {
        RoFormerWeights::MaskedLm(model) => Ok(model),
        RoFormerWeights::Encoder(_) => Err(RoFormerError::WeightsMismatch {
            path: path.display().to_string(),
            problems: "  the checkpoint has no masked-LM head (no `cls.` tensors)".into(),
        }),
    }
}

pub use crate::positions::sinusoidal_position_table;

fn hf_key_remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(HF_KEY_TABLE.to_vec())
        .expect("HF_KEY_TABLE patterns are valid regexes")
}

/// Adds the sinusoidal table to a saved file, as `save_pretrained` writes it, so that
/// transformers finds every key it expects.
fn append_position_table(
    path: &Path,
    name: &str,
    config: &RoFormerConfig,
) -> Result<(), RoFormerError> {
    let io_error = |message: String| RoFormerError::Io {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| io_error(e.to_string()))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| io_error(e.to_string()))?;
    let file =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| io_error(e.to_string()))?;
    let (n_pos, dim) = (config.max_position_embeddings, config.head_size());
    let table: Vec<u8> = sinusoidal_position_table(n_pos, dim)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut tensors = file.tensors();
    tensors.push((
        name.to_string(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n_pos, dim], &table)
            .map_err(|e| io_error(e.to_string()))?,
    ));
    let out = safetensors::serialize(tensors, header.metadata().clone())
        .map_err(|e| io_error(e.to_string()))?;
    std::fs::write(path, out).map_err(|e| io_error(e.to_string()))
}

fn save_module<B: RoFormerBackend, M: Module<B> + ModuleSnapshot<B>>(
    module: &M,
    path: &Path,
) -> Result<(), RoFormerError> {
    let remapper = KeyRemapper::from_patterns(BURN_TO_HF_KEY_TABLE.to_vec())
        .expect("BURN_TO_HF_KEY_TABLE patterns are valid regexes");
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .remap(remapper)
        .metadata("format", "pt");
    module
        .save_into(&mut store)
        .map_err(|error| RoFormerError::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        })
}

/// Saves `model` as an HF `model.safetensors` (HF names, PyTorch `[out, in]` linear
/// weights, and the sinusoidal table as `save_pretrained` writes it), loadable by
/// `RoFormerForMaskedLM.from_pretrained` with no missing keys and by [`load_hf_weights`].
/// The tied decoder is not written, as `save_pretrained` does not write it either.
pub fn save_hf_safetensors<B: RoFormerBackend>(
    model: &RoFormerForMaskedLM<B>,
    config: &RoFormerConfig,
    path: &Path,
) -> Result<(), RoFormerError> {
    save_module(model, path)?;
    append_position_table(path, IGNORED_HF_TENSORS[0], config)
}

/// Saves a checkpoint as HF would: a masked-LM model as [`save_hf_safetensors`], a bare
/// encoder as `RoFormerModel.save_pretrained` does (no `roformer.` prefix).
pub fn save_hf_weights<B: RoFormerBackend>(
    weights: &RoFormerWeights<B>,
    config: &RoFormerConfig,
    path: &Path,
) -> Result<(), RoFormerError> {
    match weights {
        RoFormerWeights::MaskedLm(model) => save_hf_safetensors(model, config, path),
        RoFormerWeights::Encoder(model) => {
            save_module(model, path)?;
            append_position_table(path, &IGNORED_HF_TENSORS[0][ENCODER_PREFIX.len()..], config)
        }
    }
}

/// Saves a sequence classifier as `RoFormerForSequenceClassification.save_pretrained`
/// does (`roformer.*`, `classifier.dense.*`, `classifier.out_proj.*`, the sinusoidal
/// table), loadable by [`load_hf_sequence_classification`].
pub fn save_hf_sequence_classification<B: RoFormerBackend>(
    model: &RoFormerForSequenceClassification<B>,
    config: &RoFormerConfig,
    path: &Path,
) -> Result<(), RoFormerError> {
    save_module(model, path)?;
    append_position_table(path, IGNORED_HF_TENSORS[0], config)
}

/// Saves a token classifier as `RoFormerForTokenClassification.save_pretrained` does
/// (`roformer.*`, `classifier.*`, the sinusoidal table), loadable by
/// [`load_hf_token_classification`].
pub fn save_hf_token_classification<B: RoFormerBackend>(
    model: &RoFormerForTokenClassification<B>,
    config: &RoFormerConfig,
    path: &Path,
) -> Result<(), RoFormerError> {
    save_module(model, path)?;
    append_position_table(path, IGNORED_HF_TENSORS[0], config)
}
