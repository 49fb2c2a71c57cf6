//! `zeren train`: load, split, train, evaluate, audit, and write the run directory.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use zeren_data::builtin::load_builtin;
use zeren_data::{ColumnKind, CsvOptions, PrepareOptions, PreparedData, Split, Table, default_missing_values, prepare};
use zeren_fairness::audit::FeatureAudit;
use zeren_fairness::audit::{AuditOptions, Predictions, SensitiveFeature, audit};
use zeren_fairness::classification::{evaluate, evaluate_predictions, roc_curve};
use zeren_fairness::mitigation::reweighing_weights;
use zeren_pii::columns::{ColumnOptions, ColumnReport, ColumnStats};
use zeren_pii::operators::{Policy, Redactor};
use zeren_pii::{EntityType, Scanner};
use zeren_privacy::membership::{MembershipInference, loss_threshold_attack};
use zeren_privacy::{Accountant, calibrate, epsilon};
use zeren_train::device::DeviceKind;
use zeren_train::dp::DpConfig;
use zeren_train::{Device, Mlp, MlpConfig, PrivateTraining, Rows, TrainConfig, device, fit, predict_probabilities};

use sha2::{Digest, Sha256};

use crate::artifacts::{self, FORMAT_VERSION, MitigationFile, ModelFile, PreprocessingFile};
use crate::card;
use crate::cli::{MitigationMethod, ModelKind, PiiAction, ThresholdSplit, TrainArgs};
use crate::commands::mitigate::{self, Decisions, NetworkLearner, joint_groups};
use crate::config::{default_delta, default_out, merge_config_file, parse_delimiter, with_defaults};
use crate::error::CliError;
use crate::manifest::{self, Resource, RunPredicate};
use crate::progress::Progress;
use crate::report::{
    ColumnInfo, DataInfo, Disparities, GroupDisparities, Metrics, MitigationReport, ModelInfo, ModelSummary,
    NonPrivateReference, PiiReport, PrivacyReport, Report, Reproduction, RowCounts, RunInfo, SCHEMA_VERSION,
    TrainingInfo, render_markdown,
};
use crate::run_dir::RunDirectory;

/// Test rows below which a group's rates are flagged as unreliable.
const SMALL_GROUP: usize = 30;

/// The tables and task of a run, from a built-in dataset or from files.
struct Source {
    name: String,
    dataset: Option<String>,
    train: Table,
    test: Option<Table>,
    csv: CsvOptions,
    target: String,
    positive_label: String,
    sensitive: Vec<String>,
    excluded: Vec<String>,
    /// Digests of the input files, for the manifest.
    materials: Vec<Resource>,
}

