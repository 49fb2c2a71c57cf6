//! In-training mitigation: the exponentiated-gradient reduction.
//!
//! Agarwal, Beygelzimer, Dudík, Langford and Wallach, "A Reductions Approach to Fair
//! Classification", ICML 2018, Algorithm 1. Fair classification is the saddle point of the
//! Lagrangian `L(Q, λ) = err(Q) + Σ_k λ_k (γ_k(Q) - ε)` over randomised classifiers `Q` and
//! multipliers `λ ≥ 0` with `‖λ‖₁ ≤ B`. The λ player runs exponentiated gradient on the
//! constraint values `γ`. The Q player's best response to each `λ` is the base learner trained on
//! relabelled, reweighted rows (cost-sensitive classification), and `Q` is the average of these
//! best responses. The run stops when the duality gap `ν_t` falls to `ν`: then `Q` is within `2ν` of
//! the best error under the constraints, and violates them by at most `ε + (1 + 2ν) / B`
//! (the paper's analysis of approximate saddle points).
//!
//! The constraints compare each group with all rows, as in the paper:
//! demographic parity bounds `|E[h | A = a] - E[h]|`, equalized odds bounds
//! `|E[h | A = a, Y = y] - E[h | Y = y]|` for both labels, and true positive rate parity the same
//! for `y = 1` only, each by `ε`. The difference between two groups can therefore reach `2ε`.
//!
//! Three practical choices, all Fairlearn 0.15's, differ from the paper's analysis. The
//! learning rate is `η = 2 / B`, because the step size of the paper's convergence bound,
//! proportional to `ν / B`, is far smaller and needs thousands of iterations. Since the base learner is approximate, a best response is the
//! better, under that `λ`, of the new fit and the classifiers found before. And a final linear
//! program replaces the average by the best mixture of all classifiers found when that mixture
//! has a lower penalised error `err + B max(0, max |γ| - ε)`. The program adds no fit.

use serde::{Deserialize, Serialize};

use super::linear_program::best_mixture;
use super::{Constraint, GroupIndex, RowDraws, check_group_classes, validate_rows};
use crate::FairnessError;

/// A base learner for the reduction: it trains a classifier on the fixed training rows with the
/// labels and weights it is given.
pub trait BaseLearner {
    /// The fitted classifier.
    type Model;

    /// Fits a classifier to the training rows relabelled with `labels` and weighted by
    /// `weights` (non-negative, summing to the number of rows), and returns it with its
    /// predictions on the same rows.
    ///
    /// # Errors
    ///
    /// Returns the learner's error when training fails.
    fn fit(
        &mut self,
        labels: &[bool],
        weights: &[f64],
    ) -> Result<LearnerFit<Self::Model>, Box<dyn std::error::Error + Send + Sync>>;
}

/// A classifier from the base learner and its predictions on the training rows.
#[derive(Debug, Clone)]
pub struct LearnerFit<M> {
    /// The fitted classifier.
    pub model: M,
    /// Its prediction for each training row.
    pub predictions: Vec<bool>,
}

/// Settings of the exponentiated-gradient reduction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExponentiatedGradientConfig {
    /// The constraint; each group's rate may differ from the overall rate by `tolerance`.
    pub constraint: Constraint,
    /// Allowed violation `ε` of each constraint, in rate units; default 0.01.
    pub tolerance: f64,
    /// Bound `B` on the L1 norm of the multipliers; `None` gives `1 / ε`.
    pub bound: Option<f64>,
    /// Maximum number of iterations; each fits the base learner at most twice. Default 50.
    pub max_iterations: usize,
    /// Duality gap `ν` at which the run stops; `None` gives half the standard error of the
    /// first best response's error rate, `0.5 * sqrt(e (1 - e) / n)`, Fairlearn's choice.
    pub gap_threshold: Option<f64>,
    /// Learning-rate multiplier `η₀`; the step on the multipliers' logarithms is `η₀ / B`.
    /// Default 2.
    pub learning_rate: f64,
}

