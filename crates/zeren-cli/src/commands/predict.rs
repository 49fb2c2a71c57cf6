//! `zeren predict`: score a CSV file with a trained model.

use std::io::Write;

use zeren_data::Table;
use zeren_data::dataset::read_groups;
use zeren_pii::Scanner;
use zeren_pii::operators::{Policy, Redactor};
use zeren_train::{Mlp, device, predict_probabilities};

use crate::artifacts::{
    self, MitigatedClassifier, MitigationFile, ModelFile, PreprocessingFile, check_version, read_artifact,
};
use crate::cli::PredictArgs;
use crate::commands::mitigate::{Decisions, Inputs, decide, joint_groups};
use crate::commands::train::mask_columns;
use crate::error::CliError;
use crate::run_dir::write_file_atomically;

/// Output columns added to the input's columns.
const PROBABILITY_COLUMN: &str = "probability";
const PREDICTION_COLUMN: &str = "prediction";

/// Runs `zeren predict`.
pub fn run(args: PredictArgs) -> Result<(), CliError> {
    let preprocessing: PreprocessingFile = read_artifact(&args.model, artifacts::PREPROCESSING_FILE)?;
    check_version(&args.model, artifacts::PREPROCESSING_FILE, preprocessing.format_version)?;
    let model_file: ModelFile = read_artifact(&args.model, artifacts::MODEL_FILE)?;
    check_version(&args.model, artifacts::MODEL_FILE, model_file.format_version)?;
    let mitigation: Option<MitigationFile> = if args.model.join(artifacts::MITIGATION_FILE).is_file() {
        let file: MitigationFile = read_artifact(&args.model, artifacts::MITIGATION_FILE)?;
        check_version(&args.model, artifacts::MITIGATION_FILE, file.format_version)?;
        Some(file)
    } else {
        None
    };
    if mitigation.is_some() && args.decision_threshold.is_some() {
        return Err(CliError::usage(
            "--decision-threshold does not apply to a mitigated run: its decisions come from mitigation.json; drop the flag",
        ));
    }
    let threshold = args.decision_threshold.unwrap_or(preprocessing.decision_threshold);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(CliError::usage(format!(
            "--decision-threshold {threshold} is invalid; use a probability in [0, 1]"
        )));
    }

    let table = Table::from_path(&args.data, &preprocessing.csv)?;
    let groups = match &mitigation {
        Some(file) if matches!(file.classifier, MitigatedClassifier::Threshold { .. }) => {
            Some(read_sensitive_groups(&table, &file.groups_from)?)
        }
        _ => None,
    };
    // The model was trained on masked values, so the model inputs are masked the same way; the
    // output keeps the input's values.
    let mut masked = None;
    if !preprocessing.pii_masked.is_empty() {
        let policy = Policy::default();
        let redactor = Redactor::new(&policy, None).map_err(|e| CliError::Failure(e.into()))?;
        let mut copy = table.clone();
        mask_columns(&mut copy, &preprocessing.pii_masked, &Scanner::new(), &redactor);
        masked = Some(copy);
    }
    let encoded_from = masked.as_ref().unwrap_or(&table);
    for name in [PROBABILITY_COLUMN, PREDICTION_COLUMN] {
        if table.columns.iter().any(|c| c == name) {
            return Err(CliError::usage(format!(
                "{}: the input already has a column named '{name}', which the output adds; rename that column",
                table.source
            )));
        }
    }
    let rows: Vec<usize> = (0..table.len()).collect();
    let encoded = preprocessing.encoder.transform(encoded_from, &rows)?;
    for (column, count) in &encoded.unseen {
        tracing::warn!(
            "{}, column '{column}': {count} rows have a category not seen in training; they use the unseen-category input",
            table.source
        );
    }

    let device = device::cpu();
    let model = Mlp::from_weights(&model_file.weights, &device)?;
    let probabilities = predict_probabilities(&model, &encoded.values, encoded.width, &device)?;
    let scores: Vec<f64> = probabilities.iter().map(|&p| f64::from(p)).collect();
    let decisions = match &mitigation {
        Some(file) => {
            let groups = groups.unwrap_or_default();
            let inputs = Inputs { scores: &scores, groups: &groups, features: &encoded.values, width: encoded.width };
            decide(&file.classifier, inputs, args.seed.unwrap_or(file.seed), &device)?
        }
        None => Decisions::at_threshold(&scores, threshold),
    };

    let mut writer = csv::WriterBuilder::new().delimiter(preprocessing.csv.delimiter).from_writer(Vec::new());
    let mut header = table.columns.clone();
    header.extend([PROBABILITY_COLUMN.to_string(), PREDICTION_COLUMN.to_string()]);
    writer.write_record(&header).map_err(|e| CliError::Failure(e.into()))?;
    for ((row, probability), &positive) in table.rows.iter().zip(&decisions.probabilities).zip(&decisions.predictions) {
        let label = if positive { &preprocessing.label.positive } else { &preprocessing.label.negative };
        let mut record = row.clone();
        // Adding 0.0 turns -0.0 (a sum of zero-weighted votes) into 0.0, so no "-0.000000" is written.
        record.extend([format!("{:.6}", probability + 0.0), label.clone()]);
        writer.write_record(&record).map_err(|e| CliError::Failure(e.into()))?;
    }
    let bytes = writer.into_inner().map_err(|e| CliError::Failure(anyhow::anyhow!("cannot write predictions: {e}")))?;

    match &args.out {
        Some(path) => {
            write_file_atomically(path, &bytes)?;
            eprintln!("zeren: wrote {} predictions to {}", decisions.predictions.len(), path.display());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&bytes).map_err(|e| CliError::Failure(e.into()))?;
        }
    }
    Ok(())
}

/// Reads the joint sensitive group of every row, which threshold mitigation needs.
///
/// # Errors
///
/// Returns a usage error naming a missing sensitive column, why it is needed and what to do.
fn read_sensitive_groups(table: &Table, columns: &[String]) -> Result<Vec<String>, CliError> {
    let mut indices = Vec::with_capacity(columns.len());
    for column in columns {
        let Ok(index) = table.column_index(column) else {
            return Err(CliError::usage(format!(
                "{}: column '{column}' is missing; this run's threshold mitigation applies a different threshold to each group of {}, so every row needs its value; add the column to the file",
                table.source,
                columns.join(", ")
            )));
        };
        indices.push(index);
    }
    let groups = read_groups(table, &indices);
    Ok(joint_groups(&groups, table.len()))
}
