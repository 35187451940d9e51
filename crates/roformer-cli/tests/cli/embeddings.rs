//! Sentence embeddings and similarity: `embed --pooling mean|cls` equals the mean of the
//! real tokens' rows or the `[CLS]` row of `encode`'s last hidden state, and `similarity`
//! is the cosine of two such embeddings. Run on a transformers sequence classifier (the
//! parity fixture), which serves as its encoder.

use std::path::Path;

use roformer_testing::hf_fixture::fixture_dir;

use crate::common::roformer;

const TEXTS: [&str; 2] = ["the quick brown fox jumps", "to be or not"];

/// The `last_hidden_state` rows `encode` gives for `text` alone (no padding).
fn hidden_rows(model: &Path, dir: &Path, text: &str) -> Vec<Vec<f32>> {
    let input = dir.join("line.jsonl");
    let output = dir.join("hidden.safetensors");
    std::fs::write(&input, serde_json::json!({ "text": text }).to_string()).unwrap();
    let _ = std::fs::remove_file(&output);
    let (ok, _, stderr) = roformer(&[
        "encode",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let bytes = std::fs::read(&output).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensor = file.tensor("last_hidden_state").unwrap();
    let width = *tensor.shape().last().unwrap();
    let values: Vec<f32> = tensor
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    values.chunks(width).map(<[f32]>::to_vec).collect()
}

fn embed(model: &Path, input: &Path, pooling: &str) -> Vec<Vec<f32>> {
    let (ok, stdout, stderr) = roformer(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--pooling",
        pooling,
        "--json",
    ]);
    assert!(ok, "{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn similarity(model: &Path, a: &str, b: &str, pooling: &str) -> f64 {
    let (ok, stdout, stderr) = roformer(&[
        "similarity",
        "--model",
        model.to_str().unwrap(),
        "--pooling",
        pooling,
        a,
        b,
    ]);
    assert!(ok, "{stderr}");
    stdout.trim().parse().unwrap()
}

fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let gap = got
        .iter()
        .zip(want)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(gap <= tolerance, "{what}: max |diff| {gap}");
}

fn cosine(x: &[f32], y: &[f32]) -> f64 {
    let dot = |u: &[f32], v: &[f32]| -> f64 {
        u.iter()
            .zip(v)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum()
    };
    dot(x, y) / (dot(x, x) * dot(y, y)).sqrt()
}

#[test]
fn pooled_embeddings_and_similarity_follow_the_hidden_states() {
    let model = fixture_dir("sequence_classification");
    let dir = tempfile::tempdir().unwrap();
    // Both lines in one file: the shorter one is padded in the batch, and padding must not
    // move its embedding.
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, TEXTS.join("\n")).unwrap();
    let means = embed(&model, &input, "mean");
    let firsts = embed(&model, &input, "cls");
    assert_eq!((means.len(), firsts.len()), (TEXTS.len(), TEXTS.len()));
    for (index, text) in TEXTS.iter().enumerate() {
        let rows = hidden_rows(&model, dir.path(), text);
        let width = rows[0].len();
        let mean: Vec<f32> = (0..width)
            .map(|j| rows.iter().map(|r| r[j]).sum::<f32>() / rows.len() as f32)
            .collect();
        assert_close(
            &means[index],
            &mean,
            1e-5,
            &format!("mean pooling of {text:?}"),
        );
        assert_close(
            &firsts[index],
            &rows[0],
            1e-5,
            &format!("cls pooling of {text:?}"),
        );
    }
    assert!(
        means[0]
            .iter()
            .zip(&firsts[0])
            .any(|(m, c)| (m - c).abs() > 1e-3),
        "mean and cls pooling must differ"
    );

    for (pooling, embeddings) in [("mean", &means), ("cls", &firsts)] {
        let want = cosine(&embeddings[0], &embeddings[1]);
        let got = similarity(&model, TEXTS[0], TEXTS[1], pooling);
        assert!((got - want).abs() <= 1e-5, "{pooling}: {got} vs {want}");
        let same = similarity(&model, TEXTS[0], TEXTS[0], pooling);
        assert!(
            (same - 1.0).abs() <= 1e-5,
            "{pooling}: self-similarity {same}"
        );
    }
}
