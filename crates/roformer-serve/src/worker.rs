//! A model's worker: one thread that loads the model, owns it, and answers its queue a
//! batch at a time. A batch takes entries of every route the model serves; its jobs of
//! one kind run as one batch, without its padding, through the inference library's
//! pipelines (the code the command line runs). A panic while computing a batch answers its
//! entries with a 500 and the worker goes on.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use roformer::{Precision, RoFormerBackend};
use roformer_infer::InferError;
use roformer_infer::pipelines::{
    EncodeLine, FillMaskOptions, embed, fill_masks, label_scores, word_probabilities,
};
use roformer_infer::tokenizer::TextTokenizer;

use crate::error::{ApiError, ErrorKind};
use crate::job::{Answer, Entry, Job, Output};
use crate::metrics;
use crate::model::{Head, ServedModel, Task};
use crate::queue::{BatchLimits, Queue};

/// What the HTTP side knows of a model: what it serves, its tokenizer, and the queue of
/// its worker.
#[derive(Clone)]
pub struct ModelHandle {
    /// The name requests use.
    pub name: String,
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// What it answers.
    pub tasks: Vec<Task>,
    /// A classifier's or tagger's labels.
    pub labels: Option<Vec<String>>,
    /// Its tokenizer (inputs are tokenized on the HTTP side, for their length).
    pub tokenizer: TextTokenizer,
    /// Its longest input, in tokens.
    pub max_input_length: usize,
    sender: mpsc::Sender<Entry>,
}

impl ModelHandle {
    /// Queues `entry` for the worker.
    pub fn submit(&self, entry: Entry) -> Result<(), ApiError> {
        self.sender.send(entry).map_err(|_| {
            ApiError::new(
                ErrorKind::Unhealthy,
                format!("model `{}` is not running", self.name),
            )
        })
    }
}

/// Starts the worker of the model in `dir` (named `name`) and waits until it is loaded.
pub fn spawn<B: RoFormerBackend>(
    name: String,
    dir: PathBuf,
    device: B::Device,
    precision: Precision,
    limits: BatchLimits,
) -> Result<ModelHandle, InferError> {
    let (sender, receiver) = mpsc::channel::<Entry>();
    let (loaded, load_result) = mpsc::channel();
    let thread_dir = dir.clone();
    let thread_name = name.clone();
    std::thread::Builder::new()
        .name(format!("model-{name}"))
        .spawn(move || {
            let model = match ServedModel::<B>::load(&thread_dir, &device, precision) {
                Ok(model) => model,
                Err(error) => {
                    let _ = loaded.send(Err(error));
                    return;
                }
            };
            let _ = loaded.send(Ok((
                model.tasks(),
                model.labels().map(<[String]>::to_vec),
                model.tokenizer().clone(),
                model.max_input_length(),
            )));
            serve_queue(&thread_name, &model, &device, &receiver, limits);
        })
        .map_err(|e| InferError::io(&dir, format!("cannot start the model's thread: {e}")))?;
    let (tasks, labels, tokenizer, max_input_length) = load_result
        .recv()
        .map_err(|_| InferError::model_dir(&dir, "the model's thread stopped while loading"))??;
    Ok(ModelHandle {
        name,
        dir,
        tasks,
        labels,
        tokenizer,
        max_input_length,
        sender,
    })
}

/// Answers the queue until every sender is gone (the server stopped).
fn serve_queue<B: RoFormerBackend>(
    name: &str,
    model: &ServedModel<B>,
    device: &B::Device,
    receiver: &mpsc::Receiver<Entry>,
    limits: BatchLimits,
) {
    let mut queue = Queue::default();
    loop {
        if queue.is_empty() {
            match receiver.recv() {
                Ok(entry) => queue.push(entry),
                Err(_) => return,
            }
        }
        while let Ok(entry) = receiver.try_recv() {
            queue.push(entry);
        }
        let batch = queue.next_batch(limits);
        metrics::queue_size(name, queue.len());
        if !batch.is_empty() {
            run_batch(name, model, device, batch);
        }
    }
}

/// Computes a batch and answers its entries.
fn run_batch<B: RoFormerBackend>(
    name: &str,
    model: &ServedModel<B>,
    device: &B::Device,
    batch: Vec<Entry>,
) {
    let started = Instant::now();
    let tokens = batch.len() * batch.iter().map(|e| e.tokens).max().unwrap_or(0);
    let jobs: Vec<&Job> = batch.iter().map(|e| &e.job).collect();
    let outputs = std::panic::catch_unwind(AssertUnwindSafe(|| compute(model, &jobs, device)))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            let error = ApiError::new(ErrorKind::Backend, format!("the model failed: {message}"));
            vec![Err(error); jobs.len()]
        });
    let inference = started.elapsed();
    metrics::batch(name, batch.len(), tokens, inference);
    for (entry, output) in batch.into_iter().zip(outputs) {
        let answer = output.map(|output| Answer {
            output,
            queued: started.duration_since(entry.arrived),
            inference,
            batch_tokens: tokens,
        });
        let _ = entry.reply.send(answer);
    }
}

