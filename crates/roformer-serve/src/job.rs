//! One input of a request as the model's worker takes it (an entry of its queue), and
//! what comes back.

use std::time::{Duration, Instant};

use roformer_infer::pipelines::{ClassifyInput, MaskPrediction, Pooling};
use tokio::sync::oneshot;

use crate::error::ApiError;

/// What to compute for one input.
#[derive(Debug, Clone)]
pub enum Job {
    /// A sentence embedding of token ids (`[CLS]`/`[SEP]` included, cut to the model).
    Embed {
        /// The token ids.
        ids: Vec<u32>,
        /// How the hidden states are pooled.
        pooling: Pooling,
        /// Whether the embedding is scaled to unit length.
        normalize: bool,
    },
    /// The candidates of each `[MASK]` of a text.
    FillMask {
        /// The text.
        text: String,
        /// Candidates per mask.
        top_k: usize,
        /// Only these token ids, when given.
        targets: Option<Vec<u32>>,
    },
    /// The label scores of a text or a text pair.
    Classify {
        /// The input.
        input: ClassifyInput,
        /// Logits instead of probabilities.
        raw: bool,
    },
    /// The label probabilities of each word.
    Tag {
        /// The words.
        words: Vec<String>,
    },
}

/// What a job gives.
#[derive(Debug, Clone)]
pub enum Output {
    /// An embedding.
    Embedding(Vec<f32>),
    /// The predictions of each mask.
    Masks(Vec<MaskPrediction>),
    /// A score per label.
    Scores(Vec<f64>),
    /// A probability per label, per word.
    Words(Vec<Vec<f64>>),
}

/// An output with the time it waited and the time its batch took.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The output.
    pub output: Output,
    /// From the entry's arrival to its batch's start.
    pub queued: Duration,
    /// Its batch's run.
    pub inference: Duration,
    /// Tokens its batch computed (padding included; the `x-batch-tokens` header).
    pub batch_tokens: usize,
}

/// An input waiting in a model's queue.
pub struct Entry {
    /// What to compute.
    pub job: Job,
    /// Its length in tokens, special tokens included (what it costs in a batch).
    pub tokens: usize,
    /// Where the answer goes; closed when the client has gone away.
    pub reply: oneshot::Sender<Result<Answer, ApiError>>,
    /// When it arrived.
    pub arrived: Instant,
}

impl Entry {
    /// An entry for `job` of `tokens` tokens, and the receiver of its answer.
    pub fn new(job: Job, tokens: usize) -> (Self, oneshot::Receiver<Result<Answer, ApiError>>) {
        let (reply, answer) = oneshot::channel();
        let entry = Self {
            job,
            tokens,
            reply,
            arrived: Instant::now(),
        };
        (entry, answer)
    }
}
