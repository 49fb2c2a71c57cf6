//! The run report: `report.json` (versioned, for machines) and `report.md` (for people).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use zeren_data::ColumnKind;
use zeren_fairness::audit::FeatureAudit;
use zeren_fairness::classification::Evaluation;
use zeren_pii::columns::ColumnReport;
use zeren_privacy::membership::MembershipInference;

use crate::card::CardInfo;
use crate::cli::{FairnessConstraint, MitigationMethod, PiiAction, ThresholdObjective, ThresholdSplit};
use zeren_fairness::mitigation::exponentiated_gradient::ReductionSummary;
use zeren_fairness::mitigation::threshold::GroupRule;
use zeren_train::dp::Clipping;
use zeren_train::{EpochRecord, MlpConfig, StopReason};

/// Version of the `report.json` layout. It grows when a field changes meaning or is removed;
/// new fields may appear without a change.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything `zeren train` found out, as written to `report.json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub zeren_version: &'static str,
    pub run: RunInfo,
    pub data: DataInfo,
    pub model: ModelInfo,
    pub training: TrainingInfo,
    pub metrics: Metrics,
    /// Fairness audits of the test split, by sensitive column (and their intersection).
    pub fairness: BTreeMap<String, FeatureAudit>,
    /// The differential-privacy guarantee; `null` for a non-private run.
    pub privacy: Option<PrivacyReport>,
    /// Result of a membership-inference attack that separates training rows from test rows.
    pub membership_inference: Option<MembershipInference>,
    /// Findings and action of the PII screen of the training data.
    pub pii: PiiReport,
    /// The mitigated model beside its unmitigated baseline; `null` without `--mitigation`.
    pub mitigation: Option<MitigationReport>,
    /// Model-card fields from the config's `[card]` table. Empty fields are left out.
    pub card: CardInfo,
    /// ROC curves of the test split by sensitive column and group, as `[fpr, tpr]` points.
    pub roc_curves: BTreeMap<String, BTreeMap<String, Vec<[f64; 2]>>>,
    /// How to rerun the training, and whether the rerun should give the same weights.
    pub reproduce: Reproduction,
}

/// How to rerun a run.
#[derive(Debug, Serialize)]
pub struct Reproduction {
    /// The command that reruns the training from the run directory.
    pub command: String,
    /// SHA-256 of `config.toml`, the resolved configuration the command reads.
    pub config_sha256: String,
    /// Whether the rerun is expected to give bit-identical weights.
    pub bit_identical: bool,
    /// Why, in words.
    pub reason: String,
}

/// A mitigated run and its baseline.
#[derive(Debug, Serialize)]
pub struct MitigationReport {
    pub method: MitigationMethod,
    pub constraint: FairnessConstraint,
    pub tolerance: Option<f64>,
    /// Sensitive columns whose joint groups the mitigation acts on.
    pub groups_from: Vec<String>,
    /// The groups the disparities of `baseline` and `mitigated` are measured on: those the
    /// mitigation acts on, so with several sensitive columns their joint groups (`a & b`).
    pub measured_on: String,
    /// The unmitigated model with the same seed, at the decision threshold.
    pub baseline: ModelSummary,
    /// The classifier the run deploys.
    pub mitigated: ModelSummary,
    /// The group thresholds, for `--mitigation threshold`.
    pub threshold: Option<ThresholdReport>,
    /// The course of the reduction, for `--mitigation exponentiated-gradient`.
    pub reduction: Option<ReductionReport>,
    /// Disparities of both models on each sensitive column alone and, with several, on their
    /// joint groups: mitigating the joint groups does not bound each column's disparity.
    pub by_groups: Vec<GroupDisparities>,
}

/// Test-split accuracy and disparities of one classifier.
#[derive(Debug, Serialize)]
pub struct ModelSummary {
    pub accuracy: f64,
    pub roc_auc: f64,
    #[serde(flatten)]
    pub disparities: Disparities,
}

/// Fairlearn's between-group differences of one classifier on the test split.
#[derive(Debug, Clone, Serialize)]
pub struct Disparities {
    pub demographic_parity_difference: f64,
    pub equalized_odds_difference: f64,
    /// Difference in true positive rates, the measure of true-positive-rate parity.
    pub equal_opportunity_difference: f64,
}

