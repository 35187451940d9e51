//! The `roformer` command line: the subcommands, each with its own clap `Args` struct
//! that its handler in `commands/` takes, and the argument groups they share
//! ([`ModelArgs`], [`JsonFlag`]).

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use roformer::Precision;
use roformer_infer::pipelines::Pooling;
use roformer_serve::ServeOptions;
use roformer_train::config::TrainOverrides;
use roformer_train::eval_mlm::ScalingRule;
use roformer_train::run::RunStart;

/// Train and run RoFormer (rotary position embedding) encoders.
#[derive(Parser, Debug)]
#[command(
    name = "roformer",
    version,
    about = "Training, data, tokenizer and inference for RoFormer on burn; the `roformer` binary"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each one's help is the doc comment of its arguments struct.
#[derive(Subcommand, Debug)]
pub enum Command {
    Train(TrainArgs),
    Coordinator(CoordinatorArgs),
    Finetune(FinetuneArgs),
    Classify(ClassifyArgs),
    Tag(TagArgs),
    Baseline(BaselineArgs),
    Passages(PassagesArgs),
    FillMask(FillMaskArgs),
    EvalMlm(EvalMlmArgs),
    Embed(EmbedArgs),
    Similarity(SimilarityArgs),
    Encode(EncodeArgs),
    Bench(BenchArgs),
    Import(ImportArgs),
    ExportHf(ExportHfArgs),
    Serve(ServeArgs),
}

/// Pretrain a masked-LM from a TOML config (or continue a run with --resume).
#[derive(Args, Debug)]
#[command(mut_arg("config", |arg| arg.help("The config file, e.g. configs/tiny.toml")))]
pub struct TrainArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub overrides: TrainOverrides,
}

/// Run the coordinator of a multi-machine training run (every `roformer train` with
/// distributed.nodes > 1 registers with it) until interrupted.
#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    /// The port to listen on, on every interface.
    #[arg(long)]
    pub port: u16,
}

/// Fine-tune a pretrained model for sequence classification or sentence pairs from a
/// TOML config (or continue a run with --resume). The run directory is the classifier.
#[derive(Args, Debug)]
#[command(mut_arg("config", |arg| arg.help("The config file ([task], [data], [training])")))]
pub struct FinetuneArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

/// Score the baselines of a fine-tuning config on its validation examples: the majority
/// label, and bag-of-words naive Bayes on the same truncated tokens the classifier sees.
#[derive(Args, Debug)]
pub struct BaselineArgs {
    /// The fine-tuning config file.
    #[arg(long)]
    pub config: PathBuf,
}

/// Cut a corpus's works into genre-labelled passages (JSON lines: text, label, work),
/// split by work into train.jsonl and validation.jsonl.
#[derive(Args, Debug)]
pub struct PassagesArgs {
    /// Output folder.
    #[arg(long)]
    pub output: PathBuf,
    /// Corpus folder with `.txt` works and a works.tsv (file, genre columns); default:
    /// the built-in Shakespeare corpus.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Words per passage.
    #[arg(long, default_value_t = 800)]
    pub words: usize,
    /// Held-out works, comma-separated (default: those pretraining holds out).
    #[arg(long, value_delimiter = ',')]
    pub validation_works: Option<Vec<String>>,
}

/// Classify a text (or a pair of texts) with a fine-tuned model, or every line of a
/// JSON-lines file ({"text": ..., "text_pair": ...}) into another.
#[derive(Args, Debug)]
#[command(mut_arg("model", |arg| arg.help("A fine-tuned model directory (config.json with id2label)")))]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Labels shown per input, most likely first (default: all).
    #[arg(long)]
    pub top_k: Option<usize>,
    #[command(flatten)]
    pub json: JsonFlag,
    #[command(flatten)]
    pub files: InputFiles,
    /// The text.
    #[arg(required_unless_present = "input")]
    pub text: Option<String>,
    /// The second text of a sentence pair.
    #[arg(requires = "text")]
    pub text_pair: Option<String>,
}

