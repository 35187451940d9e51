//! The training configuration file (TOML): `[model]`, `[data]`, `[tokenizer]`, `[training]`,
//! `[distributed]`.
//!
//! Every section is a typed serde struct. Optional fields take the documented defaults; an
//! unknown key (a typo), a wrong type or an invalid value is an error naming the file, the
//! key and what was expected, raised before any work starts.

use std::path::{Path, PathBuf};

use roformer::{Precision, RoFormerConfig};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::shipped_configs::shipped_config;

/// A whole training config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The encoder, with HF `config.json` field names. `vocab_size` is also the size of the
    /// WordPiece vocabulary trained when `[tokenizer]` names no file.
    pub model: RoFormerConfig,
    /// The corpus and how it becomes masked-LM examples.
    #[serde(default)]
    pub data: DataConfig,
    /// Where the tokenizer comes from.
    #[serde(default)]
    pub tokenizer: TokenizerConfig,
    /// Optimisation and bookkeeping.
    #[serde(default)]
    pub training: TrainingConfig,
    /// Training on several machines.
    #[serde(default)]
    pub distributed: DistributedConfig,
}

/// `[distributed]`: data-parallel training over several machines (nodes). Every node runs
/// `roformer train` with the same config except `rank` and `address`, and registers with
/// one `roformer coordinator`. The batch is shared out over `nodes × training.devices`
/// replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributedConfig {
    /// Machines (processes) taking part. Default: 1 (no network).
    pub nodes: usize,
    /// This node's place, 0 to `nodes - 1`: it decides the node's rows of every batch.
    /// Node 0 evaluates and writes `metrics.jsonl`. Default: 0.
    pub rank: usize,
    /// `host:port` of the `roformer coordinator` every node registers with. Required when
    /// `nodes > 1`.
    pub coordinator: String,
    /// `host:port` at which the other nodes reach this one for gradient data; the node
    /// listens on that port on every interface. Required when `nodes > 1`.
    pub address: String,
    /// Seconds a node waits for the others (to register, and at every step) before the run
    /// fails. Evaluations on node 0 must fit in it. Default: 600.
    pub timeout_secs: u64,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            nodes: 1,
            rank: 0,
            coordinator: String::new(),
            address: String::new(),
            timeout_secs: 600,
        }
    }
}

impl DistributedConfig {
    /// Replicas over all nodes.
    pub fn replicas(&self, devices_per_node: usize) -> usize {
        self.nodes * devices_per_node
    }

    /// How long to wait for the other replicas and nodes.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs)
    }

    /// Checks the section against `devices` replicas per node and `batch_size`:
    /// `(key, what was expected)`.
    fn validate(&self, devices: usize, batch_size: usize) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((key.to_string(), message));
        if self.nodes == 0 {
            return fail(
                "distributed.nodes",
                "expected a positive integer, got 0".into(),
            );
        }
        if self.rank >= self.nodes {
            return fail(
                "distributed.rank",
                format!(
                    "expected 0 to nodes - 1 ({}), got {}",
                    self.nodes - 1,
                    self.rank
                ),
            );
        }
        if self.timeout_secs == 0 {
            return fail(
                "distributed.timeout_secs",
                "expected a positive integer, got 0".into(),
            );
        }
        if self.nodes > 1 {
            for (key, value) in [
                ("distributed.coordinator", &self.coordinator),
                ("distributed.address", &self.address),
            ] {
                if let Err(message) = parse_host_port(value) {
                    return fail(key, message);
                }
            }
            if self.replicas(devices) > batch_size {
                return fail(
                    "distributed.nodes",
                    format!(
                        "expected nodes × training.devices ({} × {devices}) to be at most batch_size ({batch_size})",
                        self.nodes
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Splits `host:port`; the message says what was wrong.
pub fn parse_host_port(value: &str) -> Result<(&str, u16), String> {
    let expected = || format!("expected host:port (e.g. 10.0.0.1:4100), got \"{value}\"");
    let (host, port) = value.rsplit_once(':').ok_or_else(expected)?;
    let port: u16 = port.parse().map_err(|_| expected())?;
    if host.is_empty() || port == 0 || host.contains("://") {
        return Err(expected());
    }
    Ok((host, port))
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// A folder of `.txt` files, one work each (with an optional `works.tsv`), relative to
    /// the working directory. Default: `None`, the Shakespeare corpus built into the binary
    /// (the files of `data/shakespeare`).
    pub corpus: Option<PathBuf>,
    /// Files (names in the corpus folder) held out for validation; the rest train.
    /// Default: `None`, the fixed list [`crate::data::DEFAULT_VALIDATION_WORKS`] for the
    /// shipped corpus, or the last file in name order for another corpus.
    pub validation_works: Option<Vec<String>>,
    /// Longest example in tokens, [CLS] and [SEP] included; at most
    /// `model.max_position_embeddings`. Default: 128.
    pub max_seq_len: usize,
    /// Fraction of tokens selected for prediction. Default: 0.15 (BERT's).
    pub mask_probability: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            corpus: None,
            validation_works: None,
            max_seq_len: 128,
            mask_probability: 0.15,
        }
    }
}

/// `[tokenizer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizerConfig {
    /// An existing `tokenizer.json` or BERT `vocab.txt` to use instead of training one.
    /// Default: `None`, train WordPiece on the training split.
    pub path: Option<PathBuf>,
    /// Lower-case text before tokenizing (BERT uncased). Default: true.
    pub lowercase: bool,
    /// Minimum count of a word piece to enter the trained vocabulary. Default: 2.
    pub min_frequency: u64,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            path: None,
            lowercase: true,
            min_frequency: 2,
        }
    }
}

