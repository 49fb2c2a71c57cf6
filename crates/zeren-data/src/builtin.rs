//! The built-in datasets, compiled into the binary so the main job runs offline.
//!
//! Provenance, licences and the exact derivation of each file are in `datasets/README.md` of
//! this crate.

use std::io::Read;

use flate2::read::GzDecoder;

use crate::{CsvOptions, DataError, Table};

/// Names of the built-in datasets.
pub const BUILTIN_DATASETS: [&str; 3] = ["adult", "german", "compas"];

/// A built-in dataset with its default learning task.
#[derive(Debug, Clone)]
pub struct BuiltinDataset {
    /// Short name used with `--dataset`.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Where the data comes from and under which licence.
    pub provenance: &'static str,
    /// Training rows (all rows when there is no official test file).
    pub train: Table,
    /// The official test rows, when the dataset has them.
    pub test: Option<Table>,
    /// Target column.
    pub target: &'static str,
    /// Positive label of the target.
    pub positive_label: &'static str,
    /// Default sensitive columns.
    pub sensitive: Vec<String>,
    /// Columns never used as features.
    pub excluded: Vec<String>,
    /// The embedded files, by their name in the crate's `datasets` directory, for provenance.
    pub files: Vec<(&'static str, &'static [u8])>,
}

const ADULT_TRAIN: &[u8] = include_bytes!("../datasets/adult/adult.data.gz");
const ADULT_TEST: &[u8] = include_bytes!("../datasets/adult/adult.test.gz");
const GERMAN: &[u8] = include_bytes!("../datasets/german/german.data.gz");
const GERMAN_CODES: &str = include_str!("../datasets/german/values_maps.json");
const COMPAS: &[u8] = include_bytes!("../datasets/compas/compas-two-years.csv.gz");

/// Column names of Adult, as in `adult.names`.
const ADULT_COLUMNS: [&str; 15] = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
];

/// Column names of Statlog German credit, in file order.
const GERMAN_COLUMNS: [&str; 21] = [
    "status",
    "duration",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "present_employment",
    "installment_rate",
    "status_sex",
    "other_debtors",
    "present_residence",
    "property",
    "age",
    "installment_plans",
    "housing",
    "number_of_credits",
    "job",
    "people_liable",
    "telephone",
    "foreign_worker",
    "credit",
];