impl Default for ExponentiatedGradientConfig {
    fn default() -> Self {
        Self {
            constraint: Constraint::DemographicParity,
            tolerance: 0.01,
            bound: None,
            max_iterations: 50,
            gap_threshold: None,
            learning_rate: 2.0,
        }
    }
}

impl ExponentiatedGradientConfig {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// Returns [`FairnessError::InvalidTolerance`] or [`FairnessError::InvalidSetting`] naming
    /// the setting and its valid range.
    pub fn validate(&self) -> Result<(), FairnessError> {
        let positive = |value: f64| value.is_finite() && value > 0.0;
        if !positive(self.tolerance) {
            return Err(FairnessError::InvalidTolerance(self.tolerance));
        }
        if let Some(bound) = self.bound
            && !positive(bound)
        {
            return Err(FairnessError::InvalidSetting(format!(
                "bound {bound} on the multipliers is invalid; use a positive number such as 1 / tolerance"
            )));
        }
        if self.max_iterations == 0 {
            return Err(FairnessError::InvalidSetting("maximum iterations must be at least 1".to_string()));
        }
        if let Some(gap) = self.gap_threshold
            && !(gap.is_finite() && gap >= 0.0)
        {
            return Err(FairnessError::InvalidSetting(format!(
                "duality gap threshold {gap} is invalid; use 0 or a positive number"
            )));
        }
        if !positive(self.learning_rate) {
            return Err(FairnessError::InvalidSetting(format!(
                "learning rate {} is invalid; use a positive number such as 2",
                self.learning_rate
            )));
        }
        Ok(())
    }
}

/// One iteration of the reduction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Iteration {
    /// Iteration number, from 1.
    pub iteration: usize,
    /// Duality gap `ν_t` of the average classifier and average multipliers.
    pub gap: f64,
    /// Lagrangian `L(Q̂_t, λ̂_t)`.
    pub lagrangian: f64,
    /// Training error of the average classifier `Q̂_t`.
    pub error: f64,
    /// Largest constraint value `max_k γ_k(Q̂_t)`, to compare with `ε`.
    pub max_violation: f64,
}

/// A randomised classifier: a distribution over base classifiers. A row is predicted positive
/// with probability `Σ_j weights[j] h_j(x)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomizedClassifier {
    /// Probability of each base classifier, in the order of the models; they sum to 1.
    pub weights: Vec<f64>,
}

impl RandomizedClassifier {
    /// Returns the probability of a positive prediction, given each base classifier's
    /// prediction for the row (in the order of the weights).
    pub fn positive_probability(&self, predictions: &[bool]) -> f64 {
        self.weights.iter().zip(predictions).filter(|(_, p)| **p).map(|(w, _)| w).sum::<f64>().min(1.0)
    }

    /// Predicts one row: positive when its draw falls below the probability of a positive
    /// prediction, so the same seed and row index give the same prediction.
    pub fn predict(&self, predictions: &[bool], row: u64, draws: &RowDraws) -> bool {
        draws.uniform(row) < self.positive_probability(predictions)
    }
}

/// Figures of a finished reduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReductionSummary {
    /// The settings, with `bound` and `gap_threshold` resolved.
    pub config: ExponentiatedGradientConfig,
    /// Step size `η` on the multipliers' logarithms.
    pub step_size: f64,
    /// Whether the duality gap reached the threshold; otherwise the iterate with the smallest
    /// gap is returned.
    pub converged: bool,
    /// Iteration with the smallest duality gap, whose average classifier is returned unless
    /// `linear_program` is true.
    pub best_iteration: usize,
    /// Whether the returned distribution is the best mixture of all classifiers found, from a
    /// final linear program, because it beats that iteration's average.
    pub linear_program: bool,
    /// The smallest duality gap.
    pub gap: f64,
    /// Training error of the returned distribution.
    pub error: f64,
    /// Largest constraint value of the returned distribution on the training rows.
    pub max_violation: f64,
    /// Base-learner fits run.
    pub base_learner_fits: usize,
    /// Every iteration, in order.
    pub history: Vec<Iteration>,
}

