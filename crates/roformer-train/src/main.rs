//! The `roformer` command-line tool: train a RoFormer from a TOML config, fill masks,
//! embed sentences, dump encoder outputs, import and export Hugging Face checkpoints,
//! and measure throughput. Errors are one line on stderr and a non-zero
//! exit; progress goes to stderr (a progress bar on a terminal, plain lines otherwise).

mod backend;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use roformer_train::TrainConfig;
use roformer_train::bench::{BenchOptions, bench_inference, bench_train};
use roformer_train::infer::{self, WithWarnings};
use roformer_train::model_dir::{load_model, write_model_dir};
use roformer_train::train::{RunStart, TrainEvent, train};

/// Train and run RoFormer (rotary position embedding) encoders.
#[derive(Parser, Debug)]
#[command(name = "roformer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pretrain a masked-LM from a TOML config (or continue a run with --resume).
    Train {
        /// The config file, e.g. configs/tiny.toml.
        #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
        config: Option<PathBuf>,
        /// Run directory (default: the config's training.output_dir).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Continue the run in this directory from its last checkpoint.
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
    },
    /// Print the most likely tokens for each [MASK] in a text.
    FillMask {
        /// A run directory or model directory.
        #[arg(long)]
        model: PathBuf,
        /// Candidates per mask.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The text, with one or more [MASK] tokens.
        text: String,
    },
    /// Print one sentence embedding (mean of the last hidden state) per input line.
    Embed {
        /// A run directory or model directory.
        #[arg(long)]
        model: PathBuf,
        /// Read lines from this file instead of stdin.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Print a JSON array per line instead of space-separated numbers.
        #[arg(long)]
        json: bool,
    },
    /// Run the encoder on JSON lines and save the outputs as safetensors.
    Encode {
        /// A run directory or model directory.
        #[arg(long)]
        model: PathBuf,
        /// JSON lines: {"text": ...} or {"input_ids": [...], "attention_mask": [...], "token_type_ids": [...]}.
        #[arg(long)]
        input: PathBuf,
        /// Output .safetensors file.
        #[arg(long)]
        output: PathBuf,
        /// Also save the masked-LM logits.
        #[arg(long)]
        mlm_logits: bool,
    },
    /// Measure inference or training throughput on random tokens (tokens/s, ms per step,
    /// peak memory) with the backend this binary was built with.
    Bench {
        /// A training config; its [model] table is the model measured (dropout off).
        #[arg(long)]
        config: PathBuf,
        /// Sequences per step.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Tokens per sequence; a comma-separated list measures each in turn.
        #[arg(long, value_delimiter = ',', default_value = "128")]
        seq: Vec<usize>,
        /// Time a training step (forward, backward, AdamW) instead of inference.
        #[arg(long)]
        train: bool,
        /// Timed steps (default: about 16k tokens of inference or 8k of training).
        #[arg(long)]
        steps: Option<usize>,
        /// Untimed steps first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Print one JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Convert a Hugging Face RoFormer directory (safetensors or pytorch_model.bin, f32,
    /// f16 or bf16) into a model directory of ours (f32 safetensors, tokenizer files).
    Import {
        /// The HF directory: config.json, model.safetensors or pytorch_model.bin, vocab.txt
        /// and/or tokenizer.json.
        #[arg(long, value_name = "HF_DIR")]
        from: PathBuf,
        /// The new model directory (must not hold a model yet).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Write a model as a directory that transformers loads with
    /// `RoFormerForMaskedLM.from_pretrained` (config.json, model.safetensors, tokenizer).
    ExportHf {
        /// A run directory or model directory.
        #[arg(long)]
        model: PathBuf,
        /// The new HF directory (must not hold a model yet).
        #[arg(long, value_name = "HF_DIR")]
        output: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        // One line: the chain of causes joined, no backtrace.
        let message = format!("{error:#}").replace('\n', " ");
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Import { from, to } => convert(&from, &to),
        Command::Bench {
            config,
            batch,
            seq,
            train,
            steps,
            warmup,
            json,
        } => run_bench(&config, batch, &seq, train, steps, warmup, json),
        Command::ExportHf { model, output } => convert(&model, &output),
        Command::Train {
            config,
            output,
            resume,
        } => run_train(config, output, resume),
        Command::FillMask {
            model,
            top_k,
            json,
            text,
        } => {
            if top_k == 0 {
                bail!("--top-k must be at least 1");
            }
            let device = backend::device();
            let loaded = load_model::<backend::Inference>(&model, &device)?;
            let predictions = report(infer::fill_mask(&loaded, &text, top_k, &device)?);
            if json {
                println!("{}", serde_json::to_string_pretty(&predictions)?);
            } else {
                for (index, prediction) in predictions.iter().enumerate() {
                    println!("[MASK] #{} (token {}):", index + 1, prediction.position);
                    for candidate in &prediction.candidates {
                        println!("  {:<16} {:.4}", candidate.token, candidate.probability);
                    }
                }
            }
            Ok(())
        }
        Command::Embed { model, input, json } => {
            let lines = read_lines(input)?;
            let device = backend::device();
            let loaded = load_model::<backend::Inference>(&model, &device)?;
            for embedding in report(infer::embed(&loaded, &lines, &device)?) {
                if json {
                    println!("{}", serde_json::to_string(&embedding)?);
                } else {
                    let text: Vec<String> = embedding.iter().map(|v| format!("{v:.6}")).collect();
                    println!("{}", text.join(" "));
                }
            }
            Ok(())
        }
        Command::Encode {
            model,
            input,
            output,
            mlm_logits,
        } => {
            let lines = infer::read_encode_lines(&input)?;
            let device = backend::device();
            let loaded = load_model::<backend::Inference>(&model, &device)?;
            let encoded = report(infer::encode(&loaded, &lines, mlm_logits, &device)?);
            infer::write_encoded(&encoded, &output)?;
            eprintln!(
                "wrote {} ({} lines x {} tokens)",
                output.display(),
                encoded.shape[0],
                encoded.shape[1]
            );
            Ok(())
        }
    }
}

fn run_bench(
    config: &std::path::Path,
    batch: usize,
    seqs: &[usize],
    train: bool,
    steps: Option<usize>,
    warmup: usize,
    json: bool,
) -> Result<()> {
    let model_config = TrainConfig::from_file(config)?.model;
    let device = backend::device();
    for &seq in seqs {
        let options = BenchOptions {
            batch,
            seq,
            train,
            steps,
            warmup,
        };
        let report = if train {
            bench_train::<backend::Training>(&model_config, &options, backend::NAME, &device)?
        } else {
            bench_inference::<backend::Inference>(&model_config, &options, backend::NAME, &device)?
        };
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            let achieved = report.flops_per_token * report.tokens_per_second / 1e9;
            let peak = report
                .peak_rss_mb
                .map_or("unknown".to_string(), |mb| format!("{mb:.0} MB"));
            println!(
                "{} {} {}x{}: {:.0} tokens/s, {:.1} ms/step, {:.2} us/token, peak RSS {peak}, {:.1} MFLOP/token = {achieved:.1} GFLOP/s ({} params, {} threads, {} steps)",
                report.backend,
                report.mode,
                report.batch,
                report.seq,
                report.tokens_per_second,
                report.ms_per_step,
                1e6 / report.tokens_per_second,
                report.flops_per_token / 1e6,
                report.params,
                report.threads,
                report.steps
            );
        }
    }
    Ok(())
}