/// Disparities of the baseline and the mitigated model on one partition into groups.
#[derive(Debug, Serialize)]
pub struct GroupDisparities {
    /// A sensitive column, or several joined by ` & ` for their joint groups.
    pub groups: String,
    pub baseline: Disparities,
    pub mitigated: Disparities,
}

/// Group thresholds fitted on one split's scores.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdReport {
    pub objective: ThresholdObjective,
    /// Split whose scores the thresholds were fitted on.
    pub fitted_on: ThresholdSplit,
    pub fitted_rows: usize,
    /// Expected objective on the fitted rows, over the coin flips.
    pub fitted_objective: f64,
    /// Expected between-group difference of the constrained rates on the fitted rows.
    pub fitted_disparity: f64,
    /// The rule of each joint group.
    pub groups: BTreeMap<String, GroupRule>,
}

/// The exponentiated-gradient reduction of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ReductionReport {
    /// `logistic regression` or `multilayer perceptron`, with the run's settings.
    pub base_learner: &'static str,
    /// Epochs of every base-learner fit, each starting from the previous fit's weights.
    pub epochs_per_fit: usize,
    /// Probability at or above which a base network predicts positive.
    pub decision_threshold: f64,
    /// Wall-clock seconds of the reduction.
    pub seconds: f64,
    /// Networks with positive weight in the randomised classifier.
    pub models: usize,
    #[serde(flatten)]
    pub summary: ReductionSummary,
}

/// The PII screen of the training data.
#[derive(Debug, Serialize)]
pub struct PiiReport {
    /// `fail`, `drop`, `mask` or `allow`.
    pub action: PiiAction,
    /// Feature columns that hold identifiers or are unique per row.
    pub columns: Vec<ColumnReport>,
    /// Rows sampled per column for the classification.
    pub rows_sampled: usize,
}

/// The DP-SGD guarantee of a private run.
#[derive(Debug, Serialize)]
pub struct PrivacyReport {
    /// ε of the steps actually run, from the accountant.
    pub epsilon: f64,
    pub delta: f64,
    pub noise_multiplier: f64,
    /// Poisson sample rate q.
    pub sample_rate: f64,
    /// Noisy steps actually run.
    pub steps: u64,
    pub max_grad_norm: f64,
    pub accountant: &'static str,
    /// RDP order that gave ε (RDP accountant only).
    pub order: Option<f64>,
    /// Width of the error interval of ε (PRV accountant only).
    pub epsilon_error: Option<f64>,
    /// The ε the noise was calibrated for, over the planned steps.
    pub target_epsilon: f64,
    pub planned_steps: u64,
    pub expected_batch_size: usize,
    pub clipping: Clipping,
    /// Whether the noise came from a generator seeded by the operating system.
    pub secure_noise: bool,
    /// Normalisation of the noisy gradient sum.
    pub normalization: &'static str,
    /// The guarantee in words.
    pub guarantee: String,
    /// A non-private model trained with the same seed and settings, when requested.
    pub non_private_reference: Option<NonPrivateReference>,
    /// ε spent after each of a set of step counts, as `[steps, epsilon]`, from the same accountant.
    pub epsilon_by_step: Vec<[f64; 2]>,
    /// Weaknesses of the settings, such as a δ of at least 1/N.
    pub warnings: Vec<String>,
}

