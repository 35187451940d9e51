//! One masked-LM training step (forward, loss on 15% masked positions, backward, AdamW)
//! on Autodiff<ndarray> at the `small` config, batch 8 × 128 and 1 × 512. Each sample
//! is `roformer bench --train`'s measurement (`roformer_train::bench::Bench::train`), so
//! the two report the same thing.
//!
//!     cargo bench -p roformer-train --bench train_step

use burn::backend::{Autodiff, NdArray};
use criterion::{Criterion, criterion_group, criterion_main};
use roformer_train::TrainConfig;
use roformer_train::bench::{Bench, BenchMode, BenchOptions};

type AD = Autodiff<NdArray>;

fn train_step(c: &mut Criterion) {
    let config_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/small.toml");
    let config = TrainConfig::from_file(std::path::Path::new(config_path))
        .unwrap()
        .model;
    let device = Default::default();
    let mut group = c.benchmark_group("small_train_step");
    group.sample_size(10);
    for (batch, seq) in [(8, 128), (1, 512)] {
        let options = BenchOptions {
            batch,
            seq,
            mode: BenchMode::Train,
            steps: Some(1),
            warmup: 0,
            precision: roformer::Precision::F32,
        };
        group.bench_function(format!("{batch}x{seq}"), |bench| {
            bench.iter_custom(|iterations| {
                let options = BenchOptions {
                    steps: Some(iterations as usize),
                    warmup: 1,
                    ..options.clone()
                };
                let report = Bench {
                    config: &config,
                    options: &options,
                    backend: "ndarray",
                }
                .train::<AD>(&device)
                .unwrap();
                std::time::Duration::from_secs_f64(report.ms_per_step / 1000.0 * iterations as f64)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
