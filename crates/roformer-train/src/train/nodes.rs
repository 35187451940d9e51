//! Training over several machines (`[distributed]`): the node's burn-collective
//! configuration, the coordinator every node registers with, and the check that all
//! nodes start from the same config, data and weights.
//!
//! Every node holds `training.devices` replicas; node `rank`'s replica `k` is replica
//! `rank × devices + k` of the run and takes that share of every batch. burn-collective's
//! global level (a websocket orchestrator, peer-to-peer tensor transfers, ring all-reduce)
//! sums the gradients across nodes after the local sum.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::str::FromStr;

use burn::collective::CollectiveConfig;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_communication::Address;

use crate::config::{DistributedConfig, TrainConfig, parse_host_port};
use crate::error::TrainError;

/// Where this process's replicas sit among the run's replicas.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    /// The run's index of this node's replica 0.
    pub first: usize,
    /// Replicas over all nodes.
    pub total: usize,
}

impl Placement {
    pub fn new(distributed: &DistributedConfig, devices: usize) -> Self {
        Self {
            first: distributed.rank * devices,
            total: distributed.replicas(devices),
        }
    }
}

/// burn-collective's settings for this node's `devices` replicas: local only with one
/// node, else with the global level the `[distributed]` section describes.
pub(crate) fn collective_config(
    distributed: &DistributedConfig,
    devices: usize,
) -> Result<CollectiveConfig, TrainError> {
    let config = CollectiveConfig::default().with_num_devices(devices);
    if distributed.nodes == 1 {
        return Ok(config);
    }
    let bad = |key: &str, message: String| TrainError::Config {
        file: "[distributed]".into(),
        key: key.into(),
        message,
    };
    parse_host_port(&distributed.coordinator).map_err(|m| bad("distributed.coordinator", m))?;
    let (_, port) =
        parse_host_port(&distributed.address).map_err(|m| bad("distributed.address", m))?;
    let websocket = |host_port: &str| {
        Address::from_str(&format!("ws://{host_port}")).expect("any text is an address")
    };
    Ok(config
        .with_num_nodes(distributed.nodes as u32)
        .with_global_address(websocket(&distributed.coordinator))
        .with_node_address(websocket(&distributed.address))
        .with_data_service_port(port))
}

/// The coordinator of a multi-node run: burn-collective's global orchestrator, which every
/// node registers with and which tells the nodes of each other.
pub struct Coordinator {
    port: u16,
    runtime: tokio::runtime::Runtime,
}

impl Coordinator {
    /// A coordinator for `port` on every interface; fails if the port cannot be taken.
    pub fn bind(port: u16) -> Result<Self, TrainError> {
        // The orchestrator only logs a port it cannot bind: try it first for a clear error.
        // Port 0 asks the system for a free port, which the orchestrator then takes, so
        // that it can be named to the nodes.
        let probe = std::net::TcpListener::bind(("0.0.0.0", port))
            .map_err(|e| TrainError::Distributed(format!("coordinator port {port}: {e}")))?;
        let port = probe
            .local_addr()
            .map_err(|e| TrainError::Distributed(format!("coordinator port {port}: {e}")))?
            .port();
        drop(probe);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| TrainError::Distributed(format!("coordinator runtime: {e}")))?;
        Ok(Self { port, runtime })
    }

    /// The port it listens on (the one the system picked when asked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the process is interrupted (Ctrl-C).
    pub fn run(self) {
        self.runtime
            .block_on(burn::collective::start_global_orchestrator(self.port));
    }
}

/// Gives every float parameter the id of its place in field order. The all-reduce pairs
/// gradients by parameter id, and a fresh model draws its ids at random, so the nodes'
/// models, built apart, get their ids this way.
pub(crate) fn positional_ids<B: Backend, M: Module<B>>(model: M) -> M {
    model.map(&mut PositionalIds { next: 0 })
}

struct PositionalIds {
    next: u64,
}

impl<B: Backend> ModuleMapper<B> for PositionalIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (_, tensor, mapper) = param.consume();
        self.next += 1;
        Param::from_mapped_value(ParamId::from(self.next), tensor, mapper)
    }
}

