//! Hugging Face interop through the same code path as `--model DIR`: every fixture made by
//! `scripts/make_hf_fixtures.py` (transformers' own outputs) loads with `load_model` and
//! matches (the shared `roformer_testing::hf_fixture` tolerances, max |diff| over real
//! tokens); `encode` on a fixture's ids gives transformers' outputs; the Chinese tokenizer gives HF `RoFormerTokenizer`'s ids; export → import round-trips
//! exactly; bad directories and files are one clear error each.

use roformer_testing::tensor_values;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use roformer::{RoFormerConfig, RoFormerForMaskedLM, RoFormerInput};
use roformer_infer::model_dir::{
    LoadedModel, load_model, load_tokenizer, save_model, save_tokenizer, write_model_dir,
};
use roformer_infer::pipelines::{EncodeLine, encode};
use roformer_infer::tokenizer::{TextTokenizer, TokenizerOptions};
use roformer_testing::hf_fixture::{Expected, HIDDEN_TOLERANCE, LOGITS_TOLERANCE, fixture_dir};
use safetensors::{Dtype, SafeTensors, serialize, tensor::TensorView};

type B = NdArray;

fn fixture(case: &str) -> PathBuf {
    fixture_dir(case)
}

/// Runs a loaded model on a fixture's inputs; returns (hidden, logits) max diffs over real
/// tokens.
fn compare_with_transformers(case: &str, loaded: &LoadedModel<B>) -> (f64, Option<f64>) {
    let expected = Expected::read(case);
    let device = Default::default();
    let ids = |name: &str| {
        let (shape, values) = expected.i64(name);
        Tensor::<B, 2, Int>::from_data(TensorData::new(values, [shape[0], shape[1]]), &device)
    };
    if case == "long" {
        assert_eq!(expected.mask().iter().filter(|m| **m == 1).count(), 1024);
    }
    let input = RoFormerInput::new(ids("input_ids"))
        .with_attention_mask(ids("attention_mask"))
        .with_token_type_ids(ids("token_type_ids"));
    let hidden = loaded.encoder().forward(input);
    let hidden_diff =
        expected.gap_on_real_tokens("last_hidden_state", &tensor_values(hidden.clone()));
    let logits_diff = expected.has("logits").then(|| {
        let logits = loaded.masked_lm().unwrap().logits(hidden);
        expected.gap_on_real_tokens("logits", &tensor_values(logits))
    });
    (hidden_diff, logits_diff)
}

#[test]
fn hf_directories_load_as_they_are_and_match_transformers() {
    let device = Default::default();
    for case in [
        "base",
        "rotary_value",
        "embedding_project",
        "padding",
        "long",
        "pytorch_bin",
        "encoder_only",
        "bf16",
        "f16",
        "layer_norm_eps",
        "config_variants",
    ] {
        let loaded =
            load_model::<B>(&fixture(case), &device).unwrap_or_else(|e| panic!("{case}: {e}"));
        if case == "long" {
            // The long case: 1536 positions, one sequence of 1024 real tokens.
            assert_eq!(loaded.config.max_position_embeddings, 1536);
        }
        let (hidden, logits) = compare_with_transformers(case, &loaded);
        eprintln!("{case}: max |diff| last_hidden_state {hidden:.2e}, logits {logits:?}");
        assert!(
            hidden < HIDDEN_TOLERANCE,
            "{case}: last_hidden_state max |diff| {hidden:e}"
        );
        match logits {
            Some(diff) => assert!(
                diff < LOGITS_TOLERANCE,
                "{case}: logits max |diff| {diff:e}"
            ),
            None => {
                let error = loaded.masked_lm().expect_err("no head").to_string();
                assert!(error.contains("no masked-LM head"), "{error}");
            }
        }
    }
}

