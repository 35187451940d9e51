//! Data-parallel training on several devices (`[training] devices`) and machines
//! (`[distributed]`), through burn-collective's all-reduce.
//!
//! One replica of the model and of the optimizer per device, all starting equal. Each step
//! the batch is cut into one contiguous share per replica of the run. A replica's loss is
//! its share's mean masked-LM loss weighted by its share of the batch's masked tokens, so
//! the replicas' losses, and their gradients, sum to those of the whole batch;
//! burn-collective sums the gradients across replicas (`GradientsParams::all_reduce`), and
//! every replica takes the same AdamW step with the same sums, so the replicas stay equal.
//! This process's replica 0 is the one evaluated and checkpointed. Every replica runs on a
//! thread of its own, so that the caller can give up on a step (a replica or a node that
//! stopped) after the timeout instead of waiting for ever.

use std::marker::PhantomData;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use burn::collective::{
    CollectiveConfig, PeerId, ReduceOperation, all_reduce, finish_collective, register,
    reset_collective,
};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::{ElementConversion, Tensor, TensorData, TensorPrimitive};
use roformer::{RoFormerForMaskedLM, RoFormerTrainingBackend};

use crate::data::{MaskedExample, mlm_batch};
use crate::error::TrainError;
use crate::run::grad_clip::clip_global_norm;
use crate::run::optimizer::FusedAdamW;
use crate::train::masked_lm_step;
use crate::train::nodes::{Placement, check_fingerprints, fingerprint};

type Model<B> = RoFormerForMaskedLM<B>;
type AdamW<B> = OptimizerAdaptor<FusedAdamW, Model<B>, B>;

/// One step's work for one replica.
pub(crate) struct Share {
    /// The replica's examples: a contiguous slice of the batch.
    pub examples: Vec<MaskedExample>,
    /// Masked tokens in the whole batch (all replicas).
    pub batch_masked: usize,
    pub learning_rate: f64,
    /// The global gradient norm to clip to after the replicas' gradients are summed
    /// (0: none).
    pub max_grad_norm: f64,
    /// The backend seed of this replica's dropout masks.
    pub dropout_seed: u64,
    /// The replica's index in the run, and the run's replicas.
    pub replica: usize,
    pub replicas: usize,
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
/// batch's mean loss (the replicas' weighted losses, summed).
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
    let grads = clip_global_norm(grads, &model, share.max_grad_norm);
    let model = optimizer.step(share.learning_rate, model, grads);
    // One slot per replica: the ring all-reduce across nodes cuts a tensor into a part per
    // node, so it cannot take a single value.
    let mut losses = vec![0.0; share.replicas];
    losses[share.replica] = value as f32;
    let losses = sum_over_replicas::<B>(peer, losses, device)?;
    Ok((model, losses.iter().map(|&l| f64::from(l)).sum()))
}

/// `values` summed element-wise over every replica of the run.
fn sum_over_replicas<B: RoFormerTrainingBackend>(
    peer: PeerId,
    values: Vec<f32>,
    device: &B::Device,
) -> Result<Vec<f32>, TrainError> {
    let len = values.len();
    let tensor = Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(values, [len]), device);
    let summed =
        all_reduce::<B::InnerBackend>(peer, tensor.into_primitive().tensor(), ReduceOperation::Sum)
            .map_err(|e| collective_error(peer, e))?;
    Tensor::<B::InnerBackend, 1>::from_primitive(TensorPrimitive::Float(summed))
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| collective_error(peer, e))
}

/// Registers replica `peer` with burn-collective (and, through it, this node with the
/// coordinator), then checks with an all-reduce that every replica of the run starts from
/// the same config, data and weights (`digest`) and holds a replica index of its own.
fn join<B: RoFormerTrainingBackend>(
    peer: PeerId,
    device: &B::Device,
    setup: &Setup,
) -> Result<(), TrainError> {
    register::<B::InnerBackend>(peer, device.clone(), setup.collective.clone())
        .map_err(|e| collective_error(peer, e))?;
    let replica = setup.placement.first + peer.0 as usize;
    let total = setup.placement.total;
    let summed = sum_over_replicas::<B>(peer, fingerprint(setup.digest, replica, total), device)?;
    check_fingerprints(&summed, total).map_err(TrainError::Distributed)
}

/// How the replicas of this process meet the rest of the run.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    /// burn-collective's settings (local, or local and global).
    pub collective: CollectiveConfig,
    /// Where this process's replicas sit among the run's.
    pub placement: Placement,
    /// What every replica of the run must agree on ([`crate::train::nodes::run_digest`]).
    pub digest: u64,
    /// How long to wait for the other replicas at start-up and at every step.
    pub timeout: Duration,
}

