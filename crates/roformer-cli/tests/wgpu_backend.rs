//! The GPU code path: the same model must give the same outputs on WGPU as on ndarray,
//! and a training step on WGPU must lower the loss. burn's WGPU backend is always built
//! for the tests (a dev-dependency), whichever backend the binary uses. On a machine
//! without a GPU this runs on lavapipe (Debian's `mesa-vulkan-drivers`), a software
//! Vulkan driver. A fine-tuning run on WGPU (token classification, the loop's widest
//! path) learns, and the model it saves reads the same on ndarray. Reduced precision
//! (f16; lavapipe has shader f16, and WGSL no bf16) tracks f32 in inference and in mixed-
//! precision training.

use burn::backend::wgpu::{CubeBackend, WgpuRuntime};
use burn::backend::{Autodiff, NdArray};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{Int, Tensor, TensorData};
use roformer::RoFormerBackend;
use roformer::hf_weights::{load_hf_masked_lm, save_hf_safetensors};
use roformer::{
    Precision, RoFormerConfig, RoFormerForMaskedLM, RoFormerInput, cast_parameters, masked_lm_loss,
};
use roformer_testing::tensor_values;
use roformer_testing::{max_abs_diff, rows_where};

mod common;

/// burn's WGPU backend without its fusion wrapper, whichever features the build turns on:
/// burn's own `Wgpu` alias becomes the fusion wrapper when `burn/fusion` is on (as in a
/// build with this crate's `wgpu` or `cuda` feature).
type Wgpu = CubeBackend<WgpuRuntime, f32, i32, u32>;

/// A model of [`config`] drawn on ndarray from seed 7 and saved to `path` (the draws
/// happen as it is saved: burn's parameters are lazy).
fn seeded_weights(path: &std::path::Path) -> RoFormerForMaskedLM<NdArray> {
    let _draws = common::ndarray_generator();
    let cpu = Default::default();
    <NdArray as burn::tensor::backend::Backend>::seed(&cpu, 7);
    let model = RoFormerForMaskedLM::<NdArray>::new(&config(), &cpu).unwrap();
    save_hf_safetensors(&model, &config(), path).unwrap();
    model
}

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
    let cpu_model = seeded_weights(&weights);
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

    use roformer_infer::model_dir::load_tagger;
    use roformer_infer::model_dir::{save_model, save_tokenizer};
    use roformer_infer::pipelines::tag::word_probabilities;
    use roformer_infer::tokenizer::TextTokenizer;
    use roformer_train::finetune::{FinetuneConfig, FinetuneStart, finetune};

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
    {
        // Drawn (when saved) under the lock, so the seeded draws of the other tests repeat.
        let _draws = common::ndarray_generator();
        let model =
            RoFormerForMaskedLM::<NdArray>::new(&model_config, &Default::default()).unwrap();
        save_model(&pretrained, &model_config, &model).unwrap();
    }
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
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    let records: Vec<roformer_train::finetune::FinetuneRecord> =
        roformer_train::run::metrics::read_step_records(&run_dir.join("metrics.jsonl")).unwrap();
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

/// The weights of [`seeded_weights`], drawn into `dir` once, loaded on `B`.
fn wgpu_model<B: RoFormerBackend>(
    dir: &std::path::Path,
    device: &B::Device,
) -> RoFormerForMaskedLM<B> {
    let weights = dir.join("model.safetensors");
    if !weights.exists() {
        seeded_weights(&weights);
    }
    load_hf_masked_lm(&config(), &weights, device).unwrap()
}

/// The masked-LM labels of [`input`]'s tokens: four predicted positions.
fn labels<B: RoFormerBackend>(device: &B::Device) -> Tensor<B, 2, Int> {
    let labels = vec![
        -100i64, 10, -100, 12, -100, -100, -100, 20, -100, -100, -100, -100,
    ];
    Tensor::from_data(TensorData::new(labels, [2, 6]), device)
}

