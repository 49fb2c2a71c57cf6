//! zeren's audit against values computed by Fairlearn 0.15.0 and scikit-learn 1.9.1 on the same
//! predictions (see `fixtures/README.md`).

use std::path::PathBuf;

use serde_json::Value;
use zeren_fairness::audit::{AuditOptions, Predictions, SensitiveFeature, audit};
use zeren_fairness::classification::{ConfusionMatrix, log_loss, roc_auc};

/// Both tools compute in float64 from the same counts; only summation order can differ.
const TOLERANCE: f64 = 1e-9;

struct Fixture {
    y_true: Vec<bool>,
    y_pred: Vec<bool>,
    scores: Vec<f64>,
    sensitive: Vec<SensitiveFeature>,
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn load(name: &str, sensitive: &[&str]) -> Fixture {
    let mut reader = csv::Reader::from_path(fixture_path(&format!("{name}_predictions.csv"))).unwrap();
    let headers = reader.headers().unwrap().clone();
    let index = |column: &str| headers.iter().position(|h| h == column).unwrap();
    let mut fixture = Fixture {
        y_true: vec![],
        y_pred: vec![],
        scores: vec![],
        sensitive: sensitive.iter().map(|s| SensitiveFeature { name: s.to_string(), groups: vec![] }).collect(),
    };
    for record in reader.records() {
        let record = record.unwrap();
        fixture.y_true.push(&record[index("y_true")] == "1");
        fixture.y_pred.push(&record[index("y_pred")] == "1");
        fixture.scores.push(record[index("probability")].parse().unwrap());
        for feature in &mut fixture.sensitive {
            feature.groups.push(record[index(&feature.name)].to_string());
        }
    }
    fixture
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture_path(name)).unwrap()).unwrap()
}

fn assert_close(what: &str, actual: f64, expected: f64) {
    assert!((actual - expected).abs() <= TOLERANCE, "{what}: zeren {actual}, reference {expected}");
}

fn check_against_fairlearn(name: &str, sensitive: &[&str]) {
    let fixture = load(name, sensitive);
    let expected = reference(&format!("{name}_fairlearn.json"));
    let predictions = Predictions { y_true: &fixture.y_true, y_pred: &fixture.y_pred, scores: None, weights: None };
    let options = AuditOptions { bootstrap_resamples: 0, ..AuditOptions::default() };
    let audits = audit(predictions, &fixture.sensitive, &options).unwrap();

    let mut compared = 0;
    for column in sensitive {
        let ours = &audits[*column];
        let theirs = &expected[column];
        for (group, rates) in theirs["by_group"].as_object().unwrap() {
            let metrics = &ours.groups[group];
            assert_close(
                &format!("{column}/{group} selection rate"),
                metrics.selection_rate,
                rates["selection_rate"].as_f64().unwrap(),
            );
            assert_close(&format!("{column}/{group} accuracy"), metrics.accuracy, rates["accuracy"].as_f64().unwrap());
            // Fairlearn reports 0 where a group has no positives (or negatives); zeren reports NaN.
            if !metrics.true_positive_rate.is_nan() {
                assert_close(
                    &format!("{column}/{group} TPR"),
                    metrics.true_positive_rate,
                    rates["tpr"].as_f64().unwrap(),
                );
            }
            if !metrics.false_positive_rate.is_nan() {
                assert_close(
                    &format!("{column}/{group} FPR"),
                    metrics.false_positive_rate,
                    rates["fpr"].as_f64().unwrap(),
                );
            }
            compared += 4;
        }
        let pairs = [
            (
                "demographic_parity_difference",
                ours.between_groups.demographic_parity_difference,
                ours.to_overall.demographic_parity_difference,
            ),
            (
                "demographic_parity_ratio",
                ours.between_groups.demographic_parity_ratio,
                ours.to_overall.demographic_parity_ratio,
            ),
            (
                "equalized_odds_difference",
                ours.between_groups.equalized_odds_difference,
                ours.to_overall.equalized_odds_difference,
            ),
            ("equalized_odds_ratio", ours.between_groups.equalized_odds_ratio, ours.to_overall.equalized_odds_ratio),
            (
                "equal_opportunity_difference",
                ours.between_groups.equal_opportunity_difference,
                ours.to_overall.equal_opportunity_difference,
            ),
            (
                "equal_opportunity_ratio",
                ours.between_groups.equal_opportunity_ratio,
                ours.to_overall.equal_opportunity_ratio,
            ),
        ];
        for (measure, between, to_overall) in pairs {
            let key = format!("{measure}.between_groups");
            assert_close(&format!("{column} {key}"), between, theirs[&key].as_f64().unwrap());
            let key = format!("{measure}.to_overall");
            assert_close(&format!("{column} {key}"), to_overall, theirs[&key].as_f64().unwrap());
            compared += 2;
        }
    }
    assert!(compared >= 40, "only {compared} values compared");
}

#[test]
fn german_audit_equals_fairlearn() {
    check_against_fairlearn("german", &["sex", "age_group"]);
}

#[test]
fn compas_audit_equals_fairlearn() {
    check_against_fairlearn("compas", &["race", "sex"]);
}

#[test]
fn classification_metrics_equal_scikit_learn() {
    let expected = reference("sklearn_metrics.json");
    for (name, sensitive) in [("german", "sex"), ("compas", "race")] {
        let fixture = load(name, &[sensitive]);
        let matrix = ConfusionMatrix::from_predictions(&fixture.y_true, &fixture.y_pred, None);
        let reference = &expected[name];
        assert_close(&format!("{name} accuracy"), matrix.accuracy(), reference["accuracy"].as_f64().unwrap());
        assert_close(
            &format!("{name} balanced accuracy"),
            matrix.balanced_accuracy(),
            reference["balanced_accuracy"].as_f64().unwrap(),
        );
        assert_close(
            &format!("{name} ROC AUC"),
            roc_auc(&fixture.y_true, &fixture.scores),
            reference["roc_auc"].as_f64().unwrap(),
        );
        assert_close(
            &format!("{name} log loss"),
            log_loss(&fixture.y_true, &fixture.scores),
            reference["log_loss"].as_f64().unwrap(),
        );
    }
}