fn collective_error(peer: PeerId, error: impl std::fmt::Debug) -> TrainError {
    TrainError::Distributed(format!(
        "replica {}: collective operation failed: {error:?}",
        peer.0
    ))
}

/// This process's replicas: replica 0, whose model and optimizer the caller keeps between
/// steps, and replicas 1.., each on a thread of its own for the whole run. Dropping it stops
/// the threads and leaves the collective, so that a later run in this process can register
/// again.
pub(crate) struct Workers<B: RoFormerTrainingBackend> {
    workers: Vec<Worker>,
    setup: Setup,
    pad: u32,
    /// Set once a replica failed or did not answer: the threads may then be blocked in an
    /// operation that never ends, and are left behind instead of joined.
    failed: bool,
    backend: PhantomData<B>,
}

/// What replicas 1.. are told to do.
enum Job {
    Step(Share),
    /// Wait for every replica of the run, then leave the collective.
    Finish,
}

struct Worker {
    /// `None` once the run is over: the thread then leaves its loop.
    jobs: Option<Sender<Job>>,
    /// One answer per job: done, or why not.
    done: Receiver<Result<(), TrainError>>,
    thread: Option<JoinHandle<()>>,
}

/// What replica 0's thread hands back after a step.
type Stepped<B> = Result<(Model<B>, AdamW<B>, f64), TrainError>;

impl<B: RoFormerTrainingBackend> Workers<B> {
    /// Starts a thread per `(model, optimizer, device)` of replicas 1.., and registers
    /// every replica, 0 included, with burn-collective; fails if the run's replicas have
    /// not all registered and agreed on their fingerprints within the timeout.
    pub fn start(
        replicas: Vec<(Model<B>, AdamW<B>, B::Device)>,
        device_0: &B::Device,
        pad: u32,
        setup: Setup,
    ) -> Result<Self, TrainError>
    where
        Model<B>: Send,
        AdamW<B>: Send,
    {
        // A run that failed earlier in this process may have left peers registered.
        reset_collective::<B::InnerBackend>();
        let mut workers = Vec::with_capacity(replicas.len());
        for (index, (model, optimizer, device)) in replicas.into_iter().enumerate() {
            let peer = PeerId::from(index + 1);
            let (job_sender, job_receiver) = channel::<Job>();
            let (done_sender, done_receiver) = channel();
            let setup = setup.clone();
            let thread = std::thread::Builder::new()
                .name(format!("replica-{}", index + 1))
                .spawn(move || {
                    run_worker::<B>(
                        peer,
                        model,
                        optimizer,
                        device,
                        setup,
                        pad,
                        job_receiver,
                        done_sender,
                    )
                })
                .map_err(|e| TrainError::Distributed(format!("cannot start a replica: {e}")))?;
            workers.push(Worker {
                jobs: Some(job_sender),
                done: done_receiver,
                thread: Some(thread),
            });
        }
        let mut workers = Self {
            workers,
            setup,
            pad,
            failed: false,
            backend: PhantomData,
        };
        let (device, setup) = (device_0.clone(), workers.setup.clone());
        let joined = workers.on_own_thread("register", move || {
            join::<B>(PeerId::from(0usize), &device, &setup)
        });
        // Every worker answers its registration first.
        let registered = joined.and_then(|r| r).and_then(|()| workers.collect());
        workers.checked(registered)?;
        Ok(workers)
    }

    /// This process's replicas.
    pub fn local_replicas(&self) -> usize {
        self.workers.len() + 1
    }

    /// The run's replicas, over all nodes.
    pub fn placement(&self) -> &Placement {
        &self.setup.placement
    }

    /// One step: hands replicas 1.. their shares, runs replica 0's step on `model` and
    /// `optimizer` with `own`, and waits for all. Returns replica 0's model and optimizer
    /// and the batch's loss.
    pub fn step(
        &mut self,
        model: Model<B>,
        optimizer: AdamW<B>,
        own: Share,
        others: Vec<Share>,
        device: &B::Device,
    ) -> Result<(Model<B>, AdamW<B>, f64), TrainError>
    where
        Model<B>: Send,
        AdamW<B>: Send,
    {
        let sent = self.send(others.into_iter().map(Job::Step).collect());
        self.checked(sent)?;
        let (pad, device) = (self.pad, device.clone());
        let stepped = self.on_own_thread("step", move || -> Stepped<B> {
            let mut optimizer = optimizer;
            let (model, loss) = replica_step::<B>(
                PeerId::from(0usize),
                model,
                &mut optimizer,
                own,
                pad,
                &device,
            )?;
            Ok((model, optimizer, loss))
        });
        let stepped = stepped.and_then(|r| r);
        let stepped = stepped.and_then(|result| self.collect().map(|()| result));
        self.checked(stepped)
    }

