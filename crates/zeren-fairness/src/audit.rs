//! Group-fairness audit: per-group metrics and disparity measures.
//!
//! Every disparity measure equals Fairlearn's (`fairlearn.metrics`, version 0.15):
//!
//! - *between groups*, a difference is `max_g m(g) - min_g m(g)` and a ratio is
//!   `min_g m(g) / max_g m(g)`;
//! - *to overall*, a difference is `max_g |m(g) - m(all)|` and a ratio is
//!   `min_g r(g)` with `r(g) = m(g) / m(all)`, inverted when it exceeds 1;
//! - demographic parity compares selection rates; equal opportunity compares true positive
//!   rates; equalized odds takes the worse of the true-positive-rate and false-positive-rate
//!   measures (the larger difference, the smaller ratio);
//! - the disparate impact ratio is the demographic parity ratio between groups, flagged when it
//!   falls below the four-fifths (0.8) rule of the US EEOC Uniform Guidelines (29 CFR 1607.4 D).
//!
//! One deliberate difference: a rate over an empty set (the true positive rate of a group with
//! no actual positives) is `NaN` here, with the reason recorded, and that group is left out of
//! the disparities of that rate. Fairlearn reports such a rate as 0 through scikit-learn's
//! confusion matrix, which makes the group look maximally disadvantaged.

use std::collections::{BTreeMap, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::FairnessError;
use crate::classification::{ConfusionMatrix, roc_auc};

/// Threshold of the four-fifths rule for the disparate impact ratio.
pub const FOUR_FIFTHS: f64 = 0.8;

/// Labels, predictions and optional scores and weights of the rows being audited.
#[derive(Debug, Clone, Copy)]
pub struct Predictions<'a> {
    /// Actual outcomes, `true` for the positive label.
    pub y_true: &'a [bool],
    /// Predicted outcomes, `true` for the positive label.
    pub y_pred: &'a [bool],
    /// Scores or probabilities of the positive label, for per-group ROC AUC.
    pub scores: Option<&'a [f64]>,
    /// Non-negative sample weights; every row weighs 1 when absent.
    pub weights: Option<&'a [f64]>,
}

/// A sensitive feature: its name and the group of every row.
#[derive(Debug, Clone)]
pub struct SensitiveFeature {
    /// Column name, such as `sex`.
    pub name: String,
    /// Group label of each row, in row order.
    pub groups: Vec<String>,
}

/// Settings of an audit.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AuditOptions {
    /// Bootstrap resamples for confidence intervals; 0 skips them.
    pub bootstrap_resamples: usize,
    /// Coverage of the confidence intervals, in (0, 1).
    pub confidence_level: f64,
    /// Seed of the bootstrap resampling, so intervals are reproducible.
    pub seed: u64,
    /// Also audit the intersection of all sensitive features when there are several.
    pub intersectional: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self { bootstrap_resamples: 200, confidence_level: 0.95, seed: 0, intersectional: true }
    }
}

/// Metrics of one group (or of all rows).
#[derive(Debug, Clone, Serialize)]
pub struct GroupMetrics {
    /// Rows in the group.
    pub count: usize,
    /// Sum of the rows' sample weights (equals `count` when unweighted).
    pub weight: f64,
    /// Weight of actual positives.
    pub actual_positives: f64,
    /// Share predicted positive.
    pub selection_rate: f64,
    /// Share predicted correctly.
    pub accuracy: f64,
    /// True positive rate (recall).
    pub true_positive_rate: f64,
    /// False positive rate.
    pub false_positive_rate: f64,
    /// False negative rate.
    pub false_negative_rate: f64,
    /// Precision of positive predictions.
    pub precision: f64,
    /// ROC AUC of the scores within the group, when scores were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    /// Reason for each `NaN` metric (written as `null` in JSON), by metric name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub undefined: BTreeMap<String, String>,
}

