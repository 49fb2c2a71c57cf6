//! Post-processing mitigation: group-specific, randomised thresholds on a model's scores.
//!
//! Hardt, Price and Srebro, "Equality of Opportunity in Supervised Learning", NeurIPS 2016,
//! Section 4. Within a group, every classifier that depends only on the score and the group
//! reaches a point of the convex hull of that group's ROC curve, and a plain threshold reaches a
//! hull vertex. A point between two neighbouring vertices needs a coin flip for the rows
//! whose scores fall between the two thresholds. The optimiser here is exact:
//!
//! - *Demographic parity* and *true positive rate parity* constrain one rate per group. Along
//!   the upper hull the rate grows and the objective is concave in it, so the best classifier at
//!   a common rate `r` takes the hull point at `r` in every group, and the best `r` is one of
//!   the rates of the groups' hull vertices. With a tolerance `t`, each group takes the rate in
//!   `[r, r + t]` nearest its own best rate, and the candidates for `r` also include every
//!   vertex rate minus `t`.
//! - *Equalized odds* needs a common point `(FPR, TPR)` inside every group's hull. The objective
//!   is linear, so the best point is a vertex of the intersection of the hulls, which this module
//!   computes by clipping one convex polygon with the edges of the others (Sutherland and
//!   Hodgman 1974) and then searching its vertices. As in Hardt et al., a group reaches the
//!   common point by mixing its hull point at that FPR with a coin that says yes with
//!   probability FPR. The tolerance is not used: the rates are equal on the fitted rows.
//!
//! Objectives and constraints are expectations over the coin flips on the fitted rows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hull::{GroupCurve, HullPoint, Vertex, first_reaching};
use super::{Constraint, GroupIndex, Objective, RowDraws, check_group_classes, validate_rows};
use crate::FairnessError;

/// Settings of the threshold optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdConfig {
    /// The constraint the group rules meet on the fitted rows.
    pub constraint: Constraint,
    /// The quantity maximised under the constraint.
    pub objective: Objective,
    /// Largest allowed difference between groups' constrained rates; `None` requires equal
    /// rates. Used by demographic parity and true positive rate parity only.
    pub tolerance: Option<f64>,
}

impl ThresholdConfig {
    /// Checks the tolerance.
    ///
    /// # Errors
    ///
    /// Returns [`FairnessError::InvalidTolerance`] for a tolerance that is not a positive number.
    pub fn validate(&self) -> Result<(), FairnessError> {
        match self.tolerance {
            Some(tolerance) if !(tolerance.is_finite() && tolerance > 0.0) => {
                Err(FairnessError::InvalidTolerance(tolerance))
            }
            _ => Ok(()),
        }
    }
}

/// Expected rates of a group under its rule on the fitted rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FittedRates {
    /// Fitted rows of the group.
    pub rows: usize,
    /// Expected share predicted positive.
    pub selection_rate: f64,
    /// Expected true positive rate; `NaN` (`null`) without actual positives.
    pub true_positive_rate: f64,
    /// Expected false positive rate; `NaN` (`null`) without actual negatives.
    pub false_positive_rate: f64,
}

/// The decision rule of one group: a score at or above `upper` is predicted positive with
/// probability `probabilities[0]`, a score in `[lower, upper)` with `probabilities[1]`, and a
/// score below `lower` with `probabilities[2]`.
///
/// A rule between two neighbouring hull vertices has probabilities `[1, p, 0]`: the mix of the
/// thresholds `upper` (with probability `1 - p`) and `lower` (with probability `p`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRule {
    /// The higher threshold; `"inf"` in JSON when no score reaches it.
    #[serde(with = "extended_float")]
    pub upper: f64,
    /// The lower threshold, at most `upper`; `"-inf"` in JSON when every score reaches it.
    #[serde(with = "extended_float")]
    pub lower: f64,
    /// Probabilities of a positive prediction above, between and below the thresholds.
    pub probabilities: [f64; 3],
    /// Expected rates of the group on the fitted rows.
    pub fitted: FittedRates,
}

impl GroupRule {
    /// Returns the probability that a row with this score is predicted positive. A NaN score
    /// compares below every threshold, so it gets the last probability.
    pub fn positive_probability(&self, score: f64) -> f64 {
        if score >= self.upper {
            self.probabilities[0]
        } else if score >= self.lower {
            self.probabilities[1]
        } else {
            self.probabilities[2]
        }
    }
}