    /// Ends the run for this process's replicas: they wait for every replica of the run
    /// (so that no node leaves while another still needs it, e.g. node 0 evaluating), then
    /// leave the collective, closing their connections.
    pub fn finish(mut self, device: &B::Device) -> Result<(), TrainError> {
        let sent = self.send(self.workers.iter().map(|_| Job::Finish).collect());
        self.checked(sent)?;
        let (device, setup) = (device.clone(), self.setup.clone());
        let finished = self.on_own_thread("finish", move || {
            leave::<B>(PeerId::from(0usize), &device, &setup)
        });
        let finished = finished.and_then(|r| r).and_then(|()| self.collect());
        self.checked(finished)
    }

    /// Runs `work` on a new thread and waits for it at most the timeout (the thread is
    /// left behind if it does not finish: it waits on replicas that will not answer).
    fn on_own_thread<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, TrainError> {
        let (sender, receiver) = channel();
        std::thread::Builder::new()
            .name(format!("replica-0-{what}"))
            .spawn(move || {
                let _ = sender.send(work());
            })
            .map_err(|e| TrainError::Distributed(format!("cannot start a replica: {e}")))?;
        receiver
            .recv_timeout(self.setup.timeout)
            .map_err(|_| self.no_answer(0, what))
    }

    fn no_answer(&self, replica: usize, what: &str) -> TrainError {
        let nodes = if self.setup.placement.total > self.local_replicas() {
            ": a node stopped, or the coordinator or a node cannot be reached"
        } else {
            ""
        };
        TrainError::Distributed(format!(
            "replica {replica} could not {what} within {} s{nodes}",
            self.setup.timeout.as_secs()
        ))
    }

    /// Notes a failure, so that dropping does not wait for threads that may never end.
    fn checked<T>(&mut self, result: Result<T, TrainError>) -> Result<T, TrainError> {
        self.failed |= result.is_err();
        result
    }

    /// Hands replicas 1.. a job each, in order.
    fn send(&self, jobs: Vec<Job>) -> Result<(), TrainError> {
        for (worker, job) in self.workers.iter().zip(jobs) {
            let sent = worker.jobs.as_ref().map(|jobs| jobs.send(job));
            if !matches!(sent, Some(Ok(()))) {
                return Err(TrainError::Distributed("a replica has stopped".into()));
            }
        }
        Ok(())
    }

    /// Waits for replicas 1.. to finish the job sent last.
    fn collect(&self) -> Result<(), TrainError> {
        for (index, worker) in self.workers.iter().enumerate() {
            worker
                .done
                .recv_timeout(self.setup.timeout)
                .map_err(|_| self.no_answer(index + 1, "finish its step"))??;
        }
        Ok(())
    }
}

impl<B: RoFormerTrainingBackend> Drop for Workers<B> {
    fn drop(&mut self) {
        // Idle threads leave their loop when their channel closes; a reset fails any local
        // operation a thread is still blocked in (after an error on another replica).
        for worker in &mut self.workers {
            worker.jobs = None;
        }
        if self.failed {
            // The collective's server may be gone with the failure (a lost node ends its
            // task), and a reset would then panic; the next run's start resets it.
            return;
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
    setup: Setup,
    pad: u32,
    jobs: Receiver<Job>,
    done: Sender<Result<(), TrainError>>,
) {
    let registered = join::<B>(peer, &device, &setup);
    let failed = registered.is_err();
    if done.send(registered).is_err() || failed {
        return;
    }
    // Leaving the loop (the run is over, or it failed) needs no `finish_collective`: the
    // owner resets the collective once every thread has stopped.
    while let Ok(job) = jobs.recv() {
        let share = match job {
            Job::Step(share) => share,
            Job::Finish => {
                let _ = done.send(leave::<B>(peer, &device, &setup));
                return;
            }
        };
        match replica_step::<B>(peer, model, &mut optimizer, share, pad, &device) {
            Ok((updated, _)) => {
                model = updated;
                if done.send(Ok(())).is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = done.send(Err(error));
                return;
            }
        }
    }
}

/// Replica `peer`'s end of the run: a last all-reduce as a barrier, then it leaves the
/// collective.
fn leave<B: RoFormerTrainingBackend>(
    peer: PeerId,
    device: &B::Device,
    setup: &Setup,
) -> Result<(), TrainError> {
    sum_over_replicas::<B>(peer, vec![0.0; setup.placement.total], device)?;
    finish_collective::<B::InnerBackend>(peer).map_err(|e| collective_error(peer, e))
}
