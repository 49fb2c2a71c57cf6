//! Audit tests against Fairlearn's documented example and hand-derived values.

use crate::FairnessError;
use crate::audit::{AuditOptions, Predictions, SensitiveFeature, audit};

fn bools(values: &[u8]) -> Vec<bool> {
    values.iter().map(|&v| v == 1).collect()
}

fn close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-4, "expected {expected}, got {actual}");
}

/// The example of Fairlearn's user guide, "Common fairness metrics" (Fairlearn 0.15 docs).
struct FairlearnExample {
    y_true: Vec<bool>,
    y_pred: Vec<bool>,
    groups: SensitiveFeature,
}

fn fairlearn_example() -> FairlearnExample {
    let groups = "b,b,a,b,b,c,c,c,a,a,c,a,b,c,c,b,c,c".split(',').map(String::from).collect();
    FairlearnExample {
        y_true: bools(&[0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]),
        y_pred: bools(&[0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0]),
        groups: SensitiveFeature { name: "group".to_string(), groups },
    }
}

fn no_bootstrap() -> AuditOptions {
    AuditOptions { bootstrap_resamples: 0, ..AuditOptions::default() }
}

#[test]
fn fairlearn_documentation_example_between_groups() {
    let example = fairlearn_example();
    let predictions = Predictions { y_true: &example.y_true, y_pred: &example.y_pred, scores: None, weights: None };
    let audits = audit(predictions, &[example.groups], &no_bootstrap()).unwrap();
    let between = audits["group"].between_groups;

    // Values printed by Fairlearn's documentation for this example.
    close(between.demographic_parity_difference, 0.25);
    close(between.demographic_parity_ratio, 0.6667);
    close(between.equalized_odds_difference, 1.0);
    close(between.equalized_odds_ratio, 0.0);
}

#[test]
fn fairlearn_example_group_rates() {
    let example = fairlearn_example();
    let predictions = Predictions { y_true: &example.y_true, y_pred: &example.y_pred, scores: None, weights: None };
    let audits = audit(predictions, &[example.groups], &no_bootstrap()).unwrap();
    let groups = &audits["group"].groups;

    // Derived by hand: group a has rows (1,1) (1,0) (0,1) (0,1) as (label, prediction).
    close(groups["a"].selection_rate, 0.75);
    close(groups["a"].true_positive_rate, 0.5);
    close(groups["a"].false_positive_rate, 1.0);
    assert!(groups["a"].precision.is_finite());
    close(groups["b"].selection_rate, 0.5);
    close(groups["b"].true_positive_rate, 0.6);
    close(groups["b"].false_positive_rate, 0.0);
    close(groups["c"].true_positive_rate, 0.4);
    close(groups["c"].false_positive_rate, 2.0 / 3.0);
    assert_eq!(groups["c"].count, 8);
}

#[test]
fn fairlearn_example_to_overall() {
    // Overall: selection rate 10/18, TPR 6/12, FPR 4/6, all derived by hand from the rows.
    let example = fairlearn_example();
    let predictions = Predictions { y_true: &example.y_true, y_pred: &example.y_pred, scores: None, weights: None };
    let audits = audit(predictions, &[example.groups], &no_bootstrap()).unwrap();
    let to_overall = audits["group"].to_overall;

    // Selection rates 0.75, 0.5, 0.5 against 10/18: the worst gap is 0.75 - 10/18 = 7/36, and the
    // worst ratio is (10/18) / 0.75 = 20/27 after inverting the ratio above 1.
    close(to_overall.demographic_parity_difference, 7.0 / 36.0);
    close(to_overall.demographic_parity_ratio, 20.0 / 27.0);
    // TPR 0.5, 0.6, 0.4 against 0.5: gap 0.1, worst ratio 0.4 / 0.5 = 0.8.
    close(to_overall.equal_opportunity_difference, 0.1);
    close(to_overall.equal_opportunity_ratio, 0.8);
    // FPR 1, 0, 2/3 against 2/3: gap 2/3 (group b), ratio 0 (group b); these dominate the TPR.
    close(to_overall.equalized_odds_difference, 2.0 / 3.0);
    close(to_overall.equalized_odds_ratio, 0.0);
}

