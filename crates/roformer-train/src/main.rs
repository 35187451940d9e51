//! The `roformer` command-line tool: train, run and convert RoFormer models.

use clap::Parser;

/// Train and run RoFormer (rotary-position transformer encoder) models.
#[derive(Parser, Debug)]
#[command(name = "roformer", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