/// Loads a built-in dataset by name.
///
/// # Errors
///
/// Returns [`DataError::UnknownDataset`] for an unknown name.
pub fn load_builtin(name: &str) -> Result<BuiltinDataset, DataError> {
    match name {
        "adult" => adult(),
        "german" => german(),
        "compas" => compas(),
        _ => Err(DataError::UnknownDataset {
            name: name.to_string(),
            available: BUILTIN_DATASETS.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

fn decompress(name: &str, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    let mut text = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut text)
        .map_err(|e| DataError::Builtin { name: name.to_string(), message: e.to_string() })?;
    Ok(text)
}

fn adult() -> Result<BuiltinDataset, DataError> {
    let options = CsvOptions {
        has_header: false,
        column_names: Some(ADULT_COLUMNS.map(String::from).to_vec()),
        // The test file starts with the line "|1x3 Cross validator".
        comment: Some(b'|'),
        ..CsvOptions::default()
    };
    let train = Table::from_reader("adult (adult.data)", decompress("adult", ADULT_TRAIN)?.as_slice(), &options)?;
    let mut test = Table::from_reader("adult (adult.test)", decompress("adult", ADULT_TEST)?.as_slice(), &options)?;
    // Test labels end in a full stop ("<=50K.") where training labels do not.
    let income = test.column_index("income")?;
    for row in &mut test.rows {
        if let Some(stripped) = row[income].strip_suffix('.') {
            row[income] = stripped.to_string();
        }
    }
    Ok(BuiltinDataset {
        name: "adult",
        description: "UCI Adult: 1994 US census records; predict whether income exceeds $50K a year",
        provenance: "UCI Machine Learning Repository (Becker and Kohavi 1996), CC BY 4.0; official train/test files",
        train,
        test: Some(test),
        target: "income",
        positive_label: ">50K",
        sensitive: vec!["sex".into(), "race".into()],
        excluded: vec![],
        files: vec![("adult/adult.data.gz", ADULT_TRAIN), ("adult/adult.test.gz", ADULT_TEST)],
    })
}

fn german() -> Result<BuiltinDataset, DataError> {
    let options = CsvOptions {
        delimiter: b' ',
        has_header: false,
        column_names: Some(GERMAN_COLUMNS.map(String::from).to_vec()),
        ..CsvOptions::default()
    };
    let mut table = Table::from_reader("german (german.data)", decompress("german", GERMAN)?.as_slice(), &options)?;
    let codes: serde_json::Map<String, serde_json::Value> = serde_json::from_str(GERMAN_CODES)
        .map_err(|e| DataError::Builtin { name: "german".into(), message: e.to_string() })?;

    let status_sex = table.column_index("status_sex")?;
    let age = table.column_index("age")?;
    let mut derived = Vec::with_capacity(table.len());
    for row in &mut table.rows {
        let sex = match row[status_sex].as_str() {
            "A92" | "A95" => "female",
            _ => "male",
        };
        let age_group = match row[age].parse::<f64>() {
            Ok(years) if years < 25.0 => "under 25",
            _ => "25 or older",
        };
        derived.push((sex, age_group));

        // Replace A-codes (and the 1/2 label) with the text of the dataset's code book.
        for (column, value) in GERMAN_COLUMNS.iter().zip(row.iter_mut()) {
            let Some(decoded) = codes.get(*column).and_then(|m| m.get(value.as_str())) else { continue };
            *value = match decoded {
                serde_json::Value::String(text) => text.trim().to_string(),
                serde_json::Value::Bool(flag) => if *flag { "yes" } else { "no" }.to_string(),
                other => other.to_string(),
            };
        }
    }
    table.columns.extend(["sex".to_string(), "age_group".to_string()]);
    for (row, (sex, age_group)) in table.rows.iter_mut().zip(derived) {
        row.push(sex.to_string());
        row.push(age_group.to_string());
    }

    Ok(BuiltinDataset {
        name: "german",
        description: "Statlog German credit: 1,000 loan applicants; predict good or bad credit risk",
        provenance: "UCI Machine Learning Repository (Hofmann 1994), CC BY 4.0",
        train: table,
        test: None,
        target: "credit",
        positive_label: "good",
        sensitive: vec!["sex".into(), "age_group".into()],
        excluded: vec!["status_sex".into(), "age".into()],
        files: vec![("german/german.data.gz", GERMAN), ("german/values_maps.json", GERMAN_CODES.as_bytes())],
    })
}

fn compas() -> Result<BuiltinDataset, DataError> {
    let source = "compas (compas-two-years.csv)";
    let mut table = Table::from_reader(source, decompress("compas", COMPAS)?.as_slice(), &CsvOptions::default())?;

    // ProPublica's filter from their analysis notebook: screening within 30 days of arrest, a
    // known recidivism outcome, no ordinary traffic offences, and a COMPAS score.
    let days = table.column_index("days_b_screening_arrest")?;
    let is_recid = table.column_index("is_recid")?;
    let degree = table.column_index("c_charge_degree")?;
    let score = table.column_index("score_text")?;
    let keep: Vec<bool> = table
        .rows
        .iter()
        .map(|row| {
            let within_30_days = row[days].parse::<f64>().is_ok_and(|d| (-30.0..=30.0).contains(&d));
            within_30_days && row[is_recid] != "-1" && row[degree] != "O" && row[score] != "N/A"
        })
        .collect();
    let mut index = 0;
    table.rows.retain(|_| {
        index += 1;
        keep[index - 1]
    });
    let mut index = 0;
    table.lines.retain(|_| {
        index += 1;
        keep[index - 1]
    });

    Ok(BuiltinDataset {
        name: "compas",
        description: "ProPublica COMPAS: Broward County defendants; predict re-arrest within two years",
        provenance: "ProPublica, compas-scores-two-years.csv (Angwin et al. 2016), filtered as in their analysis",
        train: table,
        test: None,
        target: "two_year_recid",
        positive_label: "1",
        sensitive: vec!["race".into(), "sex".into()],
        excluded: ["id", "age_cat", "days_b_screening_arrest", "is_recid", "score_text", "decile_score"]
            .map(String::from)
            .to_vec(),
        files: vec![("compas/compas-two-years.csv.gz", COMPAS)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adult_has_official_row_counts() {
        let adult = load_builtin("adult").unwrap();
        assert_eq!(adult.train.len(), 32_561);
        assert_eq!(adult.test.as_ref().unwrap().len(), 16_281);
        assert_eq!(adult.train.columns, ADULT_COLUMNS.map(String::from).to_vec());
        let test = adult.test.unwrap();
        let income = test.column_index("income").unwrap();
        assert!(test.rows.iter().all(|r| r[income] == ">50K" || r[income] == "<=50K"));
    }

    #[test]
    fn german_derives_sex_and_age_group() {
        let german = load_builtin("german").unwrap();
        assert_eq!(german.train.len(), 1_000);
        let sex = german.train.column_index("sex").unwrap();
        let females = german.train.rows.iter().filter(|r| r[sex] == "female").count();
        // 310 applicants have the codes A92 or A95 in the original file.
        assert_eq!(females, 310);
        let credit = german.train.column_index("credit").unwrap();
        let good = german.train.rows.iter().filter(|r| r[credit] == "good").count();
        assert_eq!(good, 700);
        let purpose = german.train.column_index("purpose").unwrap();
        assert_eq!(german.train.rows[0][purpose], "radio/television");
    }

    #[test]
    fn compas_applies_propublica_filter() {
        let compas = load_builtin("compas").unwrap();
        assert_eq!(compas.train.len(), 6_172);
        assert_eq!(compas.train.lines.len(), 6_172);
    }

    #[test]
    fn unknown_name_lists_builtins() {
        let error = load_builtin("mnist").unwrap_err();
        assert!(error.is_usage());
        assert!(error.to_string().contains("adult, german, compas"));
    }
}
