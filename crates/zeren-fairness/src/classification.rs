//! Binary classification metrics on labels, predictions and scores.
//!
//! Definitions follow scikit-learn 1.9 (`sklearn.metrics`) so that figures can be compared
//! directly. Every metric that can be undefined (a rate over an empty set) returns `NaN`
//! instead of panicking or silently returning zero.

use serde::Serialize;

/// Confusion-matrix counts, optionally weighted by sample weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ConfusionMatrix {
    /// Predicted positive, actually positive.
    pub true_positives: f64,
    /// Predicted positive, actually negative.
    pub false_positives: f64,
    /// Predicted negative, actually negative.
    pub true_negatives: f64,
    /// Predicted negative, actually positive.
    pub false_negatives: f64,
}

impl ConfusionMatrix {
    /// Counts the four outcomes, each row weighted by `weights[i]` when weights are given.
    ///
    /// # Panics
    ///
    /// Panics if the slices differ in length; callers validate lengths at their boundary.
    pub fn from_predictions(y_true: &[bool], y_pred: &[bool], weights: Option<&[f64]>) -> Self {
        assert_eq!(y_true.len(), y_pred.len(), "labels and predictions differ in length");
        let mut matrix = ConfusionMatrix::default();
        for i in 0..y_true.len() {
            let weight = weights.map_or(1.0, |w| w[i]);
            matrix.add(y_true[i], y_pred[i], weight);
        }
        matrix
    }

    /// Adds one observation with the given weight.
    pub fn add(&mut self, actual: bool, predicted: bool, weight: f64) {
        match (actual, predicted) {
            (true, true) => self.true_positives += weight,
            (false, true) => self.false_positives += weight,
            (false, false) => self.true_negatives += weight,
            (true, false) => self.false_negatives += weight,
        }
    }

    /// Total weight (the row count when unweighted).
    pub fn total(&self) -> f64 {
        self.true_positives + self.false_positives + self.true_negatives + self.false_negatives
    }

    /// Weight of actual positives, `TP + FN`.
    pub fn actual_positives(&self) -> f64 {
        self.true_positives + self.false_negatives
    }

    /// Weight of actual negatives, `TN + FP`.
    pub fn actual_negatives(&self) -> f64 {
        self.true_negatives + self.false_positives
    }

    /// Selection rate `(TP + FP) / total`: the share predicted positive.
    pub fn selection_rate(&self) -> f64 {
        ratio(self.true_positives + self.false_positives, self.total())
    }

    /// Accuracy `(TP + TN) / total`.
    pub fn accuracy(&self) -> f64 {
        ratio(self.true_positives + self.true_negatives, self.total())
    }

    /// True positive rate (recall) `TP / (TP + FN)`; `NaN` without actual positives.
    pub fn true_positive_rate(&self) -> f64 {
        ratio(self.true_positives, self.actual_positives())
    }

    /// False positive rate `FP / (FP + TN)`; `NaN` without actual negatives.
    pub fn false_positive_rate(&self) -> f64 {
        ratio(self.false_positives, self.actual_negatives())
    }

    /// False negative rate `FN / (TP + FN)`; `NaN` without actual positives.
    pub fn false_negative_rate(&self) -> f64 {
        ratio(self.false_negatives, self.actual_positives())
    }

    /// True negative rate (specificity) `TN / (TN + FP)`; `NaN` without actual negatives.
    pub fn true_negative_rate(&self) -> f64 {
        ratio(self.true_negatives, self.actual_negatives())
    }

    /// Precision `TP / (TP + FP)`; `NaN` when nothing is predicted positive.
    pub fn precision(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_positives)
    }

    /// Balanced accuracy, the mean of TPR and TNR (scikit-learn's `balanced_accuracy_score`).
    pub fn balanced_accuracy(&self) -> f64 {
        (self.true_positive_rate() + self.true_negative_rate()) / 2.0
    }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 { numerator / denominator } else { f64::NAN }
}

