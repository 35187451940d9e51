//! Classification scores: accuracy and macro-F1 (the unweighted mean over classes of the
//! per-class F1, the harmonic mean of precision and recall; a class with no predictions
//! and no examples scores 0, as scikit-learn's `zero_division=0` does).

use roformer_infer::entities::precision_recall_f1;

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ClassScores {
    /// Correct predictions of the class over all predictions of it.
    pub precision: f64,
    /// Correct predictions of the class over its examples.
    pub recall: f64,
    /// Harmonic mean of the two (0 when both are 0).
    pub f1: f64,
}

/// The scores of predictions against targets (class indices below `classes`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    /// Fraction predicted exactly.
    pub accuracy: f64,
    /// Mean of the per-class F1.
    pub macro_f1: f64,
    /// Per class, by index.
    pub per_class: Vec<ClassScores>,
    /// `confusion[target][predicted]`: how many examples of each class were predicted as
    /// each class.
    pub confusion: Vec<Vec<usize>>,
    /// Entity-level scores, for token classification with BIO labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<roformer_infer::entities::EntityScores>,
}

/// Scores `predicted` against `target` (equal lengths) over `classes` classes.
pub fn scores(predicted: &[usize], target: &[usize], classes: usize) -> Scores {
    assert_eq!(predicted.len(), target.len(), "one prediction per target");
    let (mut true_pos, mut predicted_count, mut target_count) = (
        vec![0usize; classes],
        vec![0usize; classes],
        vec![0usize; classes],
    );
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&p, &t) in predicted.iter().zip(target) {
        confusion[t][p] += 1;
        predicted_count[p] += 1;
        target_count[t] += 1;
        if p == t {
            true_pos[p] += 1;
        }
    }
    let per_class: Vec<ClassScores> = (0..classes)
        .map(|c| {
            let (precision, recall, f1) =
                precision_recall_f1(true_pos[c], predicted_count[c], target_count[c]);
            ClassScores {
                precision,
                recall,
                f1,
            }
        })
        .collect();
    Scores {
        accuracy: true_pos.iter().sum::<usize>() as f64 / target.len().max(1) as f64,
        macro_f1: per_class.iter().map(|c| c.f1).sum::<f64>() / classes.max(1) as f64,
        per_class,
        confusion,
        entities: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        // Targets 0 0 0 1 1 2; predictions 0 0 1 1 2 2.
        // Class 0: tp 2, predicted 2, actual 3 → P 1, R 2/3, F1 0.8.
        // Class 1: tp 1, predicted 2, actual 2 → P 1/2, R 1/2, F1 1/2.
        // Class 2: tp 1, predicted 2, actual 1 → P 1/2, R 1, F1 2/3.
        // Class 3: never seen → 0.
        let s = scores(&[0, 0, 1, 1, 2, 2], &[0, 0, 0, 1, 1, 2], 4);
        assert!((s.accuracy - 4.0 / 6.0).abs() < 1e-12);
        let f1: Vec<f64> = s.per_class.iter().map(|c| c.f1).collect();
        for (got, want) in f1.iter().zip([0.8, 0.5, 2.0 / 3.0, 0.0]) {
            assert!((got - want).abs() < 1e-12, "{f1:?}");
        }
        assert!((s.per_class[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.per_class[2].precision - 0.5).abs() < 1e-12);
        assert!((s.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 4.0).abs() < 1e-12);
        let row = |counts: [usize; 4]| counts.to_vec();
        assert_eq!(
            s.confusion,
            [
                row([2, 1, 0, 0]),
                row([0, 1, 1, 0]),
                row([0, 0, 1, 0]),
                row([0; 4])
            ]
        );
    }
}
