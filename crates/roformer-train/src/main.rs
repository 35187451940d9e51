//! The `roformer` command-line tool: train a RoFormer from a TOML config, fill masks,
//! embed sentences, dump encoder outputs, import and export Hugging Face checkpoints,
//! and measure throughput. Errors are one line on stderr and a non-zero
//! exit; progress goes to stderr (a progress bar on a terminal, plain lines otherwise).

mod backend;
mod cli;
mod panic_report;

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use roformer_train::TrainConfig;
use roformer_train::bench::{
    BenchOptions, ProductReport, bench_inference, bench_products, bench_train,
};
use roformer_train::infer::{self, WithWarnings};
use roformer_train::model_dir::{load_model, write_model_dir};
use roformer_train::train::{RunStart, TrainEvent, train};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use roformer_train::classify::{self as classifier, ClassifyInput};
use roformer_train::finetune::{
    FinetuneConfig, FinetuneEvent, FinetuneStart, TaskType,
    classifier_dir::{TAGGER_ARCHITECTURE, task_architecture, write_classifier_dir},
    finetune, load_classifier, load_tagger,
};

use crate::cli::{
    BaselineArgs, BenchArgs, ClassifyArgs, Cli, Command, CoordinatorArgs, EmbedArgs, EncodeArgs,
    EvalMlmArgs, ExportHfArgs, FillMaskArgs, FinetuneArgs, ImportArgs, PassagesArgs,
    SimilarityArgs, TagArgs, TrainArgs,
};

fn main() {
    // burn's network layer (multi-node training) runs on tokio worker threads, whose tasks
    // panic when a peer goes away; the run reports that as its own error line. Panics while
    // the backend is probed become the probe's error line (`backend::device`); any other
    // panic ends the run with one error line (`panic_report`).
    let default_hook = std::panic::take_hook();
    let panics_in_full = panic_report::printed_in_full();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        if backend::captured_by_probe(info)
            || thread.name().is_some_and(|name| name.starts_with("tokio-"))
        {
            return;
        }
        if panics_in_full {
            default_hook(info);
        } else {
            panic_report::keep(info);
        }
    }));
    // Set first, so that burn's network layer keeps its INFO lines.
    // The backends' own warnings about a failed probe, or about tasks that failed after a
    // panic, are left to the error line.
    let quiet = tracing_subscriber::filter::filter_fn(|metadata| {
        // The target first: the lock behind `any` is then taken only for cubecl's events.
        let after_a_panic = metadata.target().starts_with("cubecl") && panic_report::any();
        !(backend::probing() || after_a_panic)
    });
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_writer(std::io::stderr)
        .finish()
        .with(quiet)
        .try_init();
    let cli = Cli::try_parse().unwrap_or_else(|error| exit_on_usage_error(error));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli)));
    let message = match (outcome, panic_report::first()) {
        (Ok(Ok(())), None) => return,
        (Ok(Ok(())), Some(panic)) => {
            eprintln!("warning: a thread of the run panicked: {panic}");
            return;
        }
        // One line: the chain of causes joined, no backtrace.
        (Ok(Err(error)), None) => format!("{error:#}"),
        (Ok(Err(error)), Some(panic)) => format!("{error:#} (after a panic: {panic})"),
        (Err(_), panic) => format!(
            "the run stopped on an internal failure (RUST_BACKTRACE=1 shows where): {}",
            panic.unwrap_or_else(|| "a panic".into())
        ),
    };
    eprintln!("error: {}", message.replace('\n', " "));
    std::process::exit(1);
}

/// `--help` and `--version` print as clap prints them; a usage error becomes one
/// `error:` line (clap's message and the usage, without its blank lines) and exit status 2.
fn exit_on_usage_error(error: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    let rendered = error.render().to_string();
    let mut message = String::new();
    for line in rendered.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("For more information") {
            continue;
        }
        match line.strip_prefix("Usage: ") {
            Some(usage) => message.push_str(&format!(" (usage: {usage})")),
            None if message.is_empty() => message.push_str(line),
            None => message.push_str(&format!(" {line}")),
        }
    }
    eprintln!(
        "error: {}",
        message.strip_prefix("error: ").unwrap_or(&message)
    );
    std::process::exit(2);
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => run_train(args),
        Command::Coordinator(args) => run_coordinator(args),
        Command::Finetune(args) => run_finetune(args),
        Command::Classify(args) => run_classify(args),
        Command::Tag(args) => run_tag(args),
        Command::Baseline(args) => run_baseline(args),
        Command::Passages(args) => run_passages(args),
        Command::FillMask(args) => run_fill_mask(args),
        Command::EvalMlm(args) => run_eval_mlm(args),
        Command::Embed(args) => run_embed(args),
        Command::Similarity(args) => run_similarity(args),
        Command::Encode(args) => run_encode(args),
        Command::Bench(args) => run_bench(args),
        Command::Import(ImportArgs { from, to }) => convert(&from, &to),
        Command::ExportHf(ExportHfArgs { model, output }) => convert(&model, &output),
    }
}

