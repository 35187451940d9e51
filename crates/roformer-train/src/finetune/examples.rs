//! A fine-tuning run's examples: labelled rows encoded for the model (an input and the
//! label of each of its units), the loss and predictions of a head over them, and their
//! scores.

use burn::tensor::{ElementConversion, Tensor, TensorPrimitive};
use roformer::{IGNORE_INDEX, RoFormerBackend};

use crate::finetune::scores::{Scores, scores};
use roformer_infer::entities::entity_scores;
use roformer_infer::inputs::{PairInput, label_tensor, pair_batch, word_rows};
use roformer_infer::task_model::TaskModel;

/// An encoded example: its input and the label of each of its units (one for a whole
/// input; one per word of the window, with where each word starts, for token
/// classification).
pub(crate) struct Example {
    pub input: PairInput,
    pub labels: Vec<usize>,
    pub word_starts: Vec<usize>,
}

/// The encoded examples of a run.
pub(crate) struct TaskData {
    pub train: Vec<Example>,
    pub valid: Vec<Example>,
    pub labels: Vec<String>,
    /// Whether the labels are BIO (entity scores are computed, and select the best model).
    pub entity_labels: bool,
}

impl TaskData {
    /// The scores of per-example predicted units against the first validation examples'
    /// labels.
    pub fn validation_scores(&self, predicted: &[Vec<usize>]) -> Scores {
        let examples = &self.valid[..predicted.len()];
        unit_scores(predicted, examples, &self.labels, self.entity_labels)
    }
}

/// The scores of per-example predicted units against the examples' labels: accuracy and
/// F1 over all units, and entity scores when the labels are BIO.
pub(crate) fn unit_scores(
    predicted: &[Vec<usize>],
    examples: &[Example],
    labels: &[String],
    entity_labels: bool,
) -> Scores {
    let flat_predicted: Vec<usize> = predicted.iter().flatten().copied().collect();
    let flat_targets: Vec<usize> = examples
        .iter()
        .flat_map(|e| e.labels.iter().copied())
        .collect();
    let mut scored = scores(&flat_predicted, &flat_targets, labels.len());
    if entity_labels {
        let names =
            |units: &[usize]| -> Vec<&str> { units.iter().map(|&u| labels[u].as_str()).collect() };
        let predicted: Vec<Vec<&str>> = predicted.iter().map(|p| names(p)).collect();
        let targets: Vec<Vec<&str>> = examples.iter().map(|e| names(&e.labels)).collect();
        scored.entities = Some(entity_scores(&predicted, &targets));
    }
    scored
}

/// Mean cross-entropy of the head's logits over the units of `batch`, and the logits
/// (`[units, labels]`).
pub(crate) fn unit_loss<B: RoFormerBackend, M: TaskModel<B>>(
    model: &M,
    batch: &[&Example],
    pad: u32,
    device: &B::Device,
) -> (Tensor<B, 1>, Tensor<B, 2>) {
    let inputs: Vec<&PairInput> = batch.iter().map(|e| &e.input).collect();
    let labels: Vec<usize> = batch
        .iter()
        .flat_map(|e| e.labels.iter().copied())
        .collect();
    let rows = M::LABELS_WORDS.then(|| {
        let starts: Vec<&[usize]> = batch.iter().map(|e| e.word_starts.as_slice()).collect();
        word_rows::<B>(&inputs, &starts, device)
    });
    let logits = model.unit_logits(pair_batch::<B>(&inputs, pad, device), rows);
    let output = B::cross_entropy(
        logits.clone().into_primitive().tensor(),
        label_tensor::<B>(&labels, device).into_primitive(),
        IGNORE_INDEX,
    );
    (
        Tensor::from_primitive(TensorPrimitive::Float(output.loss)),
        logits,
    )
}

/// Mean validation loss per unit and the predicted label of each unit, example by example.
pub(crate) fn evaluate<B: RoFormerBackend, M: TaskModel<B>>(
    model: &M,
    examples: &[Example],
    batch_size: usize,
    pad: u32,
    device: &B::Device,
) -> (f64, Vec<Vec<usize>>) {
    let (mut loss_sum, mut units) = (0.0, 0usize);
    let mut predicted = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(batch_size) {
        let batch: Vec<&Example> = chunk.iter().collect();
        let (loss, logits) = unit_loss(model, &batch, pad, device);
        let loss: f64 = loss.into_scalar().elem();
        let count: usize = chunk.iter().map(|e| e.labels.len()).sum();
        loss_sum += loss * count as f64;
        units += count;
        let data = logits.argmax(1).into_data();
        let mut classes = data.iter::<i64>();
        for example in chunk {
            predicted.push(
                classes
                    .by_ref()
                    .take(example.labels.len())
                    .map(|c| c as usize)
                    .collect(),
            );
        }
    }
    (loss_sum / units.max(1) as f64, predicted)
}

/// Accuracy on the units of `valid` of always predicting the most frequent label of
/// `train`'s units (the lowest index on a tie), as `roformer baseline` scores it.
pub(crate) fn majority_baseline(train: &[Example], valid: &[Example], classes: usize) -> f64 {
    let mut counts = vec![0usize; classes];
    for label in train.iter().flat_map(|e| &e.labels) {
        counts[*label] += 1;
    }
    let majority = (0..classes)
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .unwrap_or(0);
    let units = valid.iter().flat_map(|e| &e.labels);
    let (hits, total) = units.fold((0, 0), |(h, t), &l| (h + usize::from(l == majority), t + 1));
    hits as f64 / total.max(1) as f64
}
