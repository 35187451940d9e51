//! What `eval-mlm` scores when the command line does not say: the text (a run's held-out
//! works, else the built-in corpus's) and the length the model was trained on (a run's
//! `data.max_seq_len`, else the model's `max_position_embeddings`).

use std::path::Path;

use roformer::RoFormerConfig;

use crate::config::TrainConfig;
use crate::data::Corpus;
use crate::error::TrainError;
use crate::train::RUN_CONFIG_FILE;

/// The text to score and what it is, for the report.
#[derive(Debug, Clone)]
pub struct EvalText {
    /// The text.
    pub text: String,
    /// The file, or the held-out works it comes from.
    pub source: String,
}

/// The config of the run in `model_dir`, when it is one of our run directories.
pub fn run_config(model_dir: &Path) -> Result<Option<TrainConfig>, TrainError> {
    let path = model_dir.join(RUN_CONFIG_FILE);
    path.is_file()
        .then(|| TrainConfig::from_file(&path))
        .transpose()
}

/// The file at `path` when given; otherwise the held-out works of the run's corpus (the
/// built-in one without a run).
pub fn eval_text(path: Option<&Path>, run: Option<&TrainConfig>) -> Result<EvalText, TrainError> {
    if let Some(path) = path {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TrainError::io(path, format!("cannot read the text: {e}")))?;
        return Ok(EvalText {
            text,
            source: path.display().to_string(),
        });
    }
    let data = run.map(|r| r.data.clone()).unwrap_or_default();
    let corpus = Corpus::load(data.corpus.as_deref(), data.validation_works.as_deref())?;
    let names: Vec<&str> = corpus.validation.iter().map(|w| w.name.as_str()).collect();
    let text: Vec<&str> = corpus.validation.iter().map(|w| w.text.as_str()).collect();
    Ok(EvalText {
        text: text.join("\n"),
        source: format!("held-out works {}", names.join(", ")),
    })
}

/// The trained length: `given`, else the run's `data.max_seq_len`, else the model's
/// `max_position_embeddings`.
pub fn trained_length(
    given: Option<usize>,
    run: Option<&TrainConfig>,
    model: &RoFormerConfig,
) -> usize {
    given
        .or(run.map(|r| r.data.max_seq_len))
        .unwrap_or(model.max_position_embeddings)
}