/// Group-specific randomised thresholds that meet a fairness constraint, fitted by
/// [`ThresholdOptimizer::fit`] and serialisable to JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOptimizer {
    /// The settings it was fitted with.
    pub config: ThresholdConfig,
    /// The rule of each group, by group label.
    pub groups: BTreeMap<String, GroupRule>,
    /// Rows it was fitted on.
    pub rows: usize,
    /// Expected value of the objective on the fitted rows.
    pub objective_value: f64,
    /// Expected between-group difference of the constrained rates on the fitted rows: the
    /// selection rate for demographic parity, the true positive rate for true positive rate
    /// parity, and the larger of the TPR and FPR differences for equalized odds.
    pub disparity: f64,
}

/// One group's choice: a hull point, taken with probability `hull_share`, and otherwise a coin
/// that predicts positive with probability `coin_rate`.
#[derive(Debug, Clone, Copy)]
struct Choice {
    point: HullPoint,
    hull_share: f64,
    coin_rate: f64,
}

impl ThresholdOptimizer {
    /// Fits one rule per group to the scores of a model, so that the rules' expected predictions
    /// on these rows meet the constraint and maximise the objective among all rules that depend
    /// only on the score and the group.
    ///
    /// `scores` are any real-valued scores where higher means more likely positive, such as
    /// probabilities; `weights` are optional non-negative sample weights.
    ///
    /// # Errors
    ///
    /// Returns an error for an invalid tolerance, inputs of different lengths, no labels, or a
    /// non-finite score or weight. It also rejects a group without the actual positives (TPR
    /// parity, equalized odds) or negatives (equalized odds) that its constrained rates need, and
    /// data with a single class for the balanced-accuracy objective.
    pub fn fit(
        config: &ThresholdConfig,
        scores: &[f64],
        labels: &[bool],
        groups: &[String],
        weights: Option<&[f64]>,
    ) -> Result<Self, FairnessError> {
        config.validate()?;
        validate_rows(config.constraint, labels, groups, weights)?;
        if scores.len() != labels.len() {
            return Err(FairnessError::LengthMismatch {
                what: "scores".to_string(),
                expected: labels.len(),
                found: scores.len(),
            });
        }
        if let Some(row) = scores.iter().position(|s| !s.is_finite()) {
            return Err(FairnessError::InvalidScore { row, value: scores[row] });
        }
        let index = GroupIndex::new(groups);
        check_group_classes(config.constraint, &index, labels, weights)?;

        let weight_of = |row: usize| weights.map_or(1.0, |w| w[row]);
        let mut group_rows: Vec<Vec<(f64, bool, f64)>> = vec![Vec::new(); index.len()];
        for (row, &group) in index.ids.iter().enumerate() {
            group_rows[group].push((scores[row], labels[row], weight_of(row)));
        }
        let curves: Vec<GroupCurve> = group_rows.iter().map(|rows| GroupCurve::new(rows)).collect();
        let positives: f64 = curves.iter().map(|c| c.positives).sum();
        let negatives: f64 = curves.iter().map(|c| c.negatives).sum();
        if config.objective == Objective::BalancedAccuracy && (positives <= 0.0 || negatives <= 0.0) {
            return Err(FairnessError::InvalidSetting(
                "balanced accuracy needs rows of both classes, but the labels have only one; use the accuracy objective or more rows".to_string(),
            ));
        }

        // The objective of a group's (false positives, true positives), up to a constant: a true
        // positive turns a miss into a hit and a false positive a hit into a miss.
        let total = positives + negatives;
        let gain = |false_positives: f64, true_positives: f64| match config.objective {
            Objective::Accuracy => (true_positives - false_positives) / total,
            Objective::BalancedAccuracy => true_positives / (2.0 * positives) - false_positives / (2.0 * negatives),
        };
        let tolerance = config.tolerance.unwrap_or(0.0);
        let choices: Vec<Choice> = match config.constraint {
            Constraint::DemographicParity => {
                let selection_rate =
                    |curve: &GroupCurve, v: &Vertex| (v.false_positives + v.true_positives) / curve.weight;
                pure(common_rate(&curves, selection_rate, &gain, tolerance))
            }
            Constraint::TruePositiveRateParity => {
                let true_positive_rate = |curve: &GroupCurve, v: &Vertex| v.true_positives / curve.positives;
                pure(common_rate(&curves, true_positive_rate, &gain, tolerance))
            }
            Constraint::EqualizedOdds => {
                let objective_at = |fpr: f64, tpr: f64| gain(fpr * negatives, tpr * positives);
                let (fpr, tpr) = common_roc_point(&curves, objective_at);
                curves.iter().map(|curve| reach_roc_point(curve, fpr, tpr)).collect()
            }
        };

        let mut rules: Vec<GroupRule> =
            curves.iter().zip(&choices).map(|(curve, choice)| rule(curve, choice)).collect();
        let rates = fitted_rates(&rules, &index, scores, labels, weights);
        for (rule, rates) in rules.iter_mut().zip(rates) {
            rule.fitted = rates;
        }
        let objective_value = expected_objective(config.objective, &rules, &index, scores, labels, weights);
        let disparity = disparity(config.constraint, &rules);
        Ok(Self {
            config: *config,
            groups: index.labels.into_iter().zip(rules).collect(),
            rows: labels.len(),
            objective_value,
            disparity,
        })
    }