#[test]
fn disparate_impact_flag_uses_four_fifths() {
    let example = fairlearn_example();
    let predictions = Predictions { y_true: &example.y_true, y_pred: &example.y_pred, scores: None, weights: None };
    let audits = audit(predictions, &[example.groups], &no_bootstrap()).unwrap();
    close(audits["group"].between_groups.disparate_impact_ratio, 2.0 / 3.0);
    assert!(audits["group"].disparate_impact_below_four_fifths);
}

#[test]
fn group_without_positives_is_undefined_not_zero() {
    // Group "x" has only negatives: its TPR is undefined and must not count as 0.
    let y_true = bools(&[0, 0, 1, 1, 0]);
    let y_pred = bools(&[1, 0, 1, 0, 0]);
    let groups = ["x", "x", "y", "y", "y"].map(String::from).to_vec();
    let feature = SensitiveFeature { name: "g".into(), groups };
    let predictions = Predictions { y_true: &y_true, y_pred: &y_pred, scores: None, weights: None };
    let audits = audit(predictions, &[feature], &no_bootstrap()).unwrap();
    let audit = &audits["g"];

    assert!(audit.groups["x"].true_positive_rate.is_nan());
    assert_eq!(audit.groups["x"].undefined["true_positive_rate"], "group has no actual positives");
    // Only group y defines a TPR, so the TPR difference is 0 rather than 0.5.
    assert_eq!(audit.between_groups.equal_opportunity_difference, 0.0);
    // FPR: x has 1/2, y has 0/1.
    close(audit.between_groups.equalized_odds_difference, 0.5);
}

#[test]
fn single_row_group_gets_defined_result() {
    let y_true = bools(&[1, 0, 1]);
    let y_pred = bools(&[1, 0, 0]);
    let groups = ["solo", "pair", "pair"].map(String::from).to_vec();
    let feature = SensitiveFeature { name: "g".into(), groups };
    let predictions = Predictions { y_true: &y_true, y_pred: &y_pred, scores: None, weights: None };
    let options = AuditOptions { bootstrap_resamples: 50, ..AuditOptions::default() };
    let audits = audit(predictions, &[feature], &options).unwrap();
    let solo = &audits["g"].groups["solo"];

    assert_eq!(solo.count, 1);
    assert_eq!(solo.selection_rate, 1.0);
    assert!(solo.false_positive_rate.is_nan());
    assert!(audits["g"].confidence_intervals.is_some());
}

#[test]
fn sample_weights_change_rates() {
    // Weighting row 0 three times: group a selects 3 of 4 units of weight.
    let y_true = bools(&[1, 0, 1, 0]);
    let y_pred = bools(&[1, 0, 0, 0]);
    let weights = [3.0, 1.0, 1.0, 1.0];
    let groups = ["a", "a", "b", "b"].map(String::from).to_vec();
    let feature = SensitiveFeature { name: "g".into(), groups };
    let predictions = Predictions { y_true: &y_true, y_pred: &y_pred, scores: None, weights: Some(&weights) };
    let audits = audit(predictions, &[feature], &no_bootstrap()).unwrap();

    close(audits["g"].groups["a"].selection_rate, 0.75);
    close(audits["g"].groups["a"].weight, 4.0);
    close(audits["g"].between_groups.demographic_parity_difference, 0.75);
}

#[test]
fn intersectional_groups_are_audited() {
    let y_true = bools(&[1, 0, 1, 0]);
    let y_pred = bools(&[1, 1, 0, 0]);
    let sex = SensitiveFeature { name: "sex".into(), groups: ["F", "F", "M", "M"].map(String::from).to_vec() };
    let race = SensitiveFeature { name: "race".into(), groups: ["u", "v", "u", "v"].map(String::from).to_vec() };
    let predictions = Predictions { y_true: &y_true, y_pred: &y_pred, scores: None, weights: None };
    let audits = audit(predictions, &[sex, race], &no_bootstrap()).unwrap();

    let both = &audits["sex & race"];
    assert_eq!(both.columns, vec!["sex".to_string(), "race".to_string()]);
    assert_eq!(both.groups.len(), 4);
    assert_eq!(both.groups["F, u"].selection_rate, 1.0);
    assert_eq!(both.groups["M, v"].selection_rate, 0.0);
}

