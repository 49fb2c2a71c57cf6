//! Loading delimited text files into a table of trimmed string cells.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};

use crate::DataError;

/// How to read a delimited text file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsvOptions {
    /// Field delimiter, one ASCII byte such as `b','`, `b';'` or `b'\t'`.
    pub delimiter: u8,
    /// Whether the first record is a header of column names.
    pub has_header: bool,
    /// Column names for a file without a header; `column_1`, `column_2`, ... when absent.
    pub column_names: Option<Vec<String>>,
    /// Cell values (after trimming) that mean "missing". The empty cell always does.
    pub missing_values: Vec<String>,
    /// Lines starting with this byte are skipped.
    pub comment: Option<u8>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            has_header: true,
            column_names: None,
            missing_values: default_missing_values(),
            comment: None,
        }
    }
}

/// Returns the default missing-value tokens: `?` (UCI files), `NA` and `N/A`. `NaN` is not among them,
/// so a NaN in a numeric column is reported instead of being silently imputed.
pub fn default_missing_values() -> Vec<String> {
    ["?", "NA", "N/A"].map(String::from).to_vec()
}

/// A table of trimmed cells, read whole into memory.
#[derive(Debug, Clone)]
pub struct Table {
    /// Source of the rows, for messages: a file path or a built-in dataset's name.
    pub source: String,
    /// Column names, unique; a repeated header name gets a `.1`, `.2`, ... suffix as in pandas.
    pub columns: Vec<String>,
    /// Rows of cells, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
    /// The 1-based line in the source where each row starts.
    pub lines: Vec<u64>,
    /// Values meaning "missing" besides the empty cell.
    pub missing_values: Vec<String>,
}

impl Table {
    /// Reads a delimited file; a path ending in `.gz` is decompressed on the fly.
    ///
    /// # Errors
    ///
    /// Returns an error when the file is missing or unreadable, is not UTF-8, has a record with
    /// the wrong number of fields, or has no data rows.
    pub fn from_path(path: &Path, options: &CsvOptions) -> Result<Table, DataError> {
        let file = File::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                DataError::FileNotFound { path: path.to_path_buf() }
            } else {
                DataError::Io { path: path.to_path_buf(), source }
            }
        })?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            let source = std::io::Error::other("it is a directory, not a file");
            return Err(DataError::Io { path: path.to_path_buf(), source });
        }
        let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(GzDecoder::new(BufReader::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        Table::from_reader(&path.display().to_string(), reader, options)
    }

    /// Reads delimited text from any reader; `source` names it in messages.
    ///
    /// # Errors
    ///
    /// As [`Table::from_path`], except for the file errors.
    pub fn from_reader(source: &str, mut reader: impl Read, options: &CsvOptions) -> Result<Table, DataError> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(|e| DataError::Malformed {
            source_name: source.to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        let lines = LineIndex::new(&bytes, options.comment);

        let mut csv_reader = csv::ReaderBuilder::new()
            .delimiter(options.delimiter)
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .comment(options.comment)
            .from_reader(bytes.as_slice());

        let mut records = Vec::new();
        let mut record_lines = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match csv_reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    if record.len() == 1 && record[0].is_empty() {
                        continue;
                    }
                    let offset = record.position().map_or(0, |p| p.byte() as usize);
                    records.push(record.iter().map(str::to_string).collect::<Vec<_>>());
                    record_lines.push(lines.line_of_record(offset));
                }
                Err(error) => {
                    let offset = error.position().map_or(0, |p| p.byte() as usize);
                    return Err(csv_error(source, error, lines.line_of_record(offset)));
                }
            }
        }

        let mut records = records.into_iter();
        let mut lines = record_lines.into_iter();
        let columns = if options.has_header {
            let Some(mut header) = records.next() else {
                return Err(DataError::Empty { source_name: source.to_string() });
            };
            lines.next();
            // Files written by Excel start with a UTF-8 byte-order mark.
            if let Some(first) = header.first_mut() {
                *first = first.trim_start_matches('\u{feff}').trim().to_string();
            }
            unique_names(header)
        } else {
            Vec::new()
        };
        let rows: Vec<Vec<String>> = records.collect();
        let lines: Vec<u64> = lines.collect();
        if rows.is_empty() {
            return Err(DataError::Empty { source_name: source.to_string() });
        }

        let columns = if options.has_header {
            columns
        } else if let Some(names) = &options.column_names {
            unique_names(names.clone())
        } else {
            (1..=rows[0].len()).map(|i| format!("column_{i}")).collect()
        };

        for (row, line) in rows.iter().zip(&lines) {
            if row.len() != columns.len() {
                let message = format!(
                    "expected {} fields as in the header, found {}; check the delimiter (--delimiter) and quoting",
                    columns.len(),
                    row.len()
                );
                return Err(DataError::Malformed { source_name: source.to_string(), line: *line, message });
            }
        }

        Ok(Table { source: source.to_string(), columns, rows, lines, missing_values: options.missing_values.clone() })
    }

    /// Returns the index of a column.
    ///
    /// # Errors
    ///
    /// Returns [`DataError::UnknownColumn`] listing the available columns.
    pub fn column_index(&self, name: &str) -> Result<usize, DataError> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| DataError::UnknownColumn {
            source_name: self.source.clone(),
            column: name.to_string(),
            available: self.columns.clone(),
        })
    }

    /// Checks whether a trimmed cell value means "missing".
    pub fn is_missing(&self, value: &str) -> bool {
        value.is_empty() || self.missing_values.iter().any(|m| m == value)
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Checks whether the table has no data rows (never true for a loaded table).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Maps byte offsets to 1-based line numbers.
///
/// The `csv` crate (1.4) reports a record's position from before the blank and comment lines it
/// skips, so its line numbers drift after such lines. Error messages need the line an editor
/// shows, so the offset is moved past skipped lines and counted here.
struct LineIndex<'a> {
    bytes: &'a [u8],
    newlines: Vec<usize>,
    comment: Option<u8>,
}