/// The result of [`exponentiated_gradient`].
#[derive(Debug, Clone)]
pub struct ReductionOutcome<M> {
    /// Base classifiers with positive weight, in the order they were found.
    pub models: Vec<M>,
    /// The distribution over `models`.
    pub classifier: RandomizedClassifier,
    /// Convergence figures and the history of the run.
    pub summary: ReductionSummary,
}

/// The constraint's cells: each row belongs to at most one (event, group) cell, and each cell's
/// rate is compared with its event's rate over all groups.
struct Moments {
    row_weight: Vec<f64>,
    labels: Vec<bool>,
    total_weight: f64,
    /// Cell of each row; `None` for rows the constraint does not look at.
    cell_of_row: Vec<Option<usize>>,
    /// Event of each cell.
    event_of_cell: Vec<usize>,
    cell_weight: Vec<f64>,
    event_weight: Vec<f64>,
}

/// A classifier's training error and constraint values `γ_c = μ_c - μ_event(c)`, one per cell.
#[derive(Debug, Clone)]
struct Record {
    error: f64,
    gamma: Vec<f64>,
}

impl Moments {
    fn new(constraint: Constraint, labels: &[bool], index: &GroupIndex, weights: Option<&[f64]>) -> Self {
        let groups = index.len();
        let event_of_row = |label: bool| match constraint {
            Constraint::DemographicParity => Some(0),
            Constraint::EqualizedOdds => Some(usize::from(label)),
            Constraint::TruePositiveRateParity => label.then_some(0),
        };
        let events = if constraint == Constraint::EqualizedOdds { 2 } else { 1 };
        let row_weight: Vec<f64> = (0..labels.len()).map(|row| weights.map_or(1.0, |w| w[row])).collect();
        let mut cell_weight = vec![0.0; events * groups];
        let mut event_weight = vec![0.0; events];
        let cell_of_row: Vec<Option<usize>> = labels
            .iter()
            .zip(&index.ids)
            .enumerate()
            .map(|(row, (&label, &group))| {
                let event = event_of_row(label)?;
                let cell = event * groups + group;
                cell_weight[cell] += row_weight[row];
                event_weight[event] += row_weight[row];
                Some(cell)
            })
            .collect();
        Self {
            total_weight: row_weight.iter().sum(),
            row_weight,
            labels: labels.to_vec(),
            cell_of_row,
            event_of_cell: (0..events * groups).map(|cell| cell / groups).collect(),
            cell_weight,
            event_weight,
        }
    }

    fn cells(&self) -> usize {
        self.cell_weight.len()
    }

    fn evaluate(&self, predictions: &[bool]) -> Record {
        let mut errors = 0.0;
        let mut cell_selected = vec![0.0; self.cells()];
        let mut event_selected = vec![0.0; self.event_weight.len()];
        for (row, &predicted) in predictions.iter().enumerate() {
            let weight = self.row_weight[row];
            if predicted != self.labels[row] {
                errors += weight;
            }
            if predicted && let Some(cell) = self.cell_of_row[row] {
                cell_selected[cell] += weight;
                event_selected[self.event_of_cell[cell]] += weight;
            }
        }
        let gamma = (0..self.cells())
            .map(|cell| {
                let event = self.event_of_cell[cell];
                if self.cell_weight[cell] > 0.0 {
                    cell_selected[cell] / self.cell_weight[cell] - event_selected[event] / self.event_weight[event]
                } else {
                    0.0
                }
            })
            .collect();
        Record { error: errors / self.total_weight, gamma }
    }

