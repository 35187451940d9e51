//! The training and inference pipeline end to end on a small slice of the shipped corpus:
//! config errors, masking statistics, packing, the tokenizer, a short training run with
//! checkpoint and resume (identical to an uninterrupted run), inference checked against
//! direct model computations.

use std::collections::{BTreeSet, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Int, Tensor, TensorData};
use roformer::{IGNORE_INDEX, RoFormerInput};
use roformer_infer::model_dir::load_model;
use roformer_infer::pipelines::{EncodeLine, Pooling, embed, encode, fill_mask, write_encoded};
use roformer_infer::tokenizer::{SPECIAL_TOKENS, SpecialIds, TextTokenizer};
use roformer_testing::max_abs_diff;
use roformer_train::TrainConfig;
use roformer_train::data::{mask_seed, mask_tokens, pack_lines, shipped_file};
use roformer_train::run::metrics::{EvalRecord, read_records};
use roformer_train::run::{METRICS_FILE, PLOT_FILE, RunEvent, RunStart};
use roformer_train::train::{RUN_CONFIG_FILE, train};

type B = NdArray;
type AD = Autodiff<NdArray>;

/// A corpus of three short works cut from the shipped one.
fn small_corpus() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        common::write_small_corpus(&dir);
        dir
    })
}

fn small_config_toml(steps: usize) -> String {
    common::small_config_toml(small_corpus(), steps, 20)
}

/// One run at a time: each seeds burn-ndarray's one global generator and draws from it.
fn run(config: RunStart<TrainConfig>, dir: &Path, stop_at: Option<usize>) {
    let _generator = common::ndarray_generator();
    train::<AD>(config, dir, &Default::default(), &mut |event| match event {
        RunEvent::Checkpointed { step, .. } if Some(step) == stop_at => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .unwrap();
}

/// A 120-step run, trained once for all the tests that need a model.
fn trained_run() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let config = TrainConfig::from_toml_str(&small_config_toml(120), "test.toml").unwrap();
        run(RunStart::Fresh(Box::new(config)), &dir, None);
        dir
    })
}