impl<'a> LineIndex<'a> {
    fn new(bytes: &'a [u8], comment: Option<u8>) -> Self {
        let newlines = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).collect();
        Self { bytes, newlines, comment }
    }

    fn line_of_record(&self, mut offset: usize) -> u64 {
        loop {
            let rest = &self.bytes[offset.min(self.bytes.len())..];
            let skippable = rest.first() == Some(&b'\n')
                || rest.starts_with(b"\r\n")
                || (self.comment.is_some() && rest.first() == self.comment.as_ref());
            if !skippable {
                break;
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(end) => offset += end + 1,
                None => break,
            }
        }
        (self.newlines.partition_point(|&n| n < offset) + 1) as u64
    }
}

fn csv_error(source: &str, error: csv::Error, line: u64) -> DataError {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => DataError::InvalidUtf8 { source_name: source.to_string(), line },
        csv::ErrorKind::Io(io) => {
            DataError::Malformed { source_name: source.to_string(), line, message: format!("cannot read: {io}") }
        }
        _ => DataError::Malformed { source_name: source.to_string(), line, message: error.to_string() },
    }
}

/// Makes header names unique and non-empty, as pandas does: a repeated `x` becomes `x.1`.
fn unique_names(names: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let base = if name.is_empty() { format!("column_{}", i + 1) } else { name };
            let mut candidate = base.clone();
            let mut suffix = 1;
            while !seen.insert(candidate.clone()) {
                candidate = format!("{base}.{suffix}");
                suffix += 1;
            }
            if candidate != base {
                tracing::warn!("column name '{base}' repeats; the later column is named '{candidate}'");
            }
            candidate
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, options: &CsvOptions) -> Result<Table, DataError> {
        Table::from_reader("test.csv", text.as_bytes(), options)
    }

    #[test]
    fn reads_header_and_trims_cells() {
        let table = read("a, b\n1, x\n2 ,y\n", &CsvOptions::default()).unwrap();
        assert_eq!(table.columns, vec!["a", "b"]);
        assert_eq!(table.rows, vec![vec!["1", "x"], vec!["2", "y"]]);
        assert_eq!(table.lines, vec![2, 3]);
    }

    #[test]
    fn reads_chinese_header_with_byte_order_mark() {
        let table = read("\u{feff}年龄,性别\n30,男\n", &CsvOptions::default()).unwrap();
        assert_eq!(table.columns, vec!["年龄", "性别"]);
        assert_eq!(table.rows[0][1], "男");
    }

    #[test]
    fn reads_quoted_fields_with_delimiters() {
        let table = read("name,city\n\"Li, Wei\",\"Beijing\"\n", &CsvOptions::default()).unwrap();
        assert_eq!(table.rows[0][0], "Li, Wei");
    }

    #[test]
    fn reads_without_header_and_with_semicolons() {
        let options = CsvOptions { delimiter: b';', has_header: false, ..CsvOptions::default() };
        let table = read("1;2\n3;4\n", &options).unwrap();
        assert_eq!(table.columns, vec!["column_1", "column_2"]);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn renames_repeated_header_names() {
        let table = read("x,y,x\n1,2,3\n", &CsvOptions::default()).unwrap();
        assert_eq!(table.columns, vec!["x", "y", "x.1"]);
    }

    #[test]
    fn skips_blank_and_comment_lines() {
        let options = CsvOptions { comment: Some(b'|'), ..CsvOptions::default() };
        let table = read("a,b\n|note\n1,2\n\n3,4\n", &options).unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table.lines, vec![3, 5]);
    }

    #[test]
    fn ragged_row_names_its_line() {
        let error = read("a,b\n1,2\n3\n", &CsvOptions::default()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("test.csv, line 3"), "{message}");
        assert!(message.contains("expected 2 fields"), "{message}");
    }

    #[test]
    fn empty_and_header_only_files_are_rejected() {
        assert!(matches!(read("", &CsvOptions::default()), Err(DataError::Empty { .. })));
        assert!(matches!(read("a,b\n", &CsvOptions::default()), Err(DataError::Empty { .. })));
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        // "男" in GBK is 0xC4 0xD0, which is not valid UTF-8.
        let bytes: &[u8] = b"a,b\n1,\xc4\xd0\n";
        let error = Table::from_reader("gbk.csv", bytes, &CsvOptions::default()).unwrap_err();
        assert!(matches!(error, DataError::InvalidUtf8 { line: 2, .. }), "{error}");
        assert!(error.to_string().contains("iconv"));
    }

    #[test]
    fn missing_file_is_a_usage_error() {
        let error = Table::from_path(Path::new("/no/such/file.csv"), &CsvOptions::default()).unwrap_err();
        assert!(error.is_usage());
        assert!(error.to_string().contains("/no/such/file.csv"));
    }

    #[test]
    fn unknown_column_lists_available_ones() {
        let table = read("年龄,性别\n30,男\n", &CsvOptions::default()).unwrap();
        let error = table.column_index("收入").unwrap_err();
        assert!(error.to_string().contains("'收入' not found; available columns: 年龄, 性别"), "{error}");
    }

    #[test]
    fn missing_tokens_include_empty_cell() {
        let table = read("a\n?\n", &CsvOptions::default()).unwrap();
        assert!(table.is_missing(""));
        assert!(table.is_missing("?"));
        assert!(!table.is_missing("NaN"));
    }
}
