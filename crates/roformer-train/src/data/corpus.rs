//! The text corpus: a folder of `.txt` files, one work each, split into training and
//! validation by work, never by line, so validation text is never seen in training.

use std::path::{Path, PathBuf};

use super::shipped_corpus::{SHIPPED_CORPUS_NAME, shipped_files};
use crate::error::TrainError;

/// Validation works of the shipped corpus: one tragedy, one comedy, one history and the
/// sonnets (about 10% of the text). Fixed, so every run validates on the same text.
pub const DEFAULT_VALIDATION_WORKS: &[&str] = &[
    "hamlet.txt",
    "twelfth_night.txt",
    "henry_v.txt",
    "sonnets.txt",
];

/// One file of the corpus.
#[derive(Debug, Clone)]
pub struct Work {
    /// File name, e.g. `hamlet.txt`.
    pub name: String,
    /// Its text.
    pub text: String,
}

/// Anything drawn from the corpus, split as its works are: the training works' and the
/// held-out works'.
#[derive(Debug, Clone)]
pub struct WorkSplit<T> {
    /// From the works used for training (and for training the tokenizer).
    pub train: Vec<T>,
    /// From the held-out works.
    pub validation: Vec<T>,
}

/// The corpus, split by work.
pub type Corpus = WorkSplit<Work>;

impl Corpus {
    /// Reads every `.txt` file of `dir` (default: the built-in Shakespeare corpus) and
    /// splits off `validation` (default: [`DEFAULT_VALIDATION_WORKS`] for the shipped
    /// corpus, the last file in name order otherwise).
    pub fn load(dir: Option<&Path>, validation: Option<&[String]>) -> Result<Self, TrainError> {
        let (source, works) = match dir {
            Some(dir) => (dir.display().to_string(), read_works(dir)?),
            None => (
                SHIPPED_CORPUS_NAME.to_string(),
                shipped_files()
                    .iter()
                    .filter(|(name, _)| name.ends_with(".txt"))
                    .map(|(name, text)| Work {
                        name: name.clone(),
                        text: text.clone(),
                    })
                    .collect(),
            ),
        };
        Self::split(&source, works, validation)
    }

    /// Splits `works` (in name order) into training and validation; `source` names the
    /// corpus in errors.
    fn split(
        source: &str,
        works: Vec<Work>,
        validation: Option<&[String]>,
    ) -> Result<Self, TrainError> {
        if works.len() < 2 {
            return Err(TrainError::data(
                source,
                format!(
                    "a corpus needs at least 2 .txt files (training and validation), found {}",
                    works.len()
                ),
            ));
        }
        let is_work = |name: &str| works.iter().any(|w| w.name == name);
        let held_out: Vec<String> = match validation {
            Some(list) => list.to_vec(),
            None if is_work(DEFAULT_VALIDATION_WORKS[0]) => DEFAULT_VALIDATION_WORKS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            None => vec![works.last().map(|w| w.name.clone()).unwrap_or_default()],
        };
        if let Some(missing) = held_out.iter().find(|w| !is_work(w)) {
            return Err(TrainError::data(
                source,
                format!("validation work `{missing}` is not a .txt file of the corpus"),
            ));
        }
        if held_out.len() >= works.len() {
            return Err(TrainError::data(
                source,
                "every work is held out for validation; none is left to train on",
            ));
        }
        let (validation, train) = works.into_iter().partition(|w| held_out.contains(&w.name));
        Ok(Corpus { train, validation })
    }
}

/// Every `.txt` file of `dir`, in name order.
fn read_works(dir: &Path) -> Result<Vec<Work>, TrainError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TrainError::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            Ok(Work { name, text })
        })
        .collect()
}