    /// Returns the rule of a group.
    ///
    /// # Errors
    ///
    /// Returns [`FairnessError::UnknownGroup`] for a group the optimiser was not fitted on.
    pub fn rule(&self, group: &str) -> Result<&GroupRule, FairnessError> {
        self.groups.get(group).ok_or_else(|| FairnessError::UnknownGroup {
            group: group.to_string(),
            known: self.groups.keys().map(String::as_str).collect::<Vec<_>>().join(", "),
        })
    }

    /// Predicts one row: positive when the row's draw falls below the probability of its rule,
    /// so the same seed and row index give the same prediction.
    ///
    /// # Errors
    ///
    /// Returns an error for a non-finite score or a group the optimiser was not fitted on.
    pub fn predict(&self, score: f64, group: &str, row: u64, draws: &RowDraws) -> Result<bool, FairnessError> {
        if !score.is_finite() {
            return Err(FairnessError::InvalidScore { row: row as usize, value: score });
        }
        let probability = self.rule(group)?.positive_probability(score);
        Ok(draws.uniform(row) < probability)
    }
}

fn pure(points: Vec<HullPoint>) -> Vec<Choice> {
    points.into_iter().map(|point| Choice { point, hull_share: 1.0, coin_rate: 0.0 }).collect()
}

/// Finds, for a rate that grows along every hull, the hull point of each group that maximises
/// the summed gain while the groups' rates lie within `tolerance` of each other.
fn common_rate(
    curves: &[GroupCurve],
    rate: impl Fn(&GroupCurve, &Vertex) -> f64,
    gain: &impl Fn(f64, f64) -> f64,
    tolerance: f64,
) -> Vec<HullPoint> {
    let vertex_rates: Vec<Vec<f64>> =
        curves.iter().map(|curve| curve.hull.iter().map(|v| rate(curve, v)).collect()).collect();
    let gain_at = |group: usize, target: f64| {
        let (false_positives, true_positives) = curves[group].at(first_reaching(&vertex_rates[group], target));
        gain(false_positives, true_positives)
    };
    // Each group's gain is concave in its rate, so its best rate within [r, r + tolerance] is its
    // unconstrained best rate clamped to that window.
    let best_rates: Vec<f64> = curves
        .iter()
        .map(|curve| {
            let best = curve
                .hull
                .iter()
                .max_by(|a, b| {
                    gain(a.false_positives, a.true_positives).total_cmp(&gain(b.false_positives, b.true_positives))
                })
                .expect("a hull has at least the select-nobody vertex");
            rate(curve, best)
        })
        .collect();
    let targets =
        |low: f64| -> Vec<f64> { best_rates.iter().map(|&best| best.clamp(low, (low + tolerance).min(1.0))).collect() };

    // The summed gain is piecewise linear in r, with breaks where a window edge meets a vertex
    // rate or a group's best rate, so its maximum is at one of these candidates.
    let mut candidates = vec![0.0, 1.0];
    for &r in vertex_rates.iter().flatten() {
        candidates.extend([r, r - tolerance]);
    }
    candidates.extend(best_rates.iter().flat_map(|&r| [r, r - tolerance]));

    let mut best: Option<(f64, Vec<f64>)> = None;
    for candidate in candidates {
        let low = candidate.clamp(0.0, 1.0);
        let window = targets(low);
        let total: f64 = window.iter().enumerate().map(|(group, &target)| gain_at(group, target)).sum();
        if best.as_ref().is_none_or(|(value, _)| total > *value) {
            best = Some((total, window));
        }
    }
    let (_, window) = best.expect("there are always candidates");
    window.iter().enumerate().map(|(group, &target)| first_reaching(&vertex_rates[group], target)).collect()
}