    /// Returns the cost-sensitive problem of `min_h L(h, λ)` for multipliers given as one
    /// signed value `λ⁺_c - λ⁻_c` per cell: the label each row is cheaper to predict, and the
    /// cost difference as its weight, scaled to sum to the number of rows.
    ///
    /// `L(h, λ)` is linear in each prediction `h_i`, with coefficient
    /// `w_i (1 - 2 y_i) / W + w_i (λ_c(i) / W_c(i) - Σ_{c in event(i)} λ_c / W_event(i))`.
    fn relabel(&self, signed: &[f64]) -> (Vec<bool>, Vec<f64>) {
        let mut event_pull = vec![0.0; self.event_weight.len()];
        for (cell, &lambda) in signed.iter().enumerate() {
            let event = self.event_of_cell[cell];
            if self.cell_weight[cell] > 0.0 {
                event_pull[event] += lambda / self.event_weight[event];
            }
        }
        let costs: Vec<f64> = (0..self.labels.len())
            .map(|row| {
                let weight = self.row_weight[row];
                let error = if self.labels[row] { -1.0 } else { 1.0 } / self.total_weight;
                let fairness = match self.cell_of_row[row] {
                    Some(cell) if self.cell_weight[cell] > 0.0 => {
                        signed[cell] / self.cell_weight[cell] - event_pull[self.event_of_cell[cell]]
                    }
                    _ => 0.0,
                };
                weight * (error + fairness)
            })
            .collect();

        let labels = costs.iter().map(|&c| c < 0.0).collect();
        let total: f64 = costs.iter().map(|c| c.abs()).sum();
        let scale = if total > 0.0 { self.labels.len() as f64 / total } else { 0.0 };
        (labels, costs.iter().map(|c| c.abs() * scale).collect())
    }
}

/// Signed multipliers `λ⁺_c - λ⁻_c` of multipliers stored as `[λ⁺_0, λ⁻_0, λ⁺_1, ...]`.
fn signed(lambda: &[f64]) -> Vec<f64> {
    lambda.chunks(2).map(|pair| pair[0] - pair[1]).collect()
}

/// Lagrangian of a classifier (or average of classifiers) with error `error` and constraint
/// values `gamma`. The multipliers of a cell enter only through `λ⁺ - λ⁻`, apart from the
/// `-ε (λ⁺ + λ⁻)` term. Weight on both signs only lowers that term, so the λ player's value is
/// taken at `λ⁺ + λ⁻ = |λ⁺ - λ⁻|`, as Fairlearn projects the multipliers.
fn lagrangian(error: f64, gamma: &[f64], signed: &[f64], tolerance: f64) -> f64 {
    error + gamma.iter().zip(signed).map(|(g, l)| l * g - tolerance * l.abs()).sum::<f64>()
}

