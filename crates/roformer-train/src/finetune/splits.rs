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

/// A run's rows (labelled texts, or tagged sentences), split.
pub(crate) struct Splits<T> {
    pub train: Vec<T>,
    pub validation: Vec<T>,
    /// By output index: the config's list, or the sorted distinct labels of the training
    /// file.
    pub labels: Vec<String>,
}

/// The labelled texts of a classification config, split.
pub(crate) type LabelledSplits = Splits<LabelledExample>;
/// The tagged sentences of a token-classification config, split.
pub(crate) type TaggedSplits = Splits<TaggedExample>;

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

/// The rows of `config`'s files, read by `read` (which checks them against the labels
/// when it is given them), split, with their labels (`labels_in` lists a row's).
fn splits<T>(
    config: &FinetuneConfig,
    read: impl Fn(&Path, Option<&[String]>) -> Result<Vec<T>, TrainError>,
    labels_in: impl Fn(&T) -> &[String],
) -> Result<Splits<T>, TrainError> {
    let train_file = &config.data.train;
    let mut train = read(train_file, config.task.labels.as_deref())?;
    let labels = labels_of(config, train.iter().flat_map(&labels_in))?;
    let validation = match &config.data.validation {
        Some(path) => read(path, Some(&labels))?,
        None => split_off_validation(&mut train, config, train_file)?,
    };
    Ok(Splits {
        train,
        validation,
        labels,
    })
}

/// The training and validation examples of `config` and its labels.
pub(crate) fn labelled_splits(config: &FinetuneConfig) -> Result<LabelledSplits, TrainError> {
    let fields = config.task.fields();
    let read = |path: &Path, labels: Option<&[String]>| read_labelled(path, &fields, labels);
    splits(config, read, |row| std::slice::from_ref(&row.label))
}

/// The training and validation sentences of a token-classification `config` and its
/// labels.
pub(crate) fn tagged_splits(config: &FinetuneConfig) -> Result<TaggedSplits, TrainError> {
    let fields = config.task.tag_fields();
    let read = |path: &Path, labels: Option<&[String]>| read_tagged(path, &fields, labels);
    splits(config, read, |row| &row.labels)
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