/// Learning-rate decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Linear to zero at the last step.
    Linear,
    /// Half a cosine to zero at the last step.
    Cosine,
}

/// `[training]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Sequences per optimisation step. Default: 32.
    pub batch_size: usize,
    /// Peak learning rate (after warmup). Default: 5e-4.
    pub learning_rate: f64,
    /// Steps of linear warmup from 0. Default: 100.
    pub warmup_steps: usize,
    /// Decay after warmup. Default: `linear`.
    pub decay: Decay,
    /// AdamW's decoupled weight decay. Default: 0.01.
    pub weight_decay: f64,
    /// Clip the gradients to this global L2 norm, over all parameters together (HF
    /// Trainer's `max_grad_norm`, PyTorch's `clip_grad_norm_`); `0` disables clipping.
    /// Default: 1.0.
    pub max_grad_norm: f64,
    /// Total optimisation steps. Default: 1000. Exclusive with `epochs`.
    pub steps: Option<usize>,
    /// Passes over the training split, instead of `steps`. Default: unset.
    pub epochs: Option<usize>,
    /// Evaluate on the validation split every this many steps (and at the end). Default: 100.
    pub eval_every: usize,
    /// Validation batches per evaluation; `0` means the whole split. Default: 0.
    pub eval_batches: usize,
    /// Write a checkpoint every this many steps (and at the end). Default: 100.
    pub checkpoint_every: usize,
    /// Seed of initialisation, shuffling and masking. Default: 42.
    pub seed: u64,
    /// Run directory, unless `--output` is given. Default: `runs/roformer`.
    pub output_dir: PathBuf,
    /// Model replicas trained data-parallel, each on `batch_size / devices` of every batch,
    /// their gradients summed across replicas (burn-collective) before each step; the
    /// result is that of one device at the same `batch_size`. On a CPU backend the
    /// replicas share the cores. Default: 1.
    pub devices: usize,
    /// The float type of activations and matrix products: `f32`, or mixed precision with
    /// `bf16` or `f16` (parameters, gradients, optimizer state, LayerNorm statistics,
    /// softmax and loss stay f32; `f16` also scales the loss dynamically). bf16 and f16
    /// need a GPU build on a device that has the type; `f16` trains on one device.
    /// Default: `f32`.
    pub precision: Precision,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            learning_rate: 5e-4,
            warmup_steps: 100,
            decay: Decay::Linear,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            steps: None,
            epochs: None,
            eval_every: 100,
            eval_batches: 0,
            checkpoint_every: 100,
            seed: 42,
            output_dir: PathBuf::from("runs/roformer"),
            devices: 1,
            precision: Precision::F32,
        }
    }
}

/// How long training lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duration {
    /// A fixed number of optimisation steps.
    Steps(usize),
    /// A number of passes over the training split.
    Epochs(usize),
}

impl TrainingConfig {
    /// `steps` or `epochs` (1000 steps when neither is set).
    pub fn duration(&self) -> Duration {
        match (self.steps, self.epochs) {
            (_, Some(epochs)) => Duration::Epochs(epochs),
            (Some(steps), None) => Duration::Steps(steps),
            (None, None) => Duration::Steps(1000),
        }
    }

    /// Whole batches in one pass over `examples` training examples (at least 1).
    pub fn steps_per_epoch(&self, examples: usize) -> usize {
        (examples / self.batch_size).max(1)
    }

    /// The steps a run over `examples` training examples does.
    pub fn total_steps(&self, examples: usize) -> usize {
        match self.duration() {
            Duration::Steps(steps) => steps,
            Duration::Epochs(epochs) => epochs * self.steps_per_epoch(examples),
        }
    }

