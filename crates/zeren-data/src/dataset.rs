//! Turning tables into encoded training, validation and test splits.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::encode::{ColumnKind, EncodedFeatures, FeatureEncoder, infer_kind};
use crate::split::stratified_split;
use crate::{DataError, Table};

/// Group label given to rows whose sensitive value is missing.
pub const MISSING_GROUP: &str = "(missing)";

/// Learning task and split settings for a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareOptions {
    /// Target column.
    pub target: String,
    /// Value of the target column that counts as the positive class.
    pub positive_label: String,
    /// Sensitive columns the fairness audit groups by.
    pub sensitive: Vec<String>,
    /// Whether sensitive columns are also model inputs. Off by default: the model then cannot
    /// use them directly, though other columns may still act as proxies for them.
    pub sensitive_as_features: bool,
    /// Columns that are never model inputs (identifiers, leaked outcomes, proxies).
    pub excluded: Vec<String>,
    /// Column types that override inference.
    pub column_kinds: BTreeMap<String, ColumnKind>,
    /// Share of rows held out for testing when no test file is given, in [0, 1).
    pub test_fraction: f64,
    /// Share of the training rows held out for validation and early stopping, in [0, 1).
    pub validation_fraction: f64,
    /// Seed of the splits.
    pub seed: u64,
    /// Accept a sensitive group that has training rows but no test rows (with a warning).
    pub allow_missing_groups: bool,
}

/// The target column and its two labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelEncoding {
    /// Target column.
    pub column: String,
    /// Label of the positive class (model output 1).
    pub positive: String,
    /// Label of the negative class (model output 0).
    pub negative: String,
}

/// Rows of one split, encoded.
#[derive(Debug, Clone)]
pub struct Split {
    /// Model inputs.
    pub features: EncodedFeatures,
    /// Whether each row has the positive label.
    pub labels: Vec<bool>,
    /// For each sensitive column (in option order), the group of each row.
    pub groups: Vec<Vec<String>>,
}

impl Split {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Checks whether the split has no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Share of rows with the positive label.
    pub fn positive_rate(&self) -> f64 {
        self.labels.iter().filter(|&&y| y).count() as f64 / self.len().max(1) as f64
    }
}

/// Everything a training run needs from the data.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// Feature encoding fitted on the training rows.
    pub encoder: FeatureEncoder,
    /// Target column and labels.
    pub label: LabelEncoding,
    /// Sensitive columns.
    pub sensitive: Vec<String>,
    /// Type of each feature column, as inferred or declared.
    pub column_kinds: BTreeMap<String, ColumnKind>,
    /// Rows the model is fitted on.
    pub train: Split,
    /// Rows for early stopping; empty when the validation fraction is 0.
    pub validation: Split,
    /// Rows for evaluation and the fairness audit.
    pub test: Split,
    /// Things the user should know that do not stop the run.
    pub warnings: Vec<String>,
}