/// Runs `zeren train`.
pub fn run(flags: TrainArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let merged = merge_config_file(flags)?;
    // An explicit seed makes DP noise reproducible, and so predictable: record whether one was given.
    let seed_given = merged.seed.is_some();
    if merged.model == Some(ModelKind::Logistic) && merged.hidden.as_ref().is_some_and(|h| !h.is_empty()) {
        return Err(CliError::usage(
            "--model logistic has no hidden layers; drop --hidden, or use --model mlp with --hidden",
        ));
    }
    let args = with_defaults(merged);
    mitigate::check_flags(&args)?;
    let signing_key = args.signing_key.as_deref().map(manifest::read_signing_key).transpose()?;
    let mut source = load_source(&args)?;
    let pii = screen_pii(&mut source, &args)?;

    let mut column_kinds = BTreeMap::new();
    for column in args.categorical.iter().flatten() {
        column_kinds.insert(column.clone(), ColumnKind::Categorical);
    }
    for column in args.numeric.iter().flatten() {
        if column_kinds.insert(column.clone(), ColumnKind::Numeric).is_some() {
            return Err(CliError::usage(format!("column '{column}' is given both as --categorical and as --numeric")));
        }
    }
    let seed = args.seed.unwrap_or_default();
    let prepare_options = PrepareOptions {
        target: source.target.clone(),
        positive_label: source.positive_label.clone(),
        sensitive: source.sensitive.clone(),
        sensitive_as_features: args.sensitive_as_features,
        excluded: source.excluded.clone(),
        column_kinds,
        test_fraction: args.test_fraction.unwrap_or_default(),
        validation_fraction: args.validation_fraction.unwrap_or_default(),
        seed,
        allow_missing_groups: args.allow_missing_groups,
    };
    if source.test.is_none() && prepare_options.test_fraction == 0.0 {
        return Err(CliError::usage(
            "--test-fraction 0 leaves no test rows; give a share above 0 or a --test-data file",
        ));
    }
    let data = prepare(&source.train, source.test.as_ref(), &prepare_options)?;
    for warning in &data.warnings {
        tracing::warn!("{warning}");
    }
    if data.sensitive.is_empty() {
        tracing::warn!("no sensitive columns were given (--sensitive), so the fairness audit is skipped");
    }
    if data.test.labels.iter().all(|&y| y == data.test.labels[0]) {
        tracing::warn!(
            "every test row has the same label, so ROC AUC, TPR or FPR are undefined; use a larger or stratified test split"
        );
    }
    for (column, groups) in data.sensitive.iter().zip(&data.test.groups) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for group in groups {
            *counts.entry(group.as_str()).or_default() += 1;
        }
        for (group, count) in counts.into_iter().filter(|(_, count)| *count < SMALL_GROUP) {
            tracing::warn!(
                "column '{column}': group '{group}' has only {count} test rows, so its rates and the disparities it drives are unreliable; see the confidence intervals"
            );
        }
    }

    let model_config = MlpConfig {
        inputs: data.encoder.width(),
        hidden: args.hidden.clone().unwrap_or_default(),
        activation: args.activation.unwrap_or_default(),
    };
    let train_config = TrainConfig {
        epochs: args.epochs.unwrap_or_default(),
        batch_size: args.batch_size.unwrap_or_default(),
        learning_rate: args.learning_rate.unwrap_or_default(),
        optimizer: args.optimizer.unwrap_or_default(),
        momentum: args.momentum.unwrap_or_default(),
        weight_decay: args.weight_decay.unwrap_or_default(),
        loss: args.loss.unwrap_or_default(),
        loss_threshold: args.loss_threshold,
        patience: args.patience,
        seed,
        dp: None,
    };
    train_config.validate()?;
    model_config.validate()?;
    let dp_plan = match args.dp_epsilon {
        Some(target) => Some(plan_private_training(&args, target, data.train.len(), seed_given.then_some(seed))?),
        None => {
            if args.compare_non_private
                || args.dp_delta.is_some()
                || args.max_grad_norm.is_some()
                || args.dp_clipping.is_some()
                || args.dp_accountant.is_some()
            {
                return Err(CliError::usage(
                    "--dp-delta, --max-grad-norm, --dp-clipping, --dp-accountant and --compare-non-private need --dp-epsilon",
                ));
            }
            None
        }
    };
    let train_config = TrainConfig { dp: dp_plan.as_ref().map(|plan| plan.config.clone()), ..train_config };
    let threshold = args.decision_threshold.unwrap_or_default();
    if !(0.0..=1.0).contains(&threshold) {
        return Err(CliError::usage(format!(
            "--decision-threshold {threshold} is invalid; use a probability in [0, 1]"
        )));
    }
    let device_kind = args.device.unwrap_or_default();
    let device = device::select(device_kind)?;

    // Claim the output directory before the long part, so a clash is reported at once.
    let out = match args.out.clone() {
        Some(out) => out,
        None => default_out(&source.name),
    };
    let run_dir = RunDirectory::create(&out)?;

    mitigate::check_data(&args, &data)?;
    let sample_weights = match args.mitigation {
        Some(MitigationMethod::Reweighing) => {
            let joint = joint_groups(&data.train.groups, data.train.len());
            let weights: Vec<f32> =
                reweighing_weights(&data.train.labels, &joint).into_iter().map(|w| w as f32).collect();
            Some(weights)
        }
        _ => None,
    };
    let train_rows = Rows { weights: sample_weights.as_deref(), ..rows(&data.train) };

    let progress = Progress::new(train_config.epochs, args.quiet);
    let training_start = Instant::now();
    let outcome =
        fit(&model_config, &train_config, train_rows, rows(&data.validation), &device, &mut |r| progress.epoch(r));
    progress.finish();
    let outcome = outcome?;
    let training_seconds = training_start.elapsed().as_secs_f64();

    let score = |split: &Split| split_scores(&outcome.model, split, &device);
    let test_scores = score(&data.test)?;
    let train_scores = score(&data.train)?;
    let validation_scores = score(&data.validation)?;

    // The classifier the run deploys: the model at the decision threshold, or the mitigation's
    // randomised classifier on top of it.
    let mitigated = match args.mitigation {
        Some(MitigationMethod::Threshold) => {
            let (fit_split, fit_scores) = match args.threshold_split.unwrap_or_default() {
                ThresholdSplit::Validation => (&data.validation, &validation_scores),
                ThresholdSplit::Train => (&data.train, &train_scores),
            };
            Some(mitigate::fit_thresholds(&args, &data.sensitive, fit_split, fit_scores)?)
        }
        Some(MitigationMethod::ExponentiatedGradient) => {
            let epochs = mitigate::WARM_START_EPOCHS.min(train_config.epochs);
            let learner = NetworkLearner::new(
                outcome.model.to_weights()?,
                &train_config,
                epochs,
                &data.train.features.values,
                data.train.features.width,
                &device,
            );
            Some(mitigate::reduce(&args, &data, learner, epochs)?)
        }
        Some(MitigationMethod::Reweighing) | None => None,
    };
    let decide = |split: &Split, scores: &[f64]| -> Result<Decisions, CliError> {
        match &mitigated {
            Some(mitigated) => mitigated.decide(split, scores, seed, &device),
            None => Ok(Decisions::at_threshold(scores, threshold)),
        }
    };
    let test_decisions = decide(&data.test, &test_scores)?;
    if let Some(&first) = test_decisions.predictions.first()
        && test_decisions.predictions.iter().all(|&p| p == first)
    {
        tracing::warn!(
            "the model predicts every test row {}: its disparities are zero only because it decides nothing; \
             with mitigation, small groups are a common cause (fewer sensitive columns or more data help)",
            if first { "positive" } else { "negative" }
        );
    }
    let train_decisions = decide(&data.train, &train_scores)?;
    let evaluation = |split: &Split, decisions: &Decisions| {
        evaluate_predictions(&split.labels, &decisions.predictions, &decisions.probabilities)
    };
    let train_metrics = evaluation(&data.train, &train_decisions);
    let validation_metrics = (!data.validation.is_empty())
        .then(|| Ok::<_, CliError>(evaluation(&data.validation, &decide(&data.validation, &validation_scores)?)))
        .transpose()?;
    let test_metrics = evaluation(&data.test, &test_decisions);

    let features = test_features(&data);
    let audit_options =
        AuditOptions { bootstrap_resamples: args.bootstrap.unwrap_or_default(), seed, ..AuditOptions::default() };
    let predictions = Predictions {
        y_true: &data.test.labels,
        y_pred: &test_decisions.predictions,
        scores: Some(&test_decisions.probabilities),
        weights: None,
    };
    let fairness = if features.is_empty() { BTreeMap::new() } else { audit(predictions, &features, &audit_options)? };

    let mitigation = match args.mitigation {
        Some(method) => {
            // Reweighing changed the training itself, so its baseline is trained again without
            // weights; the other methods build on the unweighted model already trained.
            let baseline_scores = if method == MitigationMethod::Reweighing {
                let baseline =
                    fit(&model_config, &train_config, rows(&data.train), rows(&data.validation), &device, &mut |_| {})?;
                split_scores(&baseline.model, &data.test, &device)?
            } else {
                test_scores.clone()
            };
            let baseline_decisions = Decisions::at_threshold(&baseline_scores, threshold);
            let baseline_disparities = disparities_by_groups(&data, &baseline_decisions)?;
            let mitigated_disparities = disparities_by_groups(&data, &test_decisions)?;
            // The audit names the joint groups of several columns `a & b`, and one column by its name.
            let measured_on = data.sensitive.join(" & ");
            let by_groups = baseline_disparities
                .iter()
                .map(|(groups, baseline)| {
                    Ok(GroupDisparities {
                        groups: groups.clone(),
                        baseline: baseline.clone(),
                        mitigated: measured(&mitigated_disparities, groups)?,
                    })
                })
                .collect::<Result<_, CliError>>()?;
            Some(MitigationReport {
                method,
                constraint: args.constraint.unwrap_or_default(),
                tolerance: args.tolerance,
                groups_from: data.sensitive.clone(),
                baseline: summarize(&data, &baseline_decisions, measured(&baseline_disparities, &measured_on)?),
                mitigated: summarize(&data, &test_decisions, measured(&mitigated_disparities, &measured_on)?),
                measured_on,
                threshold: mitigated.as_ref().and_then(|m| m.threshold_report()),
                reduction: mitigated.as_ref().and_then(|m| m.reduction_report()),
                by_groups,
            })
        }
        None => None,
    };

    let delta = dp_plan.as_ref().map_or_else(|| default_delta(data.train.len()), |plan| plan.delta);
    let membership_inference = membership_audit(&data, &train_scores, &test_scores, delta, seed);
    let privacy = match (&dp_plan, &outcome.privacy) {
        (Some(plan), Some(run)) => {
            let reference = if args.compare_non_private {
                let plain = TrainConfig { dp: None, ..train_config.clone() };
                let baseline =
                    fit(&model_config, &plain, rows(&data.train), rows(&data.validation), &device, &mut |_| {})?;
                let scores = split_scores(&baseline.model, &data.test, &device)?;
                Some(non_private_reference(&data, &scores, threshold, &fairness)?)
            } else {
                None
            };
            Some(privacy_report(plan, run, reference)?)
        }
        _ => None,
    };

    let weights = outcome.model.to_weights()?;
    let config = resolved_config(&args, seed_given, &source)?;
    let reproducible =
        device_kind.is_deterministic() && dp_plan.as_ref().is_none_or(|plan| plan.config.noise_seed.is_some());
    let reproduce = Reproduction {
        command: "zeren train --config config.toml --out NEW_DIR".to_string(),
        config_sha256: hex::encode(Sha256::digest(config.as_bytes())),
        bit_identical: reproducible,
        reason: reproduction_reason(device_kind, dp_plan.as_ref(), seed),
    };
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        zeren_version: env!("CARGO_PKG_VERSION"),
        run: RunInfo {
            command: std::env::args().collect(),
            started_at,
            seconds: 0.0,
            seed,
            device: device_kind.name().to_string(),
            // Secure DP noise comes from the operating system, so reruns differ.
            reproducible,
        },
        data: data_info(&source, &data, args.sensitive_as_features),
        model: ModelInfo {
            architecture: if model_config.hidden.is_empty() { "logistic" } else { "mlp" },
            parameters: model_config.parameter_count(),
            config: model_config,
        },
        training: TrainingInfo {
            epochs_run: outcome.history.len(),
            best_epoch: outcome.best_epoch,
            stop_reason: outcome.stop_reason.clone(),
            optimizer: format!("{:?}", train_config.optimizer).to_lowercase(),
            learning_rate: train_config.learning_rate,
            batch_size: train_config.batch_size,
            loss: format!("{:?}", train_config.loss).to_lowercase(),
            seconds: training_seconds,
            history: outcome.history.clone(),
        },
        metrics: Metrics {
            decision_threshold: threshold,
            train: train_metrics,
            validation: validation_metrics,
            test: test_metrics,
        },
        fairness,
        privacy,
        membership_inference,
        pii,
        mitigation,
        card: args.card.clone().unwrap_or_default(),
        roc_curves: roc_curves(&data, &test_scores),
        reproduce,
    };

    report.run.seconds = started.elapsed().as_secs_f64();
    let mitigation_file = mitigated.map(|m| m.into_file(&data.sensitive, seed));
    let artifacts = RunArtifacts { weights, mitigation: mitigation_file, test_decisions: &test_decisions };
    write_run(&run_dir, &config, &source, &data, &report, artifacts, threshold)?;
    let predicate = RunPredicate {
        zeren_version: env!("CARGO_PKG_VERSION").to_string(),
        command: report.run.command.clone(),
        seed,
        materials: source.materials.clone(),
    };
    let (manifest_bytes, signature) = manifest::build(run_dir.written(), predicate, signing_key.as_ref())?;
    run_dir.write(manifest::MANIFEST, &manifest_bytes)?;
    if let Some(signature) = signature {
        run_dir.write(manifest::SIGNATURE, format!("{signature}\n"))?;
    }
    let path = run_dir.commit()?;
    print_summary(&path, &report);
    Ok(())
}