/// Computes the area under the ROC curve from scores, with tied scores counted as half.
///
/// This is the Mann-Whitney U statistic divided by `P * N`, which equals scikit-learn's
/// `roc_auc_score` (trapezoidal area). Returns `NaN` when only one class is present.
pub fn roc_auc(y_true: &[bool], scores: &[f64]) -> f64 {
    assert_eq!(y_true.len(), scores.len(), "labels and scores differ in length");
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));

    // Sum of the mid-ranks of the positives; ties share the mean of their ranks.
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let mid_rank = (start + end + 1) as f64 / 2.0;
        for &index in &order[start..end] {
            if y_true[index] {
                positive_rank_sum += mid_rank;
            }
        }
        start = end;
    }

    let positives = y_true.iter().filter(|&&y| y).count() as f64;
    let negatives = y_true.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    (positive_rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Computes the ROC curve: `(false-positive rate, true-positive rate)` at every distinct score
/// used as a threshold (predict positive when score >= threshold), from (0, 0) to (1, 1).
///
/// The points equal scikit-learn's `roc_curve(..., drop_intermediate=False)` with its leading
/// (0, 0). Tied scores form one step, so the curve's trapezoidal area is [`roc_auc`]. Returns an
/// empty curve when only one class is present.
pub fn roc_curve(y_true: &[bool], scores: &[f64]) -> Vec<(f64, f64)> {
    assert_eq!(y_true.len(), scores.len(), "labels and scores differ in length");
    let positives = y_true.iter().filter(|&&y| y).count() as f64;
    let negatives = y_true.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut curve = vec![(0.0, 0.0)];
    let (mut true_positives, mut false_positives) = (0.0, 0.0);
    for (position, &index) in order.iter().enumerate() {
        if y_true[index] {
            true_positives += 1.0;
        } else {
            false_positives += 1.0;
        }
        let last_of_tie = order.get(position + 1).is_none_or(|&next| scores[next] != scores[index]);
        if last_of_tie {
            curve.push((false_positives / negatives, true_positives / positives));
        }
    }
    curve
}

/// Computes the mean binary cross-entropy of probabilities, in nats.
///
/// Probabilities are clipped to `[eps, 1 - eps]` with `eps` the `f64` machine epsilon, as
/// scikit-learn's `log_loss` does for float64 input. Returns `NaN` for empty input.
pub fn log_loss(y_true: &[bool], probabilities: &[f64]) -> f64 {
    assert_eq!(y_true.len(), probabilities.len(), "labels and probabilities differ in length");
    if y_true.is_empty() {
        return f64::NAN;
    }
    let eps = f64::EPSILON;
    let total: f64 = y_true
        .iter()
        .zip(probabilities)
        .map(|(&y, &p)| {
            let p = p.clamp(eps, 1.0 - eps);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / y_true.len() as f64
}

/// Test-split evaluation of a scoring binary classifier.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Rows evaluated.
    pub rows: usize,
    /// Share of correct predictions.
    pub accuracy: f64,
    /// Mean of true positive rate and true negative rate.
    pub balanced_accuracy: f64,
    /// Area under the ROC curve of the scores.
    pub roc_auc: f64,
    /// Mean binary cross-entropy of the probabilities, in nats.
    pub log_loss: f64,
    /// Precision of the positive class.
    pub precision: f64,
    /// Recall (true positive rate) of the positive class.
    pub recall: f64,
    /// Counts of the four outcomes.
    pub confusion_matrix: ConfusionMatrix,
}

/// Evaluates probabilities against labels, predicting positive at `probability >= threshold`.
pub fn evaluate(y_true: &[bool], probabilities: &[f64], threshold: f64) -> Evaluation {
    let y_pred: Vec<bool> = probabilities.iter().map(|&p| p >= threshold).collect();
    evaluate_predictions(y_true, &y_pred, probabilities)
}

/// Evaluates predictions against labels, with the probabilities of a positive prediction for
/// ROC AUC and log loss. For a randomised classifier, `y_pred` are the drawn predictions and
/// `probabilities` the chances of drawing a positive.
///
/// # Panics
///
/// Panics if the slices differ in length; callers validate lengths at their boundary.
pub fn evaluate_predictions(y_true: &[bool], y_pred: &[bool], probabilities: &[f64]) -> Evaluation {
    let matrix = ConfusionMatrix::from_predictions(y_true, y_pred, None);
    Evaluation {
        rows: y_true.len(),
        accuracy: matrix.accuracy(),
        balanced_accuracy: matrix.balanced_accuracy(),
        roc_auc: roc_auc(y_true, probabilities),
        log_loss: log_loss(y_true, probabilities),
        precision: matrix.precision(),
        recall: matrix.true_positive_rate(),
        confusion_matrix: matrix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bools(values: &[u8]) -> Vec<bool> {
        values.iter().map(|&v| v == 1).collect()
    }

    #[test]
    fn confusion_matrix_rates() {
        let y_true = bools(&[1, 1, 1, 0, 0, 0, 0, 1]);
        let y_pred = bools(&[1, 0, 1, 1, 0, 0, 0, 1]);
        let matrix = ConfusionMatrix::from_predictions(&y_true, &y_pred, None);
        assert_eq!(matrix.true_positives, 3.0);
        assert_eq!(matrix.false_negatives, 1.0);
        assert_eq!(matrix.false_positives, 1.0);
        assert_eq!(matrix.true_negatives, 3.0);
        assert_eq!(matrix.accuracy(), 0.75);
        assert_eq!(matrix.true_positive_rate(), 0.75);
        assert_eq!(matrix.false_positive_rate(), 0.25);
        assert_eq!(matrix.selection_rate(), 0.5);
        assert_eq!(matrix.precision(), 0.75);
    }

    #[test]
    fn roc_curve_matches_scikit_learn_example() {
        // scikit-learn's `roc_curve` documentation example, with drop_intermediate=False:
        // fpr [0, 0, 0.5, 0.5, 1], tpr [0, 0.5, 0.5, 1, 1].
        let y_true = bools(&[0, 0, 1, 1]);
        let curve = roc_curve(&y_true, &[0.1, 0.4, 0.35, 0.8]);
        assert_eq!(curve, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        let area: f64 = curve.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        assert_eq!(area, roc_auc(&y_true, &[0.1, 0.4, 0.35, 0.8]));
    }

    #[test]
    fn roc_curve_takes_tied_scores_as_one_step() {
        let curve = roc_curve(&bools(&[1, 0, 1, 0]), &[0.5, 0.5, 0.9, 0.1]);
        assert_eq!(curve, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        assert!(roc_curve(&bools(&[1, 1]), &[0.2, 0.3]).is_empty());
    }

    #[test]
    fn rates_without_positives_are_nan() {
        let matrix = ConfusionMatrix::from_predictions(&[false, false], &[false, true], None);
        assert!(matrix.true_positive_rate().is_nan());
        assert!(matrix.false_negative_rate().is_nan());
        assert_eq!(matrix.false_positive_rate(), 0.5);
    }

    #[test]
    fn weighted_confusion_matrix() {
        let matrix = ConfusionMatrix::from_predictions(&[true, false], &[true, true], Some(&[3.0, 1.0]));
        assert_eq!(matrix.precision(), 0.75);
        assert_eq!(matrix.total(), 4.0);
    }

    #[test]
    fn roc_auc_matches_scikit_learn() {
        // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        let auc = roc_auc(&bools(&[0, 0, 1, 1]), &[0.1, 0.4, 0.35, 0.8]);
        assert!((auc - 0.75).abs() < 1e-12, "auc = {auc}");
    }

    #[test]
    fn roc_auc_counts_ties_as_half() {
        // One positive and one negative with the same score: area 0.5.
        assert_eq!(roc_auc(&bools(&[0, 1]), &[0.3, 0.3]), 0.5);
        // Positives score 0.2, 0.9, 0.5 and negatives 0.2, 0.5. Of the six pairs, three are
        // ordered correctly and two are ties: (3 + 2 * 0.5) / 6.
        let auc = roc_auc(&bools(&[0, 1, 1, 0, 1]), &[0.2, 0.2, 0.9, 0.5, 0.5]);
        assert!((auc - 4.0 / 6.0).abs() < 1e-12, "auc = {auc}");
    }

    #[test]
    fn roc_auc_with_one_class_is_nan() {
        assert!(roc_auc(&bools(&[1, 1]), &[0.2, 0.9]).is_nan());
    }

    #[test]
    fn log_loss_matches_scikit_learn() {
        // sklearn.metrics.log_loss([1, 0, 0, 1], [0.9, 0.1, 0.2, 0.65]) == 0.21616187468057912
        let loss = log_loss(&bools(&[1, 0, 0, 1]), &[0.9, 0.1, 0.2, 0.65]);
        assert!((loss - 0.216_161_874_680_579_12).abs() < 1e-12, "loss = {loss}");
    }

    #[test]
    fn log_loss_clips_certain_mistakes() {
        let loss = log_loss(&[true], &[0.0]);
        assert!(loss.is_finite());
        assert!((loss - -f64::EPSILON.ln()).abs() < 1e-9);
    }
}
