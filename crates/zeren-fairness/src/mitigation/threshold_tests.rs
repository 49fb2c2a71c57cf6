//! Tests of the threshold optimiser on hand-derived and synthetic scores.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::classification::ConfusionMatrix;

/// Scores of two groups with different base rates and score quality: group `a` is 30% positive,
/// group `b` 60%; scores are noisy logistic functions of the label.
fn synthetic(rows: usize, seed: u64) -> (Vec<f64>, Vec<bool>, Vec<String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut scores, mut labels, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for row in 0..rows {
        let in_b = row % 3 == 0;
        let label = rng.random::<f64>() < if in_b { 0.6 } else { 0.3 };
        let separation = if in_b { 1.0 } else { 2.0 };
        let logit: f64 = separation * if label { 1.0 } else { -1.0 } + rng.random_range(-2.0..2.0);
        scores.push(1.0 / (1.0 + (-logit).exp()));
        labels.push(label);
        groups.push(if in_b { "b" } else { "a" }.to_string());
    }
    (scores, labels, groups)
}

fn config(constraint: Constraint, tolerance: Option<f64>) -> ThresholdConfig {
    ThresholdConfig { constraint, objective: Objective::Accuracy, tolerance }
}

/// Accuracy of the better constant classifier: always positive or always negative.
fn constant_accuracy(labels: &[bool]) -> f64 {
    let positive_share = labels.iter().filter(|&&y| y).count() as f64 / labels.len() as f64;
    positive_share.max(1.0 - positive_share)
}

/// Best accuracy of one plain threshold per group, with no constraint, by trying every score.
fn best_unconstrained_accuracy(scores: &[f64], labels: &[bool], groups: &[String]) -> f64 {
    let mut correct = 0usize;
    for group in ["a", "b"] {
        let rows: Vec<usize> = (0..scores.len()).filter(|&i| groups[i] == group).collect();
        let mut thresholds: Vec<f64> = rows.iter().map(|&i| scores[i]).collect();
        thresholds.push(f64::INFINITY);
        let best =
            thresholds.iter().map(|&t| rows.iter().filter(|&&i| (scores[i] >= t) == labels[i]).count()).max().unwrap();
        correct += best;
    }
    correct as f64 / scores.len() as f64
}

fn predictions(optimizer: &ThresholdOptimizer, scores: &[f64], groups: &[String], seed: u64) -> Vec<bool> {
    let draws = RowDraws::new(seed);
    (0..scores.len()).map(|row| optimizer.predict(scores[row], &groups[row], row as u64, &draws).unwrap()).collect()
}

#[test]
fn demographic_parity_hand_example() {
    // Group a: (0.9 +) (0.7 +) (0.4 -) (0.2 -), separable. Group b: (0.8 +) (0.6 -) (0.3 -) (0.1 -).
    // At a common selection rate r in [0.25, 0.5], a's hull gains a true positive where b's
    // gains a false positive, so every such r scores 7 of 8: a perfect, b one mistake.
    let scores = [0.9, 0.7, 0.4, 0.2, 0.8, 0.6, 0.3, 0.1];
    let labels = [true, true, false, false, true, false, false, false];
    let groups = ["a", "a", "a", "a", "b", "b", "b", "b"].map(String::from).to_vec();
    let optimizer =
        ThresholdOptimizer::fit(&config(Constraint::DemographicParity, None), &scores, &labels, &groups, None).unwrap();
    assert!((optimizer.objective_value - 0.875).abs() < 1e-12, "{}", optimizer.objective_value);
    assert!(optimizer.disparity.abs() < 1e-12, "{}", optimizer.disparity);
    let a = &optimizer.groups["a"].fitted;
    let b = &optimizer.groups["b"].fitted;
    assert!((a.selection_rate - b.selection_rate).abs() < 1e-12);
    assert!((0.25..=0.5).contains(&a.selection_rate), "{}", a.selection_rate);
}