/// A point `(false positive rate, true positive rate)`.
type RocPoint = (f64, f64);

/// Slack for points on a clipping edge, in rate units.
const CLIP_SLACK: f64 = 1e-12;

/// Finds the point of the intersection of all groups' ROC hulls that maximises the objective.
///
/// Each group's region is the polygon of its upper hull closed by the diagonal from (1, 1) back
/// to (0, 0), listed clockwise. Points below the diagonal are never needed: the point straight
/// above on the diagonal is in every hull and has a higher true positive rate.
fn common_roc_point(curves: &[GroupCurve], objective: impl Fn(f64, f64) -> f64) -> RocPoint {
    let polygons: Vec<Vec<RocPoint>> = curves
        .iter()
        .map(|curve| {
            curve
                .hull
                .iter()
                .map(|v| (v.false_positives / curve.negatives, v.true_positives / curve.positives))
                .collect()
        })
        .collect();
    let mut region = polygons[0].clone();
    for polygon in &polygons[1..] {
        for (i, &from) in polygon.iter().enumerate() {
            let to = polygon[(i + 1) % polygon.len()];
            region = clip(&region, from, to);
        }
    }
    // The diagonal's ends lie in every hull; they keep the search defined if rounding empties
    // the clipped region.
    region.extend([(0.0, 0.0), (1.0, 1.0)]);
    region
        .into_iter()
        .max_by(|a, b| objective(a.0, a.1).total_cmp(&objective(b.0, b.1)))
        .expect("the region has at least the diagonal's ends")
}