/// `encode` (the `roformer encode` path: one padded batch from JSON lines of ids) against
/// transformers' outputs on the padded fixture, not against our own forward pass.
#[test]
fn encode_on_token_ids_gives_transformers_outputs() {
    let device = Default::default();
    for case in ["padding", "config_variants"] {
        let loaded = load_model::<B>(&fixture(case), &device).unwrap();
        let expected = Expected::read(case);
        let (shape, ids) = expected.i64("input_ids");
        let (_, types) = expected.i64("token_type_ids");
        let mask = expected.mask();
        let seq = shape[1];
        // Each line carries only its real tokens; `encode` pads the batch itself.
        let lines: Vec<EncodeLine> = (0..shape[0])
            .map(|row| {
                let real = mask[row * seq..(row + 1) * seq].iter().sum::<i64>() as usize;
                let span = row * seq..row * seq + real;
                EncodeLine::Ids {
                    input_ids: ids[span.clone()].to_vec(),
                    attention_mask: None,
                    token_type_ids: Some(types[span].to_vec()),
                }
            })
            .collect();
        let encoded = encode(&loaded, &lines, true, &device).unwrap().value;
        assert_eq!(encoded.shape, [shape[0], seq]);
        assert_eq!(encoded.attention_mask, mask);
        let hidden = expected.gap_on_real_tokens("last_hidden_state", &encoded.last_hidden_state);
        let logits = expected.gap_on_real_tokens("logits", encoded.mlm_logits.as_ref().unwrap());
        eprintln!("{case}: encode max |diff| hidden {hidden:.2e}, logits {logits:.2e}");
        assert!(hidden < HIDDEN_TOLERANCE, "{case}: hidden {hidden:e}");
        assert!(logits < LOGITS_TOLERANCE, "{case}: logits {logits:e}");
    }
}

#[derive(serde::Deserialize)]
struct TokenizerCase {
    text: String,
    input_ids: Vec<u32>,
    tokens: Vec<String>,
}

#[test]
fn chinese_tokenizer_gives_hf_roformer_tokenizer_ids() {
    let dir = fixture("tokenizer_zh");
    // No tokenizer_config.json: chosen as transformers' AutoTokenizer would (RoFormer → jieba).
    let tokenizer = load_tokenizer(&dir).unwrap();
    assert!(tokenizer.uses_jieba());
    let cases: Vec<TokenizerCase> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let mut whole_words = 0;
    for case in &cases {
        let ids = tokenizer.encode_with_special(&case.text).unwrap();
        let tokens: Vec<String> = ids.iter().map(|id| tokenizer.token(*id)).collect();
        assert_eq!(
            ids, case.input_ids,
            "{:?}: {tokens:?} vs {:?}",
            case.text, case.tokens
        );
        whole_words += case
            .tokens
            .iter()
            .filter(|t| t.chars().count() > 1 && t.chars().all(|c| c as u32 >= 0x4E00))
            .count();
    }
    // The fixture exercises both branches: jieba words kept whole, and split ones.
    assert!(whole_words >= 5, "only {whole_words} whole words");

    // Without jieba (BERT splitting), the same vocabulary cuts Chinese into characters.
    let bert = TextTokenizer::load(&dir.join("vocab.txt"), TokenizerOptions::default()).unwrap();
    assert_ne!(
        bert.encode_with_special(&cases[0].text).unwrap(),
        cases[0].input_ids
    );
}

#[test]
fn vocab_txt_keeps_special_tokens_whole() {
    let tokenizer = TextTokenizer::from_file(&fixture("base").join("vocab.txt")).unwrap();
    let special = tokenizer.special();
    let ids = tokenizer.encode_with_special("w7 [MASK] w8").unwrap();
    assert_eq!(ids, vec![special.cls, 7, special.mask, 8, special.sep]);
}

