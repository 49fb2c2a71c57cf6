//! Column types and the feature encoding fitted on training rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::{DataError, Table};

/// Share of non-missing values that must parse as numbers before a column that also contains text
/// is reported as a numeric column with bad values, rather than inferred categorical.
pub const NUMERIC_SHARE_FOR_TEXT_ERROR: f64 = 0.9;

/// Treatment of a feature column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Real numbers, standardised to zero mean and unit variance.
    Numeric,
    /// Labels, one-hot encoded.
    Categorical,
}

/// Infers whether a column is numeric or categorical from its non-missing values, or checks the
/// override.
///
/// A column is numeric when every non-missing value parses as a number, and categorical when
/// fewer than [`NUMERIC_SHARE_FOR_TEXT_ERROR`] of them do.
///
/// # Errors
///
/// Returns [`DataError::TextInNumericColumn`] for a column that is mostly numbers with some text
/// (or declared numeric and holding text), and [`DataError::NonFinite`] for a NaN or infinite
/// value in a numeric column.
pub fn infer_kind(
    table: &Table,
    column: usize,
    rows: &[usize],
    declared: Option<ColumnKind>,
) -> Result<ColumnKind, DataError> {
    if declared == Some(ColumnKind::Categorical) {
        return Ok(ColumnKind::Categorical);
    }
    let mut total = 0;
    let mut numeric = 0;
    let mut first_text: Option<usize> = None;
    for &row in rows {
        let value = &table.rows[row][column];
        if table.is_missing(value) {
            continue;
        }
        total += 1;
        match value.parse::<f64>() {
            Ok(_) => numeric += 1,
            Err(_) => {
                first_text.get_or_insert(row);
            }
        }
    }

    let kind = match first_text {
        None if total > 0 => ColumnKind::Numeric,
        None => ColumnKind::Categorical,
        Some(row) => {
            let mostly_numeric = numeric as f64 >= NUMERIC_SHARE_FOR_TEXT_ERROR * total as f64;
            if declared == Some(ColumnKind::Numeric) || mostly_numeric {
                return Err(DataError::TextInNumericColumn {
                    source_name: table.source.clone(),
                    column: table.columns[column].clone(),
                    line: table.lines[row],
                    value: table.rows[row][column].clone(),
                    numeric,
                    total,
                });
            }
            ColumnKind::Categorical
        }
    };

    if kind == ColumnKind::Numeric {
        for &row in rows {
            parse_number(table, column, row)?;
        }
    }
    Ok(kind)
}

/// Parses a numeric cell: `None` when missing.
fn parse_number(table: &Table, column: usize, row: usize) -> Result<Option<f64>, DataError> {
    let value = &table.rows[row][column];
    if table.is_missing(value) {
        return Ok(None);
    }
    match value.parse::<f64>() {
        Ok(number) if number.is_finite() => Ok(Some(number)),
        Ok(_) => Err(DataError::NonFinite {
            source_name: table.source.clone(),
            column: table.columns[column].clone(),
            line: table.lines[row],
            value: value.clone(),
        }),
        Err(_) => {
            let values = table.rows.iter().map(|r| &r[column]).filter(|v| !table.is_missing(v));
            let (numeric, total) = values.fold((0, 0), |(n, t), v| (n + v.parse::<f64>().is_ok() as usize, t + 1));
            Err(DataError::TextInNumericColumn {
                source_name: table.source.clone(),
                column: table.columns[column].clone(),
                line: table.lines[row],
                value: value.clone(),
                numeric,
                total,
            })
        }
    }
}

/// The encoding of one feature column, fitted on training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FeatureEncoding {
    /// `(x - mean) / std`; a missing value becomes 0, the training mean.
    Numeric {
        /// Column name.
        column: String,
        /// Training mean.
        mean: f64,
        /// Training population standard deviation; 1 for a constant column.
        std: f64,
    },
    /// One indicator per training category, then one for values not seen in training.
    /// A missing value is the category [`MISSING_CATEGORY`].
    Categorical {
        /// Column name.
        column: String,
        /// Categories seen in training, sorted.
        categories: Vec<String>,
    },
}

/// The category that stands for a missing categorical value.
pub const MISSING_CATEGORY: &str = "(missing)";

impl FeatureEncoding {
    /// Column name.
    pub fn column(&self) -> &str {
        match self {
            FeatureEncoding::Numeric { column, .. } | FeatureEncoding::Categorical { column, .. } => column,
        }
    }

    /// Number of model inputs this column becomes.
    pub fn width(&self) -> usize {
        match self {
            FeatureEncoding::Numeric { .. } => 1,
            FeatureEncoding::Categorical { categories, .. } => categories.len() + 1,
        }
    }
}

/// Features encoded as a dense row-major matrix of `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedFeatures {
    /// `rows * width` values, row-major.
    pub values: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
    /// Number of model inputs per row.
    pub width: usize,
    /// For each categorical column, how many rows had a value not seen in training.
    pub unseen: BTreeMap<String, usize>,
}