/// Loads a model directory (any format `--model` takes) and writes it in HF layout.
fn convert(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let device = backend::device();
    let loaded = load_model::<backend::Inference>(from, &device)?;
    write_model_dir(&loaded, to)?;
    let architecture = if loaded.weights.masked_lm().is_some() {
        "RoFormerForMaskedLM"
    } else {
        "RoFormerModel (no masked-LM head)"
    };
    let tokenizer = if loaded.tokenizer.uses_jieba() {
        "WordPiece after jieba segmentation"
    } else {
        "WordPiece"
    };
    eprintln!(
        "wrote {} from {}: {architecture}, vocabulary {} ({tokenizer})",
        to.display(),
        from.display(),
        loaded.tokenizer.vocab_size()
    );
    Ok(())
}

/// Prints an inference call's warnings to stderr and returns its value.
fn report<T>(result: WithWarnings<T>) -> T {
    for warning in &result.warnings {
        eprintln!("warning: {warning}");
    }
    result.value
}

fn read_lines(input: Option<PathBuf>) -> Result<Vec<String>> {
    let lines: Vec<String> = match input {
        Some(path) => std::fs::read_to_string(&path)
            .with_context(|| path.display().to_string())?
            .lines()
            .map(str::to_string)
            .collect(),
        None => std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .context("stdin")?,
    };
    let lines: Vec<String> = lines.into_iter().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        bail!("no input lines to embed");
    }
    Ok(lines)
}

