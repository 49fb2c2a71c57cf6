//! Bias mitigation before, during and after training.
//!
//! - [`reweighing_weights`]: sample weights that make label and group independent (before).
//! - [`exponentiated_gradient`]: the reductions approach of Agarwal et al. (2018), which turns a
//!   base learner into a randomised classifier that meets a fairness constraint (during).
//! - [`threshold`]: group-specific, possibly randomised thresholds on a model's scores, after
//!   Hardt, Price and Srebro (2016) (after).
//!
//! Both randomised methods draw their coin flips from [`RowDraws`], a keyed function of the row
//! index, so the same seed gives the same predictions whatever order rows are scored in.

pub mod exponentiated_gradient;
mod hull;
mod linear_program;
mod reweighing;
pub mod threshold;

use std::collections::BTreeMap;
use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::FairnessError;

pub use reweighing::reweighing_weights;

/// A group-fairness constraint on a classifier's predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Constraint {
    /// Equal selection rates `P(h = 1 | A = a)` across groups.
    DemographicParity,
    /// Equal true positive rates and equal false positive rates across groups.
    EqualizedOdds,
    /// Equal true positive rates across groups (equal opportunity).
    TruePositiveRateParity,
}

impl Constraint {
    /// Returns the name used in messages and reports, such as `demographic parity`.
    pub fn name(self) -> &'static str {
        match self {
            Constraint::DemographicParity => "demographic parity",
            Constraint::EqualizedOdds => "equalized odds",
            Constraint::TruePositiveRateParity => "true positive rate parity",
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The quantity the threshold optimiser maximises under its constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Share of correct predictions, weighted by sample weight.
    #[default]
    Accuracy,
    /// Mean of the true positive rate and the true negative rate over all rows.
    BalancedAccuracy,
}

/// Uniform draws in `[0, 1)` for randomised classifiers, one per row.
///
/// The draw of row `i` is the first `f64` of ChaCha8 keyed by the seed, on stream `i`, so it
/// depends only on the seed and the row index. Scoring rows in another order, or a subset of
/// them, gives each row the same draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowDraws {
    seed: u64,
}

impl RowDraws {
    /// Creates the draws of a seed.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// Returns the draw of a row.
    pub fn uniform(&self, row: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(row);
        rng.random::<f64>()
    }
}

/// Group labels of the rows mapped to dense ids, in sorted label order.
#[derive(Debug, Clone)]
pub(crate) struct GroupIndex {
    pub labels: Vec<String>,
    pub ids: Vec<usize>,
}

impl GroupIndex {
    pub fn new(groups: &[String]) -> Self {
        let sorted: BTreeMap<&str, usize> = groups.iter().map(|g| (g.as_str(), 0)).collect();
        let labels: Vec<String> = sorted.keys().map(|g| g.to_string()).collect();
        let position: BTreeMap<&str, usize> = labels.iter().enumerate().map(|(i, g)| (g.as_str(), i)).collect();
        let ids = groups.iter().map(|g| position[g.as_str()]).collect();
        Self { labels, ids }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }
}

/// Checks the rows a mitigation is fitted on: labels present, one group and weight per label,
/// weights finite and non-negative with a positive sum.
pub(crate) fn validate_rows(
    constraint: Constraint,
    labels: &[bool],
    groups: &[String],
    weights: Option<&[f64]>,
) -> Result<(), FairnessError> {
    if labels.is_empty() && !groups.is_empty() {
        return Err(FairnessError::MissingLabels { constraint });
    }
    if labels.is_empty() {
        return Err(FairnessError::Empty);
    }
    if groups.len() != labels.len() {
        return Err(FairnessError::LengthMismatch {
            what: "sensitive groups".to_string(),
            expected: labels.len(),
            found: groups.len(),
        });
    }
    if let Some(weights) = weights {
        if weights.len() != labels.len() {
            return Err(FairnessError::LengthMismatch {
                what: "sample weights".to_string(),
                expected: labels.len(),
                found: weights.len(),
            });
        }
        if let Some(row) = weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
            return Err(FairnessError::InvalidWeight { row, value: weights[row] });
        }
        if weights.iter().sum::<f64>() <= 0.0 {
            return Err(FairnessError::Empty);
        }
    }
    Ok(())
}

/// Checks that every group has weight, and the classes the constraint compares rates over:
/// actual positives for a true positive rate, actual negatives for a false positive rate.
pub(crate) fn check_group_classes(
    constraint: Constraint,
    index: &GroupIndex,
    labels: &[bool],
    weights: Option<&[f64]>,
) -> Result<(), FairnessError> {
    let needs_positives = matches!(constraint, Constraint::EqualizedOdds | Constraint::TruePositiveRateParity);
    let needs_negatives = constraint == Constraint::EqualizedOdds;
    let mut positives = vec![0.0; index.len()];
    let mut negatives = vec![0.0; index.len()];
    for (row, (&group, &label)) in index.ids.iter().zip(labels).enumerate() {
        let weight = weights.map_or(1.0, |w| w[row]);
        if label {
            positives[group] += weight;
        } else {
            negatives[group] += weight;
        }
    }
    for (group, label) in index.labels.iter().enumerate() {
        if positives[group] + negatives[group] <= 0.0 {
            return Err(FairnessError::InvalidSetting(format!(
                "group '{label}' has no rows with positive weight; give its rows weight or drop them"
            )));
        }
        let missing = if needs_positives && positives[group] <= 0.0 {
            Some("positive")
        } else if needs_negatives && negatives[group] <= 0.0 {
            Some("negative")
        } else {
            None
        };
        if let Some(class) = missing {
            return Err(FairnessError::SingleClassGroup { group: label.clone(), missing: class, constraint });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_draws_depend_on_seed_and_row_only() {
        let draws = RowDraws::new(7);
        let forward: Vec<f64> = (0..100).map(|row| draws.uniform(row)).collect();
        let backward: Vec<f64> = (0..100).rev().map(|row| draws.uniform(row)).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
        assert!(forward.iter().all(|u| (0.0..1.0).contains(u)));
        assert_ne!(forward[0], forward[1]);
        assert_ne!(RowDraws::new(8).uniform(0), forward[0]);
    }

    #[test]
    fn row_draws_are_uniform() {
        // 10,000 draws: the mean of U(0, 1) has standard error 0.0029, so 0.01 is over 3 errors.
        let draws = RowDraws::new(0);
        let mean = (0..10_000).map(|row| draws.uniform(row)).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn missing_labels_name_the_constraint() {
        let groups = ["a", "b"].map(String::from).to_vec();
        let error = validate_rows(Constraint::EqualizedOdds, &[], &groups, None).unwrap_err();
        assert_eq!(error, FairnessError::MissingLabels { constraint: Constraint::EqualizedOdds });
        assert!(error.to_string().contains("equalized odds"), "{error}");
    }

    #[test]
    fn single_class_group_rejected_when_needed() {
        let labels = [true, false, true, true];
        let groups = ["a", "a", "b", "b"].map(String::from).to_vec();
        let index = GroupIndex::new(&groups);
        let error = check_group_classes(Constraint::EqualizedOdds, &index, &labels, None).unwrap_err();
        assert_eq!(
            error,
            FairnessError::SingleClassGroup {
                group: "b".into(),
                missing: "negative",
                constraint: Constraint::EqualizedOdds
            }
        );
        // A true positive rate needs only positives, and a selection rate needs neither.
        assert!(check_group_classes(Constraint::TruePositiveRateParity, &index, &labels, None).is_ok());
        assert!(check_group_classes(Constraint::DemographicParity, &index, &labels, None).is_ok());
    }
}