/// The fitted feature encoding of a model: which columns it reads and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureEncoder {
    /// Encodings in model-input order.
    pub features: Vec<FeatureEncoding>,
}

impl FeatureEncoder {
    /// Fits the encoding of the given columns on the given training rows.
    ///
    /// # Errors
    ///
    /// Returns an error for text or non-finite values in a numeric column.
    pub fn fit(table: &Table, columns: &[(String, ColumnKind)], rows: &[usize]) -> Result<Self, DataError> {
        let mut features = Vec::with_capacity(columns.len());
        for (name, kind) in columns {
            let column = table.column_index(name)?;
            let encoding = match kind {
                ColumnKind::Numeric => {
                    // Welford's online algorithm: E[x²] - E[x]² would cancel catastrophically for
                    // values with a large offset, such as millisecond timestamps.
                    let mut mean = 0.0;
                    let mut squared_deviations = 0.0;
                    let mut count = 0usize;
                    for &row in rows {
                        if let Some(x) = parse_number(table, column, row)? {
                            count += 1;
                            let delta = x - mean;
                            mean += delta / count as f64;
                            squared_deviations += delta * (x - mean);
                        }
                    }
                    let variance = if count > 0 { squared_deviations / count as f64 } else { 0.0 };
                    let std = if variance > 0.0 { variance.sqrt() } else { 1.0 };
                    FeatureEncoding::Numeric { column: name.clone(), mean, std }
                }
                ColumnKind::Categorical => {
                    let categories: BTreeSet<String> =
                        rows.iter().map(|&row| category(table, column, row).to_string()).collect();
                    FeatureEncoding::Categorical { column: name.clone(), categories: categories.into_iter().collect() }
                }
            };
            features.push(encoding);
        }
        Ok(Self { features })
    }

    /// Total number of model inputs.
    pub fn width(&self) -> usize {
        self.features.iter().map(FeatureEncoding::width).sum()
    }

    /// Names of the model inputs: `age`, `workclass=Private`, `workclass=(unseen)`, ...
    pub fn input_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width());
        for feature in &self.features {
            match feature {
                FeatureEncoding::Numeric { column, .. } => names.push(column.clone()),
                FeatureEncoding::Categorical { column, categories } => {
                    names.extend(categories.iter().map(|c| format!("{column}={c}")));
                    names.push(format!("{column}=(unseen)"));
                }
            }
        }
        names
    }

    /// Checks that a table has every column the encoding reads.
    ///
    /// # Errors
    ///
    /// Returns [`DataError::HeaderMismatch`] listing the missing columns.
    pub fn check_header(&self, table: &Table) -> Result<Vec<usize>, DataError> {
        let missing: Vec<String> =
            self.features.iter().map(|f| f.column().to_string()).filter(|name| !table.columns.contains(name)).collect();
        if !missing.is_empty() {
            return Err(DataError::HeaderMismatch {
                source_name: table.source.clone(),
                missing,
                expected: self.features.iter().map(|f| f.column().to_string()).collect(),
            });
        }
        self.features.iter().map(|f| table.column_index(f.column())).collect()
    }

    /// Encodes the given rows of a table, which may be another file with the columns in any order.
    ///
    /// # Errors
    ///
    /// Returns an error for missing columns, or text or non-finite values in a numeric column.
    pub fn transform(&self, table: &Table, rows: &[usize]) -> Result<EncodedFeatures, DataError> {
        let indices = self.check_header(table)?;
        let width = self.width();
        let mut values = vec![0.0f32; rows.len() * width];
        let mut unseen = BTreeMap::new();

        let mut offset = 0;
        for (feature, &column) in self.features.iter().zip(&indices) {
            match feature {
                FeatureEncoding::Numeric { mean, std, .. } => {
                    for (i, &row) in rows.iter().enumerate() {
                        if let Some(x) = parse_number(table, column, row)? {
                            values[i * width + offset] = ((x - mean) / std) as f32;
                        }
                    }
                }
                FeatureEncoding::Categorical { column: name, categories } => {
                    let positions: HashMap<&str, usize> =
                        categories.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
                    let mut unseen_rows = 0;
                    for (i, &row) in rows.iter().enumerate() {
                        let slot = match positions.get(category(table, column, row)) {
                            Some(&position) => position,
                            None => {
                                unseen_rows += 1;
                                categories.len()
                            }
                        };
                        values[i * width + offset + slot] = 1.0;
                    }
                    if unseen_rows > 0 {
                        unseen.insert(name.clone(), unseen_rows);
                    }
                }
            }
            offset += feature.width();
        }
        Ok(EncodedFeatures { values, rows: rows.len(), width, unseen })
    }
}

