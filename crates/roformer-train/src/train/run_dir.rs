//! A pretraining run's directory: its config file, opening it for a fresh or resumed run,
//! and the run's tokenizer (trained or loaded, and kept there so inference and `--resume` use
//! the same one).

use std::path::Path;

use crate::config::TrainConfig;
use crate::data::Corpus;
use crate::error::TrainError;
use crate::run::{RunStart, refuse_taken};
use roformer_infer::fs_atomic::write_atomic;
use roformer_infer::model_dir::{
    CONFIG_FILE, TOKENIZER_FILE, VOCAB_FILE, WEIGHTS_FILE, load_tokenizer, save_tokenizer,
};
use roformer_infer::tokenizer::TextTokenizer;

/// The resolved config saved in a run directory (and read back by `--resume`).
pub const RUN_CONFIG_FILE: &str = "config.toml";

/// A run directory ready for training, with the run's config.
pub(super) struct OpenedRun {
    /// The run's config (as given, or as saved by the run being resumed).
    pub config: TrainConfig,
    /// Whether the run continues from a checkpoint.
    pub resuming: bool,
}

/// Checks `run_dir` before any work: a fresh start refuses a directory that already holds
/// a run (nothing is overwritten); a resume reads the saved config back. Writes nothing:
/// [`start_run_dir`] does, once the data and tokenizer are ready, so a run that fails on
/// its data leaves no run behind to block a corrected retry.
pub(super) fn open_run_dir(
    start: RunStart<TrainConfig>,
    run_dir: &Path,
) -> Result<OpenedRun, TrainError> {
    match start {
        RunStart::Fresh(config) => {
            let model_files = [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, VOCAB_FILE];
            refuse_taken(run_dir, RUN_CONFIG_FILE, &model_files, "training")?;
            Ok(OpenedRun {
                config: *config,
                resuming: false,
            })
        }
        RunStart::Resume => Ok(OpenedRun {
            config: TrainConfig::from_file(&run_dir.join(RUN_CONFIG_FILE))?,
            resuming: true,
        }),
    }
}

/// Saves a fresh run's config into `run_dir` (created if needed), which marks the
/// directory as holding a run; a resumed run's directory already has it.
pub(super) fn start_run_dir(run: &OpenedRun, run_dir: &Path) -> Result<(), TrainError> {
    if run.resuming {
        return Ok(());
    }
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    Ok(write_atomic(
        &run_dir.join(RUN_CONFIG_FILE),
        run.config.to_toml_string().as_bytes(),
    )?)
}

/// The run's tokenizer: the saved one when resuming; otherwise the `given` one (a
/// pretrained model's, whose pretraining continues), the config's file, or one trained on
/// the training works, saved into `run_dir`. Checked against the model config.
pub(super) fn run_tokenizer(
    run: &OpenedRun,
    corpus: &Corpus,
    given: Option<TextTokenizer>,
    run_dir: &Path,
) -> Result<TextTokenizer, TrainError> {
    let config = &run.config;
    let tokenizer = if run.resuming {
        load_tokenizer(run_dir)?
    } else {
        let tokenizer = match (given, &config.tokenizer.path) {
            (Some(tokenizer), _) => tokenizer,
            (None, Some(path)) => TextTokenizer::from_file(path)?,
            (None, None) => TextTokenizer::train(
                corpus.train.iter().flat_map(|w| w.text.lines()),
                config.model.vocab_size,
                config.tokenizer.min_frequency,
                config.tokenizer.lowercase,
            )?,
        };
        save_tokenizer(run_dir, &tokenizer)?;
        tokenizer
    };
    check_tokenizer_fits(&tokenizer, config)?;
    Ok(tokenizer)
}

fn check_tokenizer_fits(tokenizer: &TextTokenizer, config: &TrainConfig) -> Result<(), TrainError> {
    let fail = |key: &str, message: String| {
        Err(TrainError::Config {
            file: RUN_CONFIG_FILE.into(),
            key: key.into(),
            message,
        })
    };
    if tokenizer.vocab_size() > config.model.vocab_size {
        return fail(
            "model.vocab_size",
            format!(
                "expected at least the tokenizer's vocabulary size {}, got {}",
                tokenizer.vocab_size(),
                config.model.vocab_size
            ),
        );
    }
    let pad = tokenizer.special().pad as usize;
    if config.model.pad_token_id.is_some_and(|id| id != pad) {
        return fail(
            "model.pad_token_id",
            format!(
                "expected the tokenizer's [PAD] id {pad}, got {:?}",
                config.model.pad_token_id
            ),
        );
    }
    Ok(())
}