/// Runs the exponentiated-gradient reduction with a base learner on its training rows.
///
/// `labels`, `groups` and the optional `weights` describe the learner's training rows in its
/// order.
///
/// # Errors
///
/// Returns an error for invalid settings, inputs of different lengths, no labels, invalid
/// weights, a group without the actual positives or negatives the constraint needs, or a failed
/// base-learner fit.
pub fn exponentiated_gradient<L: BaseLearner>(
    config: &ExponentiatedGradientConfig,
    learner: &mut L,
    labels: &[bool],
    groups: &[String],
    weights: Option<&[f64]>,
) -> Result<ReductionOutcome<L::Model>, FairnessError> {
    config.validate()?;
    validate_rows(config.constraint, labels, groups, weights)?;
    let index = GroupIndex::new(groups);
    check_group_classes(config.constraint, &index, labels, weights)?;

    let moments = Moments::new(config.constraint, labels, &index, weights);
    let tolerance = config.tolerance;
    let bound = config.bound.unwrap_or(1.0 / tolerance);
    let step_size = config.learning_rate / bound;
    let constraints = 2 * moments.cells();

    let mut search = Search { learner, moments: &moments, tolerance, models: Vec::new(), records: Vec::new(), fits: 0 };
    let mut theta = vec![0.0; constraints];
    let mut lambda_sum = vec![0.0; constraints];
    let mut counts: Vec<f64> = Vec::new();
    let mut gap_threshold = config.gap_threshold;
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, Vec<f64>)> = None;
    let mut converged = false;

    for t in 1..=config.max_iterations {
        // λ_k = B exp(θ_k) / (1 + Σ exp(θ)), computed with the largest exponent factored out.
        let top = theta.iter().copied().fold(0.0, f64::max);
        let denominator = (-top).exp() + theta.iter().map(|&x| (x - top).exp()).sum::<f64>();
        let lambda: Vec<f64> = theta.iter().map(|&x| bound * (x - top).exp() / denominator).collect();
        for (sum, value) in lambda_sum.iter_mut().zip(&lambda) {
            *sum += value;
        }
        let lambda_average: Vec<f64> = lambda_sum.iter().map(|s| s / t as f64).collect();

        let chosen = search.best_response(&signed(&lambda))?;
        counts.resize(search.records.len(), 0.0);
        counts[chosen] += 1.0;
        if gap_threshold.is_none() {
            gap_threshold = Some(default_gap_threshold(search.records[chosen].error, &moments.row_weight));
        }
        let nu = gap_threshold.unwrap_or_default();

        // Q̂_t, the average of the best responses so far, and its Lagrangian at λ̂_t.
        let q: Vec<f64> = counts.iter().map(|c| c / t as f64).collect();
        let (error, gamma) = search.mix(&q);
        let average_signed = signed(&lambda_average);
        let value = lagrangian(error, &gamma, &average_signed, tolerance);
        let max_violation = gamma.iter().map(|g| g.abs()).fold(0.0, f64::max);
        // The λ player's best response to Q̂_t puts all of B on the most violated constraint.
        let high = error + bound * (max_violation - tolerance).max(0.0);
        // The Q player's best response to λ̂_t. At t = 1, λ̂_1 = λ_1, whose best response is known.
        let low = if t == 1 {
            let record = &search.records[chosen];
            lagrangian(record.error, &record.gamma, &average_signed, tolerance)
        } else {
            let answer = search.best_response(&average_signed)?;
            let record = &search.records[answer];
            lagrangian(record.error, &record.gamma, &average_signed, tolerance)
        };
        counts.resize(search.records.len(), 0.0);
        let gap = (value - low).max(high - value);
        history.push(Iteration { iteration: t, gap, lagrangian: value, error, max_violation });
        if best.as_ref().is_none_or(|(best_gap, _, _)| gap <= *best_gap) {
            best = Some((gap, t, q.clone()));
        }
        if gap <= nu {
            converged = true;
            break;
        }

        // θ_{t+1} = θ_t + η (γ(h_t) - ε), for both signs of every cell's constraint.
        let answer = &search.records[chosen].gamma;
        for (cell, &g) in answer.iter().enumerate() {
            theta[2 * cell] += step_size * (g - tolerance);
            theta[2 * cell + 1] += step_size * (-g - tolerance);
        }
    }

    let (gap, best_iteration, average) = best.expect("at least one iteration runs");
    // The best mixture of every classifier found is at least as good as the average, under the
    // program's objective `err + B max(0, max |γ| - ε)`.
    let penalised = |q: &[f64]| {
        let (error, gamma) = search.mix(q);
        error + bound * (gamma.iter().map(|g| g.abs()).fold(0.0, f64::max) - tolerance).max(0.0)
    };
    let errors: Vec<f64> = search.records.iter().map(|r| r.error).collect();
    let gammas: Vec<Vec<f64>> = search.records.iter().map(|r| r.gamma.clone()).collect();
    let mixture = best_mixture(&errors, &gammas, tolerance, bound)
        .filter(|mixture| penalised(mixture) < penalised(&average) - 1e-12);
    let linear_program = mixture.is_some();
    let q = mixture.unwrap_or(average);
    let (error, gamma) = search.mix(&q);
    let fits = search.fits;
    let mut models = Vec::new();
    let mut weights_out = Vec::new();
    for (model, weight) in search.models.into_iter().zip(q.iter().chain(std::iter::repeat(&0.0))) {
        if *weight > 0.0 {
            models.push(model);
            weights_out.push(*weight);
        }
    }
    let summary = ReductionSummary {
        config: ExponentiatedGradientConfig { bound: Some(bound), gap_threshold, ..*config },
        step_size,
        converged,
        best_iteration,
        linear_program,
        gap,
        error,
        max_violation: gamma.iter().map(|g| g.abs()).fold(0.0, f64::max),
        base_learner_fits: fits,
        history,
    };
    Ok(ReductionOutcome { models, classifier: RandomizedClassifier { weights: weights_out }, summary })
}