fn category(table: &Table, column: usize, row: usize) -> &str {
    let value = table.rows[row][column].as_str();
    if table.is_missing(value) { MISSING_CATEGORY } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CsvOptions;

    fn table(text: &str) -> Table {
        Table::from_reader("t.csv", text.as_bytes(), &CsvOptions::default()).unwrap()
    }

    fn all_rows(table: &Table) -> Vec<usize> {
        (0..table.len()).collect()
    }

    #[test]
    fn infers_numeric_and_categorical() {
        let t = table("n,c,m\n1.5,a,?\n-2,b,3\n,c,4\n");
        let rows = all_rows(&t);
        assert_eq!(infer_kind(&t, 0, &rows, None).unwrap(), ColumnKind::Numeric);
        assert_eq!(infer_kind(&t, 1, &rows, None).unwrap(), ColumnKind::Categorical);
        assert_eq!(infer_kind(&t, 2, &rows, None).unwrap(), ColumnKind::Numeric);
    }

    #[test]
    fn override_makes_numbers_categorical() {
        let t = table("zip\n02134\n10001\n");
        let kind = infer_kind(&t, 0, &all_rows(&t), Some(ColumnKind::Categorical)).unwrap();
        assert_eq!(kind, ColumnKind::Categorical);
    }

    #[test]
    fn text_in_mostly_numeric_column_names_line() {
        let mut text = String::from("age\n");
        for i in 0..20 {
            text.push_str(&format!("{}\n", 20 + i));
        }
        text.push_str("thirty\n");
        let t = table(&text);
        let error = infer_kind(&t, 0, &all_rows(&t), None).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("column 'age', line 22: value 'thirty' is not a number"), "{message}");
        assert!(message.contains("20 of 21"), "{message}");
    }

    #[test]
    fn text_in_declared_numeric_column_is_rejected() {
        let t = table("x\n1\nabc\ndef\n");
        let error = infer_kind(&t, 0, &all_rows(&t), Some(ColumnKind::Numeric)).unwrap_err();
        assert!(matches!(error, DataError::TextInNumericColumn { line: 3, .. }), "{error}");
    }

    #[test]
    fn nan_and_infinity_are_rejected() {
        for bad in ["NaN", "inf", "-Infinity"] {
            let t = table(&format!("x\n1\n{bad}\n"));
            let error = infer_kind(&t, 0, &all_rows(&t), None).unwrap_err();
            assert!(matches!(error, DataError::NonFinite { line: 3, .. }), "{bad}: {error}");
        }
    }

    #[test]
    fn standardises_with_training_statistics() {
        let t = table("x\n1\n3\n?\n");
        let columns = [("x".to_string(), ColumnKind::Numeric)];
        let encoder = FeatureEncoder::fit(&t, &columns, &[0, 1]).unwrap();
        assert_eq!(encoder.features[0], FeatureEncoding::Numeric { column: "x".into(), mean: 2.0, std: 1.0 });
        let encoded = encoder.transform(&t, &[0, 1, 2]).unwrap();
        assert_eq!(encoded.values, vec![-1.0, 1.0, 0.0]);
    }

    #[test]
    fn one_hot_has_unseen_bucket() {
        let t = table("城市\n北京\n上海\n?\n深圳\n");
        let columns = [("城市".to_string(), ColumnKind::Categorical)];
        let encoder = FeatureEncoder::fit(&t, &columns, &[0, 1, 2]).unwrap();
        // Sorted categories: (missing), 上海, 北京; then the unseen bucket.
        assert_eq!(encoder.width(), 4);
        assert_eq!(encoder.input_names()[3], "城市=(unseen)");
        let encoded = encoder.transform(&t, &[0, 3]).unwrap();
        assert_eq!(encoded.values, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(encoded.unseen["城市"], 1);
    }

    #[test]
    fn transform_reports_missing_columns() {
        let train = table("a,b\n1,x\n");
        let columns = [("a".to_string(), ColumnKind::Numeric), ("b".to_string(), ColumnKind::Categorical)];
        let encoder = FeatureEncoder::fit(&train, &columns, &[0]).unwrap();
        let other = table("a,c\n1,x\n");
        let error = encoder.transform(&other, &[0]).unwrap_err();
        assert!(error.to_string().contains("missing column(s) b"), "{error}");
    }

    #[test]
    fn large_offset_keeps_exact_scale() {
        // Millisecond timestamps: 1e12 + 0..4 has population standard deviation sqrt(2).
        let t = table("ts\n1000000000000\n1000000000001\n1000000000002\n1000000000003\n1000000000004\n");
        let encoder = FeatureEncoder::fit(&t, &[("ts".to_string(), ColumnKind::Numeric)], &[0, 1, 2, 3, 4]).unwrap();
        let FeatureEncoding::Numeric { mean, std, .. } = &encoder.features[0] else { panic!("numeric expected") };
        assert_eq!(*mean, 1_000_000_000_002.0);
        assert!((std - 2f64.sqrt()).abs() < 1e-9, "std {std}");
    }

    #[test]
    fn constant_column_keeps_unit_scale() {
        let t = table("x\n5\n5\n");
        let encoder = FeatureEncoder::fit(&t, &[("x".to_string(), ColumnKind::Numeric)], &[0, 1]).unwrap();
        assert_eq!(encoder.transform(&t, &[0]).unwrap().values, vec![0.0]);
    }
}