/// Test accuracy of a non-private model beside the private one.
#[derive(Debug, Serialize)]
pub struct NonPrivateReference {
    pub test_accuracy: f64,
    pub test_roc_auc: f64,
    /// Accuracy by sensitive column and group, non-private model.
    pub group_accuracy: BTreeMap<String, BTreeMap<String, f64>>,
    /// Accuracy by sensitive column and group, private model.
    pub private_group_accuracy: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Start of the run: command, time, seed and device.
#[derive(Debug, Serialize)]
pub struct RunInfo {
    /// The command line, argument by argument.
    pub command: Vec<String>,
    /// Start time, RFC 3339 in UTC.
    pub started_at: String,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Seed of weights, batch order, splits and bootstrap.
    pub seed: u64,
    /// Device that trained the model.
    pub device: String,
    /// Whether rerunning the same command is expected to give bit-identical weights.
    pub reproducible: bool,
}

/// Row counts of each split.
#[derive(Debug, Serialize)]
pub struct RowCounts {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

/// A feature column and how it was treated.
#[derive(Debug, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    pub kind: ColumnKind,
}

/// Data the model was trained and tested on.
#[derive(Debug, Serialize)]
pub struct DataInfo {
    /// Built-in dataset name, when one was used.
    pub dataset: Option<String>,
    /// Source of the training rows.
    pub train_source: String,
    /// Source of the test rows.
    pub test_source: String,
    pub target: String,
    pub positive_label: String,
    pub negative_label: String,
    pub sensitive: Vec<String>,
    /// Whether sensitive columns were model inputs.
    pub sensitive_as_features: bool,
    pub rows: RowCounts,
    /// Share of positive labels in each split.
    pub positive_rate: BTreeMap<String, f64>,
    /// Feature columns in model-input order.
    pub columns: Vec<ColumnInfo>,
    /// Number of model inputs after encoding.
    pub inputs: usize,
    /// Data problems that did not stop the run.
    pub warnings: Vec<String>,
}

/// The trained network.
#[derive(Debug, Serialize)]
pub struct ModelInfo {
    pub architecture: &'static str,
    #[serde(flatten)]
    pub config: MlpConfig,
    pub parameters: usize,
}

/// Course of training: epochs, stop reason, history.
#[derive(Debug, Serialize)]
pub struct TrainingInfo {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub stop_reason: StopReason,
    pub optimizer: String,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub loss: String,
    pub seconds: f64,
    pub history: Vec<EpochRecord>,
}

/// Evaluation of the trained model.
#[derive(Debug, Serialize)]
pub struct Metrics {
    /// Probability at or above which a row is predicted positive.
    pub decision_threshold: f64,
    pub train: Evaluation,
    pub validation: Option<Evaluation>,
    pub test: Evaluation,
}

fn number(value: f64) -> String {
    if value.is_nan() { "n/a".to_string() } else { format!("{value:.4}") }
}

fn interval(intervals: Option<&BTreeMap<String, [f64; 2]>>, name: &str) -> String {
    match intervals.and_then(|i| i.get(name)) {
        Some([low, high]) if !low.is_nan() => format!("[{}, {}]", number(*low), number(*high)),
        _ => "n/a".to_string(),
    }
}

/// Renders the report as Markdown for people.
pub fn render_markdown(report: &Report) -> String {
    let mut out = String::new();
    let data = &report.data;
    let name = data.dataset.clone().unwrap_or_else(|| data.train_source.clone());
    let _ = writeln!(out, "# zeren run report: {name}\n");
    let _ = writeln!(
        out,
        "Trained {} with zeren {}; command `{}`.\n",
        report.run.started_at,
        report.zeren_version,
        report.run.command.join(" ")
    );

    let _ = writeln!(out, "## Data\n");
    let _ = writeln!(out, "- Training rows: {} from {}", data.rows.train, data.train_source);
    let _ = writeln!(
        out,
        "- Validation rows: {} (held out from the training rows for early stopping)",
        data.rows.validation
    );
    let _ = writeln!(out, "- Test rows: {} from {}", data.rows.test, data.test_source);
    let _ = writeln!(
        out,
        "- Target: `{}`, positive label `{}`, negative label `{}`",
        data.target, data.positive_label, data.negative_label
    );
    let used = if data.sensitive_as_features { "used as model inputs" } else { "not used as model inputs" };
    if data.sensitive.is_empty() {
        let _ = writeln!(out, "- Sensitive columns: none given, so the fairness audit was skipped");
    } else {
        let _ = writeln!(
            out,
            "- Sensitive columns: {} ({used})",
            data.sensitive.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        );
    }
    let columns: Vec<String> =
        data.columns.iter().map(|c| format!("`{}` ({:?})", c.name, c.kind).to_lowercase()).collect();
    let _ = writeln!(
        out,
        "- Features: {} columns, {} model inputs: {}",
        data.columns.len(),
        data.inputs,
        columns.join(", ")
    );
    for warning in &data.warnings {
        let _ = writeln!(out, "- Warning: {warning}");
    }
    let pii = &report.pii;
    if pii.columns.is_empty() {
        let _ = writeln!(
            out,
            "- PII screen: no personal identifiers found in the feature columns ({} rows sampled per column)",
            pii.rows_sampled
        );
    }
    for column in &pii.columns {
        let what = match column.entity {
            Some(entity) => format!("{} in {:.0}% of values", entity.name(), column.share * 100.0),
            None => "values unique per row (a quasi-identifier)".to_string(),
        };
        let action = format!("{:?}", pii.action).to_lowercase();
        let _ = writeln!(out, "- PII screen: column `{}` holds {what}; action: {action}", column.column);
    }

    let model = &report.model;
    let _ = writeln!(out, "\n## Model and training\n");
    let hidden: Vec<String> = model.config.hidden.iter().map(usize::to_string).collect();
    if hidden.is_empty() {
        let _ = writeln!(
            out,
            "- Logistic regression: {} inputs, 1 output logit; {} parameters",
            model.config.inputs, model.parameters
        );
    } else {
        let _ = writeln!(
            out,
            "- Multilayer perceptron: {} inputs, hidden layers [{}], {} activation, 1 output logit; {} parameters",
            model.config.inputs,
            hidden.join(", "),
            format!("{:?}", model.config.activation).to_lowercase(),
            model.parameters
        );
    }
    let training = &report.training;
    let _ = writeln!(
        out,
        "- {} with learning rate {}, batch size {}, {} loss; {} epochs run, weights of epoch {} kept ({})",
        training.optimizer,
        training.learning_rate,
        training.batch_size,
        training.loss,
        training.epochs_run,
        training.best_epoch,
        stop_text(&training.stop_reason)
    );
    let _ = writeln!(
        out,
        "- Training took {:.1} s on {}; seed {}; {}",
        training.seconds,
        report.run.device,
        report.run.seed,
        if report.run.reproducible {
            "rerunning the command gives bit-identical weights"
        } else {
            "results may differ slightly between reruns"
        }
    );

    let metrics = &report.metrics;
    let _ = writeln!(out, "\n## Test metrics\n");
    let _ = writeln!(out, "Decision threshold {}.\n", metrics.decision_threshold);
    let _ = writeln!(out, "| split | rows | accuracy | balanced accuracy | ROC AUC | log loss | precision | recall |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let mut splits = vec![("train", &metrics.train)];
    if let Some(validation) = &metrics.validation {
        splits.push(("validation", validation));
    }
    splits.push(("test", &metrics.test));
    for (split, e) in splits {
        let _ = writeln!(
            out,
            "| {split} | {} | {} | {} | {} | {} | {} | {} |",
            e.rows,
            number(e.accuracy),
            number(e.balanced_accuracy),
            number(e.roc_auc),
            number(e.log_loss),
            number(e.precision),
            number(e.recall)
        );
    }
    let m = &metrics.test.confusion_matrix;
    let _ = writeln!(
        out,
        "\nTest confusion matrix: {} true positives, {} false positives, {} true negatives, {} false negatives.",
        m.true_positives, m.false_positives, m.true_negatives, m.false_negatives
    );

    render_privacy(&mut out, report);
    if let Some(mitigation) = &report.mitigation {
        render_mitigation(&mut out, mitigation, report.run.seed);
    }

    let _ = writeln!(out, "\n## Fairness on the test split\n");
    let _ = writeln!(
        out,
        "Definitions follow Fairlearn: a difference is the largest gap between groups, a ratio the \
         smallest over the largest; equalized odds takes the worse of the TPR and FPR gaps. Intervals \
         are percentile-bootstrap {}% intervals. `n/a` marks an undefined value (for example, a TPR \
         in a group with no actual positives).",
        report.fairness.values().next().and_then(|a| a.confidence_intervals.as_ref()).map_or(95.0, |c| c.level * 100.0)
    );
    for (name, audit) in &report.fairness {
        render_audit(&mut out, name, audit);
    }
    render_card(&mut out, report);
    out
}

/// Renders the model-card fields from the config, and how to rerun the training.
fn render_card(out: &mut String, report: &Report) {
    let card = &report.card;
    let _ = writeln!(out, "\n## Use and responsibility\n");
    let details =
        [("Name", &card.name), ("Version", &card.version), ("Licence", &card.license), ("Overview", &card.overview)];
    for (label, value) in details {
        if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            let _ = writeln!(out, "- {label}: {value}");
        }
    }
    if !card.references.is_empty() {
        let _ = writeln!(out, "- References: {}", card.references.join("; "));
    }
    let fields: [(&str, &str, &[String]); 6] = [
        ("Owners", "owners", &card.owners),
        ("Intended uses", "intended-uses", &card.intended_uses),
        ("Intended users", "intended-users", &card.intended_users),
        ("Out-of-scope uses", "out-of-scope-uses", &card.out_of_scope_uses),
        ("Limitations", "limitations", &card.limitations),
        ("Ethical considerations", "ethical-considerations", &card.ethical_considerations),
    ];
    for (label, key, items) in fields {
        if items.is_empty() {
            let _ = writeln!(out, "- {label}: not stated (add `{key}` to the `[card]` table of the config)");
        } else {
            let _ = writeln!(out, "- {label}: {}", items.join("; "));
        }
    }
    // The card reads report.json, so the same checks run on the report's JSON form.
    let caveats = serde_json::to_value(report).map(|value| crate::card::caveats(&value)).unwrap_or_default();
    let _ = writeln!(out, "\n## Caveats found in this run\n");
    if caveats.is_empty() {
        let _ = writeln!(out, "None found by the automatic checks.");
    }
    for caveat in caveats {
        let _ = writeln!(out, "- {caveat}");
    }

    let reproduce = &report.reproduce;
    let _ = writeln!(out, "\n## Reproducibility\n");
    let _ = writeln!(
        out,
        "Rerun with `{}` from this directory; `config.toml` has SHA-256 `{}`. Bit-identical result expected: {}. {}",
        reproduce.command,
        reproduce.config_sha256,
        if reproduce.bit_identical { "yes" } else { "no" },
        reproduce.reason
    );
}

/// Margin for rounding in comparisons with the tolerance: the linear program over the networks
/// meets a bound only to within floating-point error.
pub const TOLERANCE_SLACK: f64 = 1e-9;

fn render_mitigation(out: &mut String, mitigation: &MitigationReport, seed: u64) {
    let _ = writeln!(out, "\n## Bias mitigation\n");
    let tolerance = mitigation.tolerance.map_or(String::new(), |t| format!(" with tolerance {t}"));
    let _ = writeln!(
        out,
        "{} on the groups of {}, targeting {}{tolerance}; measured on the test split by `{}`:\n",
        serde_name(&mitigation.method),
        mitigation.groups_from.join(" & "),
        serde_name(&mitigation.constraint),
        mitigation.measured_on
    );
    let _ = writeln!(
        out,
        "| model | accuracy | ROC AUC | demographic parity difference | equalized odds difference | equal opportunity difference |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (name, summary) in [("baseline", &mitigation.baseline), ("mitigated", &mitigation.mitigated)] {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            number(summary.accuracy),
            number(summary.roc_auc),
            number(summary.disparities.demographic_parity_difference),
            number(summary.disparities.equalized_odds_difference),
            number(summary.disparities.equal_opportunity_difference)
        );
    }
    if mitigation.by_groups.len() > 1 {
        let _ = writeln!(out, "\nDisparities by sensitive column and on the joint groups, baseline → mitigated:\n");
        let _ = writeln!(
            out,
            "| groups | demographic parity difference | equalized odds difference | equal opportunity difference |"
        );
        let _ = writeln!(out, "|---|---|---|---|");
        for entry in &mitigation.by_groups {
            let (before, after) = (&entry.baseline, &entry.mitigated);
            let _ = writeln!(
                out,
                "| {} | {} → {} | {} → {} | {} → {} |",
                entry.groups,
                number(before.demographic_parity_difference),
                number(after.demographic_parity_difference),
                number(before.equalized_odds_difference),
                number(after.equalized_odds_difference),
                number(before.equal_opportunity_difference),
                number(after.equal_opportunity_difference)
            );
        }
    }
    if let Some(threshold) = &mitigation.threshold {
        let split = match threshold.fitted_on {
            ThresholdSplit::Validation => "validation split, rows the model did not train on",
            ThresholdSplit::Train => "training split",
        };
        let _ = writeln!(
            out,
            "\nThe thresholds were fitted on the model's probabilities for the {} rows of the {split}, maximising {}: \
             there the expected objective is {} and the expected disparity {}. A row whose probability falls between \
             its group's two thresholds is predicted positive with the probability shown, drawn from seed {seed} and \
             the row's position; the test metrics use one such draw, and the ROC AUC is that of the probabilities of \
             a positive prediction.\n",
            threshold.fitted_rows,
            serde_name(&threshold.objective),
            number(threshold.fitted_objective),
            number(threshold.fitted_disparity)
        );
        let _ = writeln!(
            out,
            "| group | fitted rows | lower threshold | upper threshold | P(positive) above | between | below | fitted selection rate | TPR | FPR |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for (group, rule) in &threshold.groups {
            let [above, between, below] = rule.probabilities;
            let _ = writeln!(
                out,
                "| {group} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                rule.fitted.rows,
                number(rule.lower),
                number(rule.upper),
                number(above),
                number(between),
                number(below),
                number(rule.fitted.selection_rate),
                number(rule.fitted.true_positive_rate),
                number(rule.fitted.false_positive_rate)
            );
        }
    }
    if let Some(reduction) = &mitigation.reduction {
        let summary = &reduction.summary;
        let ending = if summary.converged {
            format!(
                "the duality gap fell to {:.6} (threshold {:.6})",
                summary.gap,
                summary.config.gap_threshold.unwrap_or_default()
            )
        } else if summary.max_violation <= summary.config.tolerance + TOLERANCE_SLACK {
            format!(
                "the iteration limit was reached with duality gap {:.6} above its threshold {:.6}: the constraint holds \
                 on the training rows, but a more accurate classifier may exist",
                summary.gap,
                summary.config.gap_threshold.unwrap_or_default()
            )
        } else {
            format!(
                "the iteration limit was reached with duality gap {:.6} above its threshold {:.6}, and the constraint is \
                 violated by more than the tolerance on the training rows",
                summary.gap,
                summary.config.gap_threshold.unwrap_or_default()
            )
        };
        let source = if summary.linear_program {
            "the best mixture of all networks found (a final linear program)"
        } else {
            "the average of the best responses"
        };
        let _ = writeln!(
            out,
            "\nExponentiated gradient (Agarwal et al. 2018) with bound B = {} and step {} ran {} iterations and {} fits of \
             the {} ({} epochs each, {:.1} s); {ending}. The classifier is {source}: {} networks, each voting positive \
             at probability {}. A row is predicted positive with the summed weight of the networks that vote for it, \
             drawn from seed {seed} and the row's position. On the training split its \
             error is {} and its largest constraint value {} (tolerance {}). The membership-inference figures above \
             are those of the unmitigated model in `model.json`.",
            summary.config.bound.unwrap_or_default(),
            summary.step_size,
            summary.history.len(),
            summary.base_learner_fits,
            reduction.base_learner,
            reduction.epochs_per_fit,
            reduction.seconds,
            reduction.models,
            reduction.decision_threshold,
            number(summary.error),
            format!("{:.6}", summary.max_violation),
            summary.config.tolerance
        );
    }
}