#[test]
fn demographic_parity_holds_on_fitted_rows() {
    let (scores, labels, groups) = synthetic(6000, 1);
    let optimizer =
        ThresholdOptimizer::fit(&config(Constraint::DemographicParity, None), &scores, &labels, &groups, None).unwrap();
    let a = optimizer.groups["a"].fitted.selection_rate;
    let b = optimizer.groups["b"].fitted.selection_rate;
    assert!((a - b).abs() < 1e-9, "expected selection rates {a} and {b}");
    assert!(optimizer.objective_value > constant_accuracy(&labels) + 0.05, "{}", optimizer.objective_value);
    assert!(optimizer.objective_value <= best_unconstrained_accuracy(&scores, &labels, &groups) + 1e-12);

    // The drawn predictions: 2,000 rows of b and 4,000 of a give a standard error of the
    // difference in selection rates below 0.013, so 0.04 is three errors.
    let predicted = predictions(&optimizer, &scores, &groups, 3);
    let rate = |group: &str| {
        let rows: Vec<usize> = (0..scores.len()).filter(|&i| groups[i] == group).collect();
        rows.iter().filter(|&&i| predicted[i]).count() as f64 / rows.len() as f64
    };
    assert!((rate("a") - rate("b")).abs() < 0.04, "drawn selection rates {} and {}", rate("a"), rate("b"));
}

#[test]
fn equalized_odds_holds_on_fitted_rows() {
    let (scores, labels, groups) = synthetic(6000, 2);
    let optimizer =
        ThresholdOptimizer::fit(&config(Constraint::EqualizedOdds, None), &scores, &labels, &groups, None).unwrap();
    let a = optimizer.groups["a"].fitted;
    let b = optimizer.groups["b"].fitted;
    assert!((a.true_positive_rate - b.true_positive_rate).abs() < 1e-9, "TPR {a:?} {b:?}");
    assert!((a.false_positive_rate - b.false_positive_rate).abs() < 1e-9, "FPR {a:?} {b:?}");
    assert!(optimizer.disparity < 1e-9);
    assert!(optimizer.objective_value > constant_accuracy(&labels) + 0.05, "{}", optimizer.objective_value);
    // Group b's scores are the weaker ones, so it rides its hull while a mixes in a coin.
    assert!(a.true_positive_rate > a.false_positive_rate);
}

#[test]
fn equalized_odds_matches_a_grid_search() {
    // The best common point, searched on a 200 x 200 grid of (FPR, TPR) in the region below
    // both groups' hulls, is never better than the exact vertex search.
    let (scores, labels, groups) = synthetic(1500, 4);
    let optimizer =
        ThresholdOptimizer::fit(&config(Constraint::EqualizedOdds, None), &scores, &labels, &groups, None).unwrap();
    let index = GroupIndex::new(&groups);
    let curves: Vec<GroupCurve> = (0..2)
        .map(|g| {
            let rows: Vec<(f64, bool, f64)> =
                (0..scores.len()).filter(|&i| index.ids[i] == g).map(|i| (scores[i], labels[i], 1.0)).collect();
            GroupCurve::new(&rows)
        })
        .collect();
    let positives = labels.iter().filter(|&&y| y).count() as f64;
    let negatives = labels.len() as f64 - positives;
    let mut best: f64 = 0.0;
    for i in 0..=200 {
        let fpr = i as f64 / 200.0;
        let ceiling = curves.iter().map(|c| c.at(c.at_false_positive_rate(fpr)).1 / c.positives).fold(1.0, f64::min);
        for j in 0..=200 {
            let tpr = j as f64 / 200.0;
            if tpr >= fpr && tpr <= ceiling {
                best = best.max((positives * tpr + negatives * (1.0 - fpr)) / labels.len() as f64);
            }
        }
    }
    assert!(optimizer.objective_value >= best - 1e-9, "exact {} grid {best}", optimizer.objective_value);
    assert!(optimizer.objective_value - best < 0.01, "exact {} grid {best}", optimizer.objective_value);
}

#[test]
fn true_positive_rate_parity_within_tolerance() {
    let (scores, labels, groups) = synthetic(3000, 5);
    let exact =
        ThresholdOptimizer::fit(&config(Constraint::TruePositiveRateParity, None), &scores, &labels, &groups, None)
            .unwrap();
    let relaxed = ThresholdOptimizer::fit(
        &config(Constraint::TruePositiveRateParity, Some(0.05)),
        &scores,
        &labels,
        &groups,
        None,
    )
    .unwrap();
    assert!(exact.disparity < 1e-9, "{}", exact.disparity);
    assert!(relaxed.disparity <= 0.05 + 1e-9, "{}", relaxed.disparity);
    assert!(relaxed.objective_value >= exact.objective_value - 1e-12);
    assert!(relaxed.objective_value > constant_accuracy(&labels));
}

