//! `zeren train`: load, split, train, evaluate, audit, and write the run directory.

use std::collections::BTreeMap;
use std::time::Instant;

use zeren_data::builtin::load_builtin;
use zeren_data::{ColumnKind, CsvOptions, PrepareOptions, PreparedData, Split, Table, default_missing_values, prepare};
use zeren_fairness::audit::{AuditOptions, Predictions, SensitiveFeature, audit};
use zeren_fairness::classification::evaluate;
use zeren_train::{MlpConfig, Rows, TrainConfig, device, fit, predict_probabilities};

use crate::artifacts::{self, FORMAT_VERSION, ModelFile, PreprocessingFile};
use crate::cli::TrainArgs;
use crate::config::{default_out, merge_config_file, parse_delimiter, with_defaults};
use crate::error::CliError;
use crate::progress::Progress;
use crate::report::{ColumnInfo, DataInfo, Metrics, ModelInfo, Report, RowCounts, RunInfo, SCHEMA_VERSION, TrainingInfo, render_markdown};
use crate::run_dir::RunDirectory;

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
}

/// Runs `zeren train`.
pub fn run(flags: TrainArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let args = with_defaults(merge_config_file(flags)?);
    let source = load_source(&args)?;

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
    let data = prepare(&source.train, source.test.as_ref(), &prepare_options)?;
    for warning in &data.warnings {
        tracing::warn!("{warning}");
    }
    if data.sensitive.is_empty() {
        tracing::warn!("no sensitive columns were given (--sensitive), so the fairness audit is skipped");
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
    let threshold = args.decision_threshold.unwrap_or_default();
    if !(0.0..=1.0).contains(&threshold) {
        return Err(CliError::usage(format!("--decision-threshold {threshold} is invalid; use a probability in [0, 1]")));
    }
    let device_kind = args.device.unwrap_or_default();
    let device = device::select(device_kind)?;

    // Claim the output directory before the long part, so a clash is reported at once.
    let out = args.out.clone().unwrap_or_else(|| default_out(&source.name));
    let run_dir = RunDirectory::create(&out)?;

    let progress = Progress::new(train_config.epochs, args.quiet);
    let training_start = Instant::now();
    let outcome = fit(&model_config, &train_config, rows(&data.train), rows(&data.validation), &device, &mut |r| progress.epoch(r));
    progress.finish();
    let outcome = outcome?;
    let training_seconds = training_start.elapsed().as_secs_f64();

    let score = |split: &Split| -> Result<Vec<f64>, CliError> {
        let probabilities = predict_probabilities(&outcome.model, &split.features.values, split.features.width, &device)?;
        Ok(probabilities.into_iter().map(f64::from).collect())
    };
    let test_scores = score(&data.test)?;
    let train_metrics = evaluate(&data.train.labels, &score(&data.train)?, threshold);
    let validation_metrics =
        (!data.validation.is_empty()).then(|| Ok::<_, CliError>(evaluate(&data.validation.labels, &score(&data.validation)?, threshold))).transpose()?;
    let test_metrics = evaluate(&data.test.labels, &test_scores, threshold);

    let test_predictions: Vec<bool> = test_scores.iter().map(|&p| p >= threshold).collect();
    let features: Vec<SensitiveFeature> = data
        .sensitive
        .iter()
        .zip(&data.test.groups)
        .map(|(name, groups)| SensitiveFeature { name: name.clone(), groups: groups.clone() })
        .collect();
    let audit_options = AuditOptions { bootstrap_resamples: args.bootstrap.unwrap_or_default(), seed, ..AuditOptions::default() };
    let predictions = Predictions { y_true: &data.test.labels, y_pred: &test_predictions, scores: Some(&test_scores), weights: None };
    let fairness = if features.is_empty() { BTreeMap::new() } else { audit(predictions, &features, &audit_options)? };

    let weights = outcome.model.to_weights()?;
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        zeren_version: env!("CARGO_PKG_VERSION"),
        run: RunInfo {
            command: std::env::args().collect(),
            started_at,
            seconds: 0.0,
            seed,
            device: device_kind.name().to_string(),
            reproducible: device_kind.is_deterministic(),
        },
        data: data_info(&source, &data, args.sensitive_as_features),
        model: ModelInfo { architecture: "mlp", parameters: model_config.parameter_count(), config: model_config },
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
        metrics: Metrics { decision_threshold: threshold, train: train_metrics, validation: validation_metrics, test: test_metrics },
        fairness,
    };

    report.run.seconds = started.elapsed().as_secs_f64();
    write_run(&run_dir, &args, &source, &data, &report, weights, &test_scores, threshold)?;
    let path = run_dir.commit()?;
    print_summary(&path, &report);
    Ok(())
}

