//! The bare encoder: HF `RoFormerModel`. Embeddings, the optional `embeddings_project`
//! (when `embedding_size != hidden_size`), and the encoder stack.

use crate::backend::RoFormerBackend;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::config::RoFormerConfig;
use crate::dense::linear;
use crate::embeddings::RoFormerEmbeddings;
use crate::encoder::RoFormerEncoder;
use crate::error::RoFormerError;
use crate::init::normal_linear;
use crate::layout::in_float_type;
use crate::packing::Packing;
use crate::precision::Precision;

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
    /// Which positions are real, for a batch computed without its padding; `None`
    /// computes every position.
    pub packing: Option<Packing<B>>,
}

impl<B: RoFormerBackend> RoFormerInput<B> {
    /// Unpadded sequences of segment 0 starting at position 0.
    pub fn new(input_ids: Tensor<B, 2, Int>) -> Self {
        Self {
            input_ids,
            attention_mask: None,
            token_type_ids: None,
            position_offset: 0,
            packing: None,
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

    /// Computes only the real tokens of this right-padded batch ([`Packing`]): the
    /// outputs at real tokens are those of the padded computation (to f32 rounding), the
    /// padding's are zero. For inference: pipelines that read real tokens only.
    pub fn with_packing(mut self, packing: Option<Packing<B>>) -> Self {
        self.packing = packing;
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
    /// The float type activations and products run in (not saved with the weights).
    precision: Precision,
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
            precision: Precision::F32,
        })
    }

    /// The model computing in `precision`: activations and matrix products in that type,
    /// LayerNorm and softmax widened to f32 ([`crate::precision`]). The parameters are
    /// left as they are (f32 master weights in training, cast where they are used); for
    /// inference [`crate::cast_parameters`] stores them in the compute type too.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The precision set by [`Self::with_precision`] (f32 by default).
    pub fn precision(&self) -> Precision {
        self.precision
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
        // f32 leaves the backend's own float type (f64 stays f64).
        let embedded = if self.precision.is_reduced() {
            in_float_type(embedded, self.precision.dtype())
        } else {
            embedded
        };
        match &self.embeddings_project {
            Some(project) => linear(project, embedded),
            None => embedded,
        }
    }

    /// The last hidden state `[batch, seq, hidden_size]`, in the compute precision.
    pub fn forward(&self, input: RoFormerInput<B>) -> Tensor<B, 3> {
        let hidden = self.embed(input.input_ids, input.token_type_ids, input.position_offset);
        self.encoder.forward(
            hidden,
            input.attention_mask,
            input.position_offset,
            input.packing.as_ref(),
        )
    }

    /// Every hidden state: the embedding output followed by each layer's output
    /// (HF's `output_hidden_states`), `num_hidden_layers + 1` tensors, in the compute
    /// precision.
    pub fn forward_hidden_states(&self, input: RoFormerInput<B>) -> Vec<Tensor<B, 3>> {
        let hidden = self.embed(input.input_ids, input.token_type_ids, input.position_offset);
        self.encoder.forward_all(
            hidden,
            input.attention_mask,
            input.position_offset,
            input.packing.as_ref(),
        )
    }
}
