//! Threshold optimisation and the exponentiated-gradient reduction for `zeren train`, and the
//! randomised predictions of both for `zeren train` and `zeren predict`.

use std::time::Instant;

use zeren_data::{PreparedData, Split};
use zeren_fairness::FairnessError;
use zeren_fairness::mitigation::exponentiated_gradient::{
    BaseLearner, ExponentiatedGradientConfig, LearnerFit, RandomizedClassifier, exponentiated_gradient,
};
use zeren_fairness::mitigation::threshold::{ThresholdConfig, ThresholdOptimizer};
use zeren_fairness::mitigation::{Constraint, RowDraws};
use zeren_train::{Device, Mlp, MlpConfig, MlpWeights, Rows, TrainConfig, fit_from, predict_probabilities};

use crate::artifacts::{FORMAT_VERSION, MitigatedClassifier, MitigationFile};
use crate::cli::{MitigationMethod, ThresholdSplit, TrainArgs};
use crate::config::defaults;
use crate::error::CliError;
use crate::report::{ReductionReport, ThresholdReport};

/// Probability at or above which a network of the reduction predicts positive. Each network is
/// trained to minimise the weighted error of relabelled rows, whose minimiser predicts positive
/// where the probability of the positive relabel is at least one half.
pub const REDUCTION_DECISION_THRESHOLD: f64 = 0.5;

/// Epochs of each fit of the reduction's base learner. Each fit starts from the previous
/// response, so it only has to follow the multipliers' small step: on Adult, 3 and 8 epochs
/// per fit gave test accuracies within 0.0005 of each other.
pub const WARM_START_EPOCHS: usize = 3;

/// Separator of the sensitive values that make up a row's group.
const GROUP_SEPARATOR: &str = ", ";

/// Predictions of a classifier with a probability for each row.
#[derive(Debug, Clone)]
pub struct Decisions {
    /// For a plain model, its probability of the positive class; for a randomised classifier,
    /// the probability that it predicts positive.
    pub probabilities: Vec<f64>,
    /// The predictions; a randomised classifier draws them with those probabilities.
    pub predictions: Vec<bool>,
}

impl Decisions {
    /// Predicts positive at `probability >= threshold`.
    pub fn at_threshold(probabilities: &[f64], threshold: f64) -> Self {
        let predictions = probabilities.iter().map(|&p| p >= threshold).collect();
        Self { probabilities: probabilities.to_vec(), predictions }
    }
}

/// Checks the mitigation flags of `zeren train` against each other, before any data is read.
///
/// # Errors
///
/// Returns a usage error naming the flag and the fix.
pub fn check_flags(args: &TrainArgs) -> Result<(), CliError> {
    let method = args.mitigation;
    if let Some(tolerance) = args.tolerance
        && !(tolerance.is_finite() && tolerance > 0.0 && tolerance < 1.0)
    {
        return Err(CliError::usage(format!(
            "--tolerance {tolerance} is invalid; use a number between 0 and 1 (a gap between rates) such as 0.01"
        )));
    }
    if method.is_none() && (args.constraint.is_some() || args.tolerance.is_some()) {
        return Err(CliError::usage("--constraint and --tolerance need --mitigation"));
    }
    if method != Some(MitigationMethod::Threshold) && (args.objective.is_some() || args.threshold_split.is_some()) {
        return Err(CliError::usage("--objective and --threshold-split need --mitigation threshold"));
    }
    if method != Some(MitigationMethod::ExponentiatedGradient) && args.max_iterations.is_some() {
        return Err(CliError::usage("--max-iterations needs --mitigation exponentiated-gradient"));
    }
    if args.max_iterations == Some(0) {
        return Err(CliError::usage("--max-iterations 0 is invalid; use at least 1, such as 50"));
    }
    if args.dp_epsilon.is_some() {
        if method == Some(MitigationMethod::ExponentiatedGradient) {
            return Err(CliError::usage(
                "--dp-epsilon cannot be combined with --mitigation exponentiated-gradient: the reduction trains many models on the training rows without noise, outside the DP guarantee; use --mitigation threshold",
            ));
        }
        if method == Some(MitigationMethod::Threshold) && args.threshold_split == Some(ThresholdSplit::Train) {
            return Err(CliError::usage(
                "--dp-epsilon with --threshold-split train would fit the thresholds on the training rows without noise, outside the DP guarantee; use --threshold-split validation",
            ));
        }
    }
    Ok(())
}

