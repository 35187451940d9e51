//! A fine-tuning run's labelled rows, split into training and validation: the
//! validation file, or a seeded fraction of the training file held out.

use std::collections::BTreeSet;
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::mask_seed;
use crate::error::TrainError;
use crate::finetune::config::FinetuneConfig;
use crate::finetune::labelled::{LabelledExample, TaggedExample, read_labelled, read_tagged};

/// Salt of the seed of the validation split drawn from the training file.
const SPLIT_SALT: u64 = 0x5B11_7FAC_7104;

/// The labelled examples of a fine-tuning config, split.
pub(crate) struct LabelledSplits {
    pub train: Vec<LabelledExample>,
    pub validation: Vec<LabelledExample>,
    /// By output index: the config's list, or the sorted distinct labels of the training
    /// file.
    pub labels: Vec<String>,
}

/// The tagged sentences of a token-classification config, split.
pub(crate) struct TaggedSplits {
    pub train: Vec<TaggedExample>,
    pub validation: Vec<TaggedExample>,
    /// By output index: the config's list, or the sorted distinct labels of the training
    /// file.
    pub labels: Vec<String>,
}

/// The labels of a config, or the sorted distinct labels of the training file (at least 2).
fn labels_of<'a>(
    config: &FinetuneConfig,
    seen: impl Iterator<Item = &'a String>,
) -> Result<Vec<String>, TrainError> {
    if let Some(labels) = &config.task.labels {
        return Ok(labels.clone());
    }
    let distinct: BTreeSet<&String> = seen.collect();
    if distinct.len() < 2 {
        return Err(TrainError::data(
            config.data.train.display().to_string(),
            format!(
                "expected at least 2 distinct labels, found {}",
                distinct.len()
            ),
        ));
    }
    Ok(distinct.into_iter().cloned().collect())
}

/// The training and validation examples of `config` and its labels.
pub(crate) fn labelled_splits(config: &FinetuneConfig) -> Result<LabelledSplits, TrainError> {
    let fields = config.task.fields();
    let train_file = &config.data.train;
    let mut train_rows = read_labelled(train_file, &fields, config.task.labels.as_deref())?;
    let labels = labels_of(config, train_rows.iter().map(|e| &e.label))?;
    let valid_rows = match &config.data.validation {
        Some(path) => read_labelled(path, &fields, Some(&labels))?,
        None => split_off_validation(&mut train_rows, config, train_file)?,
    };
    Ok(LabelledSplits {
        train: train_rows,
        validation: valid_rows,
        labels,
    })
}

/// The training and validation sentences of a token-classification `config` and its
/// labels.
pub(crate) fn tagged_splits(config: &FinetuneConfig) -> Result<TaggedSplits, TrainError> {
    let fields = config.task.tag_fields();
    let train_file = &config.data.train;
    let mut train_rows = read_tagged(train_file, &fields, config.task.labels.as_deref())?;
    let labels = labels_of(config, train_rows.iter().flat_map(|e| &e.labels))?;
    let valid_rows = match &config.data.validation {
        Some(path) => read_tagged(path, &fields, Some(&labels))?,
        None => split_off_validation(&mut train_rows, config, train_file)?,
    };
    Ok(TaggedSplits {
        train: train_rows,
        validation: valid_rows,
        labels,
    })
}

/// Moves a seeded `validation_fraction` of the training rows into a validation split.
fn split_off_validation<T>(
    rows: &mut Vec<T>,
    config: &FinetuneConfig,
    train_file: &Path,
) -> Result<Vec<T>, TrainError> {
    let count = ((rows.len() as f64 * config.data.validation_fraction).round() as usize).max(1);
    if count >= rows.len() {
        return Err(TrainError::data(
            train_file.display().to_string(),
            format!(
                "{} examples are too few to hold out a validation fraction of {}; give data.validation",
                rows.len(),
                config.data.validation_fraction
            ),
        ));
    }
    let mut indices: Vec<usize> = (0..rows.len()).collect();
    indices.shuffle(&mut StdRng::seed_from_u64(mask_seed(
        config.training.seed ^ SPLIT_SALT,
        0,
        0,
    )));
    let mut held: Vec<usize> = indices[..count].to_vec();
    held.sort_unstable();
    let mut valid = Vec::with_capacity(count);
    for &index in held.iter().rev() {
        valid.push(rows.remove(index));
    }
    valid.reverse();
    Ok(valid)
}
