//! One attention layer and the encoder forward (inference) on ndarray, at the `small`
//! config (vocab 8000, hidden 256, 4 layers, 4 heads, intermediate 1024), batch 8 × 128
//! and 1 × 512 tokens, with the masked-LM logits at every position for the full model.
//!
//!     cargo bench -p roformer --bench encoder

use burn::backend::NdArray;
use burn::tensor::{Distribution, Int, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use roformer::{RoFormerConfig, RoFormerForMaskedLM, RoFormerInput};

type B = NdArray;

const SHAPES: [(usize, usize); 2] = [(8, 128), (1, 512)];

fn small_config() -> RoFormerConfig {
    RoFormerConfig {
        vocab_size: 8000,
        hidden_size: 256,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        intermediate_size: 1024,
        max_position_embeddings: 512,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..Default::default()
    }
}

fn encoder(c: &mut Criterion) {
    let device = Default::default();
    let config = small_config();
    let model = RoFormerForMaskedLM::<B>::new(&config, &device).unwrap();
    let mut group = c.benchmark_group("small");
    group.sample_size(10);
    for (batch, seq) in SHAPES {
        let label = format!("{batch}x{seq}");
        group.throughput(Throughput::Elements((batch * seq) as u64));
        let hidden = Tensor::<B, 3>::random(
            [batch, seq, config.hidden_size],
            Distribution::Default,
            &device,
        );
        let self_attention = &model.roformer.encoder.layer[0].attention.self_attention;
        let rope = &model.roformer.encoder.rope;
        group.bench_with_input(
            BenchmarkId::new("attention_layer", &label),
            &hidden,
            |bench, hidden| {
                bench.iter(|| {
                    self_attention
                        .forward(hidden.clone(), None, rope, 0)
                        .into_primitive()
                })
            },
        );
        let ids = Tensor::<B, 2, Int>::random(
            [batch, seq],
            Distribution::Uniform(5.0, config.vocab_size as f64),
            &device,
        );
        group.bench_with_input(
            BenchmarkId::new("encoder_forward", &label),
            &ids,
            |bench, ids| {
                bench.iter(|| {
                    model
                        .roformer
                        .forward(RoFormerInput::new(ids.clone()))
                        .into_primitive()
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("mlm_forward", &label),
            &ids,
            |bench, ids| {
                bench.iter(|| {
                    model
                        .forward(RoFormerInput::new(ids.clone()))
                        .into_primitive()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, encoder);
criterion_main!(benches);
