//! Entity-level scores for BIO labels, as CoNLL-2000's `conlleval` (and seqeval's
//! default mode) count them: an entity is a maximal run `B-X I-X …` (an `I-X` that does
//! not continue an `X` starts one), and a predicted entity is correct only when its type
//! and its words are exactly a true entity's.

use std::collections::BTreeSet;

use serde::Serialize;

/// An entity: its type and its words.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Entity {
    /// The type (`PER` for `B-PER`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its first word's index.
    pub start: usize,
    /// One past its last word's index.
    pub end: usize,
}

/// Precision, recall and F1 over entities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EntityScores {
    /// Correct predicted entities over predicted entities.
    pub precision: f64,
    /// Correct predicted entities over true entities.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
}

/// Precision, recall and F1 of `correct` hits among `predicted` predictions of `actual`
/// true items; a ratio over zero is 0, and so is F1 when precision and recall both are.
pub fn precision_recall_f1(correct: usize, predicted: usize, actual: usize) -> (f64, f64, f64) {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (precision, recall) = (ratio(correct, predicted), ratio(correct, actual));
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    (precision, recall, f1)
}

/// Whether `labels` are BIO labels: each `O`, `B-…` or `I-…`, at least one not `O`.
pub fn is_bio(labels: &[String]) -> bool {
    labels
        .iter()
        .all(|l| l == "O" || l.starts_with("B-") || l.starts_with("I-"))
        && labels.iter().any(|l| l != "O")
}

/// The entities of one sentence's labels. A label that is not BIO ends any entity.
pub fn entities<S: AsRef<str>>(labels: &[S]) -> Vec<Entity> {
    let mut found = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for (index, label) in labels.iter().enumerate() {
        let label = label.as_ref();
        let (begins, kind) = match (label.strip_prefix("B-"), label.strip_prefix("I-")) {
            (Some(kind), _) => (true, Some(kind)),
            (_, Some(kind)) => (false, Some(kind)),
            _ => (false, None),
        };
        let continues = !begins && open.as_ref().map(|(k, _)| k.as_str()) == kind;
        if !continues {
            if let Some((kind, start)) = open.take() {
                found.push(Entity {
                    kind,
                    start,
                    end: index,
                });
            }
            open = kind.map(|k| (k.to_string(), index));
        }
    }
    if let Some((kind, start)) = open {
        found.push(Entity {
            kind,
            start,
            end: labels.len(),
        });
    }
    found
}

/// Entity precision, recall and F1 of predicted label sequences against the true ones
/// (sentence by sentence).
pub fn entity_scores<S: AsRef<str>>(predicted: &[Vec<S>], target: &[Vec<S>]) -> EntityScores {
    assert_eq!(predicted.len(), target.len(), "one prediction per sentence");
    let (mut correct, mut predicted_count, mut target_count) = (0usize, 0usize, 0usize);
    for (p, t) in predicted.iter().zip(target) {
        let p: BTreeSet<Entity> = entities(p).into_iter().collect();
        let t: BTreeSet<Entity> = entities(t).into_iter().collect();
        correct += p.intersection(&t).count();
        predicted_count += p.len();
        target_count += t.len();
    }
    let (precision, recall, f1) = precision_recall_f1(correct, predicted_count, target_count);
    EntityScores {
        precision,
        recall,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::*;

    fn entity(kind: &str, words: Range<usize>) -> Entity {
        Entity {
            kind: kind.into(),
            start: words.start,
            end: words.end,
        }
    }

    #[test]
    fn runs_follow_conlleval() {
        let labels = [
            "B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-PER", "B-PER",
        ];
        assert_eq!(
            entities(&labels),
            [
                entity("PER", 0..2),
                entity("LOC", 3..5),
                entity("LOC", 5..6),
                entity("PER", 6..7),
                entity("PER", 7..8),
            ]
        );
        assert!(entities(&["O", "O"]).is_empty());
    }

    #[test]
    fn scores_match_hand_counts() {
        // True: PER 0..2, LOC 3..4 | ORG 0..1. Predicted: PER 0..1 (wrong span), LOC
        // 3..4 | ORG 0..1, PER 2..3. Correct 2 of 4 predicted, 2 of 3 true.
        let target = vec![
            vec!["B-PER", "I-PER", "O", "B-LOC"],
            vec!["B-ORG", "O", "O"],
        ];
        let predicted = vec![
            vec!["B-PER", "O", "O", "B-LOC"],
            vec!["B-ORG", "O", "I-PER"],
        ];
        let s = entity_scores(&predicted, &target);
        assert!((s.precision - 0.5).abs() < 1e-12);
        assert!((s.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.f1 - 2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0)).abs() < 1e-12);
        let perfect = entity_scores(&target, &target);
        assert_eq!(
            (perfect.precision, perfect.recall, perfect.f1),
            (1.0, 1.0, 1.0)
        );
    }

    #[test]
    fn bio_detection() {
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_bio(&labels(&["B-PER", "I-PER", "O"])));
        assert!(!is_bio(&labels(&["O"])));
        assert!(!is_bio(&labels(&["NOUN", "VERB"])));
    }
}