fn load_source(args: &TrainArgs) -> Result<Source, CliError> {
    let missing_values = args.missing_values.clone().unwrap_or_else(default_missing_values);
    match (&args.dataset, &args.data) {
        (Some(name), None) => {
            if args.test_data.is_some() {
                return Err(CliError::usage("--test-data needs --data; a built-in dataset brings its own test rows"));
            }
            let builtin = load_builtin(name)?;
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
            })
        }
        (None, Some(path)) => {
            let target = args
                .target
                .clone()
                .ok_or_else(|| CliError::usage("--data needs --target COL, the column to predict"))?;
            let positive_label = args
                .positive_label
                .clone()
                .ok_or_else(|| CliError::usage("--data needs --positive-label VALUE, the target value of the positive class"))?;
            let csv = CsvOptions {
                delimiter: parse_delimiter(args.delimiter.as_deref().unwrap_or(","))?,
                has_header: !args.no_header,
                column_names: None,
                missing_values,
                comment: None,
            };
            let train = Table::from_path(path, &csv)?;
            let test = args.test_data.as_ref().map(|p| Table::from_path(p, &csv)).transpose()?;
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
            })
        }
        (Some(_), Some(_)) => Err(CliError::usage("give either --dataset or --data, not both")),
        (None, None) => Err(CliError::usage(
            "nothing to train on: give --dataset NAME (adult, german, compas) or --data FILE --target COL --positive-label VALUE",
        )),
    }
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

#[allow(clippy::too_many_arguments)]
fn write_run(
    run_dir: &RunDirectory,
    args: &TrainArgs,
    source: &Source,
    data: &PreparedData,
    report: &Report,
    weights: zeren_train::MlpWeights,
    test_scores: &[f64],
    threshold: f64,
) -> Result<(), CliError> {
    let model = ModelFile { format_version: FORMAT_VERSION, weights };
    run_dir.write(artifacts::MODEL_FILE, to_json(&model)?)?;
    let preprocessing = PreprocessingFile {
        format_version: FORMAT_VERSION,
        csv: source.csv.clone(),
        encoder: data.encoder.clone(),
        label: data.label.clone(),
        sensitive: data.sensitive.clone(),
        decision_threshold: threshold,
    };
    run_dir.write(artifacts::PREPROCESSING_FILE, to_json(&preprocessing)?)?;

    let mut resolved = args.clone();
    resolved.config = None;
    resolved.out = None;
    let config = toml::to_string(&resolved).map_err(|e| CliError::Failure(e.into()))?;
    run_dir.write(artifacts::CONFIG_FILE, format!("# Resolved configuration of this run; rerun with `zeren train --config config.toml --out NEW_DIR`.\n{config}"))?;

    run_dir.write(artifacts::TEST_PREDICTIONS, test_predictions_csv(data, test_scores, threshold)?)?;

    run_dir.write(artifacts::REPORT_JSON, to_json(report)?)?;
    run_dir.write(artifacts::REPORT_MARKDOWN, render_markdown(report))?;
    Ok(())
}

/// Test-split rows with sensitive groups, label, probability and prediction, so the audit can be
/// repeated with another tool (for example Fairlearn).
fn test_predictions_csv(data: &PreparedData, scores: &[f64], threshold: f64) -> Result<Vec<u8>, CliError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["row".to_string()];
    header.extend(data.sensitive.iter().cloned());
    header.extend([data.label.column.clone(), "probability".to_string(), "prediction".to_string()]);
    writer.write_record(&header).map_err(|e| CliError::Failure(e.into()))?;
    for (row, &score) in scores.iter().enumerate() {
        let mut record = vec![(row + 1).to_string()];
        record.extend(data.test.groups.iter().map(|g| g[row].clone()));
        let label = if data.test.labels[row] { &data.label.positive } else { &data.label.negative };
        let predicted = if score >= threshold { &data.label.positive } else { &data.label.negative };
        record.extend([label.clone(), format!("{score:.6}"), predicted.clone()]);
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
