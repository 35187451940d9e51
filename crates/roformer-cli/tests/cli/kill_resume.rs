//! `roformer train` killed with SIGKILL — during training, while a checkpoint's records
//! are being written, and between the two renames that swap a checkpoint in — then
//! resumed with `--resume`, ends with the same evaluations as a run never interrupted.

use std::path::Path;
use std::time::{Duration, Instant};

use roformer_train::run::METRICS_FILE;
use roformer_train::run::checkpoint::PAUSE_CHECKPOINT_ENV;
use roformer_train::run::metrics::{EvalRecord, read_records};

use crate::common::{roformer, small_config_toml, spawn_roformer, write_small_corpus};

const STEPS: usize = 200;
const EVERY: usize = 10;

/// Waits up to a minute for `ready`, checking every 20 ms; panics with the child's stderr
/// if it exits first.
fn wait_for(child: &mut std::process::Child, what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("training exited ({status}) before {what}: {stderr}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL (what `Child::kill` sends on Unix): no destructor, flush or handler runs.
/// Checks that the signal, not the end of training, stopped the run, and that it had
/// evaluations left to make.
fn kill_hard(child: &mut std::process::Child, dir: &Path) {
    use std::os::unix::process::ExitStatusExt;
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the run ended before the kill: {status}"
    );
    let evaluations =
        std::fs::read_to_string(dir.join(METRICS_FILE)).map_or(0, |t| t.lines().count());
    assert!(evaluations < STEPS / EVERY, "the run had finished");
}

fn resume(dir: &Path) -> Vec<EvalRecord> {
    let dir = dir.to_str().unwrap();
    let (ok, _, stderr) = roformer(&["train", "--resume", dir]);
    assert!(ok, "resume of {dir} failed: {stderr}");
    read_records(&Path::new(dir).join(METRICS_FILE)).unwrap()
}

/// Same steps, and losses and accuracies equal to 1e-6 (a resumed run replays the same
/// batches, masks, dropout masks and optimizer state; on one machine they agree to the
/// bit).
fn assert_same_run(resumed: &[EvalRecord], reference: &[EvalRecord], case: &str) {
    let steps = |r: &[EvalRecord]| r.iter().map(|e| e.step).collect::<Vec<_>>();
    assert_eq!(steps(resumed), steps(reference), "{case}");
    for (a, b) in resumed.iter().zip(reference) {
        let gap = [
            a.train_loss - b.train_loss,
            a.valid_loss - b.valid_loss,
            a.valid_accuracy - b.valid_accuracy,
        ]
        .into_iter()
        .map(f64::abs)
        .fold(0.0, f64::max);
        assert!(
            gap <= 1e-6,
            "{case}: step {}: resumed {:.9}/{:.9}/{:.6}, uninterrupted {:.9}/{:.9}/{:.6}",
            a.step,
            a.train_loss,
            a.valid_loss,
            a.valid_accuracy,
            b.train_loss,
            b.valid_loss,
            b.valid_accuracy
        );
    }
}

#[test]
fn a_run_killed_at_any_moment_resumes_to_the_uninterrupted_result() {
    let root = tempfile::tempdir().unwrap();
    let corpus = root.path().join("corpus");
    write_small_corpus(&corpus);
    let config = root.path().join("small.toml");
    std::fs::write(&config, small_config_toml(&corpus, STEPS, EVERY)).unwrap();
    let config = config.to_str().unwrap();

    let reference_dir = root.path().join("reference");
    let (ok, _, stderr) = roformer(&[
        "train",
        "--config",
        config,
        "--output",
        reference_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let reference = read_records(&reference_dir.join(METRICS_FILE)).unwrap();
    assert_eq!(reference.len(), STEPS / EVERY);

    // Killed in the middle of training: once three evaluations are written, wherever the
    // run then is (a step, an evaluation, an append to metrics.jsonl, a checkpoint).
    let dir = root.path().join("killed-training");
    let mut child = spawn_roformer(
        &[
            "train",
            "--config",
            config,
            "--output",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    let metrics = dir.join(METRICS_FILE);
    wait_for(&mut child, "three evaluations", || {
        std::fs::read_to_string(&metrics).is_ok_and(|t| t.lines().count() >= 3)
    });
    kill_hard(&mut child, &dir);
    assert_same_run(&resume(&dir), &reference, "killed during training");

    // Killed while writing a checkpoint, at each stage of the write.
    for stage in ["records", "swap"] {
        let dir = root.path().join(format!("killed-in-{stage}"));
        let marker = root.path().join(format!("{stage}.paused"));
        let pause = format!("{stage}:30:{}", marker.display());
        let mut child = spawn_roformer(
            &[
                "train",
                "--config",
                config,
                "--output",
                dir.to_str().unwrap(),
            ],
            &[(PAUSE_CHECKPOINT_ENV, &pause)],
        );
        wait_for(
            &mut child,
            &format!("the checkpoint write to pause at {stage}"),
            || marker.exists(),
        );
        kill_hard(&mut child, &dir);
        assert!(
            dir.join("checkpoint.tmp").is_dir(),
            "{stage}: the killed write left no checkpoint.tmp"
        );
        assert_same_run(
            &resume(&dir),
            &reference,
            &format!("killed in checkpoint {stage}"),
        );
        assert!(
            !dir.join("checkpoint.tmp").exists() && !dir.join("checkpoint.old").exists(),
            "{stage}: leftovers after the resumed run"
        );
    }
}
