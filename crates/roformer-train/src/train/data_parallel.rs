//! Data-parallel training on several devices (`[training] devices`), through
//! burn-collective's all-reduce.
//!
//! One replica of the model and of the optimizer per device, all starting equal. Each step
//! the batch is cut into one contiguous share per replica. A replica's loss is its share's
//! mean masked-LM loss weighted by its share of the batch's masked tokens, so the replicas'
//! losses, and their gradients, sum to those of the whole batch; burn-collective sums the
//! gradients across replicas (`GradientsParams::all_reduce`), and every replica takes the
//! same AdamW step with the same sums, so the replicas stay equal. Replica 0 runs on the
//! caller's thread and is the one evaluated and checkpointed; the others run on threads of
//! their own and wait for their share of each step.

use std::marker::PhantomData;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use burn::collective::{CollectiveConfig, PeerId, ReduceOperation, register, reset_collective};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::ElementConversion;
use roformer::{RoFormerForMaskedLM, RoFormerTrainingBackend};

use crate::data::{MaskedExample, mlm_batch};
use crate::error::TrainError;
use crate::train::optimizer::FusedAdamW;
use crate::train::trainer::masked_lm_step;

/// How long a replica waits for the others at one step before the run fails: a replica
/// that stopped (a panic, a device lost) must not leave the others waiting for ever.
pub const REPLICA_TIMEOUT: Duration = Duration::from_secs(600);

type Model<B> = RoFormerForMaskedLM<B>;
type AdamW<B> = OptimizerAdaptor<FusedAdamW, Model<B>, B>;

/// One step's work for one replica.
pub(crate) struct Share {
    /// The replica's examples: a contiguous slice of the batch.
    pub examples: Vec<MaskedExample>,
    /// Masked tokens in the whole batch (all replicas).
    pub batch_masked: usize,
    pub learning_rate: f64,
    /// The backend seed of this replica's dropout masks.
    pub dropout_seed: u64,
}

/// Cuts `examples` into `parts` contiguous shares whose sizes differ by at most one (the
/// first ones larger), in order, so that replica r always gets the same rows of a batch.
pub(crate) fn split_batch(examples: Vec<MaskedExample>, parts: usize) -> Vec<Vec<MaskedExample>> {
    let (base, extra) = (examples.len() / parts, examples.len() % parts);
    let mut rest = examples.into_iter();
    (0..parts)
        .map(|r| rest.by_ref().take(base + usize::from(r < extra)).collect())
        .collect()
}

/// Masked (predicted) tokens of `examples`.
pub(crate) fn masked_tokens(examples: &[MaskedExample]) -> usize {
    examples
        .iter()
        .map(|e| e.labels.iter().filter(|&&l| l >= 0).count())
        .sum()
}

/// Replica `peer`'s part of a step: the weighted loss of its share, its gradients summed
/// with the other replicas', and the optimizer step. Returns the updated model and the
/// replica's weighted loss (the replicas' values sum to the batch's mean loss).
pub(crate) fn replica_step<B: RoFormerTrainingBackend>(
    peer: PeerId,
    model: Model<B>,
    optimizer: &mut AdamW<B>,
    share: Share,
    pad: u32,
    device: &B::Device,
) -> Result<(Model<B>, f64), TrainError> {
    B::seed(device, share.dropout_seed);
    let batch = mlm_batch::<B>(&share.examples, pad, device);
    let weight = batch.masked_count as f64 / share.batch_masked.max(1) as f64;
    let (loss, _) = masked_lm_step(&model, batch);
    let loss = loss.mul_scalar(weight);
    let value: f64 = loss.clone().into_scalar().elem();
    let grads = GradientsParams::from_grads(loss.backward(), &model)
        .all_reduce::<B::InnerBackend>(peer, ReduceOperation::Sum)
        .map_err(|e| collective_error(peer, e))?;
    Ok((optimizer.step(share.learning_rate, model, grads), value))
}

fn collective_error(peer: PeerId, error: impl std::fmt::Debug) -> TrainError {
    TrainError::Distributed(format!(
        "replica {}: collective operation failed: {error:?}",
        peer.0
    ))
}

/// The replicas other than replica 0, each on a thread of its own. Dropping it stops the
/// threads and leaves the collective, so that a later run in this process can register
/// again.
pub(crate) struct Workers<B: RoFormerTrainingBackend> {
    workers: Vec<Worker>,
    backend: PhantomData<B>,
}

struct Worker {
    /// `None` once the run is over: the thread then leaves its loop.
    shares: Option<Sender<Share>>,
    losses: Receiver<Result<f64, TrainError>>,
    thread: Option<JoinHandle<()>>,
}