/// Probabilities of the positive class for every row of a split.
fn split_scores(model: &Mlp, split: &Split, device: &Device) -> Result<Vec<f64>, CliError> {
    let probabilities = predict_probabilities(model, &split.features.values, split.features.width, device)?;
    Ok(probabilities.into_iter().map(f64::from).collect())
}

/// Collects the sensitive features of the test split for the audit.
fn test_features(data: &PreparedData) -> Vec<SensitiveFeature> {
    data.sensitive
        .iter()
        .zip(&data.test.groups)
        .map(|(name, groups)| SensitiveFeature { name: name.clone(), groups: groups.clone() })
        .collect()
}

/// Returns test accuracy and ROC AUC of one classifier, with its disparities on the groups
/// the mitigation acts on.
fn summarize(data: &PreparedData, decisions: &Decisions, disparities: Disparities) -> ModelSummary {
    let evaluation = evaluate_predictions(&data.test.labels, &decisions.predictions, &decisions.probabilities);
    ModelSummary { accuracy: evaluation.accuracy, roc_auc: evaluation.roc_auc, disparities }
}

/// Returns the disparities measured on `groups`, which the audit of the same columns produced.
fn measured(by_groups: &BTreeMap<String, Disparities>, groups: &str) -> Result<Disparities, CliError> {
    by_groups.get(groups).cloned().ok_or_else(|| {
        CliError::Failure(anyhow::anyhow!(
            "the fairness audit has no disparities for groups '{groups}'; this is a bug in zeren, please report it"
        ))
    })
}

