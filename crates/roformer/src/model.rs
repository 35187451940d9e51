//! The bare encoder: HF `RoFormerModel`. Embeddings, the optional `embeddings_project`
//! (when `embedding_size != hidden_size`), and the encoder stack.

use crate::backend::RoFormerBackend;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::config::RoFormerConfig;
use crate::embeddings::RoFormerEmbeddings;
use crate::encoder::RoFormerEncoder;
use crate::error::RoFormerError;
use crate::init::normal_linear;

/// A batch of token sequences for the encoder.
#[derive(Debug, Clone)]
pub struct RoFormerInput<B: Backend> {
    /// Token ids `[batch, seq]`.
    pub input_ids: Tensor<B, 2, Int>,
    /// 1 for real tokens, 0 for padding, `[batch, seq]`; `None` means no padding.
    pub attention_mask: Option<Tensor<B, 2, Int>>,
    /// Segment ids `[batch, seq]`; `None` means all zero.
    pub token_type_ids: Option<Tensor<B, 2, Int>>,
    /// Position of the first token (0 unless the sequence continues an earlier chunk).
    pub position_offset: usize,
}

impl<B: RoFormerBackend> RoFormerInput<B> {
    /// Unpadded sequences of segment 0 starting at position 0.
    pub fn new(input_ids: Tensor<B, 2, Int>) -> Self {
        Self {
            input_ids,
            attention_mask: None,
            token_type_ids: None,
            position_offset: 0,
        }
    }

    /// Sets the padding mask (1 = real token, 0 = padding).
    pub fn with_attention_mask(mut self, mask: Tensor<B, 2, Int>) -> Self {
        self.attention_mask = Some(mask);
        self
    }

    /// Sets the segment ids.
    pub fn with_token_type_ids(mut self, token_type_ids: Tensor<B, 2, Int>) -> Self {
        self.token_type_ids = Some(token_type_ids);
        self
    }

    /// Sets the position of the first token.
    pub fn with_position_offset(mut self, offset: usize) -> Self {
        self.position_offset = offset;
        self
    }
}

/// The RoFormer encoder without a task head.
#[derive(Module, Debug)]
pub struct RoFormerModel<B: Backend> {
    /// HF `embeddings`.
    pub embeddings: RoFormerEmbeddings<B>,
    /// HF `embeddings_project`: `embedding_size → hidden_size`, present only when they differ.
    pub embeddings_project: Option<Linear<B>>,
    /// HF `encoder`.
    pub encoder: RoFormerEncoder<B>,
}

impl<B: RoFormerBackend> RoFormerModel<B> {
    /// A freshly initialised encoder; fails if `config` is invalid.
    pub fn new(config: &RoFormerConfig, device: &B::Device) -> Result<Self, RoFormerError> {
        config.validate()?;
        let embeddings_project = (config.embedding_size() != config.hidden_size).then(|| {
            normal_linear(
                config.embedding_size(),
                config.hidden_size,
                config.initializer_range,
                device,
            )
        });
        Ok(Self {
            embeddings: RoFormerEmbeddings::new(config, device),
            embeddings_project,
            encoder: RoFormerEncoder::new(config, device)?,
        })
    }

    /// The input to the first layer, `[batch, seq, hidden]`.
    fn embed(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
        position_offset: usize,
    ) -> Tensor<B, 3> {
        let token_type_ids = token_type_ids.unwrap_or_else(|| input_ids.zeros_like());
        let embedded = self
            .embeddings
            .forward(input_ids, token_type_ids, position_offset);
        match &self.embeddings_project {
            Some(project) => project.forward(embedded),
            None => embedded,
        }
    }

    /// The last hidden state `[batch, seq, hidden_size]`.
    pub fn forward(&self, input: RoFormerInput<B>) -> Tensor<B, 3> {
        let hidden = self.embed(input.input_ids, input.token_type_ids, input.position_offset);
        self.encoder
            .forward(hidden, input.attention_mask, input.position_offset)
    }

    /// Every hidden state: the embedding output followed by each layer's output
    /// (HF's `output_hidden_states`), `num_hidden_layers + 1` tensors.
    pub fn forward_hidden_states(&self, input: RoFormerInput<B>) -> Vec<Tensor<B, 3>> {
        let hidden = self.embed(input.input_ids, input.token_type_ids, input.position_offset);
        self.encoder
            .forward_all(hidden, input.attention_mask, input.position_offset)
    }
}