/// f16 inference (weights and activations in f16, LayerNorm and softmax widened) gives the
/// f32 logits to within f16's rounding over two layers: measured 1.9e-3 of the largest
/// logit on lavapipe, allowed 1e-2. Each layer's attention takes the flash form, with the
/// padding mask built once per forward. bf16, where the adapter has it, to 4e-2 (3 fewer
/// significand bits); WGSL has none, so on lavapipe asking for it is an error naming it.
#[test]
fn reduced_precision_inference_tracks_f32() {
    use burn::tensor::DType;
    use roformer::backend::{flash_form_attention_calls, flash_key_masks_built};

    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let model = wgpu_model::<Wgpu>(dir.path(), &device);
    let expected = tensor_values(model.forward(input::<Wgpu>(&device)));
    let vocab = config().vocab_size;
    let real = [1i64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    let expected = rows_where(&expected, vocab, &real);
    let largest = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        Precision::F16.check_supported::<Wgpu>(&device).is_ok(),
        "the test's Vulkan device has no shader f16 (lavapipe has)"
    );
    for (precision, tolerance) in [(Precision::F16, 1e-2), (Precision::Bf16, 4e-2)] {
        if let Err(error) = precision.check_supported::<Wgpu>(&device) {
            assert_eq!(precision, Precision::Bf16, "{error}");
            assert!(error.to_string().contains("precision bf16"), "{error}");
            continue;
        }
        let reduced = cast_parameters(model.clone().with_precision(precision), precision);
        let weight = reduced.roformer.embeddings.word_embeddings.weight.val();
        assert_eq!(weight.dtype(), precision.dtype());
        let (masks, calls) = (flash_key_masks_built(), flash_form_attention_calls());
        let hidden = reduced.roformer.forward(input::<Wgpu>(&device));
        assert_eq!(hidden.dtype(), precision.dtype());
        // The padded batch's mask for the flash form is built once, for both layers.
        assert_eq!(
            flash_key_masks_built() - masks,
            1,
            "{precision}: masks built"
        );
        let layers = config().num_hidden_layers as u64;
        assert_eq!(
            flash_form_attention_calls() - calls,
            layers,
            "{precision}: flash-form attention calls"
        );
        let logits = reduced.logits(hidden);
        assert_eq!(logits.dtype(), DType::F32);
        let got = rows_where(&tensor_values(logits), vocab, &real);
        let relative = max_abs_diff(&got, &expected) / f64::from(largest);
        assert!(
            relative < tolerance,
            "{precision} logits vs f32: max |diff| {relative} of the largest logit"
        );
    }
}

/// Mixed-precision training in f16 (f32 master weights and AdamW, a scaled loss) follows
/// f32 training from the same weights: the first loss within 1e-3 of f32's (measured 2.5e-4
/// on lavapipe), all six within 0.05 (measured 0.015, the loss falling from 5.76 to 1.05),
/// the parameters still f32, no step skipped, and both runs learn.
#[test]
fn mixed_precision_training_tracks_f32() {
    use burn::tensor::DType;
    use roformer_train::run::FusedAdamWConfig;
    use roformer_train::run::loss_scale::{LossScale, optimise};

    type AD = Autodiff<Wgpu>;
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let train = |precision: Precision| {
        let mut model = wgpu_model::<AD>(dir.path(), &device).with_precision(precision);
        let mut optimizer = FusedAdamWConfig::new().init();
        // Below 2^16 (the dynamic rule's start, which these large initial weights overflow
        // on the first steps: those are skipped, as the rule's unit test shows), so that
        // every step is taken and the runs compare step by step.
        let mut loss_scale = LossScale::for_precision(precision).map(|_| LossScale {
            scale: 256.0,
            clean_steps: 0,
        });
        let mut losses = Vec::new();
        for _ in 0..6 {
            let loss = masked_lm_loss(model.forward(input::<AD>(&device)), labels(&device));
            losses.push(tensor_values(loss.clone())[0]);
            let step = optimise(model, loss, &mut optimizer, 1e-2, 0.0, loss_scale.as_mut());
            assert!(!step.skipped, "{precision}: a step overflowed");
            model = step.model;
        }
        let weight = model.roformer.encoder.layer[0]
            .attention
            .self_attention
            .query
            .weight
            .val();
        (losses, weight.dtype(), loss_scale)
    };
    let (reference, _, _) = train(Precision::F32);
    let masks = roformer::backend::flash_key_masks_built();
    let (mixed, master, loss_scale) = train(Precision::F16);
    // Training runs the saving attention, which reads the bias: no flash-form mask is made.
    assert_eq!(
        roformer::backend::flash_key_masks_built(),
        masks,
        "masks built"
    );
    assert_eq!(master, DType::F32, "master weights");
    assert_eq!(loss_scale.map(|s| s.clean_steps), Some(6));
    // The first loss is one forward pass from the same weights; the later ones follow
    // trajectories that f16 rounding moves apart step by step.
    let first = (mixed[0] - reference[0]).abs() / reference[0];
    assert!(
        first <= 1e-3,
        "first loss: f16 {mixed:?} vs f32 {reference:?}"
    );
    for (step, (got, want)) in mixed.iter().zip(&reference).enumerate() {
        assert!(
            (got - want).abs() <= 0.05,
            "step {step}: f16 loss {got}, f32 {want} ({mixed:?} vs {reference:?})"
        );
    }
    for losses in [&reference, &mixed] {
        assert!(losses[5] < losses[0] - 0.1, "no learning: {losses:?}");
    }
}