/// Measures one classifier's test disparities on each sensitive column and, with several, on
/// their joint groups (keyed `a & b`).
fn disparities_by_groups(
    data: &PreparedData,
    decisions: &Decisions,
) -> Result<BTreeMap<String, Disparities>, CliError> {
    let options = AuditOptions { bootstrap_resamples: 0, intersectional: true, ..AuditOptions::default() };
    let input = Predictions { y_true: &data.test.labels, y_pred: &decisions.predictions, scores: None, weights: None };
    let audits = audit(input, &test_features(data), &options)?;
    Ok(audits
        .into_iter()
        .map(|(groups, audit)| {
            let between = audit.between_groups;
            let disparities = Disparities {
                demographic_parity_difference: between.demographic_parity_difference,
                equalized_odds_difference: between.equalized_odds_difference,
                equal_opportunity_difference: between.equal_opportunity_difference,
            };
            (groups, disparities)
        })
        .collect())
}

/// Shares for the training gate: stricter than for reporting, because one identifier in a
/// feature column already reaches the model and its category list. A column is flagged when 5% of
/// its sampled values hold one entity type, or any value does and its name suggests that type.
const GATE_OPTIONS: ColumnOptions = ColumnOptions { share: 0.05, share_with_name_hint: 0.0 };

/// Rows sampled per column by the PII screen: enough to estimate a column's share of
/// identifiers to about ±2 percentage points.
const PII_SAMPLE_ROWS: usize = 2000;

/// Screens the feature columns of the training data for personal identifiers and applies
/// `--pii`: fail, drop the columns, mask the identifiers in training and test rows, or allow.
fn screen_pii(source: &mut Source, args: &TrainArgs) -> Result<PiiReport, CliError> {
    let action = args.pii.unwrap_or_default();
    let table = &source.train;
    let scanner = Scanner::new();
    let step = (table.len() / PII_SAMPLE_ROWS).max(1);
    let sample: Vec<usize> = (0..table.len()).step_by(step).take(PII_SAMPLE_ROWS).collect();

    let mut flagged = Vec::new();
    for (index, column) in table.columns.iter().enumerate() {
        let is_feature = *column != source.target
            && !source.excluded.contains(column)
            && (args.sensitive_as_features || !source.sensitive.contains(column));
        if !is_feature {
            continue;
        }
        let mut stats = ColumnStats::new(column);
        for &row in &sample {
            let value = &table.rows[row][index];
            stats.add(value, &scanner.scan(value));
        }
        let report = stats.finish(&GATE_OPTIONS);
        if report.entity.is_some() || report.quasi_identifier {
            flagged.push(report);
        }
    }

    let direct: Vec<&ColumnReport> = flagged.iter().filter(|c| c.entity.is_some()).collect();
    for column in flagged.iter().filter(|c| c.entity.is_none()) {
        tracing::warn!(
            "{}, column '{}': values are unique per row and look like codes, a quasi-identifier; consider --exclude '{}'",
            table.source,
            column.column,
            column.column
        );
    }
    if !direct.is_empty() {
        let listed: Vec<String> = direct
            .iter()
            .map(|c| {
                format!(
                    "'{}' ({} in {:.0}% of sampled values)",
                    c.column,
                    c.entity.map_or("", EntityType::name),
                    c.share * 100.0
                )
            })
            .collect();
        match action {
            PiiAction::Fail => {
                return Err(CliError::Failure(anyhow::anyhow!(
                    "{}: feature columns hold personal identifiers: {}; pass --pii drop to leave them out, --pii mask to replace \
                     each identifier with its tag, --pii allow to train on them, or --exclude COL",
                    table.source,
                    listed.join(", ")
                )));
            }
            PiiAction::Drop => {
                tracing::warn!("--pii drop: leaving out {}", listed.join(", "));
                source.excluded.extend(direct.iter().map(|c| c.column.clone()));
            }
            PiiAction::Mask => {
                tracing::warn!("--pii mask: replacing identifiers with their tags in {}", listed.join(", "));
                let policy = Policy::default();
                let redactor = Redactor::new(&policy, None).map_err(|e| CliError::Failure(e.into()))?;
                let columns: Vec<(String, EntityType)> =
                    direct.iter().filter_map(|c| c.entity.map(|e| (c.column.clone(), e))).collect();
                for table in std::iter::once(&mut source.train).chain(source.test.as_mut()) {
                    mask_columns(table, &columns, &scanner, &redactor);
                }
            }
            PiiAction::Allow => {
                tracing::warn!("--pii allow: training on personal identifiers in {}", listed.join(", "))
            }
        }
    }
    Ok(PiiReport { action, columns: flagged, rows_sampled: sample.len() })
}