#[test]
fn loose_tolerance_gives_best_threshold_per_group() {
    let (scores, labels, groups) = synthetic(800, 6);
    let optimizer =
        ThresholdOptimizer::fit(&config(Constraint::DemographicParity, Some(1.0)), &scores, &labels, &groups, None)
            .unwrap();
    let best = best_unconstrained_accuracy(&scores, &labels, &groups);
    assert!((optimizer.objective_value - best).abs() < 1e-12, "{} against {best}", optimizer.objective_value);
}

#[test]
fn demographic_parity_with_tolerance_gains_accuracy() {
    let (scores, labels, groups) = synthetic(3000, 7);
    let exact =
        ThresholdOptimizer::fit(&config(Constraint::DemographicParity, None), &scores, &labels, &groups, None).unwrap();
    let relaxed =
        ThresholdOptimizer::fit(&config(Constraint::DemographicParity, Some(0.1)), &scores, &labels, &groups, None)
            .unwrap();
    assert!(relaxed.disparity <= 0.1 + 1e-9, "{}", relaxed.disparity);
    assert!(relaxed.objective_value > exact.objective_value, "{} {}", relaxed.objective_value, exact.objective_value);
}

#[test]
fn balanced_accuracy_objective_is_reported() {
    let (scores, labels, groups) = synthetic(3000, 8);
    let config = ThresholdConfig {
        constraint: Constraint::DemographicParity,
        objective: Objective::BalancedAccuracy,
        tolerance: None,
    };
    let optimizer = ThresholdOptimizer::fit(&config, &scores, &labels, &groups, None).unwrap();
    let probabilities: Vec<f64> =
        (0..scores.len()).map(|row| optimizer.rule(&groups[row]).unwrap().positive_probability(scores[row])).collect();
    // Expected confusion matrix: each row counts as positive with its probability.
    let mut matrix = ConfusionMatrix::default();
    for (&label, &p) in labels.iter().zip(&probabilities) {
        matrix.add(label, true, p);
        matrix.add(label, false, 1.0 - p);
    }
    assert!((optimizer.objective_value - matrix.balanced_accuracy()).abs() < 1e-12);
    assert!(optimizer.objective_value > 0.6, "{}", optimizer.objective_value);
    assert!(optimizer.disparity < 1e-9);
}

#[test]
fn sample_weights_count_like_repeated_rows() {
    let (scores, labels, groups) = synthetic(600, 9);
    let weights: Vec<f64> = (0..scores.len()).map(|i| if i % 2 == 0 { 2.0 } else { 1.0 }).collect();
    let mut repeated = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..scores.len() {
        for _ in 0..weights[i] as usize {
            repeated.0.push(scores[i]);
            repeated.1.push(labels[i]);
            repeated.2.push(groups[i].clone());
        }
    }
    let config = config(Constraint::EqualizedOdds, None);
    let weighted = ThresholdOptimizer::fit(&config, &scores, &labels, &groups, Some(&weights)).unwrap();
    let copies = ThresholdOptimizer::fit(&config, &repeated.0, &repeated.1, &repeated.2, None).unwrap();
    assert!((weighted.objective_value - copies.objective_value).abs() < 1e-9);
    assert_eq!(weighted.groups["a"].upper, copies.groups["a"].upper);
}

#[test]
fn same_seed_gives_same_predictions() {
    let (scores, labels, groups) = synthetic(2000, 10);
    let config = config(Constraint::EqualizedOdds, None);
    let first = ThresholdOptimizer::fit(&config, &scores, &labels, &groups, None).unwrap();
    let second = ThresholdOptimizer::fit(&config, &scores, &labels, &groups, None).unwrap();
    assert_eq!(first, second);
    assert_eq!(predictions(&first, &scores, &groups, 42), predictions(&second, &scores, &groups, 42));
    // Some rows have a probability strictly between 0 and 1, so another seed changes them.
    assert_ne!(predictions(&first, &scores, &groups, 42), predictions(&first, &scores, &groups, 43));
}

