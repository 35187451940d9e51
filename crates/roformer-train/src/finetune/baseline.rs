//! Baselines a fine-tuned classifier should beat, on the same validation examples and
//! the same tokens it sees: always predicting the most frequent training label, and a
//! bag-of-words multinomial naive Bayes (add-one smoothing) over the token ids of each
//! input as the classifier truncates it (`task.max_seq_len`, special tokens excluded).

use crate::error::TrainError;
use crate::finetune::config::FinetuneConfig;
use crate::finetune::scores::{Scores, scores};
use crate::finetune::splits::{LabelledSplits, labelled_splits};
use roformer_infer::inputs::pair_input;
use roformer_infer::model_dir::load_tokenizer;

/// The baselines' scores on the validation examples.
#[derive(Debug, Clone)]
pub struct Baselines {
    /// The labels, by index.
    pub labels: Vec<String>,
    /// Training and validation examples.
    pub examples: (usize, usize),
    /// Always the most frequent training label.
    pub majority: Scores,
    /// Bag-of-words naive Bayes.
    pub bag_of_words: Scores,
}

/// Scores the baselines for the task of `config` (its data, labels and `max_seq_len`,
/// and the tokenizer of its `init_from` model).
pub fn baselines(config: &FinetuneConfig) -> Result<Baselines, TrainError> {
    let LabelledSplits {
        train: train_rows,
        validation: valid_rows,
        labels,
    } = labelled_splits(config)?;
    let tokenizer = load_tokenizer(&config.task.init_from)?;
    let special = tokenizer.special();
    let is_special = |id: u32| [special.cls, special.sep, special.pad].contains(&id);
    let encode = |rows: &[crate::finetune::LabelledExample]| {
        rows.iter()
            .map(|row| {
                let input = pair_input(
                    &tokenizer,
                    &row.text,
                    row.text_pair.as_deref(),
                    config.task.max_seq_len,
                )?;
                let tokens: Vec<u32> = input
                    .ids
                    .into_iter()
                    .filter(|&id| !is_special(id))
                    .collect();
                let label = labels
                    .iter()
                    .position(|l| *l == row.label)
                    .expect("labels were checked");
                Ok((tokens, label))
            })
            .collect::<Result<Vec<_>, TrainError>>()
    };
    let train = encode(&train_rows)?;
    let valid = encode(&valid_rows)?;
    let targets: Vec<usize> = valid.iter().map(|(_, label)| *label).collect();

    let classes = labels.len();
    let mut class_counts = vec![0usize; classes];
    for (_, label) in &train {
        class_counts[*label] += 1;
    }
    let majority_label = (0..classes)
        .max_by_key(|&c| (class_counts[c], std::cmp::Reverse(c)))
        .expect("at least two labels");
    let majority = scores(&vec![majority_label; valid.len()], &targets, classes);

    let model = NaiveBayes::fit(&train, classes, tokenizer.vocab_size());
    let predicted: Vec<usize> = valid
        .iter()
        .map(|(tokens, _)| model.predict(tokens))
        .collect();
    Ok(Baselines {
        labels,
        examples: (train.len(), valid.len()),
        majority,
        bag_of_words: scores(&predicted, &targets, classes),
    })
}

/// Multinomial naive Bayes over token ids with add-one (Laplace) smoothing.
struct NaiveBayes {
    /// `ln P(class)`.
    log_prior: Vec<f64>,
    /// `ln P(token | class)`, `[class][token]`.
    log_likelihood: Vec<Vec<f64>>,
}

impl NaiveBayes {
    fn fit(examples: &[(Vec<u32>, usize)], classes: usize, vocab: usize) -> Self {
        let mut counts = vec![vec![0u64; vocab]; classes];
        let mut documents = vec![0u64; classes];
        for (tokens, label) in examples {
            documents[*label] += 1;
            for &token in tokens {
                counts[*label][token as usize] += 1;
            }
        }
        let total_documents: u64 = documents.iter().sum();
        let log_prior = documents
            .iter()
            .map(|&d| ((d + 1) as f64 / (total_documents + classes as u64) as f64).ln())
            .collect();
        let log_likelihood = counts
            .iter()
            .map(|row| {
                let total: u64 = row.iter().sum();
                let denominator = (total + vocab as u64) as f64;
                row.iter()
                    .map(|&c| ((c + 1) as f64 / denominator).ln())
                    .collect()
            })
            .collect();
        Self {
            log_prior,
            log_likelihood,
        }
    }

    /// The class of highest posterior (the first on a tie).
    fn predict(&self, tokens: &[u32]) -> usize {
        let score = |class: usize| {
            self.log_prior[class]
                + tokens
                    .iter()
                    .map(|&t| self.log_likelihood[class][t as usize])
                    .sum::<f64>()
        };
        (0..self.log_prior.len())
            .map(|class| (class, score(class)))
            .fold((0, f64::NEG_INFINITY), |best, (class, s)| {
                if s > best.1 { (class, s) } else { best }
            })
            .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens seen only with one class decide; the posterior follows the counts by hand:
    /// class 0 saw token 1 twice and token 2 never (of 2 tokens, vocabulary 3), so
    /// `P(2 | 0) = 1/5` against `P(2 | 1) = 3/6`.
    #[test]
    fn naive_bayes_follows_the_smoothed_counts() {
        let examples = vec![(vec![1, 1], 0), (vec![2, 2], 1), (vec![0], 1)];
        let model = NaiveBayes::fit(&examples, 2, 3);
        assert!((model.log_likelihood[0][2] - (1.0f64 / 5.0).ln()).abs() < 1e-12);
        assert!((model.log_likelihood[1][2] - (3.0f64 / 6.0).ln()).abs() < 1e-12);
        assert!((model.log_prior[1] - (3.0f64 / 5.0).ln()).abs() < 1e-12);
        assert_eq!(model.predict(&[1]), 0);
        assert_eq!(model.predict(&[2]), 1);
        assert_eq!(model.predict(&[1, 1, 2]), 0);
    }
}