#[test]
fn shipped_configs_parse() {
    for name in ["tiny", "small", "base"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../configs/{name}.toml"));
        TrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn config_errors_name_the_file_and_key() {
    let base = small_config_toml(10);
    let cases = [
        (
            base.replace("batch_size = 16", "batch_size = 16\nbatchsize = 3"),
            "training.batchsize",
        ),
        (
            base.replace("hidden_size = 32", "hidden_size = 32\nhiden_act = \"gelu\""),
            "model.hiden_act",
        ),
        (
            base.replace("batch_size = 16", "batch_size = \"many\""),
            "training.batch_size",
        ),
        (
            base.replace("batch_size = 16", "batch_size = 0"),
            "training.batch_size",
        ),
        (
            base.replace("batch_size = 16", "batch_size = 16\ndevices = 0"),
            "training.devices",
        ),
        (
            base.replace("batch_size = 16", "batch_size = 16\ndevices = 17"),
            "training.devices",
        ),
        (
            base.replace("num_attention_heads = 2", "num_attention_heads = 3"),
            "model.hidden_size",
        ),
        (
            base.replace(
                "max_seq_len = 24",
                "max_seq_len = 24\nmask_probability = 1.5",
            ),
            "data.mask_probability",
        ),
        (
            base.replace("steps = 10", "steps = 10\nepochs = 2"),
            "training.epochs",
        ),
        // Longer examples than the model has positions for.
        (
            base.replace("max_seq_len = 24", "max_seq_len = 65"),
            "data.max_seq_len",
        ),
    ];
    for (text, key) in cases {
        let error = TrainConfig::from_toml_str(&text, "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("bad.toml: key `"), "{error}");
        assert!(
            error.contains(&format!("`{key}`")),
            "expected key {key}: {error}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
    }
}

fn special() -> SpecialIds {
    SpecialIds {
        pad: 0,
        unk: 1,
        cls: 2,
        sep: 3,
        mask: 4,
    }
}

#[test]
fn masking_follows_bert_proportions() {
    let special = special();
    let ids: Vec<u32> = std::iter::once(2)
        .chain((0..998).map(|i| 5 + (i % 90) as u32))
        .chain(std::iter::once(3))
        .collect();
    let (mut selected, mut masked, mut random, mut kept, mut total) = (0usize, 0, 0, 0, 0);
    for index in 0..200u64 {
        let example = mask_tokens(&ids, &special, 100, 0.15, mask_seed(1, 0, index));
        assert_eq!(example.labels[0], IGNORE_INDEX, "[CLS] is never selected");
        assert_eq!(
            *example.labels.last().unwrap(),
            IGNORE_INDEX,
            "[SEP] is never selected"
        );
        for ((&original, &input), &label) in ids.iter().zip(&example.input_ids).zip(&example.labels)
        {
            total += !special.contains(original) as usize;
            if label == IGNORE_INDEX {
                assert_eq!(input, original, "unselected tokens are untouched");
                continue;
            }
            assert_eq!(label, original as i64);
            selected += 1;
            match input {
                i if i == special.mask => masked += 1,
                i if i == original => kept += 1,
                i => {
                    assert!(!special.contains(i) && i < 100, "random replacement {i}");
                    random += 1
                }
            }
        }
    }
    let rate = selected as f64 / total as f64;
    assert!((rate - 0.15).abs() < 0.005, "selection rate {rate}");
    let share = |n: usize| n as f64 / selected as f64;
    assert!(
        (share(masked) - 0.8).abs() < 0.01,
        "[MASK] share {}",
        share(masked)
    );
    // A random draw equals the original 1% of the time, which counts as kept.
    assert!(
        (share(random) - 0.1).abs() < 0.01,
        "random share {}",
        share(random)
    );
    assert!(
        (share(kept) - 0.1).abs() < 0.01,
        "kept share {}",
        share(kept)
    );

    // Same seed, same masks; another epoch, other masks.
    let a = mask_tokens(&ids, &special, 100, 0.15, mask_seed(1, 0, 5));
    assert_eq!(
        a,
        mask_tokens(&ids, &special, 100, 0.15, mask_seed(1, 0, 5))
    );
    assert_ne!(
        a,
        mask_tokens(&ids, &special, 100, 0.15, mask_seed(1, 1, 5))
    );
}

fn small_tokenizer() -> TextTokenizer {
    let text = std::fs::read_to_string(small_corpus().join("macbeth.txt")).unwrap();
    TextTokenizer::train(text.lines(), 300, 1, true).unwrap()
}

#[test]
fn tokenizer_trains_saves_and_loads() {
    let tokenizer = small_tokenizer();
    assert_eq!(
        tokenizer.special(),
        special(),
        "special tokens take ids 0..5"
    );
    assert!(tokenizer.vocab_size() <= 300);
    let ids = tokenizer
        .encode_with_special("Is this a dagger which I see before me?")
        .unwrap();
    assert_eq!((ids[0], *ids.last().unwrap()), (2, 3), "[CLS] ... [SEP]");
    let plain = tokenizer
        .encode_plain("Is this a dagger which I see before me?")
        .unwrap();
    assert_eq!(&ids[1..ids.len() - 1], plain.as_slice());

    let dir = tempfile::tempdir().unwrap();
    tokenizer.save(&dir.path().join("tokenizer.json")).unwrap();
    let reloaded = TextTokenizer::from_file(&dir.path().join("tokenizer.json")).unwrap();
    assert_eq!(
        reloaded.encode_with_special("before me").unwrap(),
        tokenizer.encode_with_special("before me").unwrap()
    );

    // The same vocabulary as a BERT vocab.txt gives the same ids.
    let vocab: Vec<String> = (0..tokenizer.vocab_size() as u32)
        .map(|id| tokenizer.token(id))
        .collect();
    std::fs::write(dir.path().join("vocab.txt"), vocab.join("\n")).unwrap();
    let from_vocab = TextTokenizer::from_file(&dir.path().join("vocab.txt")).unwrap();
    assert_eq!(
        from_vocab.encode_with_special("Is this a dagger").unwrap(),
        tokenizer.encode_with_special("Is this a dagger").unwrap()
    );
}

/// Trained twice on the same text, the vocabulary is the same, token for token and id for
/// id; and a word made of characters the training saw encodes without `[UNK]` into pieces
/// that spell it.
#[test]
fn tokenizer_training_is_deterministic() {
    let text = shipped_file("macbeth.txt").unwrap();
    let train = || TextTokenizer::train(text.lines(), 2000, 2, true).unwrap();
    let tokenizer = train();
    let vocab = tokenizer.wordpiece_vocab().unwrap();
    assert_eq!(vocab.len(), 2000);
    assert_eq!(vocab[..5], SPECIAL_TOKENS);
    for _ in 0..2 {
        assert_eq!(train().wordpiece_vocab().unwrap(), vocab);
    }

    let known: HashSet<&str> = vocab.iter().map(String::as_str).collect();
    let sample = shipped_file("tempest.txt").unwrap();
    let words: BTreeSet<String> = sample
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut checked = 0;
    for word in &words {
        let mut chars = word.chars().map(String::from);
        let first = chars.next().unwrap();
        if !known.contains(first.as_str())
            || chars.any(|c| !known.contains(format!("##{c}").as_str()))
        {
            continue;
        }
        let pieces: Vec<String> = tokenizer
            .encode_plain(word)
            .unwrap()
            .into_iter()
            .map(|id| tokenizer.token(id))
            .collect();
        let spelled: String = pieces
            .iter()
            .map(|p| p.strip_prefix("##").unwrap_or(p))
            .collect();
        assert_eq!(&spelled, word, "{pieces:?}");
        checked += 1;
    }
    assert!(
        checked > words.len() * 9 / 10,
        "{checked} of {}",
        words.len()
    );
    // A character training never saw makes its word unknown.
    assert_eq!(
        tokenizer.encode_plain("snow\u{2603}").unwrap(),
        [tokenizer.special().unk]
    );
}

#[test]
fn packing_keeps_every_token_in_order() {
    let tokenizer = small_tokenizer();
    let text = "First line of text.\n\nA second, somewhat longer line of text follows here.\nthird";
    let sequences = pack_lines(text, &tokenizer, 12).unwrap();
    let mut joined = Vec::new();
    for sequence in &sequences {
        assert!(sequence.len() <= 12);
        assert_eq!((sequence[0], *sequence.last().unwrap()), (2, 3));
        joined.extend_from_slice(&sequence[1..sequence.len() - 1]);
    }
    let expected: Vec<u32> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| tokenizer.encode_plain(l).unwrap())
        .collect();
    assert_eq!(joined, expected);
    assert!(sequences.len() >= 2);
}

#[test]
fn training_writes_a_complete_run_directory_and_learns() {
    let dir = trained_run();
    for file in [
        RUN_CONFIG_FILE,
        "tokenizer.json",
        "config.json",
        "model.safetensors",
        METRICS_FILE,
        PLOT_FILE,
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let png = std::fs::read(dir.join(PLOT_FILE)).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let records = read_records(&dir.join(METRICS_FILE)).unwrap();
    assert_eq!(
        records.iter().map(|r| r.step).collect::<Vec<_>>(),
        vec![20, 40, 60, 80, 100, 120]
    );
    let (first, last) = (&records[0], records.last().unwrap());
    eprintln!(
        "train loss {} -> {}, valid loss {} -> {}",
        first.train_loss, last.train_loss, first.valid_loss, last.valid_loss
    );
    assert!(
        last.train_loss < first.train_loss - 0.1,
        "{} -> {}",
        first.train_loss,
        last.train_loss
    );
    assert!(
        last.valid_loss < first.valid_loss,
        "{} -> {}",
        first.valid_loss,
        last.valid_loss
    );
    assert!(
        records
            .iter()
            .all(|r| r.tokens_per_second > 0.0 && (0.0..=1.0).contains(&r.valid_accuracy))
    );
    assert!(!dir.join("checkpoint.tmp").exists() && dir.join("checkpoint/state.json").is_file());
}

#[test]
fn resuming_gives_the_same_run_as_never_stopping() {
    let reference = read_records(&trained_run().join(METRICS_FILE)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig::from_toml_str(&small_config_toml(120), "test.toml").unwrap();
    let config_again = config.clone();
    run(
        RunStart::Fresh(Box::new(config.clone())),
        dir.path(),
        Some(40),
    );
    // A killed write of a later checkpoint leaves a partial temporary folder behind.
    std::fs::create_dir_all(dir.path().join("checkpoint.tmp")).unwrap();
    std::fs::write(dir.path().join("checkpoint.tmp/model.mpk"), b"partial").unwrap();
    // Starting afresh in the same directory is refused: nothing is overwritten.
    let refused = train::<AD>(
        RunStart::Fresh(Box::new(config)),
        dir.path(),
        &Default::default(),
        &mut |_| ControlFlow::Continue(()),
    );
    assert!(refused.unwrap_err().to_string().contains("--resume"));

    run(RunStart::Resume, dir.path(), None);
    let resumed = read_records(&dir.path().join(METRICS_FILE)).unwrap();

    // How far two identical uninterrupted runs are apart bounds how far a resumed one may
    // be: same batches, masks, dropout masks and optimizer state give the same losses.
    // (On one machine they agree to the bit; 1e-6 is the floor, far below the ~1e-3 a
    // resume that re-seeds the dropout masks gives.)
    let again = tempfile::tempdir().unwrap();
    run(RunStart::Fresh(Box::new(config_again)), again.path(), None);
    let repeated = read_records(&again.path().join(METRICS_FILE)).unwrap();
    let largest_gap = |records: &[EvalRecord]| {
        assert_eq!(records.len(), reference.len());
        records
            .iter()
            .zip(&reference)
            .map(|(a, b)| {
                assert_eq!(a.step, b.step);
                let losses = [a.valid_loss, a.train_loss, b.valid_loss, b.train_loss];
                assert!(
                    losses.iter().all(|l| l.is_finite()),
                    "step {}: {losses:?}",
                    a.step
                );
                (a.valid_loss - b.valid_loss)
                    .abs()
                    .max((a.train_loss - b.train_loss).abs())
            })
            .fold(0.0, f64::max)
    };
    let (noise, gap) = (largest_gap(&repeated), largest_gap(&resumed));
    eprintln!("repeated run: largest loss gap {noise:e}; resumed run: {gap:e}");
    for (a, b) in resumed.iter().zip(&reference) {
        eprintln!(
            "step {}: resumed {:.9} / {:.9}, uninterrupted {:.9} / {:.9}",
            a.step, a.train_loss, a.valid_loss, b.train_loss, b.valid_loss
        );
    }
    assert!(
        gap <= noise.max(1e-6),
        "a resumed run differs from an uninterrupted one by {gap:e}, two identical runs by {noise:e}"
    );
}

#[test]
fn inference_matches_direct_model_computation() {
    let device = Default::default();
    let loaded = load_model::<B>(trained_run(), &device).unwrap();
    let texts = [
        "the king is dead".to_string(),
        "o, my love, my love".to_string(),
    ];

    // encode: the same numbers as the model's own forward pass on the padded batch.
    let lines: Vec<EncodeLine> = texts
        .iter()
        .map(|t| EncodeLine::Text { text: t.clone() })
        .collect();
    let encoded = encode(&loaded, &lines, true, &device).unwrap().value;
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| loaded.tokenizer().unwrap().encode_with_special(t).unwrap())
        .collect();
    let longest = ids.iter().map(Vec::len).max().unwrap();
    assert_eq!(encoded.shape, [2, longest]);
    let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let (input_ids, mask) = roformer_infer::inputs::pad_ids::<B>(&refs, 0, &device);
    let hidden = loaded
        .encoder()
        .forward(RoFormerInput::new(input_ids).with_attention_mask(mask));
    let direct: Vec<f32> = hidden.clone().into_data().to_vec().unwrap();
    assert!(max_abs_diff(&encoded.last_hidden_state, &direct) < 1e-6);
    let logits: Vec<f32> = loaded
        .masked_lm()
        .unwrap()
        .logits(hidden)
        .into_data()
        .to_vec()
        .unwrap();
    assert!(max_abs_diff(encoded.mlm_logits.as_ref().unwrap(), &logits) < 1e-6);

    // embed: the mean over real tokens of those hidden states.
    let embeddings = embed(&loaded, &lines, Pooling::Mean, &device)
        .unwrap()
        .value;
    let width = encoded.hidden_size;
    for (row, tokens) in ids.iter().enumerate() {
        let mut mean = vec![0f32; width];
        for position in 0..tokens.len() {
            let start = (row * longest + position) * width;
            for (m, v) in mean
                .iter_mut()
                .zip(&encoded.last_hidden_state[start..start + width])
            {
                *m += v / tokens.len() as f32;
            }
        }
        assert!(max_abs_diff(&embeddings[row], &mean) < 1e-5);
    }

    // fill-mask: the softmax of the logits at the mask, best first.
    let predictions = fill_mask(&loaded, "the king is [MASK]", 3, &device)
        .unwrap()
        .value;
    assert_eq!(predictions.len(), 1);
    let position = predictions[0].position;
    let masked_ids = loaded
        .tokenizer()
        .unwrap()
        .encode_with_special("the king is [MASK]")
        .unwrap();
    let input = Tensor::<B, 2, Int>::from_data(
        TensorData::new(
            masked_ids.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            [1, masked_ids.len()],
        ),
        &device,
    );
    let row: Vec<f32> = loaded
        .masked_lm()
        .unwrap()
        .forward(RoFormerInput::new(input))
        .into_data()
        .to_vec()
        .unwrap();
    let vocab = loaded.config.vocab_size;
    let row = &row[position * vocab..(position + 1) * vocab];
    let max = row.iter().cloned().fold(f32::MIN, f32::max);
    let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
    let best = row
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    let top = &predictions[0].candidates[0];
    assert_eq!(top.id as usize, best);
    assert!((top.probability - (row[best] - max).exp() / sum).abs() < 1e-5);
    assert!(
        predictions[0]
            .candidates
            .windows(2)
            .all(|w| w[0].probability >= w[1].probability)
    );

    // The output file holds the same tensors.
    let out = tempfile::tempdir().unwrap();
    write_encoded(&encoded, &out.path().join("out.safetensors")).unwrap();
    let bytes = std::fs::read(out.path().join("out.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        file.tensor("last_hidden_state").unwrap().shape(),
        &[2, longest, width]
    );
    assert_eq!(
        file.tensor("mlm_logits").unwrap().shape(),
        &[2, longest, vocab]
    );
}

/// Data-parallel training (`devices`) takes the steps one device takes on the same batch:
/// with dropout off, from the same checkpoint (step 3 of a one-device run), 2 and 3 replicas
/// (shares of 8 and 6/5/5 sequences) give the same losses and, after 3 more steps, the
/// same parameters as 1 replica, to 1e-5. A 2-replica run stopped at a checkpoint and
/// resumed equals one never stopped.
#[test]
fn replicas_train_as_one_device_does() {
    let config = |devices: usize| {
        let toml = common::small_config_toml(small_corpus(), 6, 3)
            .replace("dropout_prob = 0.1", "dropout_prob = 0.0")
            .replace("seed = 7", &format!("seed = 7\ndevices = {devices}"));
        TrainConfig::from_toml_str(&toml, "test.toml").unwrap()
    };
    let root = tempfile::tempdir().unwrap();
    let started = root.path().join("started");
    run(RunStart::Fresh(Box::new(config(1))), &started, Some(3));
    let continue_on = |devices: usize| {
        let dir = root.path().join(format!("on-{devices}"));
        copy_dir(&started, &dir);
        let saved = dir.join(RUN_CONFIG_FILE);
        let text = std::fs::read_to_string(&saved).unwrap();
        assert!(text.contains("devices = 1"), "{text}");
        std::fs::write(
            &saved,
            text.replace("devices = 1", &format!("devices = {devices}")),
        )
        .unwrap();
        run(RunStart::Resume, &dir, None);
        dir
    };
    let one = continue_on(1);
    let reference = common::run_weights(&one);
    let reference_losses = read_records(&one.join(METRICS_FILE)).unwrap();
    assert_eq!(reference_losses.len(), 2);
    let assert_same = |dir: &Path, reference: &[(String, Vec<f32>)], losses: &[EvalRecord]| {
        let weights = common::run_weights(dir);
        assert_eq!(weights.len(), reference.len());
        for ((name, got), (_, expected)) in weights.iter().zip(reference) {
            let gap = max_abs_diff(got, expected);
            assert!(gap < 1e-5, "{}: {name} differs by {gap:e}", dir.display());
        }
        let got = read_records(&dir.join(METRICS_FILE)).unwrap();
        assert_eq!(got.len(), losses.len());
        for (got, expected) in got.iter().zip(losses) {
            let gap = (got.train_loss - expected.train_loss)
                .abs()
                .max((got.valid_loss - expected.valid_loss).abs());
            assert!(
                gap < 1e-5,
                "{}: step {} differs by {gap:e}",
                dir.display(),
                got.step
            );
        }
    };
    for devices in [2, 3] {
        assert_same(&continue_on(devices), &reference, &reference_losses);
    }
    // Not trivially so: the three steps moved the weights.
    let moved = max_abs_diff(&common::run_weights(&started)[1].1, &reference[1].1);
    assert!(
        moved > 1e-3,
        "three steps moved the weights only by {moved:e}"
    );

    let whole = root.path().join("two-whole");
    run(RunStart::Fresh(Box::new(config(2))), &whole, None);
    let stopped = root.path().join("two-stopped");
    run(RunStart::Fresh(Box::new(config(2))), &stopped, Some(3));
    run(RunStart::Resume, &stopped, None);
    let whole_losses = read_records(&whole.join(METRICS_FILE)).unwrap();
    assert_same(&stopped, &common::run_weights(&whole), &whole_losses);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