/// The inference commands in f16 (`--precision f16`) read as they do in f32: `embed`'s
/// mean pooling (padding masked in f32) and `[CLS]` rows, and `encode`'s hidden states and
/// masked-LM logits, to 1e-2 of the largest value (f16 rounding).
#[test]
fn f16_embeddings_and_encodings_track_f32() {
    use roformer_infer::model_dir::{InPrecision, load_model, save_model};
    use roformer_infer::pipelines::{Pooling, embed, embed_line, encode};

    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let model_dir = dir.path().join("model");
    save_model(
        &model_dir,
        &config(),
        &wgpu_model::<Wgpu>(dir.path(), &device),
    )
    .unwrap();
    let lines = [
        r#"{"input_ids": [2, 10, 11, 12, 13, 3]}"#,
        r#"{"input_ids": [2, 20, 21, 3]}"#,
    ]
    .map(embed_line);
    let single = load_model::<Wgpu>(&model_dir, &device).unwrap();
    let half = load_model::<Wgpu>(&model_dir, &device)
        .unwrap()
        .in_precision(Precision::F16, &device)
        .unwrap();
    let close = |what: &str, got: &[f32], expected: &[f32]| {
        let largest = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        let relative = max_abs_diff(got, expected) / f64::from(largest);
        assert!(
            relative < 1e-2,
            "{what}: f16 vs f32 max |diff| {relative} of the largest"
        );
    };
    for pooling in [Pooling::Mean, Pooling::Cls] {
        let flat = |model| -> Vec<f32> {
            let embedded = embed(model, &lines, pooling, &device).unwrap().value;
            embedded.into_iter().flatten().collect()
        };
        close(
            &format!("{pooling:?} embeddings"),
            &flat(&half),
            &flat(&single),
        );
    }
    let got = encode(&half, &lines, true, &device).unwrap().value;
    let expected = encode(&single, &lines, true, &device).unwrap().value;
    // The second line's padded positions (its last two) are not compared.
    let mask: Vec<i64> = expected.attention_mask.clone();
    let rows = |values: &[f32], width| rows_where(values, width, &mask);
    let width = config().hidden_size;
    close(
        "last_hidden_state",
        &rows(&got.last_hidden_state, width),
        &rows(&expected.last_hidden_state, width),
    );
    let vocab = config().vocab_size;
    close(
        "mlm_logits",
        &rows(got.mlm_logits.as_ref().unwrap(), vocab),
        &rows(expected.mlm_logits.as_ref().unwrap(), vocab),
    );
}