fn run_fill_mask(args: FillMaskArgs) -> Result<()> {
    if args.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let device = backend::device()?;
    let loaded = load_model::<backend::Inference>(&args.model, &device)?
        .in_precision(args.precision, &device)?;
    let predictions = report(infer::fill_mask(&loaded, &args.text, args.top_k, &device)?);
    if args.json {
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

fn run_eval_mlm(args: EvalMlmArgs) -> Result<()> {
    use roformer_train::eval_mlm::{EvalMlmOptions, eval_mlm, text_tokens};
    if let Some(&short) = args.seq.iter().find(|&&n| n < 3) {
        bail!("--seq: each length must be at least 3 ([CLS], a token, [SEP]), got {short}");
    }
    if args.trained_length == Some(0) {
        bail!("--trained-length must be positive");
    }
    let device = backend::device()?;
    let loaded = load_model::<backend::Inference>(&args.model, &device)?
        .in_precision(args.precision, &device)?;
    let Some(model) = loaded.weights.masked_lm() else {
        bail!(
            "{}: the checkpoint has no masked-LM head (no `cls.` tensors)",
            args.model.display()
        );
    };
    let run_config = args.model.join(roformer_train::train::RUN_CONFIG_FILE);
    let run = run_config
        .is_file()
        .then(|| roformer_train::config::TrainConfig::from_file(&run_config))
        .transpose()?;
    let (text, source) = match &args.text {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read the text", path.display()))?,
            path.display().to_string(),
        ),
        None => {
            let data = run.as_ref().map(|r| r.data.clone()).unwrap_or_default();
            let corpus = roformer_train::data::Corpus::load(
                data.corpus.as_deref(),
                data.validation_works.as_deref(),
            )?;
            let names: Vec<&str> = corpus.validation.iter().map(|w| w.name.as_str()).collect();
            let text: Vec<&str> = corpus.validation.iter().map(|w| w.text.as_str()).collect();
            (
                text.join("\n"),
                format!("held-out works {}", names.join(", ")),
            )
        }
    };
    let tokenizer = loaded.tokenizer()?;
    let tokens = text_tokens(tokenizer, &text, args.tokens)?;
    let trained_length = args
        .trained_length
        .or(run.as_ref().map(|r| r.data.max_seq_len))
        .unwrap_or(loaded.config.max_position_embeddings);
    let options = EvalMlmOptions {
        lengths: args.seq.clone(),
        scaling: args.scaling,
        trained_length,
        max_tokens: args.tokens,
        mask_probability: 0.15,
        seed: args.seed,
        batch_size: args.batch,
    };
    let scores = eval_mlm(&loaded.config, model, tokenizer, &tokens, &options, &device)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&scores)?);
        return Ok(());
    }
    println!(
        "{} tokens of {source}; trained length {trained_length}; scaling {:?}",
        tokens.len(),
        args.scaling
    );
    println!(
        "{:>7} {:>9} {:>8} {:>8} {:>9}",
        "length", "sequences", "masked", "loss", "accuracy"
    );
    for score in &scores {
        match (score.loss, score.accuracy, &score.skipped) {
            (Some(loss), Some(accuracy), _) => println!(
                "{:>7} {:>9} {:>8} {loss:>8.3} {accuracy:>9.3}",
                score.length, score.sequences, score.masked_tokens
            ),
            (_, _, skipped) => println!(
                "{:>7} {:>9} {:>8}   n/a: {}",
                score.length,
                score.sequences,
                score.masked_tokens,
                skipped.as_deref().unwrap_or("not evaluated")
            ),
        }
    }
    Ok(())
}

