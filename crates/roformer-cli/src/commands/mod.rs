//! One file per subcommand: each parses nothing (clap did), calls the libraries and
//! renders the result (stdout for results, stderr for progress and warnings).

mod baseline;
mod bench;
mod classify;
mod convert;
mod coordinator;
mod embed;
mod encode;
mod eval_mlm;
mod fill_mask;
mod finetune;
mod passages;
mod serve;
mod similarity;
mod tag;
mod train;

use anyhow::Result;

use crate::args::{Command, ExportHfArgs, ImportArgs};

/// Runs the subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(args) => train::run(args),
        Command::Coordinator(args) => coordinator::run(args),
        Command::Finetune(args) => finetune::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Tag(args) => tag::run(args),
        Command::Baseline(args) => baseline::run(args),
        Command::Passages(args) => passages::run(args),
        Command::FillMask(args) => fill_mask::run(args),
        Command::EvalMlm(args) => eval_mlm::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Similarity(args) => similarity::run(args),
        Command::Encode(args) => encode::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Import(ImportArgs { from, to }) => convert::run(&from, &to),
        Command::ExportHf(ExportHfArgs { model, output }) => convert::run(&model, &output),
        Command::Serve(args) => serve::run(args),
    }
}