/// Label every word of a text with a fine-tuned token classifier, or every line of a
/// JSON-lines file ({"words": [...]} or {"text": ...}) into another.
#[derive(Args, Debug)]
#[command(mut_arg("model", |arg| arg.help("A fine-tuned token classifier (config.json naming RoFormerForTokenClassification)")))]
#[command(mut_arg("input", |arg| arg.help("Read inputs from this JSON-lines file instead of the argument")))]
pub struct TagArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub json: JsonFlag,
    #[command(flatten)]
    pub files: InputFiles,
    /// The text (split into words at whitespace).
    #[arg(required_unless_present = "input")]
    pub text: Option<String>,
}

/// Masked-LM loss and accuracy on held-out text cut into sequences of each length (how a
/// model trained on short sequences does on longer ones).
#[derive(Args, Debug)]
#[command(mut_arg("model", |arg| arg.help("A run directory or model directory with a masked-LM head")))]
pub struct EvalMlmArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Sequence lengths, special tokens included.
    #[arg(long, value_delimiter = ',', default_values_t = [128, 256, 512, 1024, 2048])]
    pub seq: Vec<usize>,
    /// Rotary scaling past the trained length (factor: length / trained length).
    #[arg(long, value_enum, default_value = "none")]
    pub scaling: ScalingRule,
    /// The length the model was trained on (default: a run's data.max_seq_len, else the
    /// model's max_position_embeddings).
    #[arg(long)]
    pub trained_length: Option<usize>,
    /// A text file to evaluate on (default: a run's held-out works, else those of the
    /// built-in corpus).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Tokens of the text used, at most.
    #[arg(long, default_value_t = 65536)]
    pub tokens: usize,
    /// Seed of the masks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// Print the most likely tokens for each [MASK] in a text.
#[derive(Args, Debug)]
pub struct FillMaskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Candidates per mask.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    #[command(flatten)]
    pub json: JsonFlag,
    /// The text, with one or more [MASK] tokens.
    pub text: String,
}

/// Print one sentence embedding (mean of the last hidden state) per input line.
#[derive(Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Read lines from this file instead of stdin. A line is text, or a JSON object of
    /// token ids as `encode` reads them (ids need no tokenizer).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Print a JSON array per line instead of space-separated numbers.
    #[arg(long)]
    pub json: bool,
    /// Sentence embedding: mean of the real tokens' hidden states, or the `[CLS]` one.
    #[arg(long, value_enum, default_value_t = Pooling::Mean)]
    pub pooling: Pooling,
    /// Lines per forward pass (more uses more memory; the embeddings are the same).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
}

/// Cosine similarity of the sentence embeddings of two texts.
#[derive(Args, Debug)]
pub struct SimilarityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Sentence embedding: mean of the real tokens' hidden states, or the `[CLS]` one.
    #[arg(long, value_enum, default_value_t = Pooling::Mean)]
    pub pooling: Pooling,
    /// The first text.
    pub a: String,
    /// The second text.
    pub b: String,
}

/// Run the encoder on JSON lines and save the outputs as safetensors.
#[derive(Args, Debug)]
pub struct EncodeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// JSON lines: {"text": ...} or {"input_ids": [...], "attention_mask": [...], "token_type_ids": [...]}.
    #[arg(long)]
    pub input: PathBuf,
    /// Output .safetensors file.
    #[arg(long)]
    pub output: PathBuf,
    /// Also save the masked-LM logits.
    #[arg(long)]
    pub mlm_logits: bool,
}