fn run_embed(args: EmbedArgs) -> Result<()> {
    let lines: Vec<_> = read_lines(args.input)?
        .iter()
        .map(|line| infer::embed_line(line))
        .collect();
    let device = backend::device()?;
    let loaded = load_model::<backend::Inference>(&args.model, &device)?
        .in_precision(args.precision, &device)?;
    for embedding in report(infer::embed(&loaded, &lines, args.pooling, &device)?) {
        if args.json {
            println!("{}", serde_json::to_string(&embedding)?);
        } else {
            let text: Vec<String> = embedding.iter().map(|v| format!("{v:.6}")).collect();
            println!("{}", text.join(" "));
        }
    }
    Ok(())
}

fn run_similarity(args: SimilarityArgs) -> Result<()> {
    let device = backend::device()?;
    let loaded = load_model::<backend::Inference>(&args.model, &device)?
        .in_precision(args.precision, &device)?;
    let similarity = report(infer::similarity(
        &loaded,
        &args.a,
        &args.b,
        args.pooling,
        &device,
    )?);
    println!("{similarity:.6}");
    Ok(())
}

fn run_encode(args: EncodeArgs) -> Result<()> {
    let lines = infer::read_encode_lines(&args.input)?;
    let device = backend::device()?;
    let loaded = load_model::<backend::Inference>(&args.model, &device)?
        .in_precision(args.precision, &device)?;
    let encoded = report(infer::encode(&loaded, &lines, args.mlm_logits, &device)?);
    infer::write_encoded(&encoded, &args.output)?;
    eprintln!(
        "wrote {} ({} lines x {} tokens)",
        args.output.display(),
        encoded.shape[0],
        encoded.shape[1]
    );
    Ok(())
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let model_config = TrainConfig::from_file(&args.config)?.model;
    let device = backend::device()?;
    for &seq in &args.seq {
        let options = BenchOptions {
            batch: args.batch,
            seq,
            train: args.train,
            steps: args.steps,
            warmup: args.warmup,
            precision: args.precision,
        };
        if args.products {
            let reports = bench_products::<backend::Inference>(
                &model_config,
                &options,
                backend::NAME,
                &device,
            )?;
            report_products(&reports, args.json)?;
            continue;
        }
        let report = if args.train {
            bench_train::<backend::Training>(&model_config, &options, backend::NAME, &device)?
        } else {
            bench_inference::<backend::Inference>(&model_config, &options, backend::NAME, &device)?
        };
        if args.json {
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

/// Prints `bench --products` timings: a JSON object per product, or a line per product
/// and their total in a step.
fn report_products(reports: &[ProductReport], json: bool) -> Result<()> {
    if json {
        for report in reports {
            println!("{}", serde_json::to_string(report)?);
        }
        return Ok(());
    }
    let Some(first) = reports.first() else {
        return Ok(());
    };
    println!(
        "{} {} matrix products of an inference step at {}x{} ({} calls each):",
        first.backend, first.precision, first.sequences, first.seq, first.repeats
    );
    let mut step_ms = 0.0;
    for report in reports {
        let product = report.product;
        step_ms += report.ms * product.per_step as f64;
        let shape = format!(
            "{} x [{},{}]·[{},{}] x{}",
            product.batch, product.m, product.k, product.k, product.n, product.per_step
        );
        println!(
            "  {:26} {shape:34}: {:9.3} ms each, {:7.0} GFLOP/s",
            product.name, report.ms, report.gflops
        );
    }
    println!("  all products of the step: {step_ms:.2} ms");
    Ok(())
}

/// Says what `convert` wrote for a fine-tuned model.
fn report_classifier(
    to: &Path,
    from: &Path,
    architecture: &str,
    labels: &[String],
    tokenizer: &roformer_train::data::TextTokenizer,
) -> Result<()> {
    eprintln!(
        "wrote {} from {}: {architecture}, labels {} (vocabulary {})",
        to.display(),
        from.display(),
        labels.join(", "),
        tokenizer.vocab_size()
    );
    Ok(())
}

/// Loads a model directory (any format `--model` takes) and writes it in HF layout.
fn convert(from: &Path, to: &Path) -> Result<()> {
    let device = backend::device()?;
    match task_architecture(from) {
        Some(TAGGER_ARCHITECTURE) => {
            let tagger = load_tagger::<backend::Inference>(from, &device)?;
            write_classifier_dir(&tagger, to)?;
            return report_classifier(
                to,
                from,
                TAGGER_ARCHITECTURE,
                &tagger.labels,
                &tagger.tokenizer,
            );
        }
        Some(architecture) => {
            let classifier = load_classifier::<backend::Inference>(from, &device)?;
            write_classifier_dir(&classifier, to)?;
            return report_classifier(
                to,
                from,
                architecture,
                &classifier.labels,
                &classifier.tokenizer,
            );
        }
        None => {}
    }
    let loaded = load_model::<backend::Inference>(from, &device)?;
    let tokenizer = write_model_dir(&loaded, to)?;
    let architecture = if loaded.weights.masked_lm().is_some() {
        "RoFormerForMaskedLM"
    } else {
        "RoFormerModel (no masked-LM head)"
    };
    let tokenizer = match tokenizer {
        Some(tokenizer) if tokenizer.uses_jieba() => format!(
            "vocabulary {}, WordPiece after jieba segmentation",
            tokenizer.vocab_size()
        ),
        Some(tokenizer) => format!("vocabulary {}, WordPiece", tokenizer.vocab_size()),
        None => "no tokenizer files in the source: weights and config only".to_string(),
    };
    eprintln!(
        "wrote {} from {}: {architecture} ({tokenizer})",
        to.display(),
        from.display(),
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

fn run_train(args: TrainArgs) -> Result<()> {
    let TrainArgs {
        config,
        output,
        resume,
        devices,
        precision,
        nodes,
        rank,
        coordinator,
        address,
    } = args;
    let (start, run_dir, saved) = match (config, resume) {
        (_, Some(dir)) => {
            let saved = TrainConfig::from_file(&dir.join(roformer_train::train::RUN_CONFIG_FILE));
            (RunStart::Resume, dir, saved.ok())
        }
        (Some(path), None) => {
            let mut config = TrainConfig::from_file(&path)?;
            let distributed = &mut config.distributed;
            config.training.devices = devices.unwrap_or(config.training.devices);
            config.training.precision = precision.unwrap_or(config.training.precision);
            distributed.nodes = nodes.unwrap_or(distributed.nodes);
            distributed.rank = rank.unwrap_or(distributed.rank);
            distributed.coordinator = coordinator.unwrap_or(distributed.coordinator.clone());
            distributed.address = address.unwrap_or(distributed.address.clone());
            config.revalidate(&format!(
                "{} with the command line's overrides",
                path.display()
            ))?;
            let run_dir = output.unwrap_or_else(|| config.training.output_dir.clone());
            (
                RunStart::Fresh(Box::new(config.clone())),
                run_dir,
                Some(config),
            )
        }
        (None, None) => bail!("give --config FILE or --resume DIR"),
    };
    let (replicas, precision, distributed) = saved
        .map(|c| (c.training.devices, c.training.precision, c.distributed))
        .unwrap_or_default();
    let replicas = replicas.max(1);
    if replicas > 1 && !backend::REPLICAS_SHARE_THE_DEVICE {
        bail!(
            "training.devices = {replicas}: data-parallel replicas run on CPU backends in this build; {} trains on one device per machine",
            backend::NAME
        );
    }
    let device = backend::device()?;
    let started = Instant::now();
    let replicas = match (replicas, distributed.nodes) {
        (1, 1) => String::new(),
        (n, 1) => format!(", {n} data-parallel replicas"),
        (n, nodes) => format!(
            ", {n} data-parallel replica(s) on node {} of {nodes}, coordinator {}",
            distributed.rank, distributed.coordinator
        ),
    };
    let mut progress = Progress::new(format!(
        "backend: {} (device {device:?}{replicas}), precision {precision}, run directory: {}",
        backend::NAME,
        run_dir.display()
    ));
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

fn run_coordinator(args: CoordinatorArgs) -> Result<()> {
    let coordinator = roformer_train::train::Coordinator::bind(args.port)?;
    eprintln!(
        "coordinator listening on port {} (every interface); stop it with Ctrl-C once the run is over",
        args.port
    );
    coordinator.run();
    Ok(())
}

fn run_finetune(args: FinetuneArgs) -> Result<()> {
    let FinetuneArgs {
        config,
        output,
        resume,
    } = args;
    let (start, run_dir) = match (config, resume) {
        (_, Some(dir)) => (FinetuneStart::Resume, dir),
        (Some(path), None) => {
            let config = FinetuneConfig::from_file(&path)?;
            let run_dir = output.unwrap_or_else(|| config.training.output_dir.clone());
            (FinetuneStart::Fresh(Box::new(config)), run_dir)
        }
        (None, None) => bail!("give --config FILE or --resume DIR"),
    };
    let device = backend::device()?;
    let started = Instant::now();
    let header = format!(
        "backend: {} (device {device:?}), run directory: {}",
        backend::NAME,
        run_dir.display()
    );
    let mut last_line = Instant::now();
    let mut first_step = 0;
    let summary = finetune::<backend::Training>(start, &run_dir, &device, &mut |event| {
        match event {
            FinetuneEvent::Started {
                start_step,
                total_steps,
                train_examples,
                valid_examples,
                labels,
                parameters,
                extended_positions_from,
            } => {
                eprintln!("{header}");
                if start_step == 0 {
                    eprintln!(
                        "encoder loaded; new classification head for {} labels (initialised from the seed)",
                        labels.len()
                    );
                }
                if let Some(from) = extended_positions_from {
                    eprintln!(
                        "max_position_embeddings raised from {from} to task.max_seq_len (rotary positions need no learned table)"
                    );
                }
                eprintln!(
                    "{parameters} parameters, labels [{}], {train_examples} training / {valid_examples} validation examples, steps {start_step}..{total_steps}",
                    labels.join(", ")
                );
                first_step = start_step;
            }
            FinetuneEvent::Step {
                step,
                total_steps,
                loss,
                learning_rate,
            } => {
                if last_line.elapsed().as_secs() >= 10 || step == total_steps {
                    let done = (step - first_step).max(1) as f64;
                    let eta = started.elapsed().as_secs_f64() / done * (total_steps - step) as f64;
                    eprintln!(
                        "step {step}/{total_steps} loss {loss:.3} lr {learning_rate:.2e} ETA {}",
                        format_duration(eta)
                    );
                    last_line = Instant::now();
                }
            }
            FinetuneEvent::Evaluated { record, best } => eprintln!(
                "eval step {}: train loss {:.3}, valid loss {:.3}, valid accuracy {:.3}, macro-F1 {:.3}{}{}",
                record.step,
                record.train_loss,
                record.valid_loss,
                record.valid_accuracy,
                record.valid_macro_f1,
                entity_f1_text(record.valid_entity_f1),
                if best { " (best so far: saved)" } else { "" }
            ),
            FinetuneEvent::Checkpointed { step, path } => {
                eprintln!("checkpoint at step {step}: {}", path.display())
            }
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    if let Some(best) = &summary.best {
        eprintln!(
            "done in {minutes:.1} min: kept step {} (valid accuracy {:.3}, macro-F1 {:.3}{}; majority-label baseline {:.3})",
            best.step,
            best.valid_accuracy,
            best.valid_macro_f1,
            entity_f1_text(best.valid_entity_f1),
            summary.majority_baseline_accuracy
        );
    }
    if let Some(scores) = &summary.best_scores {
        let labels = &summary.labels;
        eprintln!(
            "{:<16} precision  recall  F1     | predicted as: {}",
            "label",
            labels.join(" ")
        );
        for ((label, class), row) in labels.iter().zip(&scores.per_class).zip(&scores.confusion) {
            let counts: Vec<String> = row.iter().map(usize::to_string).collect();
            eprintln!(
                "{label:<16} {:.3}      {:.3}   {:.3}  | {}",
                class.precision,
                class.recall,
                class.f1,
                counts.join(" ")
            );
        }
    }
    if let Some(entities) = summary.best_scores.as_ref().and_then(|s| s.entities) {
        eprintln!(
            "entities: precision {:.3}, recall {:.3}, F1 {:.3}",
            entities.precision, entities.recall, entities.f1
        );
    }
    eprintln!(
        "model, tokenizer, metrics.jsonl, loss.png, scores.json and confusion.png are in {}",
        summary.run_dir.display()
    );
    Ok(())
}

/// `, entity F1 X` when there is one.
fn entity_f1_text(f1: Option<f64>) -> String {
    f1.map(|f1| format!(", entity F1 {f1:.3}"))
        .unwrap_or_default()
}

fn run_baseline(args: BaselineArgs) -> Result<()> {
    let config = FinetuneConfig::from_file(&args.config)?;
    if config.task.kind == TaskType::TokenClassification {
        bail!(
            "{}: `roformer baseline` scores sequence-classification and sentence-pair tasks (a token-classification run reports its majority-label baseline)",
            args.config.display()
        );
    }
    let result = roformer_train::finetune::baseline::baselines(&config)?;
    println!(
        "{} training / {} validation examples, labels [{}], inputs truncated to {} tokens",
        result.examples.0,
        result.examples.1,
        result.labels.join(", "),
        config.task.max_seq_len
    );
    for (name, scores) in [
        ("majority label", &result.majority),
        ("bag-of-words naive Bayes", &result.bag_of_words),
    ] {
        println!(
            "{name:<26} accuracy {:.3}, macro-F1 {:.3}",
            scores.accuracy, scores.macro_f1
        );
    }
    Ok(())
}

fn run_passages(args: PassagesArgs) -> Result<()> {
    let splits = roformer_train::data::genre_passages(
        args.corpus.as_deref(),
        args.words,
        args.validation_works.as_deref(),
    )?;
    std::fs::create_dir_all(&args.output).with_context(|| args.output.display().to_string())?;
    for (name, passages) in [
        ("train.jsonl", &splits.train),
        ("validation.jsonl", &splits.validation),
    ] {
        let mut text = String::new();
        for passage in passages {
            text.push_str(&serde_json::to_string(passage)?);
            text.push('\n');
        }
        let path = args.output.join(name);
        roformer_train::fs_atomic::write_atomic(&path, text.as_bytes())?;
        let mut works: Vec<&str> = passages.iter().map(|p| p.work.as_str()).collect();
        works.dedup();
        eprintln!(
            "wrote {}: {} passages of {} words from {} works",
            path.display(),
            passages.len(),
            args.words,
            works.len()
        );
    }
    Ok(())
}

fn run_classify(args: ClassifyArgs) -> Result<()> {
    if args.top_k == Some(0) {
        bail!("--top-k must be at least 1");
    }
    let inputs = match (&args.input, args.text) {
        (Some(path), _) => classifier::read_classify_inputs(path)?,
        (None, Some(text)) => vec![ClassifyInput {
            text,
            text_pair: args.text_pair,
        }],
        (None, None) => bail!("give a text or --input FILE"),
    };
    let device = backend::device()?;
    let model = load_classifier::<backend::Inference>(&args.model, &device)?
        .in_precision(args.precision, &device)?;
    let top_k = args.top_k.unwrap_or(model.labels.len());
    let results = classifier::classify(&model, &inputs, top_k, &device)?;
    if let Some(output) = &args.output {
        write_json_lines(output, &results)?;
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&results[0])?);
    } else {
        for candidate in &results[0].probabilities {
            println!("{:<16} {:.4}", candidate.label, candidate.probability);
        }
    }
    Ok(())
}

fn run_tag(args: TagArgs) -> Result<()> {
    let inputs = match (&args.input, &args.text) {
        (Some(path), _) => roformer_train::tag::read_tag_inputs(path)?,
        (None, Some(text)) => {
            let words = roformer_train::tag::words_of(text);
            if words.is_empty() {
                bail!("the text has no words");
            }
            vec![words]
        }
        (None, None) => bail!("give a text or --input FILE"),
    };
    let device = backend::device()?;
    let model = load_tagger::<backend::Inference>(&args.model, &device)?
        .in_precision(args.precision, &device)?;
    let results = roformer_train::tag::tag(&model, &inputs, &device)?;
    if let Some(output) = &args.output {
        write_json_lines(output, &results)?;
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&results[0])?);
    } else {
        for word in &results[0].words {
            println!(
                "{:<20} {:<12} {:.4}",
                word.word, word.label, word.probability
            );
        }
        if let Some(entities) = &results[0].entities {
            for entity in entities {
                println!(
                    "entity {:<8} {} (words {}..{})",
                    entity.kind, entity.text, entity.start, entity.end
                );
            }
        }
    }
    Ok(())
}

/// Writes one JSON object per result to `output` (atomically) and says so.
fn write_json_lines<T: serde::Serialize>(output: &Path, results: &[T]) -> Result<()> {
    let mut text = String::new();
    for result in results {
        text.push_str(&serde_json::to_string(result)?);
        text.push('\n');
    }
    roformer_train::fs_atomic::write_atomic(output, text.as_bytes())?;
    eprintln!("wrote {} ({} lines)", output.display(), results.len());
    Ok(())
}

/// Shows training progress: a bar with loss, tokens/s and ETA on a terminal, plain lines
/// every few seconds otherwise (logs, CI).
struct Progress {
    /// Printed when training starts (after the data and the tokenizer are ready), so a
    /// run refused on its input prints only the error.
    header: String,
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl Progress {
    fn new(header: String) -> Self {
        Self {
            header,
            bar: None,
            last_line: Instant::now(),
        }
    }

    fn on(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Started { start_step, total_steps, train_examples, valid_examples, vocab_size, parameters } => {
                eprintln!("{}", self.header);
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

/// `seconds` as `1h02m`, `3m05s` or `42s`.
fn format_duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}h{minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m{secs:02}s")
    } else {
        format!("{secs}s")
    }
}
