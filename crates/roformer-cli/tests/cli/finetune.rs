//! Fine-tuning and classification: a short run learns an easy task, `classify` gives the
//! softmax of the head's logits, a bad label file is one clear error, and a resumed run
//! repeats an uninterrupted one.

use std::path::Path;

use burn::backend::NdArray;
use burn::tensor::activation::softmax;
use roformer::hf_weights::load_hf_sequence_classification;
use roformer::{PositionEmbeddingType, RoFormerConfig, RoFormerInput};
use roformer_infer::model_dir::load_tokenizer;
use roformer_infer::model_dir::read_labels;
use roformer_testing::hf_fixture::fixture_dir;
use roformer_testing::max_abs_diff;
use roformer_train::run::metrics::read_step_records;
use roformer_train::run::{EvalRecord, METRICS_FILE};

use crate::common::{
    finetune_config_toml, ndarray_generator, roformer, run_weights, write_model_dir,
    write_model_dir_with, write_word_set_examples,
};
use crate::finetune_runs::{
    StopAt, assert_resume_repeats_the_run, assert_same_records, finetune_cli, records, resume, run,
};

/// A model directory and word-set data in `dir`; returns the config text for `steps` steps.
fn setup(dir: &Path, dropout: f64, steps: usize, every: usize) -> String {
    let model = dir.join("pretrained");
    write_model_dir_with(&model, PositionEmbeddingType::Rotary, dropout);
    write_word_set_examples(&dir.join("train.jsonl"), 256, 1);
    write_word_set_examples(&dir.join("valid.jsonl"), 64, 2);
    finetune_config_toml(
        &model,
        &dir.join("train.jsonl"),
        &dir.join("valid.jsonl"),
        steps,
        every,
    )
}