impl GroupMetrics {
    fn new(count: usize, matrix: &ConfusionMatrix, roc_auc: Option<f64>) -> Self {
        let mut undefined = BTreeMap::new();
        if count == 0 || matrix.total() <= 0.0 {
            undefined.insert("all".to_string(), "group has no rows with positive weight".to_string());
        } else {
            if matrix.actual_positives() <= 0.0 {
                let reason = "group has no actual positives".to_string();
                undefined.insert("true_positive_rate".to_string(), reason.clone());
                undefined.insert("false_negative_rate".to_string(), reason);
            }
            if matrix.actual_negatives() <= 0.0 {
                undefined.insert("false_positive_rate".to_string(), "group has no actual negatives".to_string());
            }
            if matrix.true_positives + matrix.false_positives <= 0.0 {
                undefined.insert("precision".to_string(), "group has no positive predictions".to_string());
            }
            if roc_auc.is_some_and(f64::is_nan) {
                undefined.insert("roc_auc".to_string(), "group has only one actual class".to_string());
            }
        }
        Self {
            count,
            weight: matrix.total(),
            actual_positives: matrix.actual_positives(),
            selection_rate: matrix.selection_rate(),
            accuracy: matrix.accuracy(),
            true_positive_rate: matrix.true_positive_rate(),
            false_positive_rate: matrix.false_positive_rate(),
            false_negative_rate: matrix.false_negative_rate(),
            precision: matrix.precision(),
            roc_auc,
            undefined,
        }
    }
}

/// The disparity measures under one aggregation.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Disparities {
    /// Difference in selection rate.
    pub demographic_parity_difference: f64,
    /// Ratio of selection rates.
    pub demographic_parity_ratio: f64,
    /// Larger of the true-positive-rate and false-positive-rate differences.
    pub equalized_odds_difference: f64,
    /// Smaller of the true-positive-rate and false-positive-rate ratios.
    pub equalized_odds_ratio: f64,
    /// Difference in true positive rate.
    pub equal_opportunity_difference: f64,
    /// Ratio of true positive rates.
    pub equal_opportunity_ratio: f64,
    /// Ratio of selection rates, the quantity the four-fifths rule tests.
    pub disparate_impact_ratio: f64,
}

/// Aggregation of per-group values into one disparity figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Compare the best and worst group.
    BetweenGroups,
    /// Compare each group with the value over all rows and take the worst.
    ToOverall,
}

impl Disparities {
    /// Computes every measure from group rates with the given aggregation.
    ///
    /// `NaN` group values are skipped, like pandas' `min` and `max`; a measure with no defined
    /// group value is `NaN`.
    pub fn compute<'a>(
        groups: impl Iterator<Item = &'a GroupMetrics> + Clone,
        overall: &GroupMetrics,
        aggregation: Aggregation,
    ) -> Self {
        let measure = |rate: fn(&GroupMetrics) -> f64| {
            let values: Vec<f64> = groups.clone().map(rate).collect();
            let overall_value = rate(overall);
            (difference(&values, overall_value, aggregation), ratio(&values, overall_value, aggregation))
        };
        let (selection_difference, selection_ratio) = measure(|g| g.selection_rate);
        let (tpr_difference, tpr_ratio) = measure(|g| g.true_positive_rate);
        let (fpr_difference, fpr_ratio) = measure(|g| g.false_positive_rate);
        Self {
            demographic_parity_difference: selection_difference,
            demographic_parity_ratio: selection_ratio,
            equalized_odds_difference: nan_propagating_max(tpr_difference, fpr_difference),
            equalized_odds_ratio: nan_propagating_min(tpr_ratio, fpr_ratio),
            equal_opportunity_difference: tpr_difference,
            equal_opportunity_ratio: tpr_ratio,
            disparate_impact_ratio: selection_ratio,
        }
    }

    fn as_array(&self) -> [f64; 7] {
        [
            self.demographic_parity_difference,
            self.demographic_parity_ratio,
            self.equalized_odds_difference,
            self.equalized_odds_ratio,
            self.equal_opportunity_difference,
            self.equal_opportunity_ratio,
            self.disparate_impact_ratio,
        ]
    }

    const NAMES: [&'static str; 7] = [
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "equalized_odds_ratio",
        "equal_opportunity_difference",
        "equal_opportunity_ratio",
        "disparate_impact_ratio",
    ];
}