fn run_train(
    config: Option<PathBuf>,
    output: Option<PathBuf>,
    resume: Option<PathBuf>,
) -> Result<()> {
    let (start, run_dir) = match (config, resume) {
        (_, Some(dir)) => (RunStart::Resume, dir),
        (Some(path), None) => {
            let config = TrainConfig::from_file(&path)?;
            let run_dir = output.unwrap_or_else(|| config.training.output_dir.clone());
            (RunStart::Fresh(Box::new(config)), run_dir)
        }
        (None, None) => bail!("give --config FILE or --resume DIR"),
    };
    let device = backend::device();
    eprintln!("backend: {} (device {:?})", backend::NAME, device);
    eprintln!("run directory: {}", run_dir.display());
    let started = Instant::now();
    let mut progress = Progress::new();
    let summary = train::<backend::Training>(start, &run_dir, &device, &mut |event| {
        progress.on(event);
        std::ops::ControlFlow::Continue(())
    })?;
    progress.finish();
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    if let Some(last) = &summary.last {
        eprintln!(
            "done in {minutes:.1} min: step {}, valid loss {:.3}, valid accuracy {:.3} (most-frequent-token baseline {:.3})",
            last.step, last.valid_loss, last.valid_accuracy, summary.majority_baseline_accuracy
        );
    }
    eprintln!(
        "model, tokenizer, metrics.jsonl and loss.png are in {}",
        summary.run_dir.display()
    );
    Ok(())
}

/// Shows training progress: a bar with loss, tokens/s and ETA on a terminal, plain lines
/// every few seconds otherwise (logs, CI).
struct Progress {
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl Progress {
    fn new() -> Self {
        Self {
            bar: None,
            last_line: Instant::now(),
        }
    }

    fn on(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Started { start_step, total_steps, train_examples, valid_examples, vocab_size, parameters } => {
                eprintln!(
                    "{parameters} parameters, vocabulary {vocab_size}, {train_examples} training / {valid_examples} validation sequences, steps {start_step}..{total_steps}"
                );
                if std::io::stderr().is_terminal() {
                    let bar = ProgressBar::new(total_steps as u64);
                    bar.set_style(
                        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}")
                            .expect("valid template"),
                    );
                    bar.set_position(start_step as u64);
                    self.bar = Some(bar);
                }
            }
            TrainEvent::Step { step, total_steps, loss, learning_rate, tokens_per_second } => {
                let message = format!("loss {loss:.3} lr {learning_rate:.2e} {tokens_per_second:.0} tok/s");
                match &self.bar {
                    Some(bar) => {
                        bar.set_position(step as u64);
                        bar.set_message(message);
                    }
                    None if self.last_line.elapsed().as_secs() >= 10 || step == total_steps => {
                        eprintln!("step {step}/{total_steps} {message}");
                        self.last_line = Instant::now();
                    }
                    None => {}
                }
            }
            TrainEvent::Evaluated(record) => self.line(format!(
                "eval step {}: train loss {:.3}, valid loss {:.3}, valid accuracy {:.3}, {:.0} tok/s",
                record.step, record.train_loss, record.valid_loss, record.valid_accuracy, record.tokens_per_second
            )),
            TrainEvent::Checkpointed { step, path } => self.line(format!("checkpoint at step {step}: {}", path.display())),
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
