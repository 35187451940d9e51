//! Every `[model] position_embedding_type`, and linear attention, trains, checkpoints,
//! resumes (after a kill mid-checkpoint, to the same evaluations as an uninterrupted run)
//! and serves `fill-mask` and `encode` through the binary; `export-hf` refuses them.

use std::time::{Duration, Instant};

use roformer_train::run::METRICS_FILE;
use roformer_train::run::checkpoint::PAUSE_CHECKPOINT_ENV;
use roformer_train::run::metrics::read_records;

use crate::common::{roformer, small_config_toml, spawn_roformer, write_small_corpus};

#[test]
fn each_position_encoding_trains_resumes_and_serves() {
    let root = tempfile::tempdir().unwrap();
    let corpus = root.path().join("corpus");
    write_small_corpus(&corpus);
    for (kind, key) in [
        ("absolute", "position_embedding_type"),
        ("sinusoidal", "position_embedding_type"),
        ("none", "position_embedding_type"),
        ("linear", "attention"),
    ] {
        let config = root.path().join(format!("{kind}.toml"));
        let toml = small_config_toml(&corpus, 30, 10)
            .replace("[model]\n", &format!("[model]\n{key} = \"{kind}\"\n"));
        std::fs::write(&config, toml).unwrap();
        let config = config.to_str().unwrap();

        let whole = root.path().join(format!("{kind}-whole"));
        let (ok, _, stderr) = roformer(&[
            "train",
            "--config",
            config,
            "--output",
            whole.to_str().unwrap(),
        ]);
        assert!(ok, "{kind}: {stderr}");
        let reference = read_records(&whole.join(METRICS_FILE)).unwrap();
        assert_eq!(reference.len(), 3, "{kind}");
        assert!(reference.iter().all(|r| r.valid_loss.is_finite()), "{kind}");
        let saved = std::fs::read_to_string(whole.join("config.json")).unwrap();
        assert!(
            saved.contains(&format!("\"{key}\": \"{kind}\"")),
            "{kind}: {saved}"
        );

        // Killed while writing the checkpoint of step 20, then resumed from step 10.
        let broken = root.path().join(format!("{kind}-resumed"));
        let marker = root.path().join(format!("{kind}.paused"));
        let pause = format!("records:20:{}", marker.display());
        let mut child = spawn_roformer(
            &[
                "train",
                "--config",
                config,
                "--output",
                broken.to_str().unwrap(),
            ],
            &[(PAUSE_CHECKPOINT_ENV, &pause)],
        );
        let start = Instant::now();
        while !marker.exists() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "{kind}: training exited before the pause"
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{kind}: no pause"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let (ok, _, stderr) = roformer(&["train", "--resume", broken.to_str().unwrap()]);
        assert!(ok, "{kind}: {stderr}");
        let resumed = read_records(&broken.join(METRICS_FILE)).unwrap();
        assert_eq!(resumed.len(), reference.len(), "{kind}");
        for (a, b) in resumed.iter().zip(&reference) {
            assert_eq!(a.step, b.step);
            let gap = (a.valid_loss - b.valid_loss)
                .abs()
                .max((a.train_loss - b.train_loss).abs());
            assert!(gap <= 1e-6, "{kind}: step {} differs by {gap:e}", a.step);
        }

        let model = whole.to_str().unwrap();
        let (ok, stdout, stderr) =
            roformer(&["fill-mask", "--model", model, "--json", "the [MASK] of the"]);
        assert!(ok, "{kind}: {stderr}");
        let parsed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            parsed[0]["candidates"].as_array().unwrap().len(),
            5,
            "{kind}"
        );
        let input = root.path().join(format!("{kind}.jsonl"));
        std::fs::write(&input, "{\"text\": \"to be or not\"}\n").unwrap();
        let output = root.path().join(format!("{kind}.safetensors"));
        let (ok, _, stderr) = roformer(&[
            "encode",
            "--model",
            model,
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ]);
        assert!(ok && output.is_file(), "{kind}: {stderr}");

        let exported = root.path().join(format!("{kind}-hf"));
        let (ok, _, stderr) = roformer(&[
            "export-hf",
            "--model",
            model,
            "--output",
            exported.to_str().unwrap(),
        ]);
        assert!(!ok && !exported.exists(), "{kind}: export-hf accepted it");
        assert!(
            stderr.contains(&format!("{key} \"{kind}\"")),
            "{kind}: {stderr}"
        );
    }
}
