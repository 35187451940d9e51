//! The GPU code path: the same model must give the same outputs on WGPU as on ndarray,
//! and a training step on WGPU must lower the loss. burn's WGPU backend is always built
//! for the tests (a dev-dependency), whichever backend the binary uses. On a machine
//! without a GPU this runs on lavapipe (Debian's `mesa-vulkan-drivers`), a software
//! Vulkan driver. A fine-tuning run on WGPU (token classification, the loop's widest
//! path) learns, and the model it saves reads the same on ndarray.

use burn::backend::{Autodiff, NdArray, Wgpu};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{Int, Tensor, TensorData};
use roformer::RoFormerBackend;
use roformer::hf_weights::{load_hf_masked_lm, save_hf_safetensors};
use roformer::{RoFormerConfig, RoFormerForMaskedLM, RoFormerInput, masked_lm_loss};
use roformer_testing::tensor_values;
use roformer_testing::{max_abs_diff, rows_where};

fn config() -> RoFormerConfig {
    RoFormerConfig {
        vocab_size: 64,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 32,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        initializer_range: 0.3,
        ..RoFormerConfig::default()
    }
}

fn input<B: RoFormerBackend>(device: &B::Device) -> RoFormerInput<B> {
    let ids: Vec<i64> = vec![2, 10, 11, 12, 13, 3, 2, 20, 21, 3, 0, 0];
    let mask: Vec<i64> = vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    let int = |v: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(v, [2, 6]), device);
    RoFormerInput::new(int(ids)).with_attention_mask(int(mask))
}

