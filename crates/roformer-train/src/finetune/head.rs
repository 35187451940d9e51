//! Fine-tuning a head on an encoder as the run loop's [`Task`]: the model with its new
//! head (`M`: a sequence or a token classifier), its optimizer, and the loss and scores
//! of its units.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::ElementConversion;
use roformer::{RoFormerConfig, RoFormerModel, RoFormerTrainingBackend};

use crate::config::TrainingConfig;
use crate::error::TrainError;
use crate::finetune::examples::{Example, TaskData, evaluate, unit_loss};
use crate::finetune::record::FinetuneRecord;
use crate::run::checkpoint::{TrainingState, load_checkpoint, save_checkpoint};
use crate::run::loss_scale::{LossScale, optimise};
use crate::run::optimizer::FusedAdamW;
use crate::run::{StepBatch, StepLoss, Task, TaskSizes, TrainFigures};
use roformer_infer::model_dir::save_classifier_weights;
use roformer_infer::task_model::TaskModel;

/// A model with head `M` in training, and its data.
pub(crate) struct HeadTask<'a, B: RoFormerTrainingBackend, M: AutodiffModule<B>> {
    training: &'a TrainingConfig,
    device: &'a B::Device,
    /// The encoder's config (with the task's positions).
    pub encoder_config: RoFormerConfig,
    pub data: TaskData,
    pad: u32,
    /// `None` only inside [`Task::step`], while the optimizer owns the model.
    model: Option<M>,
    optimizer: OptimizerAdaptor<FusedAdamW, M, B>,
    loss_scale: Option<LossScale>,
    /// Steps already done when this process started (non-zero when resuming).
    pub start_step: usize,
}

impl<'a, B, M> HeadTask<'a, B, M>
where
    B: RoFormerTrainingBackend,
    M: TaskModel<B> + AutodiffModule<B> + Clone,
    M::InnerModule: TaskModel<B::InnerBackend>,
{
    /// A fresh head on `encoder` (the head's weights drawn from the seed), or, with
    /// `resume_from`, the model and optimizer of the run's last checkpoint.
    pub fn new(
        training: &'a TrainingConfig,
        encoder_config: RoFormerConfig,
        encoder: Option<RoFormerModel<B>>,
        data: TaskData,
        pad: u32,
        resume_from: Option<&Path>,
        device: &'a B::Device,
    ) -> Result<Self, TrainError> {
        B::seed(device, training.seed);
        let mut model = M::fresh(&encoder_config, data.labels.len(), device)?
            .with_precision(training.precision);
        if let Some(encoder) = encoder {
            model = model.with_encoder_weights(encoder);
        }
        let mut optimizer: OptimizerAdaptor<FusedAdamW, M, B> = training.optimizer().init();
        let mut start_step = 0;
        let mut loss_scale = LossScale::for_precision(training.precision);
        if let Some(run_dir) = resume_from {
            let (state, restored, restored_optimizer) =
                load_checkpoint(run_dir, model, optimizer, device)?;
            (start_step, model, optimizer) = (state.step, restored, restored_optimizer);
            loss_scale = state.loss_scale.or(loss_scale);
        }
        Ok(Self {
            training,
            device,
            encoder_config,
            data,
            pad,
            model: Some(model),
            optimizer,
            loss_scale,
            start_step,
        })
    }

    /// The device it trains on.
    pub fn device(&self) -> &B::Device {
        self.device
    }

    fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("the optimizer hands the model back")
    }

    /// The validation examples an evaluation covers (`eval_batches` batches, or all).
    pub fn evaluated_examples(&self) -> &[Example] {
        let valid = &self.data.valid;
        match self.training.eval_batches {
            0 => valid,
            n => &valid[..(n * self.training.batch_size).min(valid.len())],
        }
    }

    /// Validation loss and the predicted units of `examples` with `model`.
    pub fn predict(&self, model: &M::InnerModule, examples: &[Example]) -> (f64, Vec<Vec<usize>>) {
        let batch_size = self.training.batch_size;
        evaluate(model, examples, batch_size, self.pad, self.device)
    }
}

impl<B, M> Task<B> for HeadTask<'_, B, M>
where
    B: RoFormerTrainingBackend,
    M: TaskModel<B> + AutodiffModule<B> + Clone,
    M::InnerModule: TaskModel<B::InnerBackend>,
{
    type Record = FinetuneRecord;

    fn sizes(&self) -> TaskSizes {
        TaskSizes {
            train: self.data.train.len(),
            valid: self.data.valid.len(),
            parameters: self.model().num_params(),
        }
    }

    fn step(&mut self, batch: StepBatch<'_>) -> Result<StepLoss, TrainError> {
        let examples: Vec<&Example> = batch
            .examples
            .iter()
            .map(|&i| &self.data.train[i])
            .collect();
        let tokens = examples.iter().map(|e| e.input.ids.len()).sum();
        B::seed(self.device, batch.dropout_seed);
        let model = self
            .model
            .take()
            .expect("the optimizer hands the model back");
        let (loss, _) = unit_loss(&model, &examples, self.pad, self.device);
        let loss_value: f64 = loss.clone().into_scalar().elem();
        let optimised = optimise(
            model,
            loss,
            &mut self.optimizer,
            batch.learning_rate,
            self.training.max_grad_norm,
            self.loss_scale.as_mut(),
        );
        self.model = Some(optimised.model);
        Ok(StepLoss {
            loss: loss_value,
            tokens,
        })
    }

    fn evaluate(&mut self, done: usize, train: TrainFigures) -> FinetuneRecord {
        let (valid_loss, predicted) =
            self.predict(&self.model().valid(), self.evaluated_examples());
        let scored = self.data.validation_scores(&predicted);
        FinetuneRecord {
            step: done,
            train_loss: train.mean_loss,
            valid_loss,
            valid_accuracy: scored.accuracy,
            valid_macro_f1: scored.macro_f1,
            valid_entity_f1: scored.entities.map(|e| e.f1),
            learning_rate: train.learning_rate,
        }
    }

    fn checkpoint(&self, run_dir: &Path, done: usize) -> Result<PathBuf, TrainError> {
        let state = TrainingState {
            step: done,
            loss_scale: self.loss_scale,
        };
        save_checkpoint(run_dir, state, self.model(), &self.optimizer)
    }

    fn save_model(&self, run_dir: &Path) -> Result<(), TrainError> {
        Ok(save_classifier_weights(
            run_dir,
            &self.encoder_config,
            &self.model().valid(),
        )?)
    }
}
