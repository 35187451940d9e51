//! Labelled passages cut from a corpus's works, for genre classification: each work
//! (a `.txt` file listed in the corpus's `works.tsv`, with a `genre` column) is cut into
//! passages of a fixed number of words, labelled with the work's genre. The works are
//! split into training and validation whole, so no work has passages in both.

use std::path::Path;

use serde::Serialize;

use super::corpus::{Corpus, WorkSplit};
use super::shipped_corpus::{SHIPPED_CORPUS_NAME, shipped_file};
use crate::error::TrainError;

/// The works index of a corpus folder.
pub const WORKS_INDEX_FILE: &str = "works.tsv";

/// One passage: a line of the labelled JSON-lines files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Passage {
    /// About `words` words of one work, whitespace normalised to single spaces.
    pub text: String,
    /// The work's genre.
    pub label: String,
    /// The work's file name.
    pub work: String,
}

/// The passages of a corpus, split by work.
pub type PassageSplits = WorkSplit<Passage>;

/// Passages of `words` words of every work of the corpus at `dir` (default: the built-in
/// one), labelled by the `genre` column of its `works.tsv`; the `validation` works
/// (default: the corpus's validation works, those pretraining holds out) are held out.
/// Each work's first passage (title and list of persons) and a last, shorter one are
/// dropped.
pub fn genre_passages(
    dir: Option<&Path>,
    words: usize,
    validation: Option<&[String]>,
) -> Result<PassageSplits, TrainError> {
    if words == 0 {
        return Err(TrainError::data(
            "--words",
            "expected a positive number of words",
        ));
    }
    let corpus = Corpus::load(dir, validation)?;
    let (index_source, index) = match dir {
        Some(dir) => {
            let path = dir.join(WORKS_INDEX_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
            (path.display().to_string(), text)
        }
        None => (
            format!("{SHIPPED_CORPUS_NAME}/{WORKS_INDEX_FILE}"),
            shipped_file(WORKS_INDEX_FILE)
                .ok_or_else(|| TrainError::data(SHIPPED_CORPUS_NAME, "no works.tsv"))?
                .to_string(),
        ),
    };
    let genres = read_genres(&index_source, &index)?;
    let cut = |works: &[super::corpus::Work]| -> Result<Vec<Passage>, TrainError> {
        let mut passages = Vec::new();
        for work in works {
            let genre = genres
                .iter()
                .find(|(file, _)| *file == work.name)
                .map(|(_, genre)| genre.clone())
                .ok_or_else(|| {
                    TrainError::data(&index_source, format!("no genre for {}", work.name))
                })?;
            let all: Vec<&str> = work.text.split_whitespace().collect();
            passages.extend(
                all.chunks(words)
                    .skip(1)
                    .filter(|chunk| chunk.len() == words)
                    .map(|chunk| Passage {
                        text: chunk.join(" "),
                        label: genre.clone(),
                        work: work.name.clone(),
                    }),
            );
        }
        Ok(passages)
    };
    Ok(PassageSplits {
        train: cut(&corpus.train)?,
        validation: cut(&corpus.validation)?,
    })
}

/// `(file, genre)` rows of a `works.tsv` (a header row naming `file` and `genre`).
fn read_genres(source: &str, text: &str) -> Result<Vec<(String, String)>, TrainError> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| TrainError::data(source, format!("line 1: no `{name}` column")))
    };
    let (file, genre) = (column("file")?, column("genre")?);
    lines
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let cells: Vec<&str> = line.split('\t').collect();
            match (cells.get(file), cells.get(genre)) {
                (Some(f), Some(g)) if !g.is_empty() => Ok((f.to_string(), g.to_string())),
                _ => Err(TrainError::data(
                    source,
                    format!("line {}: expected `file` and `genre` cells", index + 2),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every passage has exactly `words` words of its own work, in order, labelled with
    /// the work's genre; no work is in both splits.
    #[test]
    fn passages_are_whole_word_runs_of_one_work_with_its_genre() {
        let splits = genre_passages(None, 300, None).unwrap();
        assert!(splits.train.len() > 100 && splits.validation.len() > 10);
        let hamlet = shipped_file("hamlet.txt").unwrap();
        let hamlet_words: Vec<&str> = hamlet.split_whitespace().collect();
        let first = splits
            .validation
            .iter()
            .find(|p| p.work == "hamlet.txt")
            .unwrap();
        assert_eq!(first.label, "tragedy");
        assert_eq!(first.text, hamlet_words[300..600].join(" "));
        for passage in splits.train.iter().chain(&splits.validation) {
            assert_eq!(passage.text.split(' ').count(), 300);
        }
        let validation_works: std::collections::BTreeSet<&str> =
            splits.validation.iter().map(|p| p.work.as_str()).collect();
        assert!(
            splits
                .train
                .iter()
                .all(|p| !validation_works.contains(p.work.as_str()))
        );
        let genres: std::collections::BTreeSet<&str> =
            splits.train.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            genres.into_iter().collect::<Vec<_>>(),
            ["comedy", "history", "poetry", "tragedy"]
        );
    }
}
