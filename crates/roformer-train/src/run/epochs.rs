//! Which training examples each step takes: every epoch visits them all in a shuffle that
//! depends on (seed, epoch) alone, so a resumed run sees the same batches as an
//! uninterrupted one.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::config::TrainingConfig;
use crate::data::mask_seed;
use crate::run::{StepBatch, dropout_seed};

/// The order in which `epoch` visits `len` examples.
pub fn epoch_order(len: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..len).collect();
    indices.shuffle(&mut StdRng::seed_from_u64(mask_seed(
        seed,
        epoch as u64,
        u64::MAX,
    )));
    indices
}

/// The batches of a run: `batch_size` examples a step, `steps_per_epoch` steps an epoch.
pub(crate) struct Epochs {
    len: usize,
    seed: u64,
    batch_size: usize,
    steps_per_epoch: usize,
    /// The current epoch and its order.
    order: Option<(usize, Vec<usize>)>,
}

impl Epochs {
    /// The batches of `len` training examples under `training`'s batch size and seed.
    pub fn new(training: &TrainingConfig, len: usize) -> Self {
        Self {
            len,
            seed: training.seed,
            batch_size: training.batch_size,
            steps_per_epoch: training.steps_per_epoch(len),
            order: None,
        }
    }

    /// Step `step` (0-based) at `learning_rate`: its examples and dropout seed.
    pub fn step(&mut self, step: usize, learning_rate: f64) -> StepBatch<'_> {
        let dropout_seed = dropout_seed(self.seed, step);
        let (epoch, examples) = self.batch(step);
        StepBatch {
            step,
            epoch,
            examples,
            learning_rate,
            dropout_seed,
        }
    }

    /// The epoch of `step` (0-based) and the indices of its examples.
    pub fn batch(&mut self, step: usize) -> (usize, &[usize]) {
        let epoch = step / self.steps_per_epoch;
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.order = Some((epoch, epoch_order(self.len, self.seed, epoch)));
        }
        let indices = &self.order.as_ref().expect("set above").1;
        let within = step % self.steps_per_epoch;
        let end = ((within + 1) * self.batch_size).min(indices.len());
        (epoch, &indices[within * self.batch_size..end])
    }
}