/// What must be equal on every node: the config (less the node's own `rank`, `address` and
/// output folder), the sizes the data came to, the step the run starts from and the
/// starting weights. A 64-bit digest of them.
pub(crate) fn run_digest<B: Backend, M: Module<B>>(
    config: &TrainConfig,
    data_sizes: &[usize],
    start_step: usize,
    model: &M,
) -> u64 {
    let mut shared = config.clone();
    shared.distributed.rank = 0;
    shared.distributed.address.clear();
    shared.training.output_dir = std::path::PathBuf::new();
    let mut hasher = DefaultHasher::new();
    shared.to_toml_string().hash(&mut hasher);
    data_sizes.hash(&mut hasher);
    start_step.hash(&mut hasher);
    model.visit(&mut WeightHasher {
        hasher: &mut hasher,
    });
    hasher.finish()
}

/// Feeds every float parameter's values, in field order, to a hasher.
struct WeightHasher<'a> {
    hasher: &'a mut DefaultHasher,
}

impl<B: Backend> ModuleVisitor<B> for WeightHasher<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let data = param.val().into_data().convert::<f32>();
        for value in data.iter::<f32>() {
            value.to_bits().hash(self.hasher);
        }
    }
}

/// Digits (4 bits each) a digest is sent as: small integers, exact in f32 sums.
const DIGITS: usize = 16;

/// What replica `replica` of `total` contributes to the start-up all-reduce: its digest's
/// digits, their squares, and a one at its own index.
pub(crate) fn fingerprint(digest: u64, replica: usize, total: usize) -> Vec<f32> {
    let digits: Vec<f32> = (0..DIGITS)
        .map(|i| ((digest >> (4 * i)) & 0xF) as f32)
        .collect();
    let squares = digits.iter().map(|d| d * d);
    let place = (0..total).map(|r| f32::from(u8::from(r == replica)));
    digits.iter().copied().chain(squares).chain(place).collect()
}

/// Checks the all-reduced (summed) fingerprints of `total` replicas: every digest was the
/// same (a sum of squares equal to the square of the sum over `total` means no spread),
/// and every replica index was taken exactly once.
pub(crate) fn check_fingerprints(summed: &[f32], total: usize) -> Result<(), String> {
    if summed.len() != 2 * DIGITS + total {
        return Err(format!(
            "the nodes disagree on the number of replicas ({} values summed, {} expected)",
            summed.len(),
            2 * DIGITS + total
        ));
    }
    let n = total as f64;
    let spread = (0..DIGITS).any(|i| {
        let (sum, squares) = (summed[i] as f64, summed[DIGITS + i] as f64);
        squares * n != sum * sum
    });
    if spread {
        return Err(
            "the nodes do not start from the same config, data and weights (compare every node's config.toml, corpus and checkpoint)"
                .into(),
        );
    }
    if let Some(replica) = summed[2 * DIGITS..].iter().position(|&count| count != 1.0) {
        return Err(format!(
            "replica {replica} of {total} is claimed by {} nodes' replicas: is a rank used twice?",
            summed[2 * DIGITS + replica]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summed(fingerprints: &[Vec<f32>]) -> Vec<f32> {
        (0..fingerprints[0].len())
            .map(|i| fingerprints.iter().map(|f| f[i]).sum())
            .collect()
    }

    #[test]
    fn equal_digests_on_distinct_replicas_pass() {
        let all: Vec<_> = (0..3)
            .map(|r| fingerprint(0xDEAD_BEEF_1234, r, 3))
            .collect();
        assert_eq!(check_fingerprints(&summed(&all), 3), Ok(()));
    }

    #[test]
    fn any_differing_digest_fails() {
        // Digests differing in one digit, with one value between the others' (4 + 6 = 2 × 5).
        for other in [0x5u64, 0x4, 0x50, 0x5 << 60] {
            let all = vec![
                fingerprint(0x5, 0, 3),
                fingerprint(0x5, 1, 3),
                fingerprint(other, 2, 3),
            ];
            let result = check_fingerprints(&summed(&all), 3);
            assert_eq!(
                result.is_err(),
                other != 0x5,
                "digest {other:#x}: {result:?}"
            );
        }
        let mean_equal = vec![
            fingerprint(0x4, 0, 3),
            fingerprint(0x5, 1, 3),
            fingerprint(0x6, 2, 3),
        ];
        assert!(check_fingerprints(&summed(&mean_equal), 3).is_err());
    }

    #[test]
    fn a_replica_index_used_twice_fails() {
        let all = vec![fingerprint(7, 0, 2), fingerprint(7, 0, 2)];
        let error = check_fingerprints(&summed(&all), 2).unwrap_err();
        assert!(error.contains("rank used twice"), "{error}");
    }
}