#[test]
fn wgpu_matches_ndarray_and_trains() {
    let cpu = Default::default();
    let gpu = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("model.safetensors");
    // A fixed initialisation: whether one step lowers the loss by the margin below depends
    // on the weights drawn.
    <NdArray as burn::tensor::backend::Backend>::seed(&cpu, 7);
    let cpu_model = RoFormerForMaskedLM::<NdArray>::new(&config(), &cpu).unwrap();
    save_hf_safetensors(&cpu_model, &config(), &weights).unwrap();
    let gpu_model: RoFormerForMaskedLM<Wgpu> =
        load_hf_masked_lm(&config(), &weights, &gpu).unwrap();

    let expected = tensor_values(cpu_model.roformer.forward(input::<NdArray>(&cpu)));
    let got = tensor_values(gpu_model.roformer.forward(input::<Wgpu>(&gpu)));
    // Padded positions (the last two of row 2) are not compared.
    let width = config().hidden_size;
    let real = [1i64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    let diff = max_abs_diff(
        &rows_where(&got, width, &real),
        &rows_where(&expected, width, &real),
    );
    assert!(
        diff < 1e-4,
        "WGPU vs ndarray last_hidden_state max |diff| {diff}"
    );

    type AD = Autodiff<Wgpu>;
    let mut model: RoFormerForMaskedLM<AD> = load_hf_masked_lm(&config(), &weights, &gpu).unwrap();
    let mut optimizer = AdamWConfig::new().init();
    let labels = Tensor::<AD, 2, Int>::from_data(
        TensorData::new(
            vec![
                -100i64, 10, -100, 12, -100, -100, -100, 20, -100, -100, -100, -100,
            ],
            [2, 6],
        ),
        &gpu,
    );
    let loss = masked_lm_loss(model.forward(input::<AD>(&gpu)), labels.clone());
    let before: f32 = tensor_values(loss.clone())[0];
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    model = optimizer.step(1e-2, model, grads);
    let after: f32 = tensor_values(masked_lm_loss(model.forward(input::<AD>(&gpu)), labels))[0];
    assert!(
        after < before - 0.05,
        "WGPU training step: loss {before} -> {after}"
    );
}

/// Fine-tuning a tagger through the library on WGPU lowers the validation loss, and the
/// model it keeps gives the same word probabilities on WGPU and on ndarray.
#[test]
fn wgpu_finetunes_a_tagger_that_ndarray_reads_alike() {
    use std::ops::ControlFlow;

    use roformer_train::data::TextTokenizer;
    use roformer_train::finetune::{FinetuneConfig, FinetuneStart, finetune, load_tagger};
    use roformer_train::model_dir::{save_model, save_tokenizer};
    use roformer_train::tag::word_probabilities;

    let dir = tempfile::tempdir().unwrap();
    let pretrained = dir.path().join("pretrained");
    let lines = [
        "the quick brown fox jumps over the lazy dog",
        "to be or not to be",
    ];
    let tokenizer = TextTokenizer::train(lines.into_iter(), 50, 1, true).unwrap();
    let model_config = RoFormerConfig {
        vocab_size: tokenizer.vocab_size(),
        ..config()
    };
    let model = RoFormerForMaskedLM::<NdArray>::new(&model_config, &Default::default()).unwrap();
    save_model(&pretrained, &model_config, &model).unwrap();
    save_tokenizer(&pretrained, &tokenizer).unwrap();
    // Animals are entities; every other word is not.
    let words: Vec<&str> = lines.iter().flat_map(|l| l.split(' ')).collect();
    let mut data = String::new();
    for i in 0..64 {
        let sentence: Vec<&str> = (0..6)
            .map(|j| words[(i * 5 + j * 3) % words.len()])
            .collect();
        let labels: Vec<&str> = sentence
            .iter()
            .map(|w| {
                if matches!(*w, "fox" | "dog") {
                    "B-ANIMAL"
                } else {
                    "O"
                }
            })
            .collect();
        data.push_str(&serde_json::json!({"words": sentence, "labels": labels}).to_string());
        data.push('\n');
    }
    let train = dir.path().join("train.jsonl");
    std::fs::write(&train, data).unwrap();
    let config_text = format!(
        "[task]\ntype = \"token-classification\"\ninit_from = \"{}\"\ntext_field = \"words\"\nmax_seq_len = 16\n[data]\ntrain = \"{}\"\nvalidation = \"{}\"\n[training]\nbatch_size = 16\nlearning_rate = 1e-2\nwarmup_steps = 2\nsteps = 16\neval_every = 8\ncheckpoint_every = 16\nseed = 3\n",
        pretrained.display(),
        train.display(),
        train.display()
    );
    let finetune_config = FinetuneConfig::from_toml_str(&config_text, "test.toml").unwrap();
    let run_dir = dir.path().join("run");
    let summary = finetune::<Autodiff<Wgpu>>(
        FinetuneStart::Fresh(Box::new(finetune_config)),
        &run_dir,
        &Default::default(),
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    let records: Vec<roformer_train::finetune::FinetuneRecord> =
        roformer_train::train::metrics::read_step_records(&run_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records[1].valid_loss < records[0].valid_loss,
        "WGPU fine-tuning: {records:?}"
    );
    assert!(summary.best_scores.unwrap().entities.is_some());

    let inputs = vec![
        ["the", "lazy", "dog", "jumps"].map(String::from).to_vec(),
        ["to", "be", "a", "fox"].map(String::from).to_vec(),
    ];
    let on_gpu = load_tagger::<Wgpu>(&run_dir, &Default::default()).unwrap();
    let on_cpu = load_tagger::<NdArray>(&run_dir, &Default::default()).unwrap();
    let gpu = word_probabilities(&on_gpu, &inputs, &Default::default()).unwrap();
    let cpu = word_probabilities(&on_cpu, &inputs, &Default::default()).unwrap();
    let flat = |p: &Vec<Vec<Vec<f64>>>| -> Vec<f32> {
        p.iter().flatten().flatten().map(|&v| v as f32).collect()
    };
    let diff = max_abs_diff(&flat(&gpu), &flat(&cpu));
    assert!(
        diff < 1e-4,
        "word probabilities, WGPU vs ndarray: max |diff| {diff}"
    );
}
