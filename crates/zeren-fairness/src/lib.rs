//! Classification metrics and group-fairness audits, with no deep-learning dependency.
//!
//! The disparity measures equal Fairlearn's definitions (see [`audit`] for the formulas), so
//! figures from zeren and from `fairlearn.metrics` can be compared value by value.
//!
//! ```
//! use zeren_fairness::audit::{audit, AuditOptions, Predictions, SensitiveFeature};
//!
//! let y_true = [true, false, true, false];
//! let y_pred = [true, true, false, false];
//! let sex = SensitiveFeature {
//!     name: "sex".into(),
//!     groups: ["F", "F", "M", "M"].map(String::from).to_vec(),
//! };
//! let predictions = Predictions { y_true: &y_true, y_pred: &y_pred, scores: None, weights: None };
//! let options = AuditOptions { bootstrap_resamples: 0, ..AuditOptions::default() };
//! let audits = audit(predictions, &[sex], &options).unwrap();
//! assert_eq!(audits["sex"].between_groups.demographic_parity_difference, 1.0);
//! ```

pub mod audit;
pub mod classification;
pub mod mitigation;

/// Errors from invalid audit inputs.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FairnessError {
    /// No rows to audit.
    #[error("no rows to audit")]
    Empty,
    /// An input does not have one value per row.
    #[error("{what} has {found} values but there are {expected} labels; give one value per row")]
    LengthMismatch { what: String, expected: usize, found: usize },
    /// A sample weight is negative, NaN or infinite.
    #[error("sample weight {value} in row {row} is invalid; weights must be finite and non-negative")]
    InvalidWeight { row: usize, value: f64 },
    /// The confidence level is outside (0, 1).
    #[error("confidence level {0} is invalid; use a value between 0 and 1, such as 0.95")]
    InvalidConfidenceLevel(f64),
    /// A mitigation was given no true labels.
    #[error(
        "{constraint} mitigation needs the true label of every row, but no labels were given; pass the label column"
    )]
    MissingLabels { constraint: mitigation::Constraint },
    /// A group lacks the actual positives or negatives that the constraint's rates are defined over.
    #[error(
        "group '{group}' has no actual {missing} rows, so {constraint} is undefined for it; merge it with another group, drop its rows, or fit on more rows"
    )]
    SingleClassGroup { group: String, missing: &'static str, constraint: mitigation::Constraint },
    /// A constraint tolerance is zero, negative or not finite.
    #[error("tolerance {0} is invalid; use a positive number such as 0.01")]
    InvalidTolerance(f64),
    /// A mitigation setting is outside its valid range.
    #[error("{0}")]
    InvalidSetting(String),
    /// A score is NaN or infinite.
    #[error("score {value} in row {row} is invalid; scores must be finite")]
    InvalidScore { row: usize, value: f64 },
    /// A group at prediction time was not among the groups the mitigation was fitted on.
    #[error(
        "group '{group}' was not seen when the mitigation was fitted (fitted groups: {known}); the thresholds are per group, so refit with rows of this group"
    )]
    UnknownGroup { group: String, known: String },
    /// The base learner of the exponentiated-gradient reduction failed.
    #[error("base learner failed in fit {fit}: {message}")]
    BaseLearner { fit: usize, message: String },
}

#[cfg(test)]
mod tests;