/// Replaces the identifiers in the given columns with their tags; a column of names, which the
/// recognizers cannot find inside text, is replaced cell by cell.
pub fn mask_columns(table: &mut Table, columns: &[(String, EntityType)], scanner: &Scanner, redactor: &Redactor<'_>) {
    for (column, entity) in columns {
        let Ok(index) = table.column_index(column) else { continue };
        for row in &mut table.rows {
            let value = &row[index];
            if value.is_empty() {
                continue;
            }
            row[index] = if *entity == EntityType::Person {
                format!("<{}>", entity.name())
            } else {
                redactor.redact_text(value, &scanner.scan(value), None)
            };
        }
    }
}

/// The DP-SGD settings of a private run and what they were derived from.
struct PrivatePlan {
    config: DpConfig,
    delta: f64,
    target_epsilon: f64,
    planned_steps: u64,
    accountant: Accountant,
    /// Weaknesses of the settings, repeated in the report.
    warnings: Vec<String>,
}

/// Calibrates the noise multiplier for `target_epsilon` over the planned steps of the run.
fn plan_private_training(
    args: &TrainArgs,
    target_epsilon: f64,
    rows: usize,
    noise_seed: Option<u64>,
) -> Result<PrivatePlan, CliError> {
    let delta = args.dp_delta.unwrap_or_else(|| default_delta(rows));
    let mut warnings = Vec::new();
    if delta >= 1.0 / rows as f64 && delta < 1.0 {
        let warning = format!(
            "delta {delta} is at least 1/N = {:.3e} for N = {rows} training rows: such a delta allows releasing a record outright; use a smaller --dp-delta",
            1.0 / rows as f64
        );
        tracing::warn!("{warning}");
        warnings.push(warning);
    }
    let expected_batch_size = args.batch_size.unwrap_or_default().min(rows);
    let sample_rate = expected_batch_size as f64 / rows as f64;
    let steps_per_epoch = ((rows as f64 / expected_batch_size.max(1) as f64).round() as u64).max(1);
    let planned_steps = args.epochs.unwrap_or_default() as u64 * steps_per_epoch;
    let accountant = Accountant::from(args.dp_accountant.unwrap_or_default());
    let calibration = calibrate::noise_multiplier_with(accountant, target_epsilon, sample_rate, planned_steps, delta)?;

    // Different from the seed of weights and batches, so the noise is not a copy of another stream.
    let noise_seed = noise_seed.map(|seed| seed ^ 0x9e37_79b9_7f4a_7c15);
    if noise_seed.is_some() {
        tracing::warn!(
            "--seed makes the DP noise reproducible and therefore predictable: the model is not safe to release; omit --seed for secure noise"
        );
    }
    let config = DpConfig {
        noise_multiplier: calibration.noise_multiplier,
        max_grad_norm: args.max_grad_norm.unwrap_or_default(),
        clipping: args.dp_clipping.unwrap_or_default(),
        noise_seed,
    };
    config.validate()?;
    Ok(PrivatePlan { config, delta, target_epsilon, planned_steps, accountant, warnings })
}

fn privacy_report(
    plan: &PrivatePlan,
    run: &PrivateTraining,
    reference: Option<NonPrivateReference>,
) -> Result<PrivacyReport, CliError> {
    let spent = epsilon(plan.accountant, run.sample_rate, run.noise_multiplier, run.steps.max(1), plan.delta)?;
    let rows = (run.expected_batch_size as f64 / run.sample_rate).round();
    let noise = if run.secure_noise {
        "noise drawn from ChaCha20 seeded by the operating system, which the adversary cannot predict".to_string()
    } else {
        "noise that the adversary cannot predict. WARNING: this run's noise was seeded (--seed), so anyone who knows the seed can remove it; the guarantee does not hold for a released model".to_string()
    };
    let guarantee = format!(
        "The training algorithm is ({:.4}, {})-differentially private with respect to adding or removing any one of the {} training rows: \
         whatever the other rows, one row changes the probability of any outcome of training by at most a factor e^{:.4}, except with probability {}. \
         This assumes Poisson sampling (each row joins each step's batch independently with probability {:.6}, as implemented), \
         per-example gradients clipped to norm {} and {}. It covers the model weights; it does not cover the validation rows used for \
         early stopping, the test rows, or the preprocessing statistics (category lists, means and standard deviations) fitted on the \
         training rows without noise.",
        spent.epsilon, plan.delta, rows, spent.epsilon, plan.delta, run.sample_rate, run.max_grad_norm, noise
    );
    Ok(PrivacyReport {
        epsilon: spent.epsilon,
        delta: plan.delta,
        noise_multiplier: run.noise_multiplier,
        sample_rate: run.sample_rate,
        steps: run.steps,
        max_grad_norm: run.max_grad_norm,
        accountant: plan.accountant.name(),
        order: spent.order,
        epsilon_error: spent.epsilon_error,
        target_epsilon: plan.target_epsilon,
        planned_steps: plan.planned_steps,
        expected_batch_size: run.expected_batch_size,
        clipping: run.clipping,
        secure_noise: run.secure_noise,
        normalization: "divided by the expected batch size, as in Opacus",
        guarantee,
        non_private_reference: reference,
        epsilon_by_step: epsilon_by_step(plan, run),
        warnings: plan.warnings.clone(),
    })
}

