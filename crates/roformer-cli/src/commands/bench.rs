//! `roformer bench`: throughput of a training or inference step of a config's model, or
//! each matrix product of an inference step timed alone (`--products`).

use anyhow::Result;
use roformer_train::TrainConfig;
use roformer_train::bench::{Bench, BenchMode, BenchOptions, BenchReport, ProductReport};

use crate::args::BenchArgs;
use crate::backend;
use crate::output::note_built_in_config;

pub fn run(args: BenchArgs) -> Result<()> {
    note_built_in_config(&args.config);
    let model_config = TrainConfig::from_file(&args.config)?.model;
    let device = backend::device()?;
    for &seq in &args.seq {
        let options = BenchOptions {
            batch: args.batch,
            seq,
            mode: if args.train {
                BenchMode::Train
            } else if args.encoder_only {
                BenchMode::Encoder
            } else {
                BenchMode::Inference
            },
            steps: args.steps,
            warmup: args.warmup,
            precision: args.precision,
        };
        let bench = Bench {
            config: &model_config,
            options: &options,
            backend: backend::NAME,
        };
        if args.products {
            let reports = bench.products::<backend::Inference>(&device)?;
            report_products(&reports, args.json)?;
            continue;
        }
        let report = if args.train {
            bench.train::<backend::Training>(&device)?
        } else {
            bench.inference::<backend::Inference>(&device)?
        };
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print_report(&report);
        }
    }
    Ok(())
}

fn print_report(report: &BenchReport) {
    let achieved = report.flops_per_token * report.tokens_per_second / 1e9;
    let peak = report
        .peak_rss_mb
        .map_or("unknown".to_string(), |mb| format!("{mb:.0} MB"));
    println!(
        "{} {} {}x{}: {:.0} tokens/s, {:.1} ms/step, {:.2} us/token, peak RSS {peak}, {:.1} MFLOP/token = {achieved:.1} GFLOP/s ({} params, {} threads, {} steps)",
        report.header.backend,
        report.header.mode,
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
        first.header.backend, first.header.precision, first.sequences, first.seq, first.repeats
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