/// Checks the tables against the options, splits, fits the encoding and encodes every split.
///
/// The test rows come from `test_table` when given, otherwise from a stratified seeded split of
/// `train_table`. Strata are the combinations of label and sensitive groups, so every group with
/// two rows or more appears in every split. The encoding is fitted on the training rows only.
///
/// # Errors
///
/// Returns a [`DataError`] naming the file, column and line for each problem listed there.
pub fn prepare(
    train_table: &Table,
    test_table: Option<&Table>,
    options: &PrepareOptions,
) -> Result<PreparedData, DataError> {
    check_fraction("--test-fraction", options.test_fraction)?;
    check_fraction("--validation-fraction", options.validation_fraction)?;
    if options.sensitive.contains(&options.target) {
        return Err(DataError::InvalidOption(format!(
            "the target column '{}' cannot also be a sensitive column",
            options.target
        )));
    }

    let target = train_table.column_index(&options.target)?;
    let sensitive: Vec<usize> =
        options.sensitive.iter().map(|c| train_table.column_index(c)).collect::<Result<_, _>>()?;
    for column in options.excluded.iter().chain(options.column_kinds.keys()) {
        train_table.column_index(column)?;
    }
    let label = label_encoding(train_table, target, &options.positive_label)?;
    let labels = read_labels(train_table, target, &label)?;
    let groups = read_groups(train_table, &sensitive);

    // Split the training table: first the test part (unless a test file is given), then validation.
    let all_rows: Vec<usize> = (0..train_table.len()).collect();
    let strata: Vec<(bool, Vec<&str>)> =
        (0..train_table.len()).map(|row| (labels[row], groups.iter().map(|g| g[row].as_str()).collect())).collect();
    let (fit_rows, test_rows) = match test_table {
        Some(_) => (all_rows, Vec::new()),
        None => stratified_split(&all_rows, &strata, options.test_fraction, options.seed),
    };
    let (train_rows, validation_rows) =
        stratified_split(&fit_rows, &strata, options.validation_fraction, options.seed.wrapping_add(1));
    if train_rows.is_empty() || (test_table.is_none() && test_rows.is_empty()) {
        return Err(DataError::TooFewRows {
            source_name: train_table.source.clone(),
            rows: train_table.len(),
            hint: "give a separate test file (--test-data) or more rows".to_string(),
        });
    }
    if train_rows.iter().all(|&r| labels[r] == labels[train_rows[0]]) {
        let class = if labels[train_rows[0]] { &label.positive } else { &label.negative };
        return Err(DataError::OneClass {
            source_name: train_table.source.clone(),
            column: options.target.clone(),
            label: class.clone(),
        });
    }

    // Feature columns and their types.
    let feature_columns: Vec<(String, ColumnKind)> = train_table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, name)| {
            **name != options.target
                && !options.excluded.contains(name)
                && (options.sensitive_as_features || !options.sensitive.contains(name))
        })
        .map(|(index, name)| {
            let kind = infer_kind(train_table, index, &fit_rows, options.column_kinds.get(name).copied())?;
            Ok((name.clone(), kind))
        })
        .collect::<Result<_, DataError>>()?;
    if feature_columns.is_empty() {
        return Err(DataError::InvalidOption(format!(
            "{}: no feature columns left after removing the target, sensitive and excluded columns",
            train_table.source
        )));
    }

    let encoder = FeatureEncoder::fit(train_table, &feature_columns, &train_rows)?;
    let subset = |rows: &[usize]| Split {
        features: EncodedFeatures { values: Vec::new(), rows: 0, width: 0, unseen: BTreeMap::new() },
        labels: rows.iter().map(|&r| labels[r]).collect(),
        groups: groups.iter().map(|g| rows.iter().map(|&r| g[r].clone()).collect()).collect(),
    };
    let mut train = subset(&train_rows);
    train.features = encoder.transform(train_table, &train_rows)?;
    let mut validation = subset(&validation_rows);
    validation.features = encoder.transform(train_table, &validation_rows)?;

    let (test, test_source) = match test_table {
        Some(table) => (encode_labelled(table, &encoder, &label, &options.sensitive)?, table.source.as_str()),
        None => {
            let mut test = subset(&test_rows);
            test.features = encoder.transform(train_table, &test_rows)?;
            (test, train_table.source.as_str())
        }
    };

    let mut warnings = Vec::new();
    for (index, column) in options.sensitive.iter().enumerate() {
        let test_groups: BTreeSet<&String> = test.groups[index].iter().collect();
        let train_groups: BTreeSet<&String> = train.groups[index].iter().collect();
        for group in train_groups.difference(&test_groups) {
            let error = DataError::GroupMissingFromTest {
                source_name: test_source.to_string(),
                column: column.clone(),
                group: group.to_string(),
            };
            if !options.allow_missing_groups {
                return Err(error);
            }
            warnings.push(format!(
                "{test_source}, column '{column}': group '{group}' has training rows but none in the test split, so it is not audited"
            ));
        }
    }
    for (column, count) in &test.features.unseen {
        warnings.push(format!(
            "{test_source}, column '{column}': {count} test rows have a category not seen in training; they use the unseen-category input"
        ));
    }

    let column_kinds = feature_columns.into_iter().collect();
    Ok(PreparedData {
        encoder,
        label,
        sensitive: options.sensitive.clone(),
        column_kinds,
        train,
        validation,
        test,
        warnings,
    })
}

/// Encodes every row of a table that has the target and sensitive columns (a test file).
///
/// # Errors
///
/// Returns an error for a missing column, a missing or unknown label, or a bad feature value.
pub fn encode_labelled(
    table: &Table,
    encoder: &FeatureEncoder,
    label: &LabelEncoding,
    sensitive: &[String],
) -> Result<Split, DataError> {
    let target = table.column_index(&label.column)?;
    let sensitive: Vec<usize> = sensitive.iter().map(|c| table.column_index(c)).collect::<Result<_, _>>()?;
    let rows: Vec<usize> = (0..table.len()).collect();
    Ok(Split {
        features: encoder.transform(table, &rows)?,
        labels: read_labels(table, target, label)?,
        groups: read_groups(table, &sensitive),
    })
}