/// Checks that the prepared data has what the mitigation needs.
///
/// # Errors
///
/// Returns a usage error without sensitive columns, or without validation rows for thresholds
/// fitted on the validation split.
pub fn check_data(args: &TrainArgs, data: &PreparedData) -> Result<(), CliError> {
    if args.mitigation.is_some() && data.sensitive.is_empty() {
        return Err(CliError::usage("--mitigation needs --sensitive columns to balance"));
    }
    if args.mitigation == Some(MitigationMethod::Threshold)
        && args.threshold_split.unwrap_or_default() == ThresholdSplit::Validation
        && data.validation.is_empty()
    {
        return Err(CliError::usage(
            "--mitigation threshold fits its thresholds on the validation split, which is empty; set --validation-fraction above 0 or use --threshold-split train",
        ));
    }
    Ok(())
}

/// A fitted threshold or reduction classifier, with its section of the report.
pub struct Mitigated {
    classifier: MitigatedClassifier,
    threshold: Option<ThresholdReport>,
    reduction: Option<ReductionReport>,
}

impl Mitigated {
    /// Predicts the rows of a split whose scores under `model.json` are `scores`.
    ///
    /// # Errors
    ///
    /// Returns an error for a group the thresholds were not fitted on, or a network that cannot
    /// score the rows.
    pub fn decide(&self, split: &Split, scores: &[f64], seed: u64, device: &Device) -> Result<Decisions, CliError> {
        let groups = joint_groups(&split.groups, split.len());
        let inputs = Inputs { scores, groups: &groups, features: &split.features.values, width: split.features.width };
        decide(&self.classifier, inputs, seed, device)
    }

    /// Returns the report of a threshold run.
    pub fn threshold_report(&self) -> Option<ThresholdReport> {
        self.threshold.clone()
    }

    /// Returns the report of a reduction run.
    pub fn reduction_report(&self) -> Option<ReductionReport> {
        self.reduction.clone()
    }

    /// Turns the classifier into `mitigation.json`.
    pub fn into_file(self, groups_from: &[String], seed: u64) -> MitigationFile {
        MitigationFile {
            format_version: FORMAT_VERSION,
            groups_from: groups_from.to_vec(),
            seed,
            classifier: self.classifier,
        }
    }
}

/// The inputs of a mitigated classifier, one entry per row.
pub struct Inputs<'a> {
    /// Probabilities of the model in `model.json`, for thresholds.
    pub scores: &'a [f64],
    /// Joint sensitive groups, for thresholds.
    pub groups: &'a [String],
    /// Encoded features, for the reduction's networks.
    pub features: &'a [f32],
    /// Features per row.
    pub width: usize,
}

/// Predicts rows with a mitigated classifier, drawing row `i`'s coin from the seed and `i`.
///
/// # Errors
///
/// Returns an error for a group the thresholds were not fitted on, or a network that cannot
/// score the rows.
pub fn decide(
    classifier: &MitigatedClassifier,
    inputs: Inputs<'_>,
    seed: u64,
    device: &Device,
) -> Result<Decisions, CliError> {
    match classifier {
        MitigatedClassifier::Threshold { thresholds } => {
            threshold_decisions(thresholds, inputs.scores, inputs.groups, seed)
        }
        MitigatedClassifier::ExponentiatedGradient { classifier, models, .. } => {
            let votes = network_votes(models, inputs.features, inputs.width, device)?;
            Ok(reduction_decisions(classifier, &votes, inputs.scores.len(), seed))
        }
    }
}

/// Fitted rows per group below which threshold rates are too uncertain to trust without a
/// warning: the rule of thumb also used for the audit's small-group caveat.
const SMALL_FITTED_GROUP: usize = 30;