/// ε after evenly spaced step counts up to the steps run, for the card's chart. The PRV
/// accountant costs a fraction of a second per point, so it gets fewer points than RDP.
fn epsilon_by_step(plan: &PrivatePlan, run: &PrivateTraining) -> Vec<[f64; 2]> {
    let points: u64 = if plan.accountant == Accountant::Rdp { 24 } else { 8 };
    let count = points.min(run.steps);
    (1..=count)
        .map(|i| (i * run.steps).div_ceil(count))
        .filter_map(|steps| {
            let spent = epsilon(plan.accountant, run.sample_rate, run.noise_multiplier, steps, plan.delta).ok()?;
            Some([steps as f64, spent.epsilon])
        })
        .collect()
}

/// Runs the loss-threshold attack with as many training rows (a seeded sample) as test rows.
fn membership_audit(
    data: &PreparedData,
    train_scores: &[f64],
    test_scores: &[f64],
    delta: f64,
    seed: u64,
) -> Option<MembershipInference> {
    let loss = |p: f64, y: bool| {
        let p = p.clamp(1e-12, 1.0 - 1e-12);
        if y { -p.ln() } else { -(1.0 - p).ln() }
    };
    let mut members: Vec<usize> = (0..train_scores.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(0x3141));
    members.shuffle(&mut rng);
    members.truncate(test_scores.len());
    let member_losses: Vec<f64> = members.iter().map(|&i| loss(train_scores[i], data.train.labels[i])).collect();
    let non_member_losses: Vec<f64> = test_scores.iter().zip(&data.test.labels).map(|(&p, &y)| loss(p, y)).collect();
    loss_threshold_attack(&member_losses, &non_member_losses, delta)
}

fn non_private_reference(
    data: &PreparedData,
    scores: &[f64],
    threshold: f64,
    private_fairness: &BTreeMap<String, FeatureAudit>,
) -> Result<NonPrivateReference, CliError> {
    let evaluation = evaluate(&data.test.labels, scores, threshold);
    let predictions: Vec<bool> = scores.iter().map(|&p| p >= threshold).collect();
    let features = test_features(data);
    let options = AuditOptions { bootstrap_resamples: 0, intersectional: false, ..AuditOptions::default() };
    let input = Predictions { y_true: &data.test.labels, y_pred: &predictions, scores: None, weights: None };
    let audits = if features.is_empty() { BTreeMap::new() } else { audit(input, &features, &options)? };
    let accuracy_by_group = |audits: &BTreeMap<String, FeatureAudit>| -> BTreeMap<String, BTreeMap<String, f64>> {
        data.sensitive
            .iter()
            .filter_map(|column| {
                audits
                    .get(column)
                    .map(|a| (column.clone(), a.groups.iter().map(|(g, m)| (g.clone(), m.accuracy)).collect()))
            })
            .collect()
    };
    Ok(NonPrivateReference {
        test_accuracy: evaluation.accuracy,
        test_roc_auc: evaluation.roc_auc,
        group_accuracy: accuracy_by_group(&audits),
        private_group_accuracy: accuracy_by_group(private_fairness),
    })
}