#[test]
fn chinese_group_labels_work() {
    let y_true = bools(&[1, 0, 1, 0]);
    let y_pred = bools(&[1, 0, 1, 1]);
    let feature =
        SensitiveFeature { name: "性别".into(), groups: ["男", "男", "女", "女"].map(String::from).to_vec() };
    let predictions = Predictions { y_true: &y_true, y_pred: &y_pred, scores: None, weights: None };
    let audits = audit(predictions, &[feature], &no_bootstrap()).unwrap();
    close(audits["性别"].groups["女"].selection_rate, 1.0);
    close(audits["性别"].between_groups.demographic_parity_difference, 0.5);
}

#[test]
fn bootstrap_is_seeded_and_covers_estimate() {
    let example = fairlearn_example();
    let predictions = Predictions { y_true: &example.y_true, y_pred: &example.y_pred, scores: None, weights: None };
    let options = AuditOptions { bootstrap_resamples: 400, seed: 7, ..AuditOptions::default() };
    let first = audit(predictions, std::slice::from_ref(&example.groups), &options).unwrap();
    let second = audit(predictions, &[example.groups], &options).unwrap();

    let first_ci = first["group"].confidence_intervals.as_ref().unwrap();
    let second_ci = second["group"].confidence_intervals.as_ref().unwrap();
    let [lower, upper] = first_ci.between_groups["demographic_parity_difference"];
    assert_eq!([lower, upper], second_ci.between_groups["demographic_parity_difference"]);
    assert!(lower <= 0.25, "interval [{lower}, {upper}] starts above 0.25");
    assert!(upper >= 0.25, "interval [{lower}, {upper}] ends below 0.25");
    let [rate_lower, rate_upper] = first_ci.groups["c"]["selection_rate"];
    assert!(rate_lower < 0.5, "lower bound {rate_lower}");
    assert!(rate_upper > 0.5, "upper bound {rate_upper}");
}

#[test]
fn per_group_roc_auc_with_scores() {
    let y_true = bools(&[0, 1, 0, 1]);
    let y_pred = bools(&[0, 1, 1, 0]);
    let scores = [0.1, 0.9, 0.8, 0.2];
    let feature = SensitiveFeature { name: "g".into(), groups: ["a", "a", "b", "b"].map(String::from).to_vec() };
    let predictions = Predictions { y_true: &y_true, y_pred: &y_pred, scores: Some(&scores), weights: None };
    let audits = audit(predictions, &[feature], &no_bootstrap()).unwrap();
    assert_eq!(audits["g"].groups["a"].roc_auc, Some(1.0));
    assert_eq!(audits["g"].groups["b"].roc_auc, Some(0.0));
}

#[test]
fn rejects_mismatched_lengths() {
    let feature = SensitiveFeature { name: "g".into(), groups: vec!["a".into()] };
    let predictions = Predictions { y_true: &[true, false], y_pred: &[true, false], scores: None, weights: None };
    let error = audit(predictions, &[feature], &no_bootstrap()).unwrap_err();
    assert!(matches!(error, FairnessError::LengthMismatch { expected: 2, found: 1, .. }));
}

#[test]
fn rejects_negative_weight() {
    let feature = SensitiveFeature { name: "g".into(), groups: vec!["a".into(), "b".into()] };
    let predictions =
        Predictions { y_true: &[true, false], y_pred: &[true, false], scores: None, weights: Some(&[1.0, -1.0]) };
    let error = audit(predictions, &[feature], &no_bootstrap()).unwrap_err();
    assert_eq!(error, FairnessError::InvalidWeight { row: 1, value: -1.0 });
}

#[test]
fn rejects_empty_input() {
    let predictions = Predictions { y_true: &[], y_pred: &[], scores: None, weights: None };
    assert_eq!(audit(predictions, &[], &no_bootstrap()).unwrap_err(), FairnessError::Empty);
}