#[test]
fn finetuning_learns_and_classify_is_the_heads_softmax() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 0.1, 160, 40);
    let config_path = dir.path().join("finetune.toml");
    std::fs::write(&config_path, &config).unwrap();
    let run_dir = dir.path().join("run");
    let (ok, stderr) = finetune_cli(&config_path, &run_dir);
    assert!(ok, "{stderr}");

    // It learns: validation accuracy well above the 0.5 of guessing (balanced classes).
    let history = records(&run_dir);
    assert_eq!(
        history.iter().map(|r| r.step).collect::<Vec<_>>(),
        [40, 80, 120, 160]
    );
    let best = history.iter().map(|r| r.valid_accuracy).fold(0.0, f64::max);
    assert!(best >= 0.85, "validation accuracy {best}: {history:?}");
    assert!(history[3].valid_loss < history[0].valid_loss, "{history:?}");

    // The report is of the kept model: its accuracy is the best evaluation's, and the
    // confusion matrix holds every validation example, its diagonal the correct ones.
    let kept = history.iter().fold(&history[0], |a, b| {
        if b.valid_macro_f1 > a.valid_macro_f1 {
            b
        } else {
            a
        }
    });
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("scores.json")).unwrap())
            .unwrap();
    assert_eq!(report["step"], kept.step);
    assert_eq!(report["labels"], serde_json::json!(["first", "second"]));
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!((accuracy - kept.valid_accuracy).abs() < 1e-9, "{report}");
    let confusion: Vec<Vec<u64>> = serde_json::from_value(report["confusion"].clone()).unwrap();
    let total: u64 = confusion.iter().flatten().sum();
    let correct: u64 = (0..2).map(|i| confusion[i][i]).sum();
    assert_eq!(total, 64);
    assert!(
        (correct as f64 / total as f64 - accuracy).abs() < 1e-9,
        "{report}"
    );
    for plot in ["confusion.png", "loss.png"] {
        let png = std::fs::read(run_dir.join(plot)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{plot}");
    }

    // The run directory is an HF classifier directory.
    let config_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config_json["architectures"],
        serde_json::json!(["RoFormerForSequenceClassification"])
    );
    assert_eq!(
        config_json["id2label"],
        serde_json::json!({"0": "first", "1": "second"})
    );
    assert_eq!(
        config_json["label2id"],
        serde_json::json!({"first": 0, "second": 1})
    );
    let weights = std::fs::read(run_dir.join("model.safetensors")).unwrap();
    let names: Vec<String> = safetensors::SafeTensors::deserialize(&weights)
        .unwrap()
        .names()
        .into_iter()
        .map(str::to_string)
        .collect();
    for name in [
        "classifier.dense.weight",
        "classifier.out_proj.bias",
        "roformer.embeddings.word_embeddings.weight",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }

    // classify = softmax of the head's logits, computed directly.
    let texts = ["the quick brown fox jumps over", "all the world is a stage"];
    let expected: Vec<Vec<f32>> = texts
        .iter()
        .map(|text| direct_probabilities(&run_dir, text))
        .collect();
    for (text, probabilities) in texts.iter().zip(&expected) {
        let result = classify_json(&run_dir, text);
        assert_probabilities(&result, &["first", "second"], probabilities, text);
        let best = if probabilities[1] > probabilities[0] {
            "second"
        } else {
            "first"
        };
        assert_eq!(result["label"], best);
    }

    // export-hf writes a transformers classifier directory that classifies the same.
    let exported = dir.path().join("exported");
    let (ok, _, stderr) = roformer(&[
        "export-hf",
        "--model",
        run_dir.to_str().unwrap(),
        "--output",
        exported.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let exported_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exported.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(exported_config["id2label"], config_json["id2label"]);
    assert_eq!(
        exported_config["architectures"],
        config_json["architectures"]
    );
    for (text, probabilities) in texts.iter().zip(&expected) {
        let result = classify_json(&exported, text);
        assert_probabilities(&result, &["first", "second"], probabilities, text);
    }

    // The file mode gives the same, one line per input.
    let input = dir.path().join("inputs.jsonl");
    let output = dir.path().join("outputs.jsonl");
    let lines: Vec<String> = texts
        .iter()
        .map(|t| serde_json::json!({ "text": t }).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let (ok, _, stderr) = roformer(&[
        "classify",
        "--model",
        run_dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let written = std::fs::read_to_string(&output).unwrap();
    let rows: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for (row, probabilities) in rows.iter().zip(&expected) {
        let second = row["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["label"] == "second")
            .unwrap()["probability"]
            .as_f64()
            .unwrap();
        assert!((second - probabilities[1] as f64).abs() < 1e-6, "{row}");
    }
}

/// `roformer finetune --config CONFIG --output RUN_DIR`: (success, stderr).
/// `roformer classify --json` of `text` with the classifier in `dir`.
fn classify_json(dir: &Path, text: &str) -> serde_json::Value {
    let (ok, stdout, stderr) =
        roformer(&["classify", "--model", dir.to_str().unwrap(), "--json", text]);
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// Softmax of the logits of the classifier in `dir` on `text`, computed directly from the
/// weights file (no padding, one sequence).
fn direct_probabilities(dir: &Path, text: &str) -> Vec<f32> {
    let config = RoFormerConfig::from_json_file(&dir.join("config.json")).unwrap();
    let labels = read_labels(&dir.join("config.json")).unwrap();
    let device = Default::default();
    let model = load_hf_sequence_classification::<NdArray>(
        &config,
        labels.len(),
        &dir.join("model.safetensors"),
        &device,
    )
    .unwrap();
    let ids: Vec<i64> = load_tokenizer(dir)
        .unwrap()
        .encode_with_special(text)
        .unwrap()
        .into_iter()
        .map(i64::from)
        .collect();
    let len = ids.len();
    let input =
        burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(ids, [1, len]), &device);
    softmax(model.forward(RoFormerInput::new(input)), 1)
        .into_data()
        .to_vec()
        .unwrap()
}

/// `result` (a `classify --json` answer) gives `probabilities[i]` to `labels[i]`, to 1e-6.
fn assert_probabilities(
    result: &serde_json::Value,
    labels: &[&str],
    probabilities: &[f32],
    text: &str,
) {
    let entries = result["probabilities"].as_array().unwrap();
    assert_eq!(entries.len(), labels.len(), "{text}: {result}");
    for entry in entries {
        let index = labels
            .iter()
            .position(|l| entry["label"] == *l)
            .unwrap_or_else(|| panic!("{text}: unexpected label in {result}"));
        let got = entry["probability"].as_f64().unwrap();
        assert!(
            (got - f64::from(probabilities[index])).abs() < 1e-6,
            "{text}: {result}"
        );
    }
}

/// A classifier saved by transformers (the parity fixture, three labels) classifies here
/// with its `id2label` names and exports unchanged.
#[test]
fn a_transformers_classifier_classifies_and_exports() {
    let fixture = fixture_dir("sequence_classification");
    let labels = ["LABEL_0", "LABEL_1", "LABEL_2"];
    let text = "the quick brown fox";
    let expected = direct_probabilities(&fixture, text);
    let result = classify_json(&fixture, text);
    assert_probabilities(&result, &labels, &expected, text);

    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("exported");
    let (ok, _, stderr) = roformer(&[
        "export-hf",
        "--model",
        fixture.to_str().unwrap(),
        "--output",
        exported.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert_probabilities(&classify_json(&exported, text), &labels, &expected, text);
}

#[test]
fn a_bad_label_file_is_one_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("pretrained");
    write_model_dir(&model);
    let train = dir.path().join("train.csv");
    std::fs::write(&train, "text,label\nthe fox,yes\n,no\nthe dog,no\n").unwrap();
    let mut config = finetune_config_toml(&model, &train, &train, 4, 2);
    config = config.replace(
        "max_seq_len = 16",
        "max_seq_len = 16\nlabels = [\"yes\", \"no\"]",
    );
    let config_path = dir.path().join("finetune.toml");
    std::fs::write(&config_path, &config).unwrap();
    let run_dir = dir.path().join("run");
    let (ok, stderr) = finetune_cli(&config_path, &run_dir);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{}: line 3: empty `text`", train.display())),
        "{stderr}"
    );
    assert!(!run_dir.exists(), "a refused run leaves no directory");

    std::fs::write(&train, "text,label\nthe fox,yes\nthe dog,maybe\n").unwrap();
    let (ok, stderr) = finetune_cli(&config_path, &run_dir);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "{}: line 3: unknown label \"maybe\"",
            train.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_resumed_run_repeats_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 0.0, 24, 8);
    assert_resume_repeats_the_run(&config, dir.path(), 8, 3);
}

/// `[adapt]` is masked-LM pretraining of `init_from` on the training texts, then
/// fine-tuning from it: the phase trains in `RUN/adapt` (its encoder moves off the
/// pretrained one and its validation loss falls), the head's evaluations equal those of a
/// run without `[adapt]` started from `RUN/adapt` (to 1e-6), and a run stopped in the phase
/// and resumed repeats the uninterrupted one, both phases.
#[test]
fn adaptation_pretrains_on_the_training_texts_then_fine_tunes_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let plain = setup(dir.path(), 0.0, 16, 8);
    let _generator = ndarray_generator();
    let adapted = format!("{plain}\n[adapt]\nsteps = 12\nbatch_size = 8\nlearning_rate = 5e-3\n");
    let reference = dir.path().join("reference");
    run(&adapted, &reference, None);
    let adapt_dir = reference.join("adapt");
    let phase: Vec<EvalRecord> = read_step_records(&adapt_dir.join(METRICS_FILE)).unwrap();
    assert_eq!(phase.iter().map(|r| r.step).collect::<Vec<_>>(), [8, 12]);
    assert!(phase[1].valid_loss < phase[0].valid_loss, "{phase:?}");
    let pretrained = run_weights(&dir.path().join("pretrained"));
    let moved = run_weights(&adapt_dir);
    let embeddings = |weights: &[(String, Vec<f32>)]| {
        let name = "roformer.embeddings.word_embeddings.weight";
        weights.iter().find(|(n, _)| n == name).unwrap().1.clone()
    };
    assert!(max_abs_diff(&embeddings(&pretrained), &embeddings(&moved)) > 1e-4);

    let from_adapted = dir.path().join("from_adapted");
    let manual = plain.replace(
        &dir.path().join("pretrained").display().to_string(),
        &adapt_dir.display().to_string(),
    );
    run(&manual, &from_adapted, None);
    let want = records(&reference);
    assert_eq!(want.len(), 2);
    assert_same_records(&want, &records(&from_adapted));

    let resumed = dir.path().join("resumed");
    run(&adapted, &resumed, Some(StopAt::Adaptation(8)));
    assert!(
        records(&resumed).is_empty(),
        "stopped in the adaptation phase"
    );
    resume(&resumed);
    let resumed_phase: Vec<EvalRecord> =
        read_step_records(&resumed.join("adapt").join(METRICS_FILE)).unwrap();
    for (a, b) in phase.iter().zip(&resumed_phase) {
        assert!(
            (a.valid_loss - b.valid_loss).abs() < 1e-6,
            "{phase:?} vs {resumed_phase:?}"
        );
    }
    assert_eq!(resumed_phase.len(), phase.len());
    assert_same_records(&want, &records(&resumed));
}

/// A rotary model pretrained on 32 positions fine-tunes and classifies 48-token inputs
/// (its rotation tables are computed, so `max_position_embeddings` is raised); a model
/// with a learned position table is refused, naming the key.
#[test]
fn rotary_models_take_inputs_longer_than_their_pretraining() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 0.0, 4, 4).replace("max_seq_len = 16", "max_seq_len = 48");
    let config_path = dir.path().join("finetune.toml");
    std::fs::write(&config_path, &config).unwrap();
    let run_dir = dir.path().join("run");
    let (ok, stderr) = finetune_cli(&config_path, &run_dir);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("raised from 32"), "{stderr}");
    let model_config = RoFormerConfig::from_json_file(&run_dir.join("config.json")).unwrap();
    assert_eq!(model_config.max_position_embeddings, 48);
    let long_text = "the quick brown fox jumps over the lazy dog to be or not".to_string();
    let tokens = load_tokenizer(&run_dir)
        .unwrap()
        .encode_with_special(&long_text)
        .unwrap()
        .len();
    assert!((33..=48).contains(&tokens), "{tokens} tokens");
    let expected = direct_probabilities(&run_dir, &long_text);
    assert_probabilities(
        &classify_json(&run_dir, &long_text),
        &["first", "second"],
        &expected,
        &long_text,
    );

    let absolute = dir.path().join("absolute");
    write_model_dir_with(&absolute, PositionEmbeddingType::Absolute, 0.0);
    let config = config.replace(
        &dir.path().join("pretrained").display().to_string(),
        &absolute.display().to_string(),
    );
    std::fs::write(&config_path, &config).unwrap();
    let (ok, stderr) = finetune_cli(&config_path, &dir.path().join("refused"));
    assert!(!ok);
    assert!(stderr.contains("task.max_seq_len"), "{stderr}");
    assert!(!dir.path().join("refused").exists());
}
