//! Bad input to every command of the binary: each case fails with a non-zero exit and
//! exactly one `error:` line naming what was wrong (no panic, no backtrace), and leaves
//! what the user already had untouched.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{
    roformer, small_config_toml, write_model_dir, write_model_dir_with, write_small_corpus,
};
use roformer::PositionEmbeddingType;

/// Every file under `dir` with its bytes, to show that a refused command changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for (name, bytes) in snapshot(&path) {
                files.insert(format!("{}/{name}", path.display()), bytes);
            }
        } else {
            files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
        }
    }
    files
}

#[test]
fn every_command_reports_bad_input_in_one_line_and_keeps_existing_files() {
    let root = tempfile::tempdir().unwrap();
    let path = |name: &str| root.path().join(name).display().to_string();
    let write = |name: &str, text: &str| {
        std::fs::write(root.path().join(name), text).unwrap();
        path(name)
    };

    let model = path("model");
    write_model_dir(Path::new(&model));
    // The same model without tokenizer files: text needs one, token ids do not.
    let bare = path("bare");
    std::fs::create_dir(&bare).unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(Path::new(&model).join(name), Path::new(&bare).join(name)).unwrap();
    }
    let absolute = path("absolute");
    write_model_dir_with(Path::new(&absolute), PositionEmbeddingType::Absolute, 0.1);
    let corpus = root.path().join("corpus");
    write_small_corpus(&corpus);
    let corpus_dir = corpus.display().to_string();
    let good_config = small_config_toml(&corpus, 4, 2);
    let config = write("good.toml", &good_config);
    // A port something listens on, which a coordinator cannot take.
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let typo = write("typo.toml", &good_config.replace("batch_size", "batchsize"));
    let too_long = write(
        "too_long.toml",
        &good_config.replace("max_seq_len = 24", "max_seq_len = 4096"),
    );
    let no_corpus = write(
        "no_corpus.toml",
        &good_config.replace(&corpus.display().to_string(), "/nonexistent/corpus"),
    );
    let not_toml = write("not_toml.toml", "[model\nvocab_size = 3");
    let run = path("run");
    let (ok, _, stderr) = roformer(&["train", "--config", &config, "--output", &run]);
    assert!(ok, "{stderr}");

    let bad_id = write("bad_id.jsonl", "{\"input_ids\": [2, 99999, 3]}\n");
    let bad_json = write(
        "bad_json.jsonl",
        "{\"input_ids\": [2, 5, 3]}\n{\"input_ids\": [2, \n",
    );
    let bad_mask = write(
        "bad_mask.jsonl",
        "{\"input_ids\": [2, 5, 3], \"attention_mask\": [1, 2, 1]}\n",
    );
    let short_mask = write(
        "short_mask.jsonl",
        "{\"input_ids\": [2, 5, 3], \"attention_mask\": [1, 1]}\n",
    );
    let text_line = write("text.jsonl", "{\"text\": \"to be or not\"}\n");
    let empty = write("empty.txt", "\n  \n");
    let out = path("out.safetensors");
    let (imported, nowhere) = (path("imported"), path("x"));
    let missing_dir_out = path("no/such/dir/out.safetensors");
    let exported = path("exported");
    let precision_run = path("precision_run");
    let (ok, _, stderr) = roformer(&["export-hf", "--model", &model, "--output", &exported]);
    assert!(ok, "{stderr}");

    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        // train
        (
            "missing config",
            vec!["train", "--config", "/nonexistent.toml"],
            "/nonexistent.toml",
        ),
        (
            "not TOML",
            vec!["train", "--config", &not_toml],
            "not_toml.toml",
        ),
        (
            "unknown key",
            vec!["train", "--config", &typo],
            "training.batchsize",
        ),
        (
            "max_seq_len past the positions",
            vec!["train", "--config", &too_long],
            "data.max_seq_len",
        ),
        (
            "missing corpus",
            vec!["train", "--config", &no_corpus],
            "/nonexistent/corpus",
        ),
        (
            "output holds a run",
            vec!["train", "--config", &config, "--output", &run],
            "--resume",
        ),
        (
            "resume without a run",
            vec!["train", "--resume", "/nonexistent/run"],
            "/nonexistent/run",
        ),
        ("train with neither", vec!["train"], "--config"),
        // fill-mask
        (
            "missing model",
            vec!["fill-mask", "--model", "/nonexistent/model", "a [MASK]"],
            "/nonexistent/model",
        ),
        (
            "no mask",
            vec!["fill-mask", "--model", &model, "no mask here"],
            "[MASK]",
        ),
        (
            "top-k 0",
            vec!["fill-mask", "--model", &model, "--top-k", "0", "a [MASK]"],
            "--top-k",
        ),
        (
            "text without a tokenizer",
            vec!["fill-mask", "--model", &bare, "a [MASK]"],
            "needs a tokenizer",
        ),
        ("missing argument", vec!["fill-mask", "a [MASK]"], "--model"),
        // embed
        (
            "missing input",
            vec!["embed", "--model", &model, "--input", "/nonexistent.txt"],
            "/nonexistent.txt",
        ),
        (
            "empty input",
            vec!["embed", "--model", &model, "--input", &empty],
            "no input lines",
        ),
        (
            "id outside the vocabulary",
            vec!["embed", "--model", &model, "--input", &bad_id],
            "99999",
        ),
        (
            "text without a tokenizer",
            vec!["embed", "--model", &bare, "--input", &text_line],
            "needs a tokenizer",
        ),
        // similarity
        (
            "missing model",
            vec!["similarity", "--model", "/nonexistent/model", "a", "b"],
            "/nonexistent/model",
        ),
        (
            "text without a tokenizer",
            vec!["similarity", "--model", &bare, "a", "b"],
            "needs a tokenizer",
        ),
        (
            "unknown pooling",
            vec![
                "similarity",
                "--model",
                &model,
                "--pooling",
                "max",
                "a",
                "b",
            ],
            "--pooling",
        ),
        // classify and tag
        (
            "not a classifier",
            vec!["classify", "--model", &model, "a"],
            "RoFormerForSequenceClassification",
        ),
        (
            "not a token classifier",
            vec!["tag", "--model", &model, "a"],
            "RoFormerForTokenClassification",
        ),
        (
            "text of no words",
            vec!["tag", "--model", &model, "  "],
            "no words",
        ),
        (
            "input line without words",
            vec![
                "tag", "--model", &model, "--input", &bad_json, "--output", &out,
            ],
            "line",
        ),
        // passages and baseline
        (
            "no words",
            vec!["passages", "--output", &out, "--words", "0"],
            "--words",
        ),
        (
            "corpus without works.tsv",
            vec!["passages", "--output", &out, "--corpus", &corpus_dir],
            "works.tsv",
        ),
        (
            "missing config",
            vec!["baseline", "--config", "/nonexistent/finetune.toml"],
            "/nonexistent/finetune.toml",
        ),
        // encode
        (
            "id outside the vocabulary",
            vec![
                "encode", "--model", &model, "--input", &bad_id, "--output", &out,
            ],
            "99999",
        ),
        (
            "malformed line",
            vec![
                "encode", "--model", &model, "--input", &bad_json, "--output", &out,
            ],
            "line 2",
        ),
        (
            "mask not 0 or 1",
            vec![
                "encode", "--model", &model, "--input", &bad_mask, "--output", &out,
            ],
            "attention_mask",
        ),
        (
            "mask of another length",
            vec![
                "encode",
                "--model",
                &model,
                "--input",
                &short_mask,
                "--output",
                &out,
            ],
            "as many entries",
        ),
        (
            "text without a tokenizer",
            vec![
                "encode", "--model", &bare, "--input", &text_line, "--output", &out,
            ],
            "needs a tokenizer",
        ),
        (
            "output folder missing",
            vec![
                "encode",
                "--model",
                &model,
                "--input",
                &text_line,
                "--output",
                &missing_dir_out,
            ],
            "no/such/dir",
        ),
        // import / export-hf
        (
            "import from nothing",
            vec!["import", "--from", "/nonexistent/hf", "--to", &imported],
            "/nonexistent/hf",
        ),
        (
            "import onto a model",
            vec!["import", "--from", &model, "--to", &exported],
            "already holds a model",
        ),
        (
            "export onto a model",
            vec!["export-hf", "--model", &model, "--output", &exported],
            "already holds a model",
        ),
        (
            "export of a model HF cannot hold",
            vec!["export-hf", "--model", &absolute, "--output", &nowhere],
            "\"absolute\"",
        ),
        (
            "export of no model",
            vec!["export-hf", "--model", &empty, "--output", &nowhere],
            "empty.txt",
        ),
        // bench
        (
            "bench missing config",
            vec!["bench", "--config", "/nonexistent.toml"],
            "/nonexistent.toml",
        ),
        (
            "train devices past the batch",
            vec!["train", "--config", &config, "--devices", "999"],
            "training.devices",
        ),
        (
            "train rank past the nodes",
            vec![
                "train",
                "--config",
                &config,
                "--nodes",
                "2",
                "--rank",
                "2",
                "--coordinator",
                "127.0.0.1:4100",
                "--address",
                "127.0.0.1:4101",
            ],
            "distributed.rank",
        ),
        (
            "train nodes without a coordinator",
            vec!["train", "--config", &config, "--nodes", "2"],
            "distributed.coordinator",
        ),
        (
            "coordinator port taken",
            vec!["coordinator", "--port", &taken_port],
            "coordinator port",
        ),
        (
            "bench batch 0",
            vec!["bench", "--config", &config, "--batch", "0"],
            "--batch",
        ),
        (
            "bench of products and a training step",
            vec!["bench", "--config", &config, "--products", "--train"],
            "--products",
        ),
        (
            "bench seq not a number",
            vec!["bench", "--config", &config, "--seq", "12x"],
            "--seq",
        ),
        // precision: the CPU builds compute in f32 only (these cases are left out of GPU
        // builds below)
        (
            "bf16 inference on the CPU",
            vec![
                "fill-mask",
                "--model",
                &model,
                "--precision",
                "bf16",
                "a [MASK]",
            ],
            "precision bf16 is not supported",
        ),
        (
            "f16 evaluation on the CPU",
            vec!["eval-mlm", "--model", &model, "--precision", "f16"],
            "precision f16 is not supported",
        ),
        (
            "bf16 bench on the CPU",
            vec![
                "bench",
                "--config",
                &config,
                "--train",
                "--precision",
                "bf16",
            ],
            "precision bf16 is not supported",
        ),
        (
            "bf16 training on the CPU",
            vec![
                "train",
                "--config",
                &config,
                "--precision",
                "bf16",
                "--output",
                &precision_run,
            ],
            "precision bf16 is not supported",
        ),
        (
            "f16 training on replicas",
            vec![
                "train",
                "--config",
                &config,
                "--devices",
                "2",
                "--precision",
                "f16",
            ],
            "training.precision",
        ),
        (
            "unknown precision",
            vec!["embed", "--model", &model, "--precision", "fp8"],
            "fp8",
        ),
        // the command line itself
        ("unknown command", vec!["trian"], "trian"),
    ];
    let before = [
        snapshot(Path::new(&run)),
        snapshot(Path::new(&exported)),
        snapshot(Path::new(&model)),
    ];
    let gpu_build = cfg!(any(feature = "wgpu", feature = "cuda"));
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(_, _, needle)| !(gpu_build && needle.starts_with("precision ")))
        .collect();
    for (case, args, needle) in &cases {
        let (ok, stdout, stderr) = roformer(args);
        assert!(!ok, "{case}: {args:?} should fail; stdout {stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{case}: {args:?}: {stderr}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(needle),
            "{case}: expected `{needle}` in: {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{case}: {stderr}"
        );
    }
    let after = [
        snapshot(Path::new(&run)),
        snapshot(Path::new(&exported)),
        snapshot(Path::new(&model)),
    ];
    assert!(
        before == after,
        "a refused command changed a run or model directory"
    );
    assert!(!Path::new(&out).exists() && !Path::new(&imported).exists());
    assert!(
        !Path::new(&precision_run).exists(),
        "a run refused for its precision left a run directory"
    );

    // And good calls on the same files succeed.
    let (ok, stdout, stderr) =
        roformer(&["fill-mask", "--model", &model, "--json", "the [MASK] is"]);
    assert!(ok, "{stderr}");
    let parsed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(parsed[0]["candidates"].as_array().unwrap().len(), 5);
}
