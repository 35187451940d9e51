//! Token classification: a short run learns an easy tagging task with BIO labels, `tag`
//! gives the softmax of the head's logits at each word's first token (also past the
//! model's length, in windows of whole words), exports as a transformers token
//! classifier, resumes to the uninterrupted result, and a bad tagged file is one error.

use std::path::Path;

use burn::backend::NdArray;
use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};
use roformer::hf_weights::load_hf_token_classification;
use roformer::{PositionEmbeddingType, RoFormerConfig, RoFormerInput};
use roformer_infer::model_dir::load_tokenizer;
use roformer_infer::model_dir::read_labels;

use crate::common::{MODEL_DIR_WORDS, finetune_config_toml, roformer, write_model_dir_with};
use crate::finetune_runs::{assert_resume_repeats_the_run, finetune_cli, records};

/// The words tagged as entities: `B-THING`, or `I-THING` right after another of them.
const THINGS: &[&str] = &["fox", "dog", "stage", "world", "question"];

/// Writes `count` tagged JSON lines (`words`, `labels`) drawn from `seed`: 4 to 9 words
/// of [`MODEL_DIR_WORDS`], each labelled `B-THING`/`I-THING` when in [`THINGS`], `O`
/// otherwise.
fn write_tagged_examples(path: &Path, count: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let mut text = String::new();
    for _ in 0..count {
        let len = 4 + next(6);
        let words: Vec<&str> = (0..len)
            .map(|_| {
                if next(3) == 0 {
                    THINGS[next(THINGS.len())]
                } else {
                    MODEL_DIR_WORDS[next(MODEL_DIR_WORDS.len())]
                }
            })
            .collect();
        let labels = gold_labels(&words);
        text.push_str(&serde_json::json!({"words": words, "labels": labels}).to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn gold_labels(words: &[&str]) -> Vec<&'static str> {
    let thing = |w: &&str| THINGS.contains(w);
    words
        .iter()
        .enumerate()
        .map(|(i, w)| match (thing(w), i > 0 && thing(&words[i - 1])) {
            (false, _) => "O",
            (true, false) => "B-THING",
            (true, true) => "I-THING",
        })
        .collect()
}

/// A model directory and tagged data in `dir`; returns the config text.
fn setup(dir: &Path, dropout: f64, steps: usize, every: usize) -> String {
    let model = dir.join("pretrained");
    write_model_dir_with(&model, PositionEmbeddingType::Rotary, dropout);
    write_tagged_examples(&dir.join("train.jsonl"), 256, 1);
    write_tagged_examples(&dir.join("valid.jsonl"), 48, 2);
    finetune_config_toml(
        &model,
        &dir.join("train.jsonl"),
        &dir.join("valid.jsonl"),
        steps,
        every,
    )
    .replace("sequence-classification", "token-classification")
    .replace("[task]\n", "[task]\ntext_field = \"words\"\n")
}

/// `roformer tag --json` of `text` with the tagger in `dir`.
fn tag_json(dir: &Path, text: &str) -> serde_json::Value {
    let (ok, stdout, stderr) = roformer(&["tag", "--model", dir.to_str().unwrap(), "--json", text]);
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// Each word's most likely label and its probability, computed directly from the weights
/// file: `[CLS]`, each word's pieces, `[SEP]` as one unpadded sequence, the softmax of the
/// logits at each word's first piece.
fn direct_tags(dir: &Path, words: &[&str]) -> Vec<(String, f32)> {
    let config = RoFormerConfig::from_json_file(&dir.join("config.json")).unwrap();
    let labels = read_labels(&dir.join("config.json")).unwrap();
    let device = Default::default();
    let model = load_hf_token_classification::<NdArray>(
        &config,
        labels.len(),
        &dir.join("model.safetensors"),
        &device,
    )
    .unwrap();
    let tokenizer = load_tokenizer(dir).unwrap();
    let special = tokenizer.special();
    let mut ids = vec![i64::from(special.cls)];
    let mut firsts = Vec::new();
    for word in words {
        firsts.push(ids.len());
        ids.extend(
            tokenizer
                .encode_plain(word)
                .unwrap()
                .into_iter()
                .map(i64::from),
        );
    }
    ids.push(i64::from(special.sep));
    let len = ids.len();
    let input = Tensor::from_data(TensorData::new(ids, [1, len]), &device);
    let probabilities: Vec<f32> = softmax(model.forward(RoFormerInput::new(input)), 2)
        .into_data()
        .to_vec()
        .unwrap();
    let classes = labels.len();
    firsts
        .iter()
        .map(|&position| {
            let row = &probabilities[position * classes..(position + 1) * classes];
            let best = (0..classes).fold(0, |b, c| if row[c] > row[b] { c } else { b });
            (labels[best].clone(), row[best])
        })
        .collect()
}

fn assert_tags(result: &serde_json::Value, words: &[&str], expected: &[(String, f32)]) {
    let tagged = result["words"].as_array().unwrap();
    assert_eq!(tagged.len(), words.len(), "{result}");
    for ((entry, word), (label, probability)) in tagged.iter().zip(words).zip(expected) {
        assert_eq!(entry["word"], *word, "{result}");
        assert_eq!(entry["label"], label.as_str(), "{result}");
        let got = entry["probability"].as_f64().unwrap();
        assert!(
            (got - f64::from(*probability)).abs() < 1e-5,
            "{word}: {got} here, {probability} computed directly: {result}"
        );
    }
}

#[test]
fn token_classification_learns_and_tag_is_the_heads_softmax() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 0.1, 480, 160);
    let run_dir = dir.path().join("run");
    let config_path = dir.path().join("finetune.toml");
    std::fs::write(&config_path, &config).unwrap();
    let (ok, stderr) = finetune_cli(&config_path, &run_dir);
    assert!(ok, "{stderr}");

    // It learns: entity F1 near 1 on an easy task whose majority label (O) scores 0.
    let history = records(&run_dir);
    assert_eq!(
        history.iter().map(|r| r.step).collect::<Vec<_>>(),
        [160, 320, 480]
    );
    let best = history
        .iter()
        .map(|r| r.valid_entity_f1.unwrap())
        .fold(0.0, f64::max);
    assert!(best >= 0.9, "entity F1 {best}: {history:?}");
    assert!(history[2].valid_loss < history[0].valid_loss, "{history:?}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("scores.json")).unwrap())
            .unwrap();
    assert!(
        (report["entities"]["f1"].as_f64().unwrap() - best).abs() < 1e-9,
        "the report is of the kept model: {report}"
    );
    let config_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config_json["architectures"],
        serde_json::json!(["RoFormerForTokenClassification"])
    );
    assert_eq!(
        config_json["id2label"],
        serde_json::json!({"0": "B-THING", "1": "I-THING", "2": "O"})
    );

    // tag = softmax at each word's first piece, computed directly; "foxes" and "worldly"
    // are several pieces, read at the first.
    let words = ["the", "lazy", "foxes", "is", "dog", "worldly", "question"];
    let text = words.join(" ");
    let expected = direct_tags(&run_dir, &words);
    let result = tag_json(&run_dir, &text);
    assert_tags(&result, &words, &expected);
    let labels: Vec<&str> = expected.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels[4], "B-THING", "{result}");
    assert!(
        result["entities"].as_array().unwrap().iter().any(|e| {
            e["type"] == "THING"
                && e["start"] == 4
                && e["text"].as_str().unwrap().starts_with("dog")
        }),
        "{result}"
    );

    // Past the model's 32 positions: 40 one-piece words are tagged as two windows, the
    // first 30 words and the last 10, each as if alone.
    let tokenizer = load_tokenizer(&run_dir).unwrap();
    let one_piece: Vec<&str> = MODEL_DIR_WORDS
        .iter()
        .copied()
        .filter(|w| tokenizer.encode_plain(w).unwrap().len() == 1)
        .collect();
    assert!(one_piece.len() >= 3, "{one_piece:?}");
    let long: Vec<&str> = (0..40)
        .map(|i| one_piece[(i * 7) % one_piece.len()])
        .collect();
    let mut expected_long = direct_tags(&run_dir, &long[..30]);
    expected_long.extend(direct_tags(&run_dir, &long[30..]));
    assert_tags(&tag_json(&run_dir, &long.join(" ")), &long, &expected_long);

    // export-hf writes a transformers token classifier that tags the same, and the file
    // mode gives the same, one line per input.
    let exported = dir.path().join("exported");
    let (ok, _, stderr) = roformer(&[
        "export-hf",
        "--model",
        run_dir.to_str().unwrap(),
        "--output",
        exported.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert_tags(&tag_json(&exported, &text), &words, &expected);
    let input = dir.path().join("inputs.jsonl");
    let output = dir.path().join("outputs.jsonl");
    std::fs::write(
        &input,
        format!(
            "{}\n{}\n",
            serde_json::json!({"words": words}),
            serde_json::json!({"text": long.join(" ")})
        ),
    )
    .unwrap();
    let (ok, _, stderr) = roformer(&[
        "tag",
        "--model",
        exported.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_tags(&rows[0], &words, &expected);
    assert_tags(&rows[1], &long, &expected_long);

    // A token classifier is not a sequence classifier: `classify` says which command.
    let (ok, _, stderr) = roformer(&["classify", "--model", run_dir.to_str().unwrap(), "x"]);
    assert!(!ok);
    assert!(stderr.contains("roformer tag"), "{stderr}");
}

#[test]
fn a_resumed_tagging_run_repeats_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 0.0, 18, 6);
    assert_resume_repeats_the_run(&config, dir.path(), 6, 3);
    let evaluations = records(&dir.path().join("reference"));
    assert!(
        evaluations.iter().all(|r| r.valid_entity_f1.is_some()),
        "BIO labels give an entity F1 at every evaluation: {evaluations:?}"
    );
}

#[test]
fn a_bad_tagged_file_is_one_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 0.0, 4, 4);
    let train = dir.path().join("train.jsonl");
    let mut lines = std::fs::read_to_string(&train).unwrap();
    lines.push_str("{\"words\": [\"the\", \"fox\"], \"labels\": [\"O\"]}\n");
    std::fs::write(&train, lines).unwrap();
    let run_dir = dir.path().join("run");
    let config_path = dir.path().join("finetune.toml");
    std::fs::write(&config_path, &config).unwrap();
    let (ok, stderr) = finetune_cli(&config_path, &run_dir);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: line 257: 2 words but 1 labels",
            train.display()
        )),
        "{stderr}"
    );
    assert!(!run_dir.exists(), "a refused run leaves no directory");
}