fn load_source(args: &TrainArgs) -> Result<Source, CliError> {
    if let Some(sensitive) = &args.sensitive {
        check_distinct_columns("--sensitive", sensitive)?;
    }
    let missing_values = args.missing_values.clone().unwrap_or_else(default_missing_values);
    match (&args.dataset, &args.data) {
        (Some(name), None) => {
            if args.test_data.is_some() {
                return Err(CliError::usage("--test-data needs --data; a built-in dataset brings its own test rows"));
            }
            let builtin = load_builtin(name)?;
            let materials =
                builtin.files.iter().map(|(file, bytes)| Resource::of(&format!("builtin:{file}"), bytes)).collect();
            let mut excluded = builtin.excluded.clone();
            excluded.extend(args.exclude.clone().unwrap_or_default());
            Ok(Source {
                name: builtin.name.to_string(),
                dataset: Some(builtin.name.to_string()),
                target: args.target.clone().unwrap_or_else(|| builtin.target.to_string()),
                positive_label: args.positive_label.clone().unwrap_or_else(|| builtin.positive_label.to_string()),
                sensitive: args.sensitive.clone().unwrap_or(builtin.sensitive),
                excluded,
                train: builtin.train,
                test: builtin.test,
                csv: CsvOptions::default(),
                materials,
            })
        }
        (None, Some(path)) => {
            let target = args
                .target
                .clone()
                .ok_or_else(|| CliError::usage("--data needs --target COL, the column to predict"))?;
            let positive_label = args.positive_label.clone().ok_or_else(|| {
                CliError::usage("--data needs --positive-label VALUE, the target value of the positive class")
            })?;
            let csv = CsvOptions {
                delimiter: parse_delimiter(args.delimiter.as_deref().unwrap_or(","))?,
                has_header: !args.no_header,
                column_names: None,
                missing_values,
                comment: None,
            };
            let train = Table::from_path(path, &csv)?;
            let test = args.test_data.as_ref().map(|p| Table::from_path(p, &csv)).transpose()?;
            let mut materials = Vec::new();
            for input in std::iter::once(path).chain(args.test_data.as_ref()) {
                let bytes = std::fs::read(input).with_context(|| format!("{}: cannot read", input.display()))?;
                let name = std::fs::canonicalize(input).unwrap_or_else(|_| input.clone());
                materials.push(Resource::of(&name.display().to_string(), &bytes));
            }
            let name = path.file_stem().map_or("run".to_string(), |s| s.to_string_lossy().into_owned());
            Ok(Source {
                name,
                dataset: None,
                train,
                test,
                csv,
                target,
                positive_label,
                sensitive: args.sensitive.clone().unwrap_or_default(),
                excluded: args.exclude.clone().unwrap_or_default(),
                materials,
            })
        }
        (Some(_), Some(_)) => Err(CliError::usage("give either --dataset or --data, not both")),
        (None, None) => Err(CliError::usage(
            "nothing to train on: give --dataset NAME (adult, german, compas) or --data FILE --target COL --positive-label VALUE",
        )),
    }
}

/// Rejects a column list that names a column twice, which would audit and mitigate a column
/// joined with itself.
pub(crate) fn check_distinct_columns(flag: &str, columns: &[String]) -> Result<(), CliError> {
    for (index, column) in columns.iter().enumerate() {
        if columns[..index].contains(column) {
            return Err(CliError::usage(format!("{flag} names column '{column}' twice; list each column once")));
        }
    }
    Ok(())
}

fn data_info(source: &Source, data: &PreparedData, sensitive_as_features: bool) -> DataInfo {
    let test_source = match &source.test {
        Some(table) => table.source.clone(),
        None => format!("a stratified held-out share of {}", source.train.source),
    };
    let mut positive_rate = BTreeMap::new();
    positive_rate.insert("train".to_string(), data.train.positive_rate());
    positive_rate.insert("test".to_string(), data.test.positive_rate());
    DataInfo {
        dataset: source.dataset.clone(),
        train_source: source.train.source.clone(),
        test_source,
        target: data.label.column.clone(),
        positive_label: data.label.positive.clone(),
        negative_label: data.label.negative.clone(),
        sensitive: data.sensitive.clone(),
        sensitive_as_features,
        rows: RowCounts { train: data.train.len(), validation: data.validation.len(), test: data.test.len() },
        positive_rate,
        columns: data
            .encoder
            .features
            .iter()
            .map(|f| ColumnInfo { name: f.column().to_string(), kind: data.column_kinds[f.column()] })
            .collect(),
        inputs: data.encoder.width(),
        warnings: data.warnings.clone(),
    }
}

/// Explains why a rerun is or is not expected to give bit-identical weights.
fn reproduction_reason(device: DeviceKind, dp_plan: Option<&PrivatePlan>, seed: u64) -> String {
    if !device.is_deterministic() {
        format!(
            "Training ran on {}, whose parallel floating-point sums are not in a fixed order, so reruns differ in the last bits.",
            device.name()
        )
    } else if dp_plan.is_some_and(|plan| plan.config.noise_seed.is_none()) {
        "The DP noise is drawn from the operating system's entropy, as the privacy guarantee requires, so every \
         rerun draws new noise and gives different weights with the same guarantee."
            .to_string()
    } else {
        format!(
            "Training ran on the CPU with seed {seed}: weights, batch order, splits and bootstrap are seeded, and \
             zeren's CPU training gives the same bits whatever the thread count."
        )
    }
}

/// ROC curves of the test split for every group of every sensitive column, thinned to at most
/// `MAX_POINTS` points each and rounded to 5 decimals, which keeps report.json small.
fn roc_curves(data: &PreparedData, scores: &[f64]) -> BTreeMap<String, BTreeMap<String, Vec<[f64; 2]>>> {
    const MAX_POINTS: usize = 200;
    let mut curves = BTreeMap::new();
    for (column, groups) in data.sensitive.iter().zip(&data.test.groups) {
        let mut rows_by_group: BTreeMap<&str, (Vec<bool>, Vec<f64>)> = BTreeMap::new();
        for ((group, &label), &score) in groups.iter().zip(&data.test.labels).zip(scores) {
            let entry = rows_by_group.entry(group.as_str()).or_default();
            entry.0.push(label);
            entry.1.push(score);
        }
        let mut by_group = BTreeMap::new();
        for (group, (labels, group_scores)) in rows_by_group {
            let curve = roc_curve(&labels, &group_scores);
            if curve.is_empty() {
                continue;
            }
            let stride = curve.len().div_ceil(MAX_POINTS);
            let last = curve.len() - 1;
            let points = curve
                .iter()
                .enumerate()
                .filter(|(i, _)| i % stride == 0 || *i == last)
                .map(|(_, &(fpr, tpr))| [(fpr * 1e5).round() / 1e5, (tpr * 1e5).round() / 1e5])
                .collect();
            by_group.insert(group.to_string(), points);
        }
        curves.insert(column.clone(), by_group);
    }
    curves
}

