//! Tests of the exponentiated-gradient reduction with a cheap base learner.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

/// Weighted one-feature threshold per group: within each group it predicts `x >= t` with the
/// `t` of least weighted error. It reads the group, like a model with the sensitive feature as
/// an input, so parity is within its reach.
struct GroupStumps {
    features: Vec<f64>,
    groups: Vec<usize>,
    /// Rows of each group, sorted by feature.
    sorted: Vec<Vec<usize>>,
}

/// The group stumps' model: one threshold per group.
#[derive(Debug, Clone, PartialEq)]
struct Thresholds(Vec<f64>);

impl GroupStumps {
    fn new(features: &[f64], groups: &[String]) -> Self {
        let index = GroupIndex::new(groups);
        let mut sorted = vec![Vec::new(); index.len()];
        for (row, &group) in index.ids.iter().enumerate() {
            sorted[group].push(row);
        }
        for rows in &mut sorted {
            rows.sort_by(|&a, &b| features[a].total_cmp(&features[b]));
        }
        Self { features: features.to_vec(), groups: index.ids, sorted }
    }
}

impl BaseLearner for GroupStumps {
    type Model = Thresholds;

    fn fit(
        &mut self,
        labels: &[bool],
        weights: &[f64],
    ) -> Result<LearnerFit<Thresholds>, Box<dyn std::error::Error + Send + Sync>> {
        let mut thresholds = Vec::new();
        for rows in &self.sorted {
            // Threshold below every row: everything positive, so the error is the negatives.
            let mut error: f64 = rows.iter().filter(|&&r| !labels[r]).map(|&r| weights[r]).sum();
            let (mut best_error, mut best) = (error, f64::NEG_INFINITY);
            for (i, &row) in rows.iter().enumerate() {
                // Raising the threshold past this row makes it negative.
                error += if labels[row] { weights[row] } else { -weights[row] };
                let next = rows.get(i + 1).map_or(f64::INFINITY, |&r| self.features[r]);
                if next > self.features[row] && error < best_error {
                    best_error = error;
                    best = next;
                }
            }
            thresholds.push(best);
        }
        let predictions = self.features.iter().zip(&self.groups).map(|(&x, &g)| x >= thresholds[g]).collect();
        Ok(LearnerFit { model: Thresholds(thresholds), predictions })
    }
}

/// Group `a` (two thirds of the rows) has feature `x ~ U(-2, 2)`, group `b` `x ~ U(-1.2, 2.8)`;
/// the label is `x + U(-1, 1) > 0.6` in both. The best thresholds select about 40% of `a` and
/// 60% of `b`, a demographic parity gap of about 0.2.
fn synthetic(rows: usize, seed: u64) -> (Vec<f64>, Vec<bool>, Vec<String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut features, mut labels, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for row in 0..rows {
        let in_b = row % 3 == 0;
        let x = rng.random_range(-2.0..2.0) + if in_b { 0.8 } else { 0.0 };
        labels.push(x + rng.random_range(-1.0..1.0) > 0.6);
        features.push(x);
        groups.push(if in_b { "b" } else { "a" }.to_string());
    }
    (features, labels, groups)
}

/// Selection rate of each group under a randomised classifier, in expectation.
fn expected_selection_rates(outcome: &ReductionOutcome<Thresholds>, features: &[f64], groups: &[String]) -> (f64, f64) {
    let index = GroupIndex::new(groups);
    let mut sums = [(0.0, 0.0); 2];
    for (row, &group) in index.ids.iter().enumerate() {
        let predictions: Vec<bool> = outcome.models.iter().map(|m| features[row] >= m.0[group]).collect();
        sums[group].0 += outcome.classifier.positive_probability(&predictions);
        sums[group].1 += 1.0;
    }
    (sums[0].0 / sums[0].1, sums[1].0 / sums[1].1)
}

#[test]
fn demographic_parity_gap_shrinks_to_tolerance() {
    let (features, labels, groups) = synthetic(3000, 1);
    let mut learner = GroupStumps::new(&features, &groups);
    let config = ExponentiatedGradientConfig::default();
    let outcome = exponentiated_gradient(&config, &mut learner, &labels, &groups, None).unwrap();
    let summary = &outcome.summary;

    // The first best response is the unconstrained best: a gap of about 0.2 between the groups, so
    // group a's rate is about 0.13 below the overall rate.
    let first = summary.history[0];
    assert!(first.max_violation > 0.1, "{first:?}");
    assert!(summary.gap < first.gap / 10.0, "gap {} after {}", summary.gap, first.gap);
    assert!(summary.max_violation <= config.tolerance + 0.002, "violation {}", summary.max_violation);

    let (a, b) = expected_selection_rates(&outcome, &features, &groups);
    assert!((a - b).abs() <= 2.0 * config.tolerance + 0.004, "selection rates {a} and {b}");
    let weights_sum: f64 = outcome.classifier.weights.iter().sum();
    assert!((weights_sum - 1.0).abs() < 1e-12);
    assert_eq!(outcome.models.len(), outcome.classifier.weights.len());
    assert!(summary.base_learner_fits <= 2 * config.max_iterations);
}