    /// The learning-rate schedule of a run of `total_steps`.
    pub fn schedule(&self, total_steps: usize) -> crate::run::schedule::LrSchedule {
        crate::run::schedule::LrSchedule {
            peak: self.learning_rate,
            warmup: self.warmup_steps,
            total: total_steps,
            decay: self.decay,
        }
    }

    /// The optimizer these settings describe: AdamW with `weight_decay`. Clipping at
    /// `max_grad_norm` is done on all gradients together before it
    /// ([`crate::run::grad_clip`]).
    pub fn optimizer(&self) -> crate::run::optimizer::FusedAdamWConfig {
        crate::run::optimizer::FusedAdamWConfig::new().with_weight_decay(self.weight_decay as f32)
    }
}

/// Values a command line sets over a pretraining config's (`roformer train --devices ...`);
/// each field's doc is its command-line help.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TrainOverrides {
    /// Model replicas trained data-parallel (overrides the config's training.devices).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "N", conflicts_with = "resume")
    )]
    pub devices: Option<usize>,
    /// Compute precision (overrides the config's training.precision).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "f32|bf16|f16", conflicts_with = "resume")
    )]
    pub precision: Option<Precision>,
    /// Machines training together (overrides distributed.nodes).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "N", conflicts_with = "resume")
    )]
    pub nodes: Option<usize>,
    /// This machine's rank, 0 to nodes - 1 (overrides distributed.rank).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "R", conflicts_with = "resume")
    )]
    pub rank: Option<usize>,
    /// host:port of the `roformer coordinator` (overrides distributed.coordinator).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "HOST:PORT", conflicts_with = "resume")
    )]
    pub coordinator: Option<String>,
    /// host:port at which the other machines reach this one (overrides
    /// distributed.address).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "HOST:PORT", conflicts_with = "resume")
    )]
    pub address: Option<String>,
}

impl TrainConfig {
    /// Reads, parses and validates a TOML config file; a shipped config's name where no
    /// such file is reads the built-in copy ([`shipped_config`]).
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        match shipped_config(path) {
            Some(text) => Self::from_toml_str(text, &path.display().to_string()),
            None => read_validated(path, Self::validate),
        }
    }

    /// Parses and validates TOML text; `source` names it in errors.
    pub fn from_toml_str(text: &str, source: &str) -> Result<Self, TrainError> {
        parse_validated(text, source, Self::validate)
    }

    /// Checks values that parse but cannot be trained with: `(key, what was expected)`.
    fn validate(&self) -> Result<(), (String, String)> {
        self.model.validate().map_err(|e| match e {
            roformer::RoFormerError::InvalidConfig {
                field,
                expected,
                found,
            } => (
                format!("model.{field}"),
                format!("expected {expected}, got {found}"),
            ),
            other => ("model".into(), other.to_string()),
        })?;
        let fail = |key: &str, message: String| Err((key.to_string(), message));
        let (data, training) = (&self.data, &self.training);
        if data.max_seq_len < 3 {
            return fail(
                "data.max_seq_len",
                format!(
                    "expected at least 3 ([CLS], a token, [SEP]), got {}",
                    data.max_seq_len
                ),
            );
        }
        // Refused rather than raised silently: the exported model would claim fewer
        // positions than it was trained on, and transformers enforces that limit.
        if data.max_seq_len > self.model.max_position_embeddings {
            return fail(
                "data.max_seq_len",
                format!(
                    "expected at most model.max_position_embeddings ({}), got {}",
                    self.model.max_position_embeddings, data.max_seq_len
                ),
            );
        }
        if !(data.mask_probability > 0.0 && data.mask_probability < 1.0) {
            return fail(
                "data.mask_probability",
                format!("expected a number in (0, 1), got {}", data.mask_probability),
            );
        }
        training.validate()?;
        if training.precision == Precision::F16 && self.distributed.replicas(training.devices) > 1 {
            return fail(
                "training.precision",
                "expected bf16 or f32 when training on several replicas (f16's loss scale is kept per replica), got f16".into(),
            );
        }
        self.distributed
            .validate(training.devices, training.batch_size)
    }

    /// The config with the command line's overrides (each `Some` replaces the file's
    /// value), checked again; `source` names the file in errors.
    pub fn with_overrides(
        mut self,
        overrides: TrainOverrides,
        source: &str,
    ) -> Result<Self, TrainError> {
        let TrainOverrides {
            devices,
            precision,
            nodes,
            rank,
            coordinator,
            address,
        } = overrides;
        let (training, distributed) = (&mut self.training, &mut self.distributed);
        training.devices = devices.unwrap_or(training.devices);
        training.precision = precision.unwrap_or(training.precision);
        distributed.nodes = nodes.unwrap_or(distributed.nodes);
        distributed.rank = rank.unwrap_or(distributed.rank);
        distributed.coordinator = coordinator.unwrap_or(distributed.coordinator.clone());
        distributed.address = address.unwrap_or(distributed.address.clone());
        self.revalidate(&format!("{source} with the command line's overrides"))?;
        Ok(self)
    }

    /// Checks a config changed after it was read (command-line overrides) as a file's
    /// values are checked; `source` names what changed it in errors.
    pub fn revalidate(&self, source: &str) -> Result<(), TrainError> {
        self.validate()
            .map_err(|(key, message)| TrainError::Config {
                file: source.to_string(),
                key,
                message,
            })
    }

    /// The config as TOML, as it is saved in a run directory.
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serializes")
    }
}