/// Fits group thresholds to the scores of one split.
///
/// # Errors
///
/// Returns an error when a group lacks the classes the constraint needs.
pub fn fit_thresholds(
    args: &TrainArgs,
    sensitive: &[String],
    split: &Split,
    scores: &[f64],
) -> Result<Mitigated, CliError> {
    let fitted_on = args.threshold_split.unwrap_or_default();
    let config = ThresholdConfig {
        constraint: args.constraint.unwrap_or_default().into(),
        objective: args.objective.unwrap_or_default().into(),
        tolerance: args.tolerance,
    };
    if config.constraint == Constraint::EqualizedOdds
        && let Some(tolerance) = args.tolerance
    {
        tracing::warn!(
            "the threshold optimiser meets equalized odds with equal rates on the fitted rows; --tolerance {tolerance} is not used"
        );
    }
    let groups = joint_groups(&split.groups, split.len());
    let split_name = match fitted_on {
        ThresholdSplit::Validation => "validation",
        ThresholdSplit::Train => "training",
    };
    let thresholds = ThresholdOptimizer::fit(&config, scores, &split.labels, &groups, None).map_err(|error| {
        with_context(error, &format!("--mitigation threshold on the {split_name} split of {}", sensitive.join(", ")))
    })?;
    let small: Vec<String> = thresholds
        .groups
        .iter()
        .filter(|(_, rule)| rule.fitted.rows < SMALL_FITTED_GROUP)
        .map(|(group, rule)| format!("'{group}' ({} rows)", rule.fitted.rows))
        .collect();
    if !small.is_empty() {
        tracing::warn!(
            "the thresholds of {} were fitted on fewer than {SMALL_FITTED_GROUP} {split_name} rows each, so their rates \
             on new data are uncertain and the test disparities may differ; more data, fewer sensitive columns or \
             --threshold-split train give more rows",
            small.join(", ")
        );
    }
    let report = ThresholdReport {
        objective: args.objective.unwrap_or_default(),
        fitted_on,
        fitted_rows: thresholds.rows,
        fitted_objective: thresholds.objective_value,
        fitted_disparity: thresholds.disparity,
        groups: thresholds.groups.clone(),
    };
    Ok(Mitigated {
        classifier: MitigatedClassifier::Threshold { thresholds },
        threshold: Some(report),
        reduction: None,
    })
}

/// Runs the exponentiated-gradient reduction on the training split with the run's network as
/// the base learner.
///
/// # Errors
///
/// Returns an error when a group lacks the classes the constraint needs or a fit fails.
pub fn reduce(
    args: &TrainArgs,
    data: &PreparedData,
    mut learner: NetworkLearner<'_>,
    epochs: usize,
) -> Result<Mitigated, CliError> {
    let config = ExponentiatedGradientConfig {
        constraint: args.constraint.unwrap_or_default().into(),
        tolerance: args.tolerance.unwrap_or(defaults::REDUCTION_TOLERANCE),
        max_iterations: args.max_iterations.unwrap_or(defaults::MAX_ITERATIONS),
        ..ExponentiatedGradientConfig::default()
    };
    let groups = joint_groups(&data.train.groups, data.train.len());
    let started = Instant::now();
    let outcome =
        exponentiated_gradient(&config, &mut learner, &data.train.labels, &groups, None).map_err(|error| {
            with_context(
                error,
                &format!("--mitigation exponentiated-gradient on the training split of {}", data.sensitive.join(", ")),
            )
        })?;
    let summary = outcome.summary;
    if !summary.converged {
        // The gap bounds how far the classifier may be from the best fair one; the constraint
        // itself is checked directly on the training rows.
        let constraint = if summary.max_violation <= summary.config.tolerance + crate::report::TOLERANCE_SLACK {
            format!(
                "its largest constraint violation on the training rows, {:.6}, is within the tolerance {}, but a more accurate classifier may exist",
                summary.max_violation, summary.config.tolerance
            )
        } else {
            format!(
                "its largest constraint violation on the training rows, {:.6}, exceeds the tolerance {}",
                summary.max_violation, summary.config.tolerance
            )
        };
        tracing::warn!(
            "exponentiated gradient did not reach its duality gap {:.6} in {} iterations (smallest gap {:.6}): {constraint}; raise --max-iterations to search longer",
            summary.config.gap_threshold.unwrap_or_default(),
            summary.history.len(),
            summary.gap
        );
    }
    let report = ReductionReport {
        base_learner: if learner.model_config().hidden.is_empty() {
            "logistic regression"
        } else {
            "multilayer perceptron"
        },
        epochs_per_fit: epochs,
        decision_threshold: REDUCTION_DECISION_THRESHOLD,
        seconds: started.elapsed().as_secs_f64(),
        models: outcome.models.len(),
        summary,
    };
    let classifier = MitigatedClassifier::ExponentiatedGradient {
        classifier: outcome.classifier,
        decision_threshold: REDUCTION_DECISION_THRESHOLD,
        models: outcome.models,
    };
    Ok(Mitigated { classifier, threshold: None, reduction: Some(report) })
}

/// Adds what was being fitted to a mitigation error; invalid settings are usage errors.
fn with_context(error: FairnessError, context: &str) -> CliError {
    let message = format!("{context}: {error}");
    match error {
        FairnessError::InvalidTolerance(_) | FairnessError::InvalidSetting(_) | FairnessError::MissingLabels { .. } => {
            CliError::Usage(message)
        }
        _ => CliError::Failure(anyhow::anyhow!(message)),
    }
}

/// Joins each row's sensitive values into one group label, so that mitigation acts on the
/// groups of all sensitive columns together.
pub fn joint_groups(columns: &[Vec<String>], rows: usize) -> Vec<String> {
    (0..rows).map(|row| columns.iter().map(|c| c[row].as_str()).collect::<Vec<_>>().join(GROUP_SEPARATOR)).collect()
}