fn check_fraction(flag: &str, fraction: f64) -> Result<(), DataError> {
    if (0.0..1.0).contains(&fraction) {
        Ok(())
    } else {
        Err(DataError::InvalidOption(format!("{flag} {fraction} is invalid; use a share in [0, 1), such as 0.2")))
    }
}

/// Finds the two labels of the target column and checks the positive one.
fn label_encoding(table: &Table, target: usize, positive: &str) -> Result<LabelEncoding, DataError> {
    let column = &table.columns[target];
    let mut values = BTreeSet::new();
    for (row, line) in table.rows.iter().zip(&table.lines) {
        let value = &row[target];
        if table.is_missing(value) {
            return Err(DataError::MissingTarget {
                source_name: table.source.clone(),
                column: column.clone(),
                line: *line,
            });
        }
        values.insert(value.as_str());
    }

    if values.len() > 2 {
        return Err(DataError::TargetNotBinary {
            source_name: table.source.clone(),
            column: column.clone(),
            count: values.len(),
            examples: values.iter().take(8).map(|v| v.to_string()).collect(),
        });
    }
    if !values.contains(positive) {
        return Err(DataError::PositiveLabelNotFound {
            source_name: table.source.clone(),
            column: column.clone(),
            label: positive.to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
        });
    }
    let Some(negative) = values.iter().find(|&&v| v != positive) else {
        return Err(DataError::OneClass {
            source_name: table.source.clone(),
            column: column.clone(),
            label: positive.to_string(),
        });
    };
    Ok(LabelEncoding { column: column.clone(), positive: positive.to_string(), negative: negative.to_string() })
}

fn read_labels(table: &Table, target: usize, label: &LabelEncoding) -> Result<Vec<bool>, DataError> {
    table
        .rows
        .iter()
        .zip(&table.lines)
        .map(|(row, line)| {
            let value = &row[target];
            if *value == label.positive {
                Ok(true)
            } else if *value == label.negative {
                Ok(false)
            } else if table.is_missing(value) {
                Err(DataError::MissingTarget {
                    source_name: table.source.clone(),
                    column: label.column.clone(),
                    line: *line,
                })
            } else {
                Err(DataError::UnknownLabel {
                    source_name: table.source.clone(),
                    column: label.column.clone(),
                    line: *line,
                    value: value.clone(),
                    labels: vec![label.positive.clone(), label.negative.clone()],
                })
            }
        })
        .collect()
}