/// Half the standard error of an error rate `e` estimated on rows with these weights:
/// `0.5 * sqrt(e (1 - e) / n)` with Kish's effective sample size `n = (Σw)² / Σw²`.
fn default_gap_threshold(error: f64, weights: &[f64]) -> f64 {
    let sum: f64 = weights.iter().sum();
    let squares: f64 = weights.iter().map(|w| w * w).sum();
    let effective_rows = sum * sum / squares;
    0.5 * (error * (1.0 - error) / effective_rows).sqrt()
}

/// The Q player: the classifiers found so far and the base learner that finds more.
struct Search<'a, L: BaseLearner> {
    learner: &'a mut L,
    moments: &'a Moments,
    tolerance: f64,
    models: Vec<L::Model>,
    records: Vec<Record>,
    fits: usize,
}

impl<L: BaseLearner> Search<'_, L> {
    /// Fits the base learner to `min_h L(h, λ)` and returns the index of the better, under
    /// `λ`, of the new classifier and the best one found before. The new one is kept only when
    /// it is strictly better.
    fn best_response(&mut self, signed: &[f64]) -> Result<usize, FairnessError> {
        let (labels, weights) = self.moments.relabel(signed);
        self.fits += 1;
        let fit = self
            .learner
            .fit(&labels, &weights)
            .map_err(|e| FairnessError::BaseLearner { fit: self.fits, message: e.to_string() })?;
        if fit.predictions.len() != self.moments.labels.len() {
            return Err(FairnessError::BaseLearner {
                fit: self.fits,
                message: format!(
                    "it returned {} predictions for {} training rows",
                    fit.predictions.len(),
                    self.moments.labels.len()
                ),
            });
        }
        let record = self.moments.evaluate(&fit.predictions);
        let value_of = |r: &Record| lagrangian(r.error, &r.gamma, signed, self.tolerance);
        let new_value = value_of(&record);
        let previous =
            self.records.iter().enumerate().map(|(i, r)| (i, value_of(r))).min_by(|a, b| a.1.total_cmp(&b.1));
        match previous {
            Some((i, value)) if value <= new_value + 1e-12 => Ok(i),
            _ => {
                self.models.push(fit.model);
                self.records.push(record);
                Ok(self.records.len() - 1)
            }
        }
    }

    /// Returns the error and constraint values of the distribution `q` over the classifiers.
    fn mix(&self, q: &[f64]) -> (f64, Vec<f64>) {
        let mut error = 0.0;
        let mut gamma = vec![0.0; self.moments.cells()];
        for (record, &weight) in self.records.iter().zip(q) {
            error += weight * record.error;
            for (total, g) in gamma.iter_mut().zip(&record.gamma) {
                *total += weight * g;
            }
        }
        (error, gamma)
    }
}

#[cfg(test)]
#[path = "exponentiated_gradient_tests.rs"]
mod tests;