#[test]
fn unseen_group_is_named() {
    let (scores, labels, groups) = synthetic(300, 11);
    let optimizer =
        ThresholdOptimizer::fit(&config(Constraint::DemographicParity, None), &scores, &labels, &groups, None).unwrap();
    let error = optimizer.predict(0.5, "c", 0, &RowDraws::new(0)).unwrap_err();
    assert_eq!(error, FairnessError::UnknownGroup { group: "c".into(), known: "a, b".into() });
    assert!(error.to_string().contains("group 'c' was not seen"), "{error}");
}

#[test]
fn json_round_trip_keeps_infinite_thresholds() {
    // Thresholds of +inf and -inf (select no row, select every row) have no JSON number.
    let scores = [0.9, 0.1, 0.8, 0.2];
    let labels = [true, false, true, false];
    let groups = ["a", "a", "b", "b"].map(String::from).to_vec();
    let mut optimizer =
        ThresholdOptimizer::fit(&config(Constraint::DemographicParity, None), &scores, &labels, &groups, None).unwrap();
    optimizer.groups.get_mut("a").unwrap().upper = f64::INFINITY;
    optimizer.groups.get_mut("b").unwrap().lower = f64::NEG_INFINITY;
    let json = serde_json::to_string(&optimizer).unwrap();
    assert!(json.contains("\"upper\":\"inf\""), "{json}");
    assert!(json.contains("\"lower\":\"-inf\""), "{json}");
    let back: ThresholdOptimizer = serde_json::from_str(&json).unwrap();
    assert_eq!(back, optimizer);
}

#[test]
fn bad_inputs_are_rejected() {
    let scores = [0.9, 0.1, 0.8, 0.2];
    let labels = [true, false, true, true];
    let groups = ["a", "a", "b", "b"].map(String::from).to_vec();
    let fit = |config: ThresholdConfig, scores: &[f64], labels: &[bool]| {
        ThresholdOptimizer::fit(&config, scores, labels, &groups, None).unwrap_err()
    };
    assert_eq!(
        fit(config(Constraint::EqualizedOdds, None), &scores, &labels),
        FairnessError::SingleClassGroup {
            group: "b".into(),
            missing: "negative",
            constraint: Constraint::EqualizedOdds
        }
    );
    assert_eq!(
        fit(config(Constraint::EqualizedOdds, None), &scores, &[]),
        FairnessError::MissingLabels { constraint: Constraint::EqualizedOdds }
    );
    for tolerance in [0.0, -0.1, f64::NAN] {
        let error = fit(config(Constraint::DemographicParity, Some(tolerance)), &scores, &labels);
        assert!(matches!(error, FairnessError::InvalidTolerance(_)), "{error}");
    }
    let error = fit(config(Constraint::DemographicParity, None), &[0.9, f64::NAN, 0.8, 0.2], &labels);
    assert!(matches!(error, FairnessError::InvalidScore { row: 1, .. }), "{error}");
}

#[test]
fn hull_with_every_point_fits_quickly() {
    // Each distinct score has one positive of weight w_k and one negative of weight 1, with w_k
    // falling, so the ROC curve is strictly concave and every one of its points is a hull
    // vertex: 5,000 per group, and 20,000 candidate rates, each looked up by binary search.
    let per_group = 5000;
    let (mut scores, mut labels, mut groups, mut weights) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (group, shift) in [("a", 0.0), ("b", 0.1)] {
        for k in 0..per_group {
            let score = 1.0 - k as f64 / per_group as f64 + shift;
            for label in [true, false] {
                scores.push(score);
                labels.push(label);
                groups.push(group.to_string());
                weights.push(if label { 2.0 - k as f64 / per_group as f64 } else { 1.0 });
            }
        }
    }
    let index = GroupIndex::new(&groups);
    let rows: Vec<(f64, bool, f64)> =
        (0..scores.len()).filter(|&i| index.ids[i] == 0).map(|i| (scores[i], labels[i], weights[i])).collect();
    assert_eq!(GroupCurve::new(&rows).hull.len(), per_group + 1);

    let config = config(Constraint::DemographicParity, Some(0.02));
    let optimizer = ThresholdOptimizer::fit(&config, &scores, &labels, &groups, Some(&weights)).unwrap();
    assert!(optimizer.disparity <= 0.02 + 1e-9, "{}", optimizer.disparity);
}
