//! `roformer bench --products`: the matrix products of one masked-LM inference step of a
//! config's model, each timed alone through burn's `matmul` on the build's backend and in
//! the chosen precision. Their sum is the time a step cannot go below on that device with
//! that backend's matrix products, so set beside `roformer bench` it says how much of a
//! step is the products and how much everything else; `scripts/matmul_pytorch.py
//! --products` times the same shapes in PyTorch from this command's `--json` lines.
//!
//! The products are those of HF `RoFormerForMaskedLM.forward`: `embeddings_project` (when
//! the embedding size is not the hidden size), per layer the q, k, v and output
//! projections, the attention scores `q·kᵀ` and context `p·v` per head, the feed-forward
//! pair, then the head's transform and the vocabulary projection at every position. Their
//! FLOPs are the inference FLOPs of [`super::flops_per_token`].

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use roformer::RoFormerConfig;
use serde::Serialize;

use super::{Bench, ReportHeader, check_shape};
use crate::error::TrainError;

/// Timed runs of each product when `--steps` does not say.
const DEFAULT_REPEATS: usize = 10;

/// One matrix product of an inference step: `batch` products of `[m, k]·[k, n]`, made
/// `per_step` times in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Product {
    /// What the product computes.
    pub name: &'static str,
    /// Independent products in one call (the heads times the sequences for attention).
    pub batch: usize,
    /// Rows of the left factor.
    pub m: usize,
    /// The summed dimension.
    pub k: usize,
    /// Columns of the right factor.
    pub n: usize,
    /// Calls of this shape in one step.
    pub per_step: usize,
}

impl Product {
    /// Floating-point operations of one call (a multiply and an add per term).
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.k * self.n) as f64
    }
}

/// The products of one inference step of `config` on `sequences × seq` tokens.
pub fn inference_products(config: &RoFormerConfig, sequences: usize, seq: usize) -> Vec<Product> {
    let rows = sequences * seq;
    let (hidden, embedding) = (config.hidden_size, config.embedding_size());
    let (layers, heads, head) = (
        config.num_hidden_layers,
        config.num_attention_heads,
        config.head_size(),
    );
    let linear = |name, k, n, per_step| Product {
        name,
        batch: 1,
        m: rows,
        k,
        n,
        per_step,
    };
    let mut products = Vec::new();
    if embedding != hidden {
        products.push(linear("embeddings projection", embedding, hidden, 1));
    }
    products.extend([
        linear("q/k/v/output projections", hidden, hidden, 4 * layers),
        Product {
            name: "attention scores q·kᵀ",
            batch: sequences * heads,
            m: seq,
            k: head,
            n: seq,
            per_step: layers,
        },
        Product {
            name: "attention context p·v",
            batch: sequences * heads,
            m: seq,
            k: seq,
            n: head,
            per_step: layers,
        },
        linear(
            "feed-forward expansion",
            hidden,
            config.intermediate_size,
            layers,
        ),
        linear(
            "feed-forward contraction",
            config.intermediate_size,
            hidden,
            layers,
        ),
        linear("head transform", hidden, embedding, 1),
        linear("vocabulary projection", embedding, config.vocab_size, 1),
    ]);
    products
}

/// One product's timing, in the JSON schema `scripts/matmul_pytorch.py --products` reads.
#[derive(Debug, Clone, Serialize)]
pub struct ProductReport {
    /// What was measured, where (mode "product"; the precision is the factors' and the
    /// result's type).
    #[serde(flatten)]
    pub header: ReportHeader,
    /// Sequences of the step the product belongs to.
    pub sequences: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// The product timed (its fields at the top level of the JSON object).
    #[serde(flatten)]
    pub product: Product,
    /// Timed calls.
    pub repeats: usize,
    /// Mean wall time of one call, device work included.
    pub ms: f64,
    /// [`Product::flops`] per second of `ms`, in units of 10⁹.
    pub gflops: f64,
}

impl Bench<'_> {
    /// Times each product of [`inference_products`] on `B`: random factors in the options'
    /// precision, `warmup` untimed calls (autotuning picks its kernel in these), then
    /// `steps` (default [`DEFAULT_REPEATS`]) calls, waiting for the device after them.
    pub fn products<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<Vec<ProductReport>, TrainError> {
        let Bench {
            config,
            options,
            backend,
        } = *self;
        check_shape(options)?;
        options.precision.check_supported::<B>(device)?;
        let repeats = options.steps.unwrap_or(DEFAULT_REPEATS).max(1);
        let sync =
            || B::sync(device).map_err(|error| TrainError::data("bench", format!("{error:?}")));
        let factor = |shape: [usize; 3]| {
            Tensor::<B, 3>::random(shape, Distribution::Uniform(-1.0, 1.0), device)
                .cast(options.precision.float_dtype())
        };
        let mut reports = Vec::new();
        for product in inference_products(config, options.batch, options.seq) {
            let left = factor([product.batch, product.m, product.k]);
            let right = factor([product.batch, product.k, product.n]);
            for _ in 0..options.warmup {
                drop(left.clone().matmul(right.clone()));
            }
            sync()?;
            let started = Instant::now();
            for _ in 0..repeats {
                drop(left.clone().matmul(right.clone()));
            }
            sync()?;
            let ms = started.elapsed().as_secs_f64() * 1e3 / repeats as f64;
            reports.push(ProductReport {
                header: ReportHeader::new(backend, options, "product"),
                sequences: options.batch,
                seq: options.seq,
                product,
                repeats,
                ms,
                gflops: product.flops() / ms / 1e6,
            });
        }
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{BenchMode, flops_per_token};

    fn config(embedding_size: Option<usize>) -> RoFormerConfig {
        RoFormerConfig {
            vocab_size: 300,
            hidden_size: 48,
            embedding_size,
            num_hidden_layers: 3,
            num_attention_heads: 4,
            intermediate_size: 96,
            ..RoFormerConfig::default()
        }
    }

    /// The products hold exactly the inference FLOPs `roformer bench` and
    /// `scripts/bench_pytorch.py` count per token, a formula written independently of them
    /// (by parameters and attention width), with and without `embeddings_project`.
    #[test]
    fn products_add_up_to_the_inference_flops() {
        for embedding_size in [None, Some(32)] {
            let config = config(embedding_size);
            for (sequences, seq) in [(1, 2), (3, 17), (8, 128)] {
                let products: f64 = inference_products(&config, sequences, seq)
                    .iter()
                    .map(|p| p.flops() * p.per_step as f64)
                    .sum();
                let expected =
                    flops_per_token(&config, seq, BenchMode::Inference) * (sequences * seq) as f64;
                assert_eq!(products, expected, "{embedding_size:?} {sequences}x{seq}");
            }
        }
    }
}