/// A model directory of ours: a fresh model, a tokenizer trained on a few lines.
fn make_run_dir(dir: &Path) -> LoadedModel<B> {
    let device = Default::default();
    let lines = [
        "the quick brown fox jumps over the lazy dog",
        "to be or not to be that is the question",
        "all the world is a stage and all the men and women merely players",
    ];
    let tokenizer = TextTokenizer::train(lines.into_iter(), 60, 1, true).unwrap();
    let config = RoFormerConfig {
        vocab_size: tokenizer.vocab_size(),
        hidden_size: 16,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 24,
        max_position_embeddings: 32,
        embedding_size: Some(8),
        ..Default::default()
    };
    let model = RoFormerForMaskedLM::<B>::new(&config, &device).unwrap();
    save_model(dir, &config, &model).unwrap();
    save_tokenizer(dir, &tokenizer).unwrap();
    load_model(dir, &device).unwrap()
}

fn mlm_logits(loaded: &LoadedModel<B>, text: &str) -> Vec<f32> {
    let device = Default::default();
    let ids: Vec<i64> = loaded
        .tokenizer()
        .unwrap()
        .encode_with_special(text)
        .unwrap()
        .into_iter()
        .map(i64::from)
        .collect();
    let len = ids.len();
    let input = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, len]), &device);
    tensor_values(
        loaded
            .masked_lm()
            .unwrap()
            .forward(RoFormerInput::new(input)),
    )
}

#[test]
fn export_then_import_round_trips_exactly() {
    let root = tempfile::tempdir().unwrap();
    let ours = make_run_dir(&root.path().join("run"));
    let exported_dir = root.path().join("hf");
    write_model_dir(&ours, &exported_dir).unwrap();

    // What transformers needs to find.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exported_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["model_type"], "roformer");
    assert_eq!(config["architectures"][0], "RoFormerForMaskedLM");
    let vocab = std::fs::read_to_string(exported_dir.join("vocab.txt")).unwrap();
    assert_eq!(
        vocab.lines().count(),
        ours.tokenizer().unwrap().vocab_size()
    );
    let settings = std::fs::read_to_string(exported_dir.join("tokenizer_config.json")).unwrap();
    assert!(settings.contains("PreTrainedTokenizerFast"), "{settings}");

    let exported = load_model::<B>(&exported_dir, &Default::default()).unwrap();
    let reimported_dir = root.path().join("again");
    write_model_dir(&exported, &reimported_dir).unwrap();
    let reimported = load_model::<B>(&reimported_dir, &Default::default()).unwrap();
    let text = "to be or [MASK] to be";
    let reference = mlm_logits(&ours, text);
    assert_eq!(mlm_logits(&exported, text), reference);
    assert_eq!(mlm_logits(&reimported, text), reference);

    // Writing over an existing model is refused.
    let error = write_model_dir(&exported, &reimported_dir)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("already holds a model"), "{error}");
}

#[test]
fn a_bare_encoder_and_a_jieba_tokenizer_survive_import() {
    let root = tempfile::tempdir().unwrap();
    let device = Default::default();
    let dir = root.path().join("imported");
    let original = load_model::<B>(&fixture("encoder_only"), &device).unwrap();
    write_model_dir(&original, &dir).unwrap();
    let imported = load_model::<B>(&dir, &device).unwrap();
    assert!(imported.masked_lm().is_err());
    assert!(imported.tokenizer().unwrap().uses_jieba());
    let (hidden, _) = compare_with_transformers("encoder_only", &imported);
    assert!(hidden < HIDDEN_TOLERANCE, "{hidden:e}");
}

/// Copies a fixture directory, letting `edit` change the copy.
fn edited_fixture(case: &str, edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(case)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    edit(dir.path());
    dir
}

fn load_error(dir: &Path) -> String {
    load_model::<B>(dir, &Default::default())
        .err()
        .expect("loading must fail")
        .to_string()
}

/// Rewrites `model.safetensors` with `change` applied to its (name, dtype, shape, bytes).
fn rewrite_weights(
    dir: &Path,
    change: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    change(&mut tensors);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, serialize(views, None).unwrap()).unwrap();
}

