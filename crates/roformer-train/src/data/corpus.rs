//! The text corpus: a folder of `.txt` files, one work each, split into training and
//! validation by work, never by line, so validation text is never seen in training.

use std::path::{Path, PathBuf};

use crate::error::TrainError;

/// The shipped Shakespeare corpus (42 public-domain works, `data/shakespeare`).
pub const DEFAULT_CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/shakespeare");

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

/// The corpus, split by work.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Works used for training (and for training the tokenizer).
    pub train: Vec<Work>,
    /// Held-out works.
    pub validation: Vec<Work>,
}

impl Corpus {
    /// Reads every `.txt` file of `dir` (default: the shipped corpus) and splits off
    /// `validation` (default: [`DEFAULT_VALIDATION_WORKS`] for the shipped corpus, the last
    /// file in name order otherwise).
    pub fn load(dir: Option<&Path>, validation: Option<&[String]>) -> Result<Self, TrainError> {
        let dir: PathBuf = dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CORPUS_DIR));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| TrainError::io(&dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        if files.len() < 2 {
            return Err(TrainError::data(
                dir.display().to_string(),
                format!(
                    "a corpus needs at least 2 .txt files (training and validation), found {}",
                    files.len()
                ),
            ));
        }
        let names: Vec<String> = files
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let held_out: Vec<String> = match validation {
            Some(list) => list.to_vec(),
            None if names.iter().any(|n| n == DEFAULT_VALIDATION_WORKS[0]) => {
                DEFAULT_VALIDATION_WORKS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }
            None => vec![names.last().cloned().unwrap_or_default()],
        };
        if let Some(missing) = held_out.iter().find(|w| !names.contains(w)) {
            return Err(TrainError::data(
                dir.display().to_string(),
                format!("validation work `{missing}` is not a .txt file of the corpus"),
            ));
        }
        if held_out.len() >= names.len() {
            return Err(TrainError::data(
                dir.display().to_string(),
                "every work is held out for validation; none is left to train on",
            ));
        }
        let mut corpus = Corpus {
            train: Vec::new(),
            validation: Vec::new(),
        };
        for (path, name) in files.iter().zip(names) {
            let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
            let work = Work {
                name: name.clone(),
                text,
            };
            if held_out.contains(&name) {
                corpus.validation.push(work);
            } else {
                corpus.train.push(work);
            }
        }
        Ok(corpus)
    }
}