/// The jobs' outputs, in order: the jobs of one kind and settings run as one batch; an
/// error of a group answers each of its jobs.
fn compute<B: RoFormerBackend>(
    model: &ServedModel<B>,
    jobs: &[&Job],
    device: &B::Device,
) -> Vec<Result<Output, ApiError>> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, job) in jobs.iter().enumerate() {
        groups.entry(group_key(job)).or_default().push(index);
    }
    let mut outputs: Vec<Option<Result<Output, ApiError>>> = vec![None; jobs.len()];
    for indices in groups.into_values() {
        let group: Vec<&Job> = indices.iter().map(|&i| jobs[i]).collect();
        match compute_group(model, &group, device) {
            Ok(results) => {
                for (index, output) in indices.into_iter().zip(results) {
                    outputs[index] = Some(Ok(output));
                }
            }
            Err(error) => {
                for index in indices {
                    outputs[index] = Some(Err(error.clone()));
                }
            }
        }
    }
    outputs
        .into_iter()
        .map(|o| o.expect("every job is in a group"))
        .collect()
}

/// Jobs that run together: same kind and settings.
fn group_key(job: &Job) -> String {
    match job {
        Job::Embed { pooling, .. } => format!("embed {pooling:?}"),
        Job::FillMask { top_k, targets, .. } => format!("fill-mask {top_k} {targets:?}"),
        Job::Classify { raw, .. } => format!("classify {raw}"),
        Job::Tag { .. } => "tag".to_string(),
    }
}

/// The outputs of jobs of one group.
fn compute_group<B: RoFormerBackend>(
    model: &ServedModel<B>,
    group: &[&Job],
    device: &B::Device,
) -> Result<Vec<Output>, ApiError> {
    match (group[0], &model.head) {
        (Job::Embed { pooling, .. }, _) => {
            let lines: Vec<EncodeLine> = group.iter().map(|job| embed_line(job)).collect();
            let embeddings = embed(&model.encoder, &lines, *pooling, device)?.value;
            Ok(group
                .iter()
                .zip(embeddings)
                .map(|(job, mut embedding)| {
                    if matches!(
                        job,
                        Job::Embed {
                            normalize: true,
                            ..
                        }
                    ) {
                        normalize(&mut embedding);
                    }
                    Output::Embedding(embedding)
                })
                .collect())
        }
        (Job::FillMask { top_k, targets, .. }, Head::MaskedLm) => {
            let texts: Vec<&str> = group.iter().map(|job| fill_mask_text(job)).collect();
            let options = FillMaskOptions {
                top_k: *top_k,
                targets: targets.clone(),
            };
            let answers = fill_masks(&model.encoder, &texts, &options, device)?.value;
            Ok(answers.into_iter().map(Output::Masks).collect())
        }
        (Job::Classify { raw, .. }, Head::Classifier(classifier)) => {
            let inputs: Vec<_> = group.iter().map(|job| classify_input(job)).collect();
            let scores = label_scores(classifier, &inputs, *raw, device)?;
            Ok(scores.into_iter().map(Output::Scores).collect())
        }
        (Job::Tag { .. }, Head::Tagger(tagger)) => {
            let inputs: Vec<Vec<String>> = group.iter().map(|job| tag_words(job)).collect();
            let words = word_probabilities(tagger, &inputs, device)?;
            Ok(words.into_iter().map(Output::Words).collect())
        }
        _ => Err(ApiError::new(
            ErrorKind::NotSupported,
            "the model cannot serve this route",
        )),
    }
}

fn embed_line(job: &Job) -> EncodeLine {
    let Job::Embed { ids, .. } = job else {
        unreachable!("grouped by kind")
    };
    EncodeLine::Ids {
        input_ids: ids.iter().map(|&id| i64::from(id)).collect(),
        attention_mask: None,
        token_type_ids: None,
    }
}

fn fill_mask_text(job: &Job) -> &str {
    let Job::FillMask { text, .. } = job else {
        unreachable!("grouped by kind")
    };
    text
}

fn classify_input(job: &Job) -> roformer_infer::pipelines::ClassifyInput {
    let Job::Classify { input, .. } = job else {
        unreachable!("grouped by kind")
    };
    input.clone()
}

fn tag_words(job: &Job) -> Vec<String> {
    let Job::Tag { words } = job else {
        unreachable!("grouped by kind")
    };
    words.clone()
}

/// Scales `v` to unit length (left as it is when zero).
fn normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in v {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}
