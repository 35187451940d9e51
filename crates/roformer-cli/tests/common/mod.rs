//! Helpers shared by roformer-train's integration tests: running the `roformer` binary, a
//! small corpus cut from the built-in one, a small model directory, and the lock on
//! burn-ndarray's random generator.

#![allow(dead_code)] // Each test file uses its own subset.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use burn::backend::NdArray;
use roformer::{PositionEmbeddingType, RoFormerConfig, RoFormerForMaskedLM};
use roformer_infer::model_dir::{save_model, save_tokenizer};
use roformer_infer::tokenizer::TextTokenizer;
use roformer_train::data::shipped_file;

/// Held by every test of a binary that seeds or draws from burn-ndarray's random
/// generator in process (a fresh model's weights, a seeded run): the generator is one
/// global, so a draw from a test in another thread could otherwise fall between a run's
/// seed and its draws, and two runs that must agree would not.
pub fn ndarray_generator() -> MutexGuard<'static, ()> {
    static GENERATOR: Mutex<()> = Mutex::new(());
    GENERATOR.lock().unwrap_or_else(|e| e.into_inner())
}

/// A command for the `roformer` binary built with the tests.
pub fn roformer_command(args: &[&str]) -> Command {
    // A binary built with the `wgpu` feature runs on WGPU, whose Wayland probe complains
    // on stderr when XDG_RUNTIME_DIR is unset, as it is on CI machines.
    static RUNTIME_DIR: OnceLock<PathBuf> = OnceLock::new();
    let runtime_dir = RUNTIME_DIR.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    });
    let mut command = Command::new(env!("CARGO_BIN_EXE_roformer"));
    command.args(args).env("XDG_RUNTIME_DIR", runtime_dir);
    command
}

/// Runs the binary to completion: (success, stdout, stderr).
pub fn roformer(args: &[&str]) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = roformer_command(args).output().unwrap();
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Starts the binary without waiting for it.
pub fn spawn_roformer(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut command = roformer_command(args);
    command.envs(env.iter().copied());
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Writes three short works cut from the built-in corpus into `dir`.
pub fn write_small_corpus(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for name in ["macbeth.txt", "tempest.txt", "sonnets.txt"] {
        let text = shipped_file(name).unwrap();
        let head: Vec<&str> = text.lines().skip(100).take(400).collect();
        std::fs::write(dir.join(name), head.join("\n")).unwrap();
    }
}

/// A training config for the small corpus at `corpus`: a 1-layer model of width 32 with
/// dropout on, evaluated and checkpointed every `every` steps.
pub fn small_config_toml(corpus: &Path, steps: usize, every: usize) -> String {
    format!(
        r#"
[model]
vocab_size = 300
hidden_size = 32
num_hidden_layers = 1
num_attention_heads = 2
intermediate_size = 64
max_position_embeddings = 64
hidden_dropout_prob = 0.1
attention_probs_dropout_prob = 0.1

[data]
corpus = "{corpus}"
validation_works = ["sonnets.txt"]
max_seq_len = 24

[tokenizer]
min_frequency = 1

[training]
batch_size = 16
learning_rate = 1e-2
warmup_steps = 5
steps = {steps}
eval_every = {every}
checkpoint_every = {every}
seed = 7
"#,
        corpus = corpus.display()
    )
}

/// A model directory of ours in `dir`: a fresh masked-LM model and a tokenizer trained on
/// a few lines.
pub fn write_model_dir(dir: &Path) {
    write_model_dir_with(dir, PositionEmbeddingType::Rotary, 0.1);
}

/// The words of the lines [`write_model_dir`]'s tokenizer is trained on.
pub const MODEL_DIR_WORDS: &[&str] = &[
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "to", "be", "or", "not",
    "that", "is", "question", "all", "world", "a", "stage", "and", "men", "women", "merely",
    "players",
];

/// [`write_model_dir`] for a model with positions of `kind` and dropout probability
/// `dropout` (hidden and attention).
pub fn write_model_dir_with(dir: &Path, kind: PositionEmbeddingType, dropout: f64) {
    let lines = [
        "the quick brown fox jumps over the lazy dog",
        "to be or not to be that is the question",
        "all the world is a stage and all the men and women merely players",
    ];
    let tokenizer = TextTokenizer::train(lines.into_iter(), 60, 1, true).unwrap();
    let config = RoFormerConfig {
        vocab_size: tokenizer.vocab_size(),
        hidden_size: 16,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 24,
        max_position_embeddings: 32,
        position_embedding_type: kind,
        hidden_dropout_prob: dropout,
        attention_probs_dropout_prob: dropout,
        ..Default::default()
    };
    let _generator = ndarray_generator();
    let model = RoFormerForMaskedLM::<NdArray>::new(&config, &Default::default()).unwrap();
    save_model(dir, &config, &model).unwrap();
    save_tokenizer(dir, &tokenizer).unwrap();
}

/// Writes `count` labelled JSON lines to `path`, half of each label, drawn from `seed`:
/// seven words of [`MODEL_DIR_WORDS`], five of them from the first half of the list for
/// label `first` and from the second half for label `second`, the other two from anywhere.
/// Every word carries some of the signal, so a small fresh encoder learns it in a few
/// hundred steps.
pub fn write_word_set_examples(path: &Path, count: usize, seed: u64) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % bound as u64) as usize
    };
    let (first, second) = MODEL_DIR_WORDS.split_at(MODEL_DIR_WORDS.len() / 2);
    let mut text = String::new();
    for index in 0..count {
        let (label, own) = if index % 2 == 0 {
            ("first", first)
        } else {
            ("second", second)
        };
        let mut words: Vec<&str> = (0..5).map(|_| own[next(own.len())]).collect();
        for _ in 0..2 {
            let word = MODEL_DIR_WORDS[next(MODEL_DIR_WORDS.len())];
            words.insert(next(words.len() + 1), word);
        }
        text.push_str(&serde_json::json!({"text": words.join(" "), "label": label}).to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// A fine-tuning config: sequence classification from `model`, on `train` and `valid`.
pub fn finetune_config_toml(
    model: &Path,
    train: &Path,
    valid: &Path,
    steps: usize,
    every: usize,
) -> String {
    format!(
        r#"
[task]
type = "sequence-classification"
init_from = "{model}"
max_seq_len = 16

[data]
train = "{train}"
validation = "{valid}"

[training]
batch_size = 16
learning_rate = 1e-2
warmup_steps = 5
weight_decay = 0.0
steps = {steps}
eval_every = {every}
checkpoint_every = {every}
seed = 3
"#,
        model = model.display(),
        train = train.display(),
        valid = valid.display(),
    )
}

/// Every tensor of a run's `model.safetensors`, by name, as f32.
pub fn run_weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut named: Vec<(String, Vec<f32>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}