impl<B: RoFormerTrainingBackend> Workers<B> {
    /// Starts a thread per `(model, optimizer, device)` of replicas 1.., and registers
    /// every replica, 0 on this thread, with burn-collective.
    pub fn start(
        replicas: Vec<(Model<B>, AdamW<B>, B::Device)>,
        device_0: &B::Device,
        pad: u32,
    ) -> Result<Self, TrainError>
    where
        Model<B>: Send,
        AdamW<B>: Send,
    {
        // A run that failed earlier in this process may have left peers registered.
        reset_collective::<B::InnerBackend>();
        let count = replicas.len() + 1;
        let config = CollectiveConfig::default().with_num_devices(count);
        let mut workers = Vec::with_capacity(replicas.len());
        for (index, (model, optimizer, device)) in replicas.into_iter().enumerate() {
            let peer = PeerId::from(index + 1);
            let (share_sender, share_receiver) = channel::<Share>();
            let (loss_sender, loss_receiver) = channel();
            let config = config.clone();
            let thread = std::thread::Builder::new()
                .name(format!("replica-{}", index + 1))
                .spawn(move || {
                    run_worker::<B>(
                        peer,
                        model,
                        optimizer,
                        device,
                        config,
                        pad,
                        share_receiver,
                        loss_sender,
                    )
                })
                .map_err(|e| TrainError::Distributed(format!("cannot start a replica: {e}")))?;
            workers.push(Worker {
                shares: Some(share_sender),
                losses: loss_receiver,
                thread: Some(thread),
            });
        }
        register::<B::InnerBackend>(PeerId::from(0usize), device_0.clone(), config)
            .map_err(|e| collective_error(PeerId::from(0usize), e))?;
        let workers = Self {
            workers,
            backend: PhantomData,
        };
        // Every worker reports its registration as a first loss of 0.
        workers.collect()?;
        Ok(workers)
    }

    /// Replicas including replica 0.
    pub fn replicas(&self) -> usize {
        self.workers.len() + 1
    }

    /// Hands replicas 1.. their shares of a step.
    pub fn send(&self, shares: Vec<Share>) -> Result<(), TrainError> {
        for (worker, share) in self.workers.iter().zip(shares) {
            let sent = worker.shares.as_ref().map(|shares| shares.send(share));
            if !matches!(sent, Some(Ok(()))) {
                return Err(TrainError::Distributed("a replica has stopped".into()));
            }
        }
        Ok(())
    }

    /// The sum of replicas 1..'s weighted losses of the step sent last.
    pub fn collect(&self) -> Result<f64, TrainError> {
        let mut sum = 0.0;
        for (index, worker) in self.workers.iter().enumerate() {
            sum += worker.losses.recv_timeout(REPLICA_TIMEOUT).map_err(|_| {
                TrainError::Distributed(format!(
                    "replica {} gave no answer within {} s",
                    index + 1,
                    REPLICA_TIMEOUT.as_secs()
                ))
            })??;
        }
        Ok(sum)
    }
}

impl<B: RoFormerTrainingBackend> Drop for Workers<B> {
    fn drop(&mut self) {
        // Idle threads leave their loop when their channel closes; a reset fails any
        // operation a thread is still blocked in (after an error on another replica).
        for worker in &mut self.workers {
            worker.shares = None;
        }
        reset_collective::<B::InnerBackend>();
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
        reset_collective::<B::InnerBackend>();
    }
}

#[allow(clippy::too_many_arguments)]
fn run_worker<B: RoFormerTrainingBackend>(
    peer: PeerId,
    mut model: Model<B>,
    mut optimizer: AdamW<B>,
    device: B::Device,
    config: CollectiveConfig,
    pad: u32,
    shares: Receiver<Share>,
    losses: Sender<Result<f64, TrainError>>,
) {
    let registered = register::<B::InnerBackend>(peer, device.clone(), config)
        .map(|()| 0.0)
        .map_err(|e| collective_error(peer, e));
    let failed = registered.is_err();
    if losses.send(registered).is_err() || failed {
        return;
    }
    // Leaving the loop (the run is over, or it failed) needs no `finish_collective`: the
    // owner resets the collective once every thread has stopped.
    while let Ok(share) = shares.recv() {
        match replica_step::<B>(peer, model, &mut optimizer, share, pad, &device) {
            Ok((updated, loss)) => {
                model = updated;
                if losses.send(Ok(loss)).is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = losses.send(Err(error));
                return;
            }
        }
    }
}