/// Attention on the cubecl backends, against a plain f64 loop with rows padded
/// differently, q, k and v laid out as the model leaves them (views with the heads swapped
/// in):
/// - in f32, burn's unfused composition (bias and scale as they are), within 1e-5
///   (measured 1.2e-7 on lavapipe), not in the flash form;
/// - in f16, burn's `attention` in the form burn-cubecl's flash-attention kernels take (the
///   padding as a boolean mask, the default scale), within 2e-3 (measured 4.9e-4, f16's
///   rounding); the tests' build has no autotuning, so burn's composition runs it;
/// - burn-cubecl's flash kernel itself (`FlashUnit`, which autotuning may pick on a GPU) on
///   [`flash_attention_inputs`] made on CubeBackend and made under burn's fusion (what
///   `--features wgpu` builds), within 1e-3 (measured 2.2e-4 for both: its f16 tiles). That
///   kernel reads the swapped views, and a mask broadcast over heads or queries, wrongly
///   (errors of 0.3 to 0.9 on lavapipe; 0.58 here with q left a view), which the inputs'
///   layout avoids.
#[test]
fn attention_takes_the_flash_form_and_matches_the_reference() {
    use burn::tensor::{DType, TensorPrimitive};
    use burn_cubecl::kernel::attention::{AttentionStrategy, attention};
    use roformer::MASKED_SCORE;
    use roformer::backend::{
        FlashAttentionInputs, KeyMask, flash_attention_inputs, flash_form_attention_calls,
        flash_key_mask, flash_key_masks_built,
    };
    use roformer_testing::random_values;
    let [batch, heads, seq, head_dim] = [3, 4, 37, 32];
    let lengths = [seq, 6, 20];
    let real: Vec<bool> = (0..batch * seq)
        .map(|i| i % seq < lengths[i / seq])
        .collect();
    let scale = 1.0 / (head_dim as f32).sqrt();
    // [b, s, h, d], as the model's projections are before the heads are swapped in.
    let n = batch * seq * heads * head_dim;
    let (q, k, v) = (
        random_values(n, 1),
        random_values(n, 2),
        random_values(n, 3),
    );

    // softmax over the real keys of scale·q·kᵀ, times v, heads merged: [b, s, h·d].
    let at = |x: &[f32], b: usize, s: usize, h: usize, d: usize| {
        f64::from(x[((b * seq + s) * heads + h) * head_dim + d])
    };
    let mut expected = vec![0f32; n];
    for b in 0..batch {
        let keys: Vec<usize> = (0..seq).filter(|&j| real[b * seq + j]).collect();
        for (h, i) in (0..heads).flat_map(|h| (0..seq).map(move |i| (h, i))) {
            let score = |j: usize| {
                let dot: f64 = (0..head_dim)
                    .map(|d| at(&q, b, i, h, d) * at(&k, b, j, h, d))
                    .sum();
                dot * f64::from(scale)
            };
            let scores: Vec<f64> = keys.iter().map(|&j| score(j)).collect();
            let top = scores.iter().copied().fold(f64::MIN, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
            let total: f64 = weights.iter().sum();
            for d in 0..head_dim {
                let context: f64 = keys
                    .iter()
                    .zip(&weights)
                    .map(|(&j, w)| w * at(&v, b, j, h, d))
                    .sum();
                expected[((b * seq + i) * heads + h) * head_dim + d] = (context / total) as f32;
            }
        }
    }

    let device = Default::default();
    let split = |x: &[f32], dtype: DType| {
        let x = TensorData::new(x.to_vec(), [batch, seq, heads, head_dim]);
        let x = Tensor::<Wgpu, 4>::from_data(x, &device).cast(dtype);
        x.swap_dims(1, 2).into_primitive().tensor()
    };
    let bias_values: Vec<f32> = real
        .iter()
        .map(|&r| if r { 0.0 } else { MASKED_SCORE })
        .collect();
    let bias = |dtype: DType| {
        let bias = TensorData::new(bias_values.clone(), [batch, 1, 1, seq]);
        // Cast as the encoder casts it: f32::MIN becomes −∞ in f16.
        let bias = Tensor::<Wgpu, 4>::from_data(bias, &device).cast(dtype);
        bias.into_primitive().tensor()
    };
    for (dtype, flash_form, tolerance) in [(DType::F32, false, 1e-5), (DType::F16, true, 2e-3)] {
        // The key mask as the encoder prepares it, and the bias alone (attention then
        // builds the flash form's mask itself).
        for prepared in [true, false] {
            let what = format!("{dtype:?}, prepared mask {prepared}");
            let masks = flash_key_masks_built();
            let key_mask = if prepared {
                <Wgpu as RoFormerBackend>::key_mask(bias(dtype), heads, seq)
            } else {
                KeyMask::from_bias(bias(dtype))
            };
            assert_eq!(
                key_mask.prepared.is_some(),
                prepared && flash_form,
                "{what}"
            );
            let before = flash_form_attention_calls();
            let [q, k, v] = [&q, &k, &v].map(|x| split(x, dtype));
            let context =
                <Wgpu as RoFormerBackend>::self_attention(q, k, v, Some(key_mask), scale, 0.0);
            let context = Tensor::<Wgpu, 3>::from_primitive(TensorPrimitive::Float(context));
            assert_eq!(context.dtype(), dtype);
            let calls = flash_form_attention_calls() - before;
            assert_eq!(calls, u64::from(flash_form), "{what}: flash-form calls");
            let built = flash_key_masks_built() - masks;
            assert_eq!(built, u64::from(flash_form), "{what}: masks built");
            let gap = max_abs_diff(&tensor_values(context), &expected);
            assert!(gap <= tolerance, "{what}: attention vs the f64 loop: {gap}");
        }
    }

    // burn-cubecl's flash kernel on the inputs made on CubeBackend, and on those made under
    // burn's fusion (what `--features wgpu` builds), resolved to the tensors its stream
    // hands to the kernel.
    type Fused = burn_fusion::Fusion<Wgpu>;
    let flash = |inputs: FlashAttentionInputs<Wgpu>| {
        let context = attention::<WgpuRuntime>(
            inputs.query,
            inputs.key,
            inputs.value,
            inputs.mask,
            None,
            Default::default(),
            AttentionStrategy::FlashUnit,
        )
        .expect("burn-cubecl's flash kernel runs on this device");
        let context = Tensor::<Wgpu, 4>::from_primitive(TensorPrimitive::Float(context));
        tensor_values(
            context
                .swap_dims(1, 2)
                .reshape([batch, seq, heads * head_dim]),
        )
    };
    let [cq, ck, cv] = [&q, &k, &v].map(|x| split(x, DType::F32));
    let mask = flash_key_mask::<Wgpu>(bias(DType::F32), heads, seq);
    let cube = flash(flash_attention_inputs::<Wgpu>(cq, ck, cv, Some(mask)));
    let gap = max_abs_diff(&cube, &expected);
    assert!(gap <= 1e-3, "flash kernel vs the f64 loop: {gap}");

    let fused = |x: TensorData| Tensor::<Fused, 4>::from_data(x, &device);
    let [fq, fk, fv] = [&q, &k, &v].map(|x| {
        let x = TensorData::new(x.to_vec(), [batch, seq, heads, head_dim]);
        fused(x).swap_dims(1, 2).into_primitive().tensor()
    });
    let fused_bias = TensorData::new(bias_values.clone(), [batch, 1, 1, seq]);
    let fused_mask =
        flash_key_mask::<Fused>(fused(fused_bias).into_primitive().tensor(), heads, seq);
    let inputs = flash_attention_inputs::<Fused>(fq, fk, fv, Some(fused_mask));
    let resolve =
        |x: burn_fusion::FusionTensor<_>| x.client.clone().resolve_tensor_float::<Wgpu>(x);
    let resolved = FlashAttentionInputs::<Wgpu> {
        query: resolve(inputs.query),
        key: resolve(inputs.key),
        value: resolve(inputs.value),
        mask: inputs
            .mask
            .map(|m| m.client.clone().resolve_tensor_bool::<Wgpu>(m)),
    };
    let gap = max_abs_diff(&flash(resolved), &expected);
    assert!(
        gap <= 1e-3,
        "flash kernel on inputs made under fusion vs the f64 loop: {gap}"
    );
}