/// Keeps the part of a convex polygon on the right of the directed edge `from -> to`, the inside
/// of a clockwise polygon (one step of Sutherland-Hodgman clipping).
fn clip(polygon: &[RocPoint], from: RocPoint, to: RocPoint) -> Vec<RocPoint> {
    let side = |p: RocPoint| (to.0 - from.0) * (p.1 - from.1) - (to.1 - from.1) * (p.0 - from.0);
    let inside = |p: RocPoint| side(p) <= CLIP_SLACK;
    let crossing = |a: RocPoint, b: RocPoint| {
        let t = side(a) / (side(a) - side(b));
        (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
    };
    let mut clipped = Vec::with_capacity(polygon.len() + 1);
    for (i, &current) in polygon.iter().enumerate() {
        let previous = polygon[(i + polygon.len() - 1) % polygon.len()];
        match (inside(previous), inside(current)) {
            (true, true) => clipped.push(current),
            (false, true) => {
                clipped.push(crossing(previous, current));
                clipped.push(current);
            }
            (true, false) => clipped.push(crossing(previous, current)),
            (false, false) => {}
        }
    }
    clipped
}

/// Reaches `(fpr, tpr)` in a group whose hull contains it: the hull point at that FPR, mixed with
/// a coin of rate FPR, which lies on the diagonal below it.
fn reach_roc_point(curve: &GroupCurve, fpr: f64, tpr: f64) -> Choice {
    let point = curve.at_false_positive_rate(fpr);
    let hull_tpr = curve.at(point).1 / curve.positives;
    let hull_share = if hull_tpr - fpr > 0.0 { ((tpr - fpr) / (hull_tpr - fpr)).clamp(0.0, 1.0) } else { 1.0 };
    Choice { point, hull_share, coin_rate: fpr }
}

/// Mixing probabilities this close to 0 or 1 are rounding noise and taken as a plain threshold.
const MIX_SLACK: f64 = 1e-12;

/// Turns a group's choice into thresholds and probabilities.
fn rule(curve: &GroupCurve, choice: &Choice) -> GroupRule {
    let low = curve.hull[choice.point.index];
    let (upper, lower, between) = match curve.hull.get(choice.point.index + 1) {
        Some(high) if choice.point.mix >= 1.0 - MIX_SLACK => (high.threshold, high.threshold, 0.0),
        Some(high) if choice.point.mix > MIX_SLACK => (low.threshold, high.threshold, choice.point.mix),
        _ => (low.threshold, low.threshold, 0.0),
    };
    let coin = (1.0 - choice.hull_share) * choice.coin_rate;
    GroupRule {
        upper,
        lower,
        probabilities: [choice.hull_share + coin, choice.hull_share * between + coin, coin],
        fitted: FittedRates {
            rows: 0,
            selection_rate: f64::NAN,
            true_positive_rate: f64::NAN,
            false_positive_rate: f64::NAN,
        },
    }
}

/// Computes each group's expected rates under its rule on the fitted rows.
fn fitted_rates(
    rules: &[GroupRule],
    index: &GroupIndex,
    scores: &[f64],
    labels: &[bool],
    weights: Option<&[f64]>,
) -> Vec<FittedRates> {
    // Per group: rows, weight, expected selected weight, positives, expected true positives,
    // negatives, expected false positives.
    let mut sums = vec![(0usize, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0); rules.len()];
    for (row, &group) in index.ids.iter().enumerate() {
        let weight = weights.map_or(1.0, |w| w[row]);
        let selected = weight * rules[group].positive_probability(scores[row]);
        let sum = &mut sums[group];
        sum.0 += 1;
        sum.1 += weight;
        sum.2 += selected;
        if labels[row] {
            sum.3 += weight;
            sum.4 += selected;
        } else {
            sum.5 += weight;
            sum.6 += selected;
        }
    }
    let ratio = |numerator: f64, denominator: f64| if denominator > 0.0 { numerator / denominator } else { f64::NAN };
    sums.into_iter()
        .map(|(rows, weight, selected, positives, true_positives, negatives, false_positives)| FittedRates {
            rows,
            selection_rate: ratio(selected, weight),
            true_positive_rate: ratio(true_positives, positives),
            false_positive_rate: ratio(false_positives, negatives),
        })
        .collect()
}

/// Computes the expected objective of the rules on the fitted rows.
fn expected_objective(
    objective: Objective,
    rules: &[GroupRule],
    index: &GroupIndex,
    scores: &[f64],
    labels: &[bool],
    weights: Option<&[f64]>,
) -> f64 {
    let (mut correct, mut total) = (0.0, 0.0);
    let (mut true_positives, mut positives, mut true_negatives, mut negatives) = (0.0, 0.0, 0.0, 0.0);
    for (row, &group) in index.ids.iter().enumerate() {
        let weight = weights.map_or(1.0, |w| w[row]);
        let p = rules[group].positive_probability(scores[row]);
        total += weight;
        if labels[row] {
            correct += weight * p;
            true_positives += weight * p;
            positives += weight;
        } else {
            correct += weight * (1.0 - p);
            true_negatives += weight * (1.0 - p);
            negatives += weight;
        }
    }
    match objective {
        Objective::Accuracy => correct / total,
        Objective::BalancedAccuracy => (true_positives / positives + true_negatives / negatives) / 2.0,
    }
}

/// Returns the between-group difference of the constrained rates, skipping undefined rates.
fn disparity(constraint: Constraint, rules: &[GroupRule]) -> f64 {
    let spread = |rate: fn(&FittedRates) -> f64| {
        let values = rules.iter().map(|r| rate(&r.fitted)).filter(|v| !v.is_nan());
        let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if max >= min { max - min } else { f64::NAN }
    };
    match constraint {
        Constraint::DemographicParity => spread(|r| r.selection_rate),
        Constraint::TruePositiveRateParity => spread(|r| r.true_positive_rate),
        Constraint::EqualizedOdds => spread(|r| r.true_positive_rate).max(spread(|r| r.false_positive_rate)),
    }
}

/// Serde for thresholds that may be infinite: JSON has no infinity, so `+inf` and `-inf` are
/// written as the strings `"inf"` and `"-inf"`.
mod extended_float {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else if *value == f64::INFINITY {
            serializer.serialize_str("inf")
        } else if *value == f64::NEG_INFINITY {
            serializer.serialize_str("-inf")
        } else {
            Err(serde::ser::Error::custom("a threshold is NaN"))
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        match Stored::deserialize(deserializer)? {
            Stored::Number(value) => Ok(value),
            Stored::Text(text) if text == "inf" => Ok(f64::INFINITY),
            Stored::Text(text) if text == "-inf" => Ok(f64::NEG_INFINITY),
            Stored::Text(text) => {
                Err(D::Error::custom(format!("threshold '{text}' is invalid; expected a number, \"inf\" or \"-inf\"")))
            }
        }
    }
}

#[cfg(test)]
#[path = "threshold_tests.rs"]
mod tests;