/// Renders one fairness audit as Markdown tables (also used by `zeren audit`).
pub fn render_audit(out: &mut String, name: &str, audit: &FeatureAudit) {
    let intervals = audit.confidence_intervals.as_ref();
    let _ = writeln!(out, "\n### {name}\n");
    let _ = writeln!(out, "| group | rows | selection rate | accuracy | TPR | FPR | FNR | precision |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for (group, g) in audit.groups.iter().map(|(k, v)| (k.as_str(), v)).chain([("(all)", &audit.overall)]) {
        let _ = writeln!(
            out,
            "| {group} | {} | {} | {} | {} | {} | {} | {} |",
            g.count,
            number(g.selection_rate),
            number(g.accuracy),
            number(g.true_positive_rate),
            number(g.false_positive_rate),
            number(g.false_negative_rate),
            number(g.precision)
        );
    }
    let _ = writeln!(out, "\n| measure | between groups | 95% interval | to overall |");
    let _ = writeln!(out, "|---|---|---|---|");
    let b = &audit.between_groups;
    let t = &audit.to_overall;
    let rows = [
        ("demographic_parity_difference", b.demographic_parity_difference, t.demographic_parity_difference),
        ("demographic_parity_ratio", b.demographic_parity_ratio, t.demographic_parity_ratio),
        ("equalized_odds_difference", b.equalized_odds_difference, t.equalized_odds_difference),
        ("equalized_odds_ratio", b.equalized_odds_ratio, t.equalized_odds_ratio),
        ("equal_opportunity_difference", b.equal_opportunity_difference, t.equal_opportunity_difference),
        ("equal_opportunity_ratio", b.equal_opportunity_ratio, t.equal_opportunity_ratio),
        ("disparate_impact_ratio", b.disparate_impact_ratio, t.disparate_impact_ratio),
    ];
    for (measure, between, to_overall) in rows {
        let ci = interval(intervals.map(|c| &c.between_groups), measure);
        let _ = writeln!(out, "| {measure} | {} | {ci} | {} |", number(between), number(to_overall));
    }
    if audit.disparate_impact_below_four_fifths {
        let _ = writeln!(
            out,
            "\nThe disparate impact ratio {} is below 0.8: under the four-fifths rule this indicates adverse impact.",
            number(b.disparate_impact_ratio)
        );
    }
}

