//! Token ids need no tokenizer: `embed`, `encode` and `export-hf` run on a model directory
//! that has weights but no tokenizer files, and ids give the same numbers as the text
//! they tokenize to in a directory that has the tokenizer.

use std::path::Path;

use burn::backend::NdArray;
use roformer_infer::model_dir::load_model;

use crate::common::{roformer, write_model_dir};

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn hidden_states(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    floats(file.tensor("last_hidden_state").unwrap().data())
}

#[test]
fn ids_run_without_tokenizer_files_and_match_text() {
    let root = tempfile::tempdir().unwrap();
    let model = root.path().join("model");
    write_model_dir(&model);
    let bare = root.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(model.join(name), bare.join(name)).unwrap();
    }

    let texts = [
        "to be or not to be",
        "the lazy dog jumps over the quick brown fox",
    ];
    let loaded = load_model::<NdArray>(&model, &Default::default()).unwrap();
    let tokenizer = loaded.tokenizer().unwrap();
    let (mut text_lines, mut id_lines, mut plain_lines) =
        (String::new(), String::new(), String::new());
    for text in texts {
        let ids = tokenizer.encode_with_special(text).unwrap();
        text_lines.push_str(&format!("{}\n", serde_json::json!({ "text": text })));
        id_lines.push_str(&format!("{}\n", serde_json::json!({ "input_ids": ids })));
        plain_lines.push_str(&format!("{text}\n"));
    }
    let file = |name: &str, text: &str| {
        let path = root.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (text_file, id_file, plain_file) = (
        file("text.jsonl", &text_lines),
        file("ids.jsonl", &id_lines),
        file("plain.txt", &plain_lines),
    );
    let (model, bare) = (model.display().to_string(), bare.display().to_string());

    // encode: ids on the bare directory = text on the full one.
    let from_text = root.path().join("text.safetensors");
    let from_ids = root.path().join("ids.safetensors");
    for (dir, input, output) in [
        (&model, &text_file, &from_text),
        (&bare, &id_file, &from_ids),
    ] {
        let (ok, _, stderr) = roformer(&[
            "encode",
            "--model",
            dir,
            "--input",
            input,
            "--output",
            output.to_str().unwrap(),
        ]);
        assert!(ok, "{stderr}");
    }
    let (a, b) = (hidden_states(&from_text), hidden_states(&from_ids));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-6));

    // embed: lines of ids on the bare directory = lines of text on the full one.
    let embed = |dir: &str, input: &str| {
        let (ok, stdout, stderr) = roformer(&["embed", "--model", dir, "--input", input, "--json"]);
        assert!(ok, "{stderr}");
        stdout
            .lines()
            .map(|l| serde_json::from_str::<Vec<f32>>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b) = (embed(&model, &plain_file), embed(&bare, &id_file));
    assert_eq!(a.len(), texts.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x.iter().zip(y).all(|(p, q)| (p - q).abs() <= 1e-6),
            "{x:?} vs {y:?}"
        );
    }

    // export-hf: weights and config, no tokenizer files, and it says so.
    let exported = root.path().join("exported");
    let (ok, _, stderr) = roformer(&[
        "export-hf",
        "--model",
        &bare,
        "--output",
        exported.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("no tokenizer files"), "{stderr}");
    let from_export = root.path().join("exported.safetensors");
    let (ok, _, stderr) = roformer(&[
        "encode",
        "--model",
        exported.to_str().unwrap(),
        "--input",
        &id_file,
        "--output",
        from_export.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(hidden_states(&from_export), hidden_states(&from_ids));
    assert!(!exported.join("tokenizer.json").exists());
}
