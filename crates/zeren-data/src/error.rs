use std::path::PathBuf;

/// Errors from loading, checking and encoding tabular data.
///
/// Every variant names the file and, where there is one, the column and the line, and its message
/// says what to do. [`DataError::is_usage`] separates mistakes in the request (a wrong column or
/// file name) from problems found in the data itself.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The input file does not exist.
    #[error("{}: file not found; check the path", path.display())]
    FileNotFound { path: PathBuf },

    /// The input file could not be read.
    #[error("{}: cannot read file: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// A line is not valid UTF-8.
    #[error(
        "{source_name}, line {line}: text is not valid UTF-8; convert the file to UTF-8 first \
         (for a GBK file saved by Excel: iconv -f GBK -t UTF-8 FILE > FILE.utf8.csv)"
    )]
    InvalidUtf8 { source_name: String, line: u64 },

    /// A record has the wrong number of fields, or the CSV is malformed.
    #[error("{source_name}, line {line}: {message}")]
    Malformed { source_name: String, line: u64, message: String },

    /// The file has no data rows.
    #[error("{source_name}: no data rows; the file is empty or holds only a header")]
    Empty { source_name: String },

    /// A requested column is not in the file.
    #[error(
        "{source_name}: column '{column}' not found; available columns: {}{}",
        available.join(", "),
        delimiter_hint(available)
    )]
    UnknownColumn { source_name: String, column: String, available: Vec<String> },

    /// A column that looks numeric contains text.
    #[error(
        "{source_name}, column '{column}', line {line}: value '{value}' is not a number, but {numeric} of \
         {total} values in this column are; fix the value, or train with it listed as missing \
         (--missing-values='?,NA,N/A,{value}') or with the column declared categorical (--categorical '{column}')"
    )]
    TextInNumericColumn { source_name: String, column: String, line: u64, value: String, numeric: usize, total: usize },

    /// A numeric value is NaN or infinite.
    #[error(
        "{source_name}, column '{column}', line {line}: value '{value}' is not a finite number; \
         replace it, or train with it listed as missing (--missing-values='?,NA,N/A,{value}')"
    )]
    NonFinite { source_name: String, column: String, line: u64, value: String },

    /// The target column has a missing value.
    #[error(
        "{source_name}, column '{column}', line {line}: the target value is missing; remove the row or fill in its label"
    )]
    MissingTarget { source_name: String, column: String, line: u64 },

    /// The target column has more than two distinct values.
    #[error(
        "{source_name}, column '{column}': the target has {count} distinct values ({}); zeren trains binary \
         classifiers, so map the target to two values first",
        examples.join(", ")
    )]
    TargetNotBinary { source_name: String, column: String, count: usize, examples: Vec<String> },

    /// The positive label is not among the target's values.
    #[error(
        "{source_name}, column '{column}': positive label '{label}' not found; the target's values are: {}; \
         pass one of them to --positive-label",
        values.join(", ")
    )]
    PositiveLabelNotFound { source_name: String, column: String, label: String, values: Vec<String> },

    /// The training data has only one class.
    #[error(
        "{source_name}, column '{column}': every training row has the label '{label}'; a classifier needs \
         rows of both classes"
    )]
    OneClass { source_name: String, column: String, label: String },

    /// A target value in evaluation data is neither of the training labels.
    #[error(
        "{source_name}, column '{column}', line {line}: target value '{value}' is not one of the training \
         labels ({}); fix the value or remove the row",
        labels.join(", ")
    )]
    UnknownLabel { source_name: String, column: String, line: u64, value: String, labels: Vec<String> },

    /// A sensitive group present in training data has no rows in the test split.
    #[error(
        "{source_name}, column '{column}': group '{group}' has training rows but none in the test split, so \
         its fairness cannot be measured; use a larger test split, merge small groups, or pass \
         --allow-missing-groups to audit without it"
    )]
    GroupMissingFromTest { source_name: String, column: String, group: String },

    /// Data given for prediction lacks columns the model was trained on.
    #[error(
        "{source_name}: the header does not match the model: missing column(s) {}; the model expects the \
         columns {}",
        missing.join(", "), expected.join(", ")
    )]
    HeaderMismatch { source_name: String, missing: Vec<String>, expected: Vec<String> },

    /// There are too few rows to split as requested.
    #[error("{source_name}: {rows} rows are too few to split into training, validation and test rows; {hint}")]
    TooFewRows { source_name: String, rows: usize, hint: String },

    /// No built-in dataset has this name.
    #[error("unknown dataset '{name}'; the built-in datasets are: {}", available.join(", "))]
    UnknownDataset { name: String, available: Vec<String> },

    /// An option value is invalid.
    #[error("{0}")]
    InvalidOption(String),

    /// A built-in dataset could not be decoded.
    #[error("built-in dataset '{name}' is damaged: {message}; reinstall zeren")]
    Builtin { name: String, message: String },
}

/// Returns a hint when the header was read as one column that contains another likely delimiter.
fn delimiter_hint(columns: &[String]) -> &'static str {
    match columns {
        [only] if only.contains(';') => " (the header looks ';'-separated: pass --delimiter ';')",
        [only] if only.contains('\t') => " (the header looks tab-separated: pass --delimiter tab)",
        [only] if only.contains('|') => " (the header looks '|'-separated: pass --delimiter '|')",
        _ => "",
    }
}

impl DataError {
    /// Checks whether the error is a mistake in the request (a wrong path, column, label or option),
    /// as opposed to a problem found in the data.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            DataError::FileNotFound { .. }
                | DataError::UnknownColumn { .. }
                | DataError::PositiveLabelNotFound { .. }
                | DataError::UnknownDataset { .. }
                | DataError::InvalidOption(_)
        )
    }
}