impl TrainingConfig {
    /// Checks values that parse but cannot be trained with: `(key, what was expected)`,
    /// keys under `training.`.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((key.to_string(), message));
        let training = self;
        if training.batch_size == 0 {
            return fail(
                "training.batch_size",
                "expected a positive integer, got 0".into(),
            );
        }
        if !(training.learning_rate.is_finite() && training.learning_rate > 0.0) {
            return fail(
                "training.learning_rate",
                format!("expected a positive number, got {}", training.learning_rate),
            );
        }
        if !(training.weight_decay.is_finite() && training.weight_decay >= 0.0) {
            return fail(
                "training.weight_decay",
                format!(
                    "expected a non-negative number, got {}",
                    training.weight_decay
                ),
            );
        }
        if !(training.max_grad_norm.is_finite() && training.max_grad_norm >= 0.0) {
            return fail(
                "training.max_grad_norm",
                format!(
                    "expected a non-negative number, got {}",
                    training.max_grad_norm
                ),
            );
        }
        match (training.steps, training.epochs) {
            (Some(_), Some(_)) => {
                return fail(
                    "training.epochs",
                    "expected either `steps` or `epochs`, not both".into(),
                );
            }
            (Some(0), _) => {
                return fail(
                    "training.steps",
                    "expected a positive integer, got 0".into(),
                );
            }
            (_, Some(0)) => {
                return fail(
                    "training.epochs",
                    "expected a positive integer, got 0".into(),
                );
            }
            _ => {}
        }
        if training.devices == 0 || training.devices > training.batch_size {
            return fail(
                "training.devices",
                format!(
                    "expected 1 to batch_size ({}) replicas, got {}",
                    training.batch_size, training.devices
                ),
            );
        }
        for (key, value) in [
            ("training.eval_every", training.eval_every),
            ("training.checkpoint_every", training.checkpoint_every),
        ] {
            if value == 0 {
                return fail(key, "expected a positive integer, got 0".into());
            }
        }
        Ok(())
    }
}

/// Reads the TOML file at `path` into `T` and checks it with `validate`, as
/// [`parse_validated`] does; the file's path names it in errors.
pub(crate) fn read_validated<T: serde::de::DeserializeOwned>(
    path: &Path,
    validate: impl FnOnce(&T) -> Result<(), (String, String)>,
) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    parse_validated(&text, &path.display().to_string(), validate)
}

/// Parses TOML text into `T` ([`parse_toml`]) and checks it with `validate`, which names
/// the key of a value that parses but cannot be used: a [`TrainError::Config`] naming
/// `source` and that key.
pub(crate) fn parse_validated<T: serde::de::DeserializeOwned>(
    text: &str,
    source: &str,
    validate: impl FnOnce(&T) -> Result<(), (String, String)>,
) -> Result<T, TrainError> {
    let config: T = parse_toml(text, source)?;
    validate(&config).map_err(|(key, message)| TrainError::Config {
        file: source.to_string(),
        key,
        message,
    })?;
    Ok(config)
}

/// Parses TOML text into `T`; an unknown key (a typo), a wrong type or a syntax error is
/// a [`TrainError::Config`] naming `source` and the key.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    source: &str,
) -> Result<T, TrainError> {
    let config_error = |key: String, message: String| TrainError::Config {
        file: source.to_string(),
        key,
        message,
    };
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|e| config_error(".".into(), one_line(&e.to_string())))?;
    let mut unknown = Vec::new();
    let mut record_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let tracked = serde_ignored::Deserializer::new(deserializer, &mut record_unknown);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(tracked);
    // Unknown keys in `[model]` are tolerated by `RoFormerConfig` (for HF's config.json);
    // in our own files they are typos.
    if let Some(key) = unknown.first() {
        return Err(config_error(key.clone(), "unknown key".into()));
    }
    parsed.map_err(|e| {
        let key = e.path().to_string();
        config_error(key, one_line(&e.into_inner().to_string()))
    })
}

/// TOML's errors span several lines (a source excerpt); keep the message on one.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with('|')
                && !line.chars().all(|c| c == '^' || c == ' ')
        })
        .collect::<Vec<_>>()
        .join("; ")
}
