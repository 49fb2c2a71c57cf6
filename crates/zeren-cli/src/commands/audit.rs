//! `zeren audit`: fairness audit of predictions from any model.

use std::collections::BTreeSet;

use zeren_data::dataset::read_groups;
use zeren_data::{CsvOptions, Table};
use zeren_fairness::audit::{AuditOptions, Predictions, SensitiveFeature, audit};

use crate::cli::AuditArgs;
use crate::config::parse_delimiter;
use crate::error::CliError;
use crate::report::render_audit;

/// Runs `zeren audit`.
pub fn run(args: AuditArgs) -> Result<(), CliError> {
    crate::commands::train::check_distinct_columns("--sensitive", &args.sensitive)?;
    let csv = CsvOptions { delimiter: parse_delimiter(&args.delimiter)?, ..CsvOptions::default() };
    let table = Table::from_path(&args.data, &csv)?;
    let label = table.column_index(&args.label)?;
    let prediction = table.column_index(&args.prediction)?;
    let sensitive: Vec<usize> = args.sensitive.iter().map(|c| table.column_index(c)).collect::<Result<_, _>>()?;

    let positive = positive_label(&table, label, prediction, args.positive_label.as_deref())?;
    // true/false labels are matched without regard to case (True, TRUE, true).
    let fold_case = positive.eq_ignore_ascii_case("true");
    let label_values = distinct_values(&table, label, fold_case)?;
    let prediction_values = distinct_values(&table, prediction, fold_case)?;
    let key = |value: &str| if fold_case { value.to_lowercase() } else { value.to_string() };
    if !label_values.contains(&key(&positive)) && !prediction_values.contains(&key(&positive)) {
        return Err(CliError::usage(format!(
            "{}: positive label '{positive}' not found in column '{}' (values: {}); pass one of them to --positive-label",
            table.source,
            args.label,
            label_values.iter().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let foreign: Vec<&String> =
        prediction_values.iter().filter(|v| !label_values.contains(*v) && **v != key(&positive)).collect();
    if !foreign.is_empty() {
        return Err(CliError::usage(format!(
            "{}: column '{}' has values ({}) that are not labels of column '{}' ({}); predictions must use the same labels{}",
            table.source,
            args.prediction,
            foreign.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
            args.label,
            label_values.iter().cloned().collect::<Vec<_>>().join(", "),
            if table.columns.iter().any(|c| c == "probability") { "; for scores, use --score" } else { "" }
        )));
    }
    let y_true: Vec<bool> = table.rows.iter().map(|r| key(&r[label]) == key(&positive)).collect();
    let y_pred: Vec<bool> = table.rows.iter().map(|r| key(&r[prediction]) == key(&positive)).collect();
    let scores = args.score.as_ref().map(|c| number_column(&table, c, false)).transpose()?;
    let weights = args.sample_weight.as_ref().map(|c| number_column(&table, c, true)).transpose()?;

    let features: Vec<SensitiveFeature> = args
        .sensitive
        .iter()
        .zip(read_groups(&table, &sensitive))
        .map(|(name, groups)| SensitiveFeature { name: name.clone(), groups })
        .collect();
    let predictions =
        Predictions { y_true: &y_true, y_pred: &y_pred, scores: scores.as_deref(), weights: weights.as_deref() };
    let options = AuditOptions { bootstrap_resamples: args.bootstrap, seed: args.seed, ..AuditOptions::default() };
    let audits = audit(predictions, &features, &options)?;

    if args.json {
        let text = serde_json::to_string_pretty(&audits).map_err(|e| CliError::Failure(e.into()))?;
        println!("{text}");
    } else {
        let mut out =
            format!("Fairness audit of {} ({} rows), positive label '{positive}'\n", table.source, table.len());
        for (name, feature_audit) in &audits {
            render_audit(&mut out, name, feature_audit);
        }
        print!("{out}");
    }
    Ok(())
}

/// Picks the positive label: as given, or `1` / `true` when the labels are 0/1 or true/false.
fn positive_label(table: &Table, label: usize, prediction: usize, given: Option<&str>) -> Result<String, CliError> {
    if let Some(given) = given {
        return Ok(given.to_string());
    }
    let values: BTreeSet<&str> =
        table.rows.iter().flat_map(|r| [r[label].as_str(), r[prediction].as_str()]).filter(|v| !v.is_empty()).collect();
    if values.iter().all(|v| ["0", "1"].contains(v)) {
        return Ok("1".to_string());
    }
    if values.iter().all(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")) {
        let original = table.rows.iter().map(|r| &r[label]).find(|v| v.eq_ignore_ascii_case("true"));
        return Ok(original.cloned().unwrap_or_else(|| "true".to_string()));
    }
    let listed: Vec<&str> = values.iter().take(8).copied().collect();
    Err(CliError::usage(format!(
        "{}: labels are not 0/1 or true/false (values: {}); pass --positive-label VALUE",
        table.source,
        listed.join(", ")
    )))
}

/// Collects the (at most two) distinct values of a label column, lowercased when `fold_case`.
fn distinct_values(table: &Table, column: usize, fold_case: bool) -> Result<BTreeSet<String>, CliError> {
    let name = &table.columns[column];
    let mut values = BTreeSet::new();
    for (row, line) in table.rows.iter().zip(&table.lines) {
        let value = &row[column];
        if table.is_missing(value) {
            return Err(CliError::Failure(anyhow::anyhow!(
                "{}, column '{name}', line {line}: value is missing; every row needs a label and a prediction",
                table.source
            )));
        }
        let value = if fold_case { value.to_lowercase() } else { value.clone() };
        if values.len() == 2 && !values.contains(&value) {
            let listed: Vec<String> = values.iter().cloned().collect();
            return Err(CliError::Failure(anyhow::anyhow!(
                "{}, column '{name}', line {line}: a third distinct value '{value}' (after {}); the audit needs binary labels",
                table.source,
                listed.join(", ")
            )));
        }
        values.insert(value);
    }
    Ok(values)
}

fn number_column(table: &Table, name: &str, non_negative: bool) -> Result<Vec<f64>, CliError> {
    let column = table.column_index(name)?;
    table
        .rows
        .iter()
        .zip(&table.lines)
        .map(|(row, line)| {
            let value = &row[column];
            match value.parse::<f64>() {
                Ok(x) if x.is_finite() && (!non_negative || x >= 0.0) => Ok(x),
                _ => Err(CliError::Failure(anyhow::anyhow!(
                    "{}, column '{name}', line {line}: value '{value}' is not a {}number; {}",
                    table.source,
                    if non_negative { "finite non-negative " } else { "finite " },
                    if non_negative {
                        "sample weights must be numbers of 0 or more"
                    } else {
                        "--score needs a column of scores or probabilities"
                    }
                ))),
            }
        })
        .collect()
}
