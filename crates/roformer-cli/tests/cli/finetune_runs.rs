//! Fine-tuning runs shared by the classification and tagging tests: by the binary, and in
//! process on ndarray (a fresh run that may stop at a checkpoint), their metrics, and the
//! check that a resumed run repeats the uninterrupted one.

use std::ops::ControlFlow;
use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use roformer_train::finetune::{FinetuneConfig, FinetuneRecord, FinetuneStart, finetune};
use roformer_train::run::metrics::read_step_records;
use roformer_train::run::{METRICS_FILE, RunEvent};

use crate::common::{ndarray_generator, roformer};

pub type Training = Autodiff<NdArray>;

/// Where an in-process run stops: after the checkpoint at a step of its adaptation phase,
/// or of its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    Adaptation(usize),
    Head(usize),
}

/// A fresh run of the config text `config` into `run_dir`, stopped at `stop_at` when given.
pub fn run(config: &str, run_dir: &Path, stop_at: Option<StopAt>) {
    let config = FinetuneConfig::from_toml_str(config, "test.toml").unwrap();
    finetune::<Training>(
        FinetuneStart::Fresh(Box::new(config)),
        run_dir,
        &Default::default(),
        &mut |event| match event {
            RunEvent::Checkpointed { step, .. } if stop_at == Some(StopAt::Adaptation(step)) => {
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        },
        &mut |event| match event {
            RunEvent::Checkpointed { step, .. } if stop_at == Some(StopAt::Head(step)) => {
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        },
    )
    .unwrap();
}

/// Resumes the run in `run_dir` to its end.
pub fn resume(run_dir: &Path) {
    finetune::<Training>(
        FinetuneStart::Resume,
        run_dir,
        &Default::default(),
        &mut |_| ControlFlow::Continue(()),
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
}

/// `roformer finetune --config CONFIG --output RUN_DIR`: whether it succeeded, and stderr.
pub fn finetune_cli(config: &Path, run_dir: &Path) -> (bool, String) {
    let (ok, _, stderr) = roformer(&[
        "finetune",
        "--config",
        config.to_str().unwrap(),
        "--output",
        run_dir.to_str().unwrap(),
    ]);
    (ok, stderr)
}

/// The evaluations a run wrote to its metrics file.
pub fn records(run_dir: &Path) -> Vec<FinetuneRecord> {
    read_step_records(&run_dir.join(METRICS_FILE)).unwrap()
}

/// Runs `config` (dropout off, `evaluations` evaluations, a checkpoint at each) once
/// through, and once stopped after its first checkpoint at step `first_checkpoint` and
/// resumed; every evaluation's losses and scores must agree to 1e-6.
pub fn assert_resume_repeats_the_run(
    config: &str,
    dir: &Path,
    first_checkpoint: usize,
    evaluations: usize,
) {
    let _generator = ndarray_generator();
    let reference = dir.join("reference");
    run(config, &reference, None);
    let resumed = dir.join("resumed");
    run(config, &resumed, Some(StopAt::Head(first_checkpoint)));
    assert_eq!(
        records(&resumed).len(),
        1,
        "stopped after the first checkpoint"
    );
    resume(&resumed);
    let want = records(&reference);
    assert_eq!(want.len(), evaluations);
    assert_same_records(&want, &records(&resumed));
}

/// Two runs' evaluations agree: the same steps, losses and scores to 1e-6.
pub fn assert_same_records(want: &[FinetuneRecord], got: &[FinetuneRecord]) {
    assert_eq!(got.len(), want.len(), "{want:?} vs {got:?}");
    for (a, b) in want.iter().zip(got) {
        assert_eq!(a.step, b.step);
        assert_eq!(
            a.valid_entity_f1.is_some(),
            b.valid_entity_f1.is_some(),
            "{want:?} vs {got:?}"
        );
        for (x, y) in [
            (a.train_loss, b.train_loss),
            (a.valid_loss, b.valid_loss),
            (a.valid_macro_f1, b.valid_macro_f1),
            (
                a.valid_entity_f1.unwrap_or(0.0),
                b.valid_entity_f1.unwrap_or(0.0),
            ),
        ] {
            assert!((x - y).abs() < 1e-6, "{want:?} vs {got:?}");
        }
    }
}