/// Serialises the resolved configuration of a run for `config.toml`. Absolute data paths and
/// the task of a built-in dataset make the file rerunnable from anywhere.
fn resolved_config(args: &TrainArgs, seed_given: bool, source: &Source) -> Result<String, CliError> {
    let mut resolved = args.clone();
    resolved.config = None;
    resolved.out = None;
    // A private run without --seed keeps its noise secure on rerun: the seed is left out (the
    // default seed of weights and splits is the same).
    if resolved.dp_epsilon.is_some() && !seed_given {
        resolved.seed = None;
    }
    for path in [&mut resolved.data, &mut resolved.test_data, &mut resolved.signing_key].into_iter().flatten() {
        if let Ok(absolute) = std::fs::canonicalize(&*path) {
            *path = absolute;
        }
    }
    resolved.target = Some(source.target.clone());
    resolved.positive_label = Some(source.positive_label.clone());
    resolved.sensitive = Some(source.sensitive.clone());
    let config = toml::to_string(&resolved).map_err(|e| CliError::Failure(e.into()))?;
    Ok(format!(
        "# Resolved configuration of this run; rerun with `zeren train --config config.toml --out NEW_DIR`.\n{config}"
    ))
}

/// The model files of a run and the test predictions of the classifier it deploys.
struct RunArtifacts<'a> {
    weights: zeren_train::MlpWeights,
    mitigation: Option<MitigationFile>,
    test_decisions: &'a Decisions,
}

#[allow(clippy::too_many_arguments)]
fn write_run(
    run_dir: &RunDirectory,
    config: &str,
    source: &Source,
    data: &PreparedData,
    report: &Report,
    artifacts: RunArtifacts<'_>,
    threshold: f64,
) -> Result<(), CliError> {
    let model = ModelFile { format_version: FORMAT_VERSION, weights: artifacts.weights };
    run_dir.write(artifacts::MODEL_FILE, to_json(&model)?)?;
    if let Some(mitigation) = &artifacts.mitigation {
        run_dir.write(artifacts::MITIGATION_FILE, to_json(mitigation)?)?;
    }
    let preprocessing = PreprocessingFile {
        format_version: FORMAT_VERSION,
        csv: source.csv.clone(),
        encoder: data.encoder.clone(),
        label: data.label.clone(),
        sensitive: data.sensitive.clone(),
        decision_threshold: threshold,
        pii_masked: if report.pii.action == PiiAction::Mask {
            report.pii.columns.iter().filter_map(|c| c.entity.map(|e| (c.column.clone(), e))).collect()
        } else {
            Vec::new()
        },
    };
    run_dir.write(artifacts::PREPROCESSING_FILE, to_json(&preprocessing)?)?;

    run_dir.write(artifacts::CONFIG_FILE, config)?;

    run_dir.write(artifacts::TEST_PREDICTIONS, test_predictions_csv(data, artifacts.test_decisions)?)?;

    let json = to_json(report)?;
    // Rendered from the JSON text, as `zeren report` does, so that both give the same page.
    let html = card::parse_report(&json)
        .and_then(|value| card::render_html(&value))
        .map_err(|e| CliError::Failure(e.into()))?;
    run_dir.write(artifacts::REPORT_JSON, json)?;
    run_dir.write(artifacts::REPORT_MARKDOWN, render_markdown(report))?;
    run_dir.write(artifacts::REPORT_HTML, html)?;
    Ok(())
}

/// Test-split rows with sensitive groups, label, probability of a positive prediction and the
/// prediction, so the audit can be repeated with another tool (for example Fairlearn).
fn test_predictions_csv(data: &PreparedData, decisions: &Decisions) -> Result<Vec<u8>, CliError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["row".to_string()];
    header.extend(data.sensitive.iter().cloned());
    header.extend([data.label.column.clone(), "probability".to_string(), "prediction".to_string()]);
    writer.write_record(&header).map_err(|e| CliError::Failure(e.into()))?;
    for (row, (&probability, &positive)) in decisions.probabilities.iter().zip(&decisions.predictions).enumerate() {
        let mut record = vec![(row + 1).to_string()];
        record.extend(data.test.groups.iter().map(|g| g[row].clone()));
        let label = if data.test.labels[row] { &data.label.positive } else { &data.label.negative };
        let predicted = if positive { &data.label.positive } else { &data.label.negative };
        // Adding 0.0 turns -0.0 into 0.0, so no "-0.000000" is written.
        record.extend([label.clone(), format!("{:.6}", probability + 0.0), predicted.clone()]);
        writer.write_record(&record).map_err(|e| CliError::Failure(e.into()))?;
    }
    writer.into_inner().map_err(|e| CliError::Failure(anyhow::anyhow!("cannot write test predictions: {e}")))
}

fn print_summary(path: &std::path::Path, report: &Report) {
    let test = &report.metrics.test;
    println!(
        "zeren: wrote {}: test accuracy {:.4}, ROC AUC {:.4}, {} epochs",
        path.display(),
        test.accuracy,
        test.roc_auc,
        report.training.epochs_run
    );
    for column in &report.data.sensitive {
        if let Some(audit) = report.fairness.get(column) {
            println!(
                "  {column}: demographic parity difference {:.4}, equalized odds difference {:.4}",
                audit.between_groups.demographic_parity_difference, audit.between_groups.equalized_odds_difference
            );
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).map_err(|e| CliError::Failure(e.into()))
}

fn rows(split: &Split) -> Rows<'_> {
    Rows { features: &split.features.values, labels: &split.labels, weights: None, width: split.features.width }
}