/// Measure inference or training throughput on random tokens (tokens/s, ms per step,
/// peak memory) with the backend this binary was built with.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A training config; its [model] table is the model measured (dropout off).
    #[arg(long)]
    pub config: PathBuf,
    /// Sequences per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Tokens per sequence; a comma-separated list measures each in turn.
    #[arg(long, value_delimiter = ',', default_value = "128")]
    pub seq: Vec<usize>,
    /// Time a training step (forward, backward, AdamW) instead of inference.
    #[arg(long, conflicts_with = "products")]
    pub train: bool,
    /// Time the encoder alone (its last hidden state, what `embed` computes) instead of
    /// the masked-LM's logits.
    #[arg(long, conflicts_with_all = ["train", "products"])]
    pub encoder_only: bool,
    /// Time each matrix product of an inference step alone (burn's matmul on this build's
    /// backend, in --precision) instead of the model: the step's floor on this device.
    #[arg(long)]
    pub products: bool,
    /// Compute precision: f32, or bf16 / f16 on a GPU build whose device has it
    /// (inference stores the weights in it; a training step keeps f32 master weights).
    #[arg(long, default_value = "f32", value_name = "f32|bf16|f16")]
    pub precision: Precision,
    /// Timed steps (default: about 16k tokens of inference or 8k of training; with
    /// --products, timed calls of each product, default 10).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Convert a Hugging Face RoFormer directory (safetensors or pytorch_model.bin, f32,
/// f16 or bf16) into a model directory of ours (f32 safetensors, tokenizer files).
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The HF directory: config.json, model.safetensors or pytorch_model.bin, vocab.txt
    /// and/or tokenizer.json.
    #[arg(long, value_name = "HF_DIR")]
    pub from: PathBuf,
    /// The new model directory (must not hold a model yet).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// Write a model as a directory that transformers loads with
/// `RoFormerForMaskedLM.from_pretrained` (config.json, model.safetensors, tokenizer).
#[derive(Args, Debug)]
pub struct ExportHfArgs {
    /// A run directory or model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The new HF directory (must not hold a model yet).
    #[arg(long, value_name = "HF_DIR")]
    pub output: PathBuf,
}

/// The model a command runs, and the precision it computes in.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// A run directory or model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Compute precision: f32, or bf16 / f16 (weights and activations in that type) on a
    /// GPU build whose device has it.
    #[arg(long, default_value = "f32", value_name = "f32|bf16|f16")]
    pub precision: Precision,
}

/// `--json`: JSON on stdout instead of a table.
#[derive(Args, Debug)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--input FILE --output FILE`: every line of a JSON-lines file answered into another,
/// instead of the text arguments.
#[derive(Args, Debug)]
pub struct InputFiles {
    /// Read inputs from this JSON-lines file instead of the arguments.
    #[arg(long, requires = "output", conflicts_with = "text")]
    pub input: Option<PathBuf>,
    /// Write one JSON object per input line here (with --input).
    #[arg(long, requires = "input")]
    pub output: Option<PathBuf>,
}

/// A training run's start: a config file for a fresh run (into `--output`), or the run
/// directory to resume.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The config file.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Run directory (default: the config's training.output_dir).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

impl RunArgs {
    /// The run's start and directory: the directory to resume, or the config `load`
    /// reads and its run directory (`--output`, else the one `output_dir` names).
    pub fn start<C>(
        self,
        load: impl FnOnce(&Path) -> anyhow::Result<C>,
        output_dir: impl FnOnce(&C) -> PathBuf,
    ) -> anyhow::Result<(RunStart<C>, PathBuf)> {
        match (self.config, self.resume) {
            (_, Some(dir)) => Ok((RunStart::Resume, dir)),
            (Some(path), None) => {
                let config = load(&path)?;
                let run_dir = self.output.unwrap_or_else(|| output_dir(&config));
                Ok((RunStart::Fresh(Box::new(config)), run_dir))
            }
            (None, None) => anyhow::bail!("give --config FILE or --resume DIR"),
        }
    }
}

/// Serve models over HTTP (text-embeddings-inference's, OpenAI's and transformers
/// pipelines' JSON) until SIGTERM or Ctrl-C.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A model directory, or NAME=DIR; repeat for several models (the first is the
    /// default; a request names another in "model").
    #[arg(long = "model", value_name = "[NAME=]DIR", required = true)]
    pub models: Vec<String>,
    #[command(flatten)]
    pub options: ServeOptions,
}