#[test]
fn equalized_odds_violation_ends_within_bound() {
    let (features, labels, groups) = synthetic(3000, 2);
    let mut learner = GroupStumps::new(&features, &groups);
    let config = ExponentiatedGradientConfig { constraint: Constraint::EqualizedOdds, ..Default::default() };
    let outcome = exponentiated_gradient(&config, &mut learner, &labels, &groups, None).unwrap();
    let summary = &outcome.summary;
    assert!(summary.history[0].max_violation > 2.0 * config.tolerance, "{:?}", summary.history[0]);
    // In Agarwal et al.'s analysis, a ν-approximate saddle point violates the constraints by at
    // most ε + (1 + 2ν) / B.
    let bound = config.tolerance + (1.0 + 2.0 * summary.gap) / summary.config.bound.unwrap();
    assert!(summary.max_violation <= bound, "violation {} above {bound}", summary.max_violation);
    assert!(summary.error < 0.5, "error {}", summary.error);
}

#[test]
fn lagrangian_gap_shrinks_over_iterations() {
    let (features, labels, groups) = synthetic(2000, 3);
    let mut learner = GroupStumps::new(&features, &groups);
    let config = ExponentiatedGradientConfig { gap_threshold: Some(0.0), max_iterations: 40, ..Default::default() };
    let outcome = exponentiated_gradient(&config, &mut learner, &labels, &groups, None).unwrap();
    let gaps: Vec<f64> = outcome.summary.history.iter().map(|i| i.gap).collect();
    assert_eq!(gaps.len(), 40, "a threshold of 0 runs every iteration");
    assert!(!outcome.summary.converged);
    let early = gaps[..5].iter().copied().fold(f64::INFINITY, f64::min);
    let late = gaps[35..].iter().copied().fold(f64::INFINITY, f64::min);
    assert!(late < early / 2.0, "gaps {gaps:?}");
    assert_eq!(outcome.summary.gap, gaps.iter().copied().fold(f64::INFINITY, f64::min));
}

#[test]
fn same_seed_gives_same_predictions() {
    let (features, labels, groups) = synthetic(1500, 4);
    let config = ExponentiatedGradientConfig::default();
    let run = || {
        let mut learner = GroupStumps::new(&features, &groups);
        exponentiated_gradient(&config, &mut learner, &labels, &groups, None).unwrap()
    };
    let (first, second) = (run(), run());
    assert_eq!(first.classifier, second.classifier);
    assert_eq!(first.models, second.models);
    let index = GroupIndex::new(&groups);
    let predict = |outcome: &ReductionOutcome<Thresholds>, seed: u64| -> Vec<bool> {
        let draws = RowDraws::new(seed);
        (0..features.len())
            .map(|row| {
                let votes: Vec<bool> = outcome.models.iter().map(|m| features[row] >= m.0[index.ids[row]]).collect();
                outcome.classifier.predict(&votes, row as u64, &draws)
            })
            .collect()
    };
    assert_eq!(predict(&first, 9), predict(&second, 9));
    assert!(first.models.len() > 1, "a single model would make the seed irrelevant");
    assert_ne!(predict(&first, 9), predict(&first, 10));
}

#[test]
fn fair_data_stops_at_once() {
    // Both groups have the same feature distribution, so the first best response already meets the
    // constraint and the gap is 0 at the first iteration.
    let (features, labels, _) = synthetic(900, 5);
    let groups: Vec<String> = (0..features.len()).map(|row| if row % 2 == 0 { "a" } else { "b" }.to_string()).collect();
    let mut learner = GroupStumps::new(&features, &groups);
    let config = ExponentiatedGradientConfig { tolerance: 0.1, ..Default::default() };
    let outcome = exponentiated_gradient(&config, &mut learner, &labels, &groups, None).unwrap();
    assert!(outcome.summary.converged);
    assert_eq!(outcome.summary.history.len(), 1);
    assert_eq!(outcome.summary.base_learner_fits, 1);
    assert_eq!(outcome.classifier.weights, vec![1.0]);
}

struct Failing;

impl BaseLearner for Failing {
    type Model = ();

    fn fit(&mut self, _: &[bool], _: &[f64]) -> Result<LearnerFit<()>, Box<dyn std::error::Error + Send + Sync>> {
        Err("the loss diverged".into())
    }
}

#[test]
fn bad_settings_and_inputs_are_rejected() {
    let labels = [true, false, true, true];
    let groups = ["a", "a", "b", "b"].map(String::from).to_vec();
    let run = |config: ExponentiatedGradientConfig, labels: &[bool]| {
        exponentiated_gradient(&config, &mut Failing, labels, &groups, None).unwrap_err()
    };
    for tolerance in [0.0, -0.01, f64::INFINITY] {
        let error = run(ExponentiatedGradientConfig { tolerance, ..Default::default() }, &labels);
        assert!(matches!(error, FairnessError::InvalidTolerance(_)), "{error}");
    }
    let error = run(ExponentiatedGradientConfig { max_iterations: 0, ..Default::default() }, &labels);
    assert!(error.to_string().contains("maximum iterations"), "{error}");
    let equalized_odds = ExponentiatedGradientConfig { constraint: Constraint::EqualizedOdds, ..Default::default() };
    assert_eq!(
        run(equalized_odds, &labels),
        FairnessError::SingleClassGroup {
            group: "b".into(),
            missing: "negative",
            constraint: Constraint::EqualizedOdds
        }
    );
    assert_eq!(run(equalized_odds, &[]), FairnessError::MissingLabels { constraint: Constraint::EqualizedOdds });
    assert_eq!(
        run(ExponentiatedGradientConfig::default(), &labels),
        FairnessError::BaseLearner { fit: 1, message: "the loss diverged".into() }
    );
}
