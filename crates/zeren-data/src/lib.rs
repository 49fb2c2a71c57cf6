//! Tabular data for zeren: CSV loading, column-type inference, feature encoding, stratified
//! splits and the built-in datasets. This crate does not depend on a deep-learning framework.
//!
//! ```
//! use zeren_data::{CsvOptions, Table};
//!
//! let csv = "年龄,收入\n30,高\n41,低\n";
//! let table = Table::from_reader("example.csv", csv.as_bytes(), &CsvOptions::default()).unwrap();
//! assert_eq!(table.columns, ["年龄", "收入"]);
//! assert_eq!(table.column_index("收入").unwrap(), 1);
//! ```

pub mod builtin;
pub mod dataset;
pub mod encode;
mod error;
pub mod split;
mod table;

pub use dataset::{LabelEncoding, PrepareOptions, PreparedData, Split, prepare};
pub use encode::{ColumnKind, FeatureEncoder};
pub use error::DataError;
pub use table::{CsvOptions, Table, default_missing_values};

/// Environment variable naming the directory of larger datasets (those not built in).
pub const DATASETS_DIR_ENV: &str = "ZEREN_DATASETS";