/// Group labels of each sensitive column; a missing value becomes [`MISSING_GROUP`].
pub fn read_groups(table: &Table, sensitive: &[usize]) -> Vec<Vec<String>> {
    sensitive
        .iter()
        .map(|&column| {
            table
                .rows
                .iter()
                .map(|row| {
                    let value = &row[column];
                    if table.is_missing(value) { MISSING_GROUP.to_string() } else { value.clone() }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CsvOptions;

    fn table(name: &str, text: &str) -> Table {
        Table::from_reader(name, text.as_bytes(), &CsvOptions::default()).unwrap()
    }

    fn options() -> PrepareOptions {
        PrepareOptions {
            target: "y".into(),
            positive_label: "yes".into(),
            sensitive: vec!["g".into()],
            sensitive_as_features: false,
            excluded: vec![],
            column_kinds: BTreeMap::new(),
            test_fraction: 0.2,
            validation_fraction: 0.0,
            seed: 0,
            allow_missing_groups: false,
        }
    }

    fn rows(count: usize) -> String {
        let mut text = String::from("x,c,g,y\n");
        for i in 0..count {
            let label = if i % 2 == 0 { "yes" } else { "no" };
            let group = if i % 4 < 2 { "甲" } else { "乙" };
            text.push_str(&format!("{i},{},{group},{label}\n", ["a", "b", "c"][i % 3]));
        }
        text
    }

    #[test]
    fn splits_and_encodes_without_sensitive_features() {
        let data = prepare(&table("d.csv", &rows(40)), None, &options()).unwrap();
        assert_eq!(data.train.len() + data.test.len(), 40);
        // Four strata (label x group) of 10 rows each give 2 test rows apiece.
        assert_eq!(data.test.len(), 8);
        // x (numeric) and c (3 categories + unseen); g is sensitive and y the target.
        assert_eq!(data.encoder.width(), 5);
        assert_eq!(data.label.negative, "no");
        assert_eq!(data.test.positive_rate(), 0.5);
        assert!(data.test.groups[0].contains(&"甲".to_string()));
    }

    #[test]
    fn sensitive_columns_can_be_features() {
        let options = PrepareOptions { sensitive_as_features: true, ..options() };
        let data = prepare(&table("d.csv", &rows(40)), None, &options).unwrap();
        assert_eq!(data.encoder.width(), 8);
    }

    #[test]
    fn validation_split_is_carved_from_training_rows() {
        let options = PrepareOptions { validation_fraction: 0.2, ..options() };
        let data = prepare(&table("d.csv", &rows(80)), None, &options).unwrap();
        // Four strata of 20 rows: 4 test rows each, then round(16 * 0.2) = 3 validation rows each.
        assert_eq!(data.test.len(), 16);
        assert_eq!(data.validation.len(), 12);
        assert_eq!(data.train.len(), 52);
    }

    #[test]
    fn target_with_three_values_is_rejected() {
        let error = prepare(&table("d.csv", "x,g,y\n1,a,yes\n2,a,no\n3,b,maybe\n"), None, &options()).unwrap_err();
        assert!(matches!(error, DataError::TargetNotBinary { count: 3, .. }), "{error}");
    }

    #[test]
    fn single_class_training_set_is_rejected() {
        let error = prepare(&table("d.csv", "x,g,y\n1,a,yes\n2,b,yes\n"), None, &options()).unwrap_err();
        assert!(error.to_string().contains("every training row has the label 'yes'"), "{error}");
    }

    #[test]
    fn wrong_positive_label_is_a_usage_error() {
        let options = PrepareOptions { positive_label: "1".into(), ..options() };
        let error = prepare(&table("d.csv", &rows(8)), None, &options).unwrap_err();
        assert!(error.is_usage());
        assert!(error.to_string().contains("the target's values are: no, yes"), "{error}");
    }

    #[test]
    fn unknown_sensitive_column_is_a_usage_error() {
        let options = PrepareOptions { sensitive: vec!["性别".into()], ..options() };
        let error = prepare(&table("d.csv", &rows(8)), None, &options).unwrap_err();
        assert!(error.is_usage());
        assert!(error.to_string().contains("column '性别' not found"), "{error}");
    }

    #[test]
    fn missing_target_names_line() {
        let error = prepare(&table("d.csv", "x,g,y\n1,a,yes\n2,b,\n"), None, &options()).unwrap_err();
        assert!(matches!(error, DataError::MissingTarget { line: 3, .. }), "{error}");
    }

    #[test]
    fn test_file_label_outside_training_labels_is_rejected() {
        let test = table("test.csv", "x,c,g,y\n1,a,甲,yes\n2,a,乙,perhaps\n");
        let error = prepare(&table("d.csv", &rows(20)), Some(&test), &options()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("test.csv, column 'y', line 3: target value 'perhaps'"), "{message}");
    }

    #[test]
    fn group_absent_from_test_file_is_rejected_unless_allowed() {
        let test = table("test.csv", "x,c,g,y\n1,a,甲,yes\n2,b,甲,no\n");
        let error = prepare(&table("d.csv", &rows(20)), Some(&test), &options()).unwrap_err();
        assert!(error.to_string().contains("group '乙' has training rows but none in the test split"), "{error}");

        let allowed = PrepareOptions { allow_missing_groups: true, ..options() };
        let data = prepare(&table("d.csv", &rows(20)), Some(&test), &allowed).unwrap();
        assert_eq!(data.warnings.len(), 1);
    }

    #[test]
    fn missing_sensitive_value_forms_its_own_group() {
        let mut text = rows(20);
        text.push_str("99,a,,yes\n100,b,?,no\n101,a,,yes\n102,b,?,no\n");
        let data = prepare(&table("d.csv", &text), None, &options()).unwrap();
        let all_groups: BTreeSet<&String> = data.train.groups[0].iter().chain(&data.test.groups[0]).collect();
        assert!(all_groups.contains(&MISSING_GROUP.to_string()));
    }

    #[test]
    fn invalid_fraction_is_rejected() {
        let options = PrepareOptions { test_fraction: 1.5, ..options() };
        let error = prepare(&table("d.csv", &rows(8)), None, &options).unwrap_err();
        assert!(error.is_usage());
    }
}
