//! The token-budget batching of a model's queue (as text-embeddings-inference's
//! `core/src/queue.rs`): entries in arrival order, a batch taken from the front as long as
//! its padded size (entries × longest) stays within `--max-batch-tokens` and its count
//! within `--max-batch-requests`. An entry whose client has gone is dropped, not run.

use std::collections::VecDeque;

use crate::job::Entry;

/// The limits of a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Tokens of a batch, padding counted.
    pub max_tokens: usize,
    /// Entries of a batch.
    pub max_entries: usize,
}

/// Entries waiting for the model.
#[derive(Default)]
pub struct Queue {
    entries: VecDeque<Entry>,
}

impl Queue {
    /// Adds an entry at the back.
    pub fn push(&mut self, entry: Entry) {
        self.entries.push_back(entry);
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The next batch: entries from the front while the batch fits `limits` (the first one
    /// always, however long). Entries whose client has gone are dropped on the way.
    pub fn next_batch(&mut self, limits: BatchLimits) -> Vec<Entry> {
        let mut batch: Vec<Entry> = Vec::new();
        let mut longest = 0;
        while let Some(entry) = self.entries.front() {
            if entry.reply.is_closed() {
                self.entries.pop_front();
                continue;
            }
            let wider = longest.max(entry.tokens);
            let fits =
                batch.len() < limits.max_entries && wider * (batch.len() + 1) <= limits.max_tokens;
            if !batch.is_empty() && !fits {
                break;
            }
            longest = wider;
            batch.push(self.entries.pop_front().expect("looked at above"));
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Entry, Job};
    use roformer_infer::pipelines::Pooling;

    fn entry(
        tokens: usize,
    ) -> (
        Entry,
        tokio::sync::oneshot::Receiver<Result<crate::job::Answer, crate::error::ApiError>>,
    ) {
        let job = Job::Embed {
            ids: vec![0; tokens],
            pooling: Pooling::Mean,
            normalize: false,
        };
        Entry::new(job, tokens)
    }

    #[test]
    fn batches_fill_the_token_budget_with_padding_counted_and_skip_gone_clients() {
        let mut queue = Queue::default();
        let mut receivers = Vec::new();
        for tokens in [10, 30, 10, 50, 5] {
            let (entry, receiver) = entry(tokens);
            queue.push(entry);
            receivers.push(receiver);
        }
        // The fourth entry's client went away: it is dropped, never batched.
        drop(receivers.remove(3));
        let limits = BatchLimits {
            max_tokens: 90,
            max_entries: 10,
        };
        // 10, 30, 10 → 3 × 30 = 90 fits; adding 5 would make 4 × 30 = 120.
        let sizes = |batch: Vec<Entry>| batch.iter().map(|e| e.tokens).collect::<Vec<_>>();
        assert_eq!(sizes(queue.next_batch(limits)), vec![10, 30, 10]);
        assert_eq!(sizes(queue.next_batch(limits)), vec![5]);
        assert!(queue.is_empty());

        // An entry over the budget runs alone; the entry count binds too.
        for tokens in [200, 1, 1, 1] {
            let (entry, receiver) = entry(tokens);
            queue.push(entry);
            receivers.push(receiver);
        }
        let limits = BatchLimits {
            max_tokens: 90,
            max_entries: 2,
        };
        assert_eq!(sizes(queue.next_batch(limits)), vec![200]);
        assert_eq!(sizes(queue.next_batch(limits)), vec![1, 1]);
        assert_eq!(sizes(queue.next_batch(limits)), vec![1]);
    }
}