fn render_privacy(out: &mut String, report: &Report) {
    let _ = writeln!(out, "\n## Privacy\n");
    match &report.privacy {
        Some(privacy) => {
            let _ = writeln!(out, "{}\n", privacy.guarantee);
            let _ = writeln!(
                out,
                "DP-SGD settings: noise multiplier {:.4}, max grad norm {}, {} clipping, sample rate {:.6} \
                 (expected batch size {}), {} steps of {} planned; ε {:.4} at δ {} from the {} accountant{}; \
                 the noisy gradient sum is {}.",
                privacy.noise_multiplier,
                privacy.max_grad_norm,
                format!("{:?}", privacy.clipping).to_lowercase(),
                privacy.sample_rate,
                privacy.expected_batch_size,
                privacy.steps,
                privacy.planned_steps,
                privacy.epsilon,
                privacy.delta,
                privacy.accountant,
                match (privacy.order, privacy.epsilon_error) {
                    (Some(order), _) => format!(" (best order {order})"),
                    (_, Some(error)) => format!(" (an upper bound; error interval width {error:.4})"),
                    _ => String::new(),
                },
                privacy.normalization
            );
            if let Some(reference) = &privacy.non_private_reference {
                let _ = writeln!(
                    out,
                    "\nA non-private model with the same seed and settings reaches test accuracy {} (ROC AUC {}), \
                     against {} for the private model. Accuracy by group:\n",
                    number(reference.test_accuracy),
                    number(reference.test_roc_auc),
                    number(report.metrics.test.accuracy)
                );
                let _ = writeln!(out, "| column | group | private | non-private | difference |");
                let _ = writeln!(out, "|---|---|---|---|---|");
                for (column, groups) in &reference.group_accuracy {
                    for (group, accuracy) in groups {
                        let private = reference
                            .private_group_accuracy
                            .get(column)
                            .and_then(|g| g.get(group))
                            .copied()
                            .unwrap_or(f64::NAN);
                        let _ = writeln!(
                            out,
                            "| {column} | {group} | {} | {} | {} |",
                            number(private),
                            number(*accuracy),
                            number(private - accuracy)
                        );
                    }
                }
            }
        }
        None => {
            let _ = writeln!(
                out,
                "The model was trained without differential privacy: it carries no formal guarantee for the training records."
            );
        }
    }
    if let Some(attack) = &report.membership_inference {
        let _ = writeln!(
            out,
            "\nMembership inference ({}) on {} training and {} test rows: attack ROC AUC {}, advantage {} \
             (TPR − FPR; 0 is chance), so the training run is at least {}-DP at δ {} with about 95% confidence{}.",
            attack.attack,
            attack.members,
            attack.non_members,
            number(attack.auc),
            number(attack.advantage),
            number(attack.epsilon_lower_bound),
            attack.delta,
            match &report.privacy {
                Some(privacy) => format!("; the proven upper bound is ε = {}", number(privacy.epsilon)),
                None => String::new(),
            }
        );
    }
}

/// Returns the name a value has in report.json, such as `demographic-parity`.
fn serde_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

fn stop_text(reason: &StopReason) -> String {
    match reason {
        StopReason::MaxEpochs => "the epoch budget was reached".to_string(),
        StopReason::LossThreshold { threshold } => format!("training loss fell below {threshold}"),
        StopReason::EarlyStopping { patience } => format!("validation loss did not improve for {patience} epochs"),
    }
}
