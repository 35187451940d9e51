//! `roformer eval-mlm`: the loss and accuracy at each length equal a direct computation
//! (windows of the token stream, the selected tokens masked, log-softmax of the full
//! masked-LM logits in f64), with and without a rotary scaling rule, and a learned
//! position table skips the lengths it cannot hold instead of failing.

use std::path::Path;

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use roformer::hf_weights::load_hf_masked_lm;
use roformer::roformer_rope::RopeScaling;
use roformer::{PositionEmbeddingType, RoFormerConfig, RoFormerForMaskedLM, RoFormerInput};
use roformer_infer::model_dir::{load_tokenizer, save_model};
use roformer_train::eval_mlm::is_predicted;

use crate::common::{MODEL_DIR_WORDS, ndarray_generator, roformer, write_model_dir_with};

/// A model directory whose weights are drawn large (initializer range 0.5), so that
/// attention depends clearly on positions.
fn write_sensitive_model_dir(dir: &Path, kind: PositionEmbeddingType) {
    write_model_dir_with(dir, kind, 0.0);
    let mut config = RoFormerConfig::from_json_file(&dir.join("config.json")).unwrap();
    config.initializer_range = 0.5;
    let _generator = ndarray_generator();
    let model = RoFormerForMaskedLM::<NdArray>::new(&config, &Default::default()).unwrap();
    save_model(dir, &config, &model).unwrap();
}

/// Lines of the model directory's words, about `words` of them.
fn write_text(path: &Path, words: usize) {
    let mut text = String::new();
    for i in 0..words {
        text.push_str(MODEL_DIR_WORDS[(i * 5 + i / 7) % MODEL_DIR_WORDS.len()]);
        text.push(if i % 9 == 8 { '\n' } else { ' ' });
    }
    std::fs::write(path, text).unwrap();
}

/// (loss, accuracy, masked tokens) at `length` computed directly from the weights file.
fn direct(
    dir: &Path,
    text: &Path,
    length: usize,
    tokens: usize,
    scaling: RopeScaling,
) -> (f64, f64, usize) {
    let mut config = RoFormerConfig::from_json_file(&dir.join("config.json")).unwrap();
    config.max_position_embeddings = config.max_position_embeddings.max(length);
    config.rope_scaling = scaling;
    let device = Default::default();
    let model =
        load_hf_masked_lm::<NdArray>(&config, &dir.join("model.safetensors"), &device).unwrap();
    let tokenizer = load_tokenizer(dir).unwrap();
    let special = tokenizer.special();
    let mut stream = Vec::new();
    for line in std::fs::read_to_string(text).unwrap().lines() {
        if !line.trim().is_empty() {
            stream.extend(tokenizer.encode_plain(line.trim()).unwrap());
        }
    }
    stream.truncate(tokens);
    let (mut nll, mut hits, mut count) = (0.0f64, 0usize, 0usize);
    let vocab = config.vocab_size;
    for (chunk, window) in stream.chunks_exact(length - 2).enumerate() {
        let mut ids = vec![i64::from(special.cls)];
        let mut targets = vec![None];
        for (offset, &id) in window.iter().enumerate() {
            let predicted =
                !special.contains(id) && is_predicted(0, chunk * (length - 2) + offset, 0.15);
            ids.push(i64::from(if predicted { special.mask } else { id }));
            targets.push(predicted.then_some(id as usize));
        }
        ids.push(i64::from(special.sep));
        targets.push(None);
        let input = Tensor::from_data(TensorData::new(ids, [1, length]), &device);
        let logits: Vec<f32> = model
            .forward(RoFormerInput::new(input))
            .into_data()
            .to_vec()
            .unwrap();
        for (position, target) in targets.iter().enumerate() {
            let Some(target) = *target else { continue };
            let row: Vec<f64> = logits[position * vocab..(position + 1) * vocab]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
            nll += log_sum - row[target];
            let best = (0..vocab).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            hits += usize::from(best == target);
            count += 1;
        }
    }
    (nll / count as f64, hits as f64 / count as f64, count)
}

fn eval_json(args: &[&str]) -> Vec<serde_json::Value> {
    let (ok, stdout, stderr) = roformer(args);
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn eval_mlm_equals_a_direct_loss_computation() {
    let root = tempfile::tempdir().unwrap();
    let model = root.path().join("model");
    write_sensitive_model_dir(&model, PositionEmbeddingType::Rotary);
    let text = root.path().join("held_out.txt");
    write_text(&text, 400);
    let model_arg = model.to_str().unwrap();
    let text_arg = text.to_str().unwrap();
    let cases = [
        ("none", None, RopeScaling::None),
        ("linear", Some("16"), RopeScaling::Linear { factor: 3.0 }),
    ];
    for (rule, trained, scaling_at_48) in cases {
        let mut args = vec![
            "eval-mlm",
            "--model",
            model_arg,
            "--text",
            text_arg,
            "--seq",
            "8,16,48",
            "--tokens",
            "300",
            "--scaling",
            rule,
            "--json",
        ];
        if let Some(trained) = trained {
            args.extend(["--trained-length", trained]);
        }
        let rows = eval_json(&args);
        assert_eq!(rows.len(), 3, "{rows:?}");
        for (row, length) in rows.iter().zip([8usize, 16, 48]) {
            assert_eq!(row["length"], length);
            let scaling = if length == 48 {
                scaling_at_48
            } else {
                RopeScaling::None
            };
            let (loss, accuracy, count) = direct(&model, &text, length, 300, scaling);
            assert_eq!(row["masked_tokens"], count, "{rule} {length}: {row}");
            assert_eq!(
                row["sequences"],
                300 / (length - 2),
                "{rule} {length}: {row}"
            );
            let got = row["loss"].as_f64().unwrap();
            assert!(
                (got - loss).abs() < 1e-4,
                "{rule} {length}: {got} vs {loss}"
            );
            let got = row["accuracy"].as_f64().unwrap();
            assert!(
                (got - accuracy).abs() < 1e-9,
                "{rule} {length}: {got} vs {accuracy}"
            );
        }
    }

    // The comparison above tells the rules apart: the rotation scaled for 48 tokens
    // changes the loss by far more than the tolerance.
    let (unscaled, _, _) = direct(&model, &text, 48, 300, RopeScaling::None);
    let (scaled, _, _) = direct(&model, &text, 48, 300, RopeScaling::Linear { factor: 3.0 });
    assert!((unscaled - scaled).abs() > 1e-3, "{unscaled} vs {scaled}");

    // A learned table of 32 positions: 48 is reported as skipped, not an error.
    let absolute = root.path().join("absolute");
    write_sensitive_model_dir(&absolute, PositionEmbeddingType::Absolute);
    let rows = eval_json(&[
        "eval-mlm",
        "--model",
        absolute.to_str().unwrap(),
        "--text",
        text_arg,
        "--seq",
        "16,48",
        "--json",
    ]);
    assert!(rows[0]["loss"].as_f64().unwrap().is_finite(), "{rows:?}");
    assert!(rows[1]["loss"].is_null(), "{rows:?}");
    assert!(
        rows[1]["skipped"].as_str().unwrap().contains("32"),
        "{rows:?}"
    );
}