fn defined(values: &[f64]) -> impl Iterator<Item = f64> + '_ {
    values.iter().copied().filter(|v| !v.is_nan())
}

fn difference(values: &[f64], overall: f64, aggregation: Aggregation) -> f64 {
    match aggregation {
        Aggregation::BetweenGroups => {
            let max = defined(values).fold(f64::NAN, f64::max);
            let min = defined(values).fold(f64::NAN, f64::min);
            max - min
        }
        Aggregation::ToOverall => defined(values).map(|v| (v - overall).abs()).fold(f64::NAN, f64::max),
    }
}

fn ratio(values: &[f64], overall: f64, aggregation: Aggregation) -> f64 {
    match aggregation {
        Aggregation::BetweenGroups => {
            let max = defined(values).fold(f64::NAN, f64::max);
            let min = defined(values).fold(f64::NAN, f64::min);
            if max > 0.0 { min / max } else { f64::NAN }
        }
        Aggregation::ToOverall => {
            if overall.is_nan() || overall <= 0.0 {
                return f64::NAN;
            }
            defined(values)
                .map(|v| {
                    let r = v / overall;
                    if r > 1.0 { 1.0 / r } else { r }
                })
                .fold(f64::NAN, f64::min)
        }
    }
}

fn nan_propagating_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

fn nan_propagating_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// A two-sided confidence interval `[lower, upper]`.
pub type Interval = [f64; 2];

/// Percentile-bootstrap confidence intervals of the disparities and the main group rates.
#[derive(Debug, Clone, Serialize)]
pub struct ConfidenceIntervals {
    /// Coverage, such as 0.95.
    pub level: f64,
    /// Number of bootstrap resamples.
    pub resamples: usize,
    /// Seed of the resampling.
    pub seed: u64,
    /// Intervals of the between-groups disparity measures, by measure name.
    pub between_groups: BTreeMap<String, Interval>,
    /// Intervals of selection rate, accuracy, TPR and FPR, by group and metric name.
    pub groups: BTreeMap<String, BTreeMap<String, Interval>>,
}

/// The audit of one sensitive feature, or of an intersection of several.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureAudit {
    /// The sensitive columns this audit groups by (several for an intersection).
    pub columns: Vec<String>,
    /// Metrics of each group, by group label.
    pub groups: BTreeMap<String, GroupMetrics>,
    /// Metrics over all rows.
    pub overall: GroupMetrics,
    /// Disparities between groups (the headline figures).
    #[serde(flatten)]
    pub between_groups: Disparities,
    /// Whether the disparate impact ratio is below the four-fifths threshold.
    pub disparate_impact_below_four_fifths: bool,
    /// Disparities of each group to the overall value.
    pub to_overall: Disparities,
    /// Bootstrap confidence intervals, when requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence_intervals: Option<ConfidenceIntervals>,
}

/// Audits predictions for each sensitive feature and, when there are several and the options
/// ask for it, for their intersection (keyed by the names joined with `" & "`, with group labels
/// joined by `", "`).
///
/// # Errors
///
/// Returns an error when the inputs are empty, differ in length, or contain a negative or
/// non-finite weight.
pub fn audit(
    predictions: Predictions<'_>,
    features: &[SensitiveFeature],
    options: &AuditOptions,
) -> Result<BTreeMap<String, FeatureAudit>, FairnessError> {
    validate(predictions, features, options)?;

    let mut audits = BTreeMap::new();
    for feature in features {
        let audit = audit_feature(predictions, vec![feature.name.clone()], &feature.groups, options);
        audits.insert(feature.name.clone(), audit);
    }

    if options.intersectional && features.len() > 1 {
        let rows = predictions.y_true.len();
        let groups: Vec<String> = (0..rows)
            .map(|row| {
                let labels: Vec<&str> = features.iter().map(|f| f.groups[row].as_str()).collect();
                labels.join(", ")
            })
            .collect();
        let columns: Vec<String> = features.iter().map(|f| f.name.clone()).collect();
        let name = columns.join(" & ");
        audits.insert(name, audit_feature(predictions, columns, &groups, options));
    }
    Ok(audits)
}

