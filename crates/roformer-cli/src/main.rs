//! The `roformer` command-line tool: train a RoFormer from a TOML config, fill masks,
//! embed sentences, dump encoder outputs, import and export Hugging Face checkpoints,
//! and measure throughput. Errors are one line on stderr and a non-zero
//! exit; progress goes to stderr (a progress bar on a terminal, plain lines otherwise).
//!
//! This file installs the panic and log handling and reports the outcome; `args` is the
//! command line, `commands/` one file per subcommand, `backend` the one place the backend
//! is chosen.

mod allocator;
mod args;
mod backend;
mod commands;
mod output;
mod panic_report;
mod progress;

use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::args::Cli;

fn main() {
    allocator::keep_freed_memory();
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
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commands::run(cli.command)));
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
