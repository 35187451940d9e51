//! The GPU code path: the same model must give the same outputs on WGPU as on ndarray,
//! and a training step on WGPU must lower the loss. burn's WGPU backend is always built
//! for the tests (a dev-dependency), whichever backend the binary uses. On a machine
//! without a GPU this runs on lavapipe (Debian's `mesa-vulkan-drivers`), a software
//! Vulkan driver. One test, so WGPU's kernels are compiled once.

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