fn validate(
    predictions: Predictions<'_>,
    features: &[SensitiveFeature],
    options: &AuditOptions,
) -> Result<(), FairnessError> {
    let rows = predictions.y_true.len();
    if rows == 0 {
        return Err(FairnessError::Empty);
    }
    let mut lengths = vec![("predictions", predictions.y_pred.len())];
    if let Some(scores) = predictions.scores {
        lengths.push(("scores", scores.len()));
    }
    if let Some(weights) = predictions.weights {
        lengths.push(("sample weights", weights.len()));
    }
    for (what, length) in lengths {
        if length != rows {
            return Err(FairnessError::LengthMismatch { what: what.to_string(), expected: rows, found: length });
        }
    }
    for feature in features {
        if feature.groups.len() != rows {
            return Err(FairnessError::LengthMismatch {
                what: format!("sensitive feature '{}'", feature.name),
                expected: rows,
                found: feature.groups.len(),
            });
        }
    }
    if let Some(weights) = predictions.weights
        && let Some(row) = weights.iter().position(|w| !w.is_finite() || *w < 0.0)
    {
        return Err(FairnessError::InvalidWeight { row, value: weights[row] });
    }
    if !(options.confidence_level > 0.0 && options.confidence_level < 1.0) {
        return Err(FairnessError::InvalidConfidenceLevel(options.confidence_level));
    }
    Ok(())
}

/// Per-group confusion matrices, indexed by group id.
fn confusion_by_group(
    predictions: Predictions<'_>,
    group_ids: &[u32],
    group_count: usize,
    rows: impl Iterator<Item = usize>,
) -> (Vec<ConfusionMatrix>, ConfusionMatrix) {
    let mut matrices = vec![ConfusionMatrix::default(); group_count];
    let mut overall = ConfusionMatrix::default();
    for row in rows {
        let weight = predictions.weights.map_or(1.0, |w| w[row]);
        let actual = predictions.y_true[row];
        let predicted = predictions.y_pred[row];
        matrices[group_ids[row] as usize].add(actual, predicted, weight);
        overall.add(actual, predicted, weight);
    }
    (matrices, overall)
}

fn audit_feature(
    predictions: Predictions<'_>,
    columns: Vec<String>,
    groups: &[String],
    options: &AuditOptions,
) -> FeatureAudit {
    // Group ids follow the sorted group labels, so output order does not depend on row order.
    let mut labels: Vec<&str> = groups.iter().map(String::as_str).collect();
    labels.sort_unstable();
    labels.dedup();
    let index: HashMap<&str, u32> = labels.iter().enumerate().map(|(i, &l)| (l, i as u32)).collect();
    let group_ids: Vec<u32> = groups.iter().map(|g| index[g.as_str()]).collect();
    let rows = predictions.y_true.len();

    let (matrices, overall_matrix) = confusion_by_group(predictions, &group_ids, labels.len(), 0..rows);
    let mut counts = vec![0usize; labels.len()];
    for &id in &group_ids {
        counts[id as usize] += 1;
    }
    let group_auc = |group: Option<u32>| -> Option<f64> {
        let scores = predictions.scores?;
        let (y, s): (Vec<bool>, Vec<f64>) = (0..rows)
            .filter(|&row| group.is_none_or(|g| group_ids[row] == g))
            .map(|row| (predictions.y_true[row], scores[row]))
            .unzip();
        Some(roc_auc(&y, &s))
    };

    let mut group_metrics = BTreeMap::new();
    for (id, label) in labels.iter().enumerate() {
        let metrics = GroupMetrics::new(counts[id], &matrices[id], group_auc(Some(id as u32)));
        group_metrics.insert(label.to_string(), metrics);
    }
    let overall = GroupMetrics::new(rows, &overall_matrix, group_auc(None));

    let between_groups = Disparities::compute(group_metrics.values(), &overall, Aggregation::BetweenGroups);
    let to_overall = Disparities::compute(group_metrics.values(), &overall, Aggregation::ToOverall);
    let confidence_intervals =
        (options.bootstrap_resamples > 0).then(|| bootstrap(predictions, &group_ids, &labels, options));

    FeatureAudit {
        columns,
        groups: group_metrics,
        overall,
        disparate_impact_below_four_fifths: between_groups.disparate_impact_ratio < FOUR_FIFTHS,
        between_groups,
        to_overall,
        confidence_intervals,
    }
}