#[test]
fn bad_directories_and_files_are_one_clear_error_each() {
    // Neither weights format.
    let dir = edited_fixture("base", |d| {
        std::fs::remove_file(d.join("model.safetensors")).unwrap()
    });
    let error = load_error(dir.path());
    assert!(
        error.contains("neither model.safetensors nor pytorch_model.bin"),
        "{error}"
    );

    // Another model type.
    let dir = edited_fixture("base", |d| {
        let path = d.join("config.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"roformer\"", "\"bert\"")).unwrap();
    });
    let error = load_error(dir.path());
    assert!(
        error.contains("config.json") && error.contains("model_type"),
        "{error}"
    );
    assert!(
        error.contains("expected \"roformer\", got \"bert\""),
        "{error}"
    );

    // Truncated files, both formats: the error names the file.
    for (case, file) in [
        ("base", "model.safetensors"),
        ("pytorch_bin", "pytorch_model.bin"),
    ] {
        let dir = edited_fixture(case, |d| {
            let path = d.join(file);
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        });
        let error = load_error(dir.path());
        assert!(error.contains(file), "{case}: {error}");
    }

    // An integer tensor where a weight should be.
    let dir = edited_fixture("base", |d| {
        rewrite_weights(d, |tensors| {
            let bias = tensors
                .iter_mut()
                .find(|t| t.0 == "cls.predictions.bias")
                .unwrap();
            bias.1 = Dtype::I32;
        })
    });
    let error = load_error(dir.path());
    assert!(
        error.contains("cls.predictions.bias") && error.contains("I32"),
        "{error}"
    );

    // A missing tensor and an unexpected one, both listed.
    let dir = edited_fixture("base", |d| {
        rewrite_weights(d, |tensors| {
            tensors.retain(|t| t.0 != "roformer.encoder.layer.1.output.dense.bias");
            tensors.push(("classifier.weight".into(), Dtype::F32, vec![1], vec![0; 4]));
        })
    });
    let error = load_error(dir.path());
    assert!(
        error.contains("roformer.encoder.layer.1.output.dense.bias"),
        "{error}"
    );
    assert!(error.contains("classifier.weight"), "{error}");

    // A stored decoder that is not the word embeddings (an untied checkpoint).
    let dir = edited_fixture("base", |d| {
        rewrite_weights(d, |tensors| {
            let embeddings = tensors
                .iter()
                .find(|t| t.0 == "roformer.embeddings.word_embeddings.weight")
                .unwrap()
                .clone();
            let mut data = embeddings.3.clone();
            data[0] ^= 0x40;
            tensors.push((
                "cls.predictions.decoder.weight".into(),
                embeddings.1,
                embeddings.2,
                data,
            ));
        })
    });
    let error = load_error(dir.path());
    assert!(error.contains("untied"), "{error}");
}

fn run_binary(args: &[&str]) -> (bool, String) {
    let runtime = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_roformer"))
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn binary_imports_exports_and_refuses_fill_mask_without_a_head() {
    let root = tempfile::tempdir().unwrap();
    let imported = root.path().join("imported");
    let bin_dir = fixture("pytorch_bin");
    let (ok, stderr) = run_binary(&[
        "import",
        "--from",
        bin_dir.to_str().unwrap(),
        "--to",
        imported.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(imported.join("model.safetensors").is_file());
    let exported = root.path().join("exported");
    let (ok, stderr) = run_binary(&[
        "export-hf",
        "--model",
        imported.to_str().unwrap(),
        "--output",
        exported.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let (hidden, logits) = compare_with_transformers(
        "pytorch_bin",
        &load_model::<B>(&exported, &Default::default()).unwrap(),
    );
    assert!(hidden < HIDDEN_TOLERANCE && logits.unwrap() < LOGITS_TOLERANCE);

    let encoder_only = fixture("encoder_only");
    let (ok, stderr) = run_binary(&[
        "fill-mask",
        "--model",
        encoder_only.to_str().unwrap(),
        "w5 [MASK] w6",
    ]);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no masked-LM head"), "{stderr}");
}