/// Applies group thresholds to scores, drawing row `i`'s coin from the seed and `i`.
///
/// # Errors
///
/// Returns an error naming a group the thresholds were not fitted on.
pub fn threshold_decisions(
    optimizer: &ThresholdOptimizer,
    scores: &[f64],
    groups: &[String],
    seed: u64,
) -> Result<Decisions, CliError> {
    let draws = RowDraws::new(seed);
    let mut decisions = Decisions { probabilities: Vec::with_capacity(scores.len()), predictions: Vec::new() };
    for (row, (&score, group)) in scores.iter().zip(groups).enumerate() {
        let probability = optimizer.rule(group).map_err(|e| CliError::Failure(e.into()))?.positive_probability(score);
        decisions.probabilities.push(probability);
        decisions.predictions.push(draws.uniform(row as u64) < probability);
    }
    Ok(decisions)
}

/// Returns each network's positive predictions, one vector per network.
///
/// # Errors
///
/// Returns an error when stored weights are invalid or do not fit the inputs.
pub fn network_votes(
    models: &[MlpWeights],
    features: &[f32],
    width: usize,
    device: &Device,
) -> Result<Vec<Vec<bool>>, CliError> {
    models
        .iter()
        .map(|weights| {
            let model = Mlp::from_weights(weights, device)?;
            let probabilities = predict_probabilities(&model, features, width, device)?;
            Ok(probabilities.iter().map(|&p| f64::from(p) >= REDUCTION_DECISION_THRESHOLD).collect())
        })
        .collect()
}

/// Draws the predictions of the reduction's randomised classifier from the networks' votes.
pub fn reduction_decisions(
    classifier: &RandomizedClassifier,
    votes: &[Vec<bool>],
    rows: usize,
    seed: u64,
) -> Decisions {
    let draws = RowDraws::new(seed);
    let mut decisions = Decisions { probabilities: Vec::with_capacity(rows), predictions: Vec::with_capacity(rows) };
    let mut row_votes = vec![false; votes.len()];
    for row in 0..rows {
        for (vote, model) in row_votes.iter_mut().zip(votes) {
            *vote = model[row];
        }
        let probability = classifier.positive_probability(&row_votes);
        decisions.probabilities.push(probability);
        decisions.predictions.push(draws.uniform(row as u64) < probability);
    }
    decisions
}

/// The reduction's base learner: the run's network, trained with the run's settings on the
/// relabelled, reweighted training rows.
///
/// Every fit starts from the weights of the fit before it, the first from the unmitigated
/// model: consecutive multipliers differ little, so the new best response lies near the last
/// one and a few epochs reach it. Fits run a fixed number of epochs, because the validation
/// rows keep their original labels and cannot judge a relabelled fit.
pub struct NetworkLearner<'a> {
    train_config: TrainConfig,
    last: MlpWeights,
    features: &'a [f32],
    width: usize,
    device: &'a Device,
}

impl<'a> NetworkLearner<'a> {
    /// Creates the learner for training rows `features` (`width` inputs per row), starting
    /// from `initial`, the unmitigated model, and training `epochs` epochs per fit.
    pub fn new(
        initial: MlpWeights,
        train_config: &TrainConfig,
        epochs: usize,
        features: &'a [f32],
        width: usize,
        device: &'a Device,
    ) -> Self {
        let train_config =
            TrainConfig { epochs, patience: None, loss_threshold: None, dp: None, ..train_config.clone() };
        Self { train_config, last: initial, features, width, device }
    }

    /// Returns the learner's model shape.
    pub fn model_config(&self) -> &MlpConfig {
        &self.last.config
    }
}

impl BaseLearner for NetworkLearner<'_> {
    type Model = MlpWeights;

    fn fit(
        &mut self,
        labels: &[bool],
        weights: &[f64],
    ) -> Result<LearnerFit<MlpWeights>, Box<dyn std::error::Error + Send + Sync>> {
        let weights: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
        let train = Rows { features: self.features, labels, weights: Some(&weights), width: self.width };
        let validation = Rows { features: &[], labels: &[], weights: None, width: self.width };
        let outcome = fit_from(&self.last, &self.train_config, train, validation, self.device, &mut |_| {})?;
        let probabilities = predict_probabilities(&outcome.model, self.features, self.width, self.device)?;
        let predictions = probabilities.iter().map(|&p| f64::from(p) >= REDUCTION_DECISION_THRESHOLD).collect();
        self.last = outcome.model.to_weights()?;
        Ok(LearnerFit { model: self.last.clone(), predictions })
    }
}