/// Percentile bootstrap (Efron and Tibshirani 1993, ch. 13): resample rows with replacement,
/// recompute the statistics, and take the `(1 - level) / 2` and `(1 + level) / 2` quantiles.
fn bootstrap(
    predictions: Predictions<'_>,
    group_ids: &[u32],
    labels: &[&str],
    options: &AuditOptions,
) -> ConfidenceIntervals {
    type Rate = fn(&ConfusionMatrix) -> f64;
    const RATES: [(&str, Rate); 4] = [
        ("selection_rate", ConfusionMatrix::selection_rate),
        ("accuracy", ConfusionMatrix::accuracy),
        ("true_positive_rate", ConfusionMatrix::true_positive_rate),
        ("false_positive_rate", ConfusionMatrix::false_positive_rate),
    ];
    let rows = predictions.y_true.len();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut disparity_samples: Vec<Vec<f64>> = vec![Vec::new(); Disparities::NAMES.len()];
    let mut rate_samples: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); RATES.len()]; labels.len()];

    for _ in 0..options.bootstrap_resamples {
        let resample = (0..rows).map(|_| rng.random_range(0..rows));
        let (matrices, overall_matrix) = confusion_by_group(predictions, group_ids, labels.len(), resample);
        let groups: Vec<GroupMetrics> =
            matrices.iter().filter(|m| m.total() > 0.0).map(|m| GroupMetrics::new(1, m, None)).collect();
        let overall = GroupMetrics::new(rows, &overall_matrix, None);
        let disparities = Disparities::compute(groups.iter(), &overall, Aggregation::BetweenGroups);
        for (samples, value) in disparity_samples.iter_mut().zip(disparities.as_array()) {
            samples.push(value);
        }
        for (group, matrix) in matrices.iter().enumerate() {
            for (metric, (_, rate)) in RATES.iter().enumerate() {
                rate_samples[group][metric].push(rate(matrix));
            }
        }
    }

    let interval = |samples: &mut Vec<f64>| percentile_interval(samples, options.confidence_level);
    let between_groups = Disparities::NAMES
        .iter()
        .zip(disparity_samples.iter_mut())
        .map(|(name, samples)| (name.to_string(), interval(samples)))
        .collect();
    let groups = labels
        .iter()
        .zip(rate_samples.iter_mut())
        .map(|(label, metrics)| {
            let intervals = RATES
                .iter()
                .zip(metrics.iter_mut())
                .map(|((name, _), samples)| (name.to_string(), interval(samples)))
                .collect();
            (label.to_string(), intervals)
        })
        .collect();

    ConfidenceIntervals {
        level: options.confidence_level,
        resamples: options.bootstrap_resamples,
        seed: options.seed,
        between_groups,
        groups,
    }
}

/// Returns the percentile interval of the defined samples, or `[NaN, NaN]` when more than half
/// of the resamples left the statistic undefined (too few rows of a group to resample).
fn percentile_interval(samples: &mut Vec<f64>, level: f64) -> Interval {
    let total = samples.len();
    samples.retain(|v| !v.is_nan());
    if samples.is_empty() || samples.len() * 2 < total {
        return [f64::NAN, f64::NAN];
    }
    samples.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    [quantile(samples, alpha), quantile(samples, 1.0 - alpha)]
}

/// Linear-interpolation quantile of sorted values (NumPy's default `linear` method).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    let fraction = position - lower as f64;
    sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
}
