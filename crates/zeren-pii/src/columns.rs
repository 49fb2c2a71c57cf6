//! Classifying columns of structured data.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

use serde::Serialize;

use crate::{EntityType, Finding, Scanner};

/// Column names (lowercase, or Chinese) that suggest an entity type.
const NAME_HINTS: [(&str, EntityType); 24] = [
    ("email", EntityType::EmailAddress),
    ("邮箱", EntityType::EmailAddress),
    ("phone", EntityType::PhoneNumber),
    ("mobile", EntityType::PhoneNumber),
    ("手机", EntityType::PhoneNumber),
    ("电话", EntityType::PhoneNumber),
    ("id_card", EntityType::CnResidentId),
    ("idcard", EntityType::CnResidentId),
    ("身份证", EntityType::CnResidentId),
    ("card", EntityType::CreditCard),
    ("卡号", EntityType::CreditCard),
    ("iban", EntityType::IbanCode),
    ("ssn", EntityType::UsSsn),
    ("passport", EntityType::Passport),
    ("护照", EntityType::Passport),
    ("birth", EntityType::DateOfBirth),
    ("dob", EntityType::DateOfBirth),
    ("出生", EntityType::DateOfBirth),
    ("生日", EntityType::DateOfBirth),
    ("信用代码", EntityType::CnUscc),
    ("name", EntityType::Person),
    ("姓名", EntityType::Person),
    ("名字", EntityType::Person),
    ("ip_address", EntityType::IpAddress),
];

/// Classification of one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnReport {
    /// Column name.
    pub column: String,
    /// The entity type most non-empty values contain, when its share reaches the threshold, or
    /// the type its name suggests for names (which the recognizers cannot detect).
    pub entity: Option<EntityType>,
    /// Share of non-empty values containing `entity`.
    pub share: f64,
    /// Non-empty values.
    pub non_empty: usize,
    /// The entity type the column name suggests.
    pub name_hint: Option<EntityType>,
    /// Values are unique per row and shaped like codes: a quasi-identifier even without a match.
    pub quasi_identifier: bool,
}

/// Settings of column classification.
#[derive(Debug, Clone, Copy)]
pub struct ColumnOptions {
    /// Share of non-empty values that must contain an entity for the column to hold it.
    pub share: f64,
    /// The lower share that suffices when the column name suggests the same entity.
    pub share_with_name_hint: f64,
}

impl Default for ColumnOptions {
    fn default() -> Self {
        Self { share: 0.5, share_with_name_hint: 0.2 }
    }
}

/// Suggests an entity type from a column name.
pub fn name_hint(column: &str) -> Option<EntityType> {
    let lower = column.to_lowercase();
    if lower == "ip" {
        return Some(EntityType::IpAddress);
    }
    NAME_HINTS.iter().find(|(hint, _)| lower.contains(hint)).map(|(_, entity)| *entity)
}

/// Hashes of non-empty values kept per column to tell whether its values are unique per row.
/// NOTE: uniqueness is judged on the first 65,536 non-empty values, so that memory stays flat
/// for files of any length. A repeat after those is not seen.
const DISTINCT_SAMPLE: usize = 1 << 16;

/// Running counts of one column, fed value by value, so files of any length are classified
/// in bounded memory.
#[derive(Debug, Clone)]
pub struct ColumnStats {
    column: String,
    values: usize,
    non_empty: usize,
    counts: BTreeMap<EntityType, usize>,
    /// Hashes of the first [`DISTINCT_SAMPLE`] non-empty values, dropped once a value repeats.
    distinct: HashSet<u64>,
    repeated: bool,
    code_shaped: usize,
}

impl ColumnStats {
    /// Starts the counts of a column.
    pub fn new(column: &str) -> Self {
        Self {
            column: column.to_string(),
            values: 0,
            non_empty: 0,
            counts: BTreeMap::new(),
            distinct: HashSet::new(),
            repeated: false,
            code_shaped: 0,
        }
    }

    /// Adds one value and the findings the scanner made in it.
    pub fn add(&mut self, value: &str, findings: &[Finding]) {
        self.values += 1;
        if value.trim().is_empty() {
            return;
        }
        self.non_empty += 1;
        // A value counts once per entity type, however many findings of that type it holds.
        for (index, finding) in findings.iter().enumerate() {
            if findings[..index].iter().all(|earlier| earlier.entity != finding.entity) {
                *self.counts.entry(finding.entity).or_default() += 1;
            }
        }
        if !self.repeated && self.distinct.len() < DISTINCT_SAMPLE {
            let mut hasher = DefaultHasher::new();
            value.hash(&mut hasher);
            if !self.distinct.insert(hasher.finish()) {
                self.repeated = true;
                self.distinct = HashSet::new();
            }
        }
        if value.len() >= 4 && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            self.code_shaped += 1;
        }
    }

    /// Classifies the column from the values added so far.
    pub fn finish(&self, options: &ColumnOptions) -> ColumnReport {
        let hint = name_hint(&self.column);
        let total = self.non_empty.max(1) as f64;
        let best =
            self.counts.iter().max_by_key(|(_, count)| **count).map(|(entity, count)| (*entity, *count as f64 / total));
        let entity = match (best, hint) {
            (Some((entity, share)), _) if share >= options.share => Some((entity, share)),
            (Some((entity, share)), Some(hinted)) if hinted == entity && share >= options.share_with_name_hint => {
                Some((entity, share))
            }
            (_, Some(EntityType::Person)) if self.non_empty > 0 => Some((EntityType::Person, 1.0)),
            _ => None,
        };
        // Distinct counts come from 64-bit hashes; a collision can only hide uniqueness.
        let quasi_identifier = self.non_empty >= 10
            && !self.repeated
            && self.non_empty as f64 >= 0.9 * self.values as f64
            && self.code_shaped as f64 >= 0.95 * self.non_empty as f64;
        ColumnReport {
            column: self.column.clone(),
            entity: entity.map(|(e, _)| e),
            share: entity.map_or(0.0, |(_, s)| s),
            non_empty: self.non_empty,
            name_hint: hint,
            quasi_identifier,
        }
    }
}

/// Classifies one column from all its values.
pub fn classify_column(scanner: &Scanner, column: &str, values: &[&str], options: &ColumnOptions) -> ColumnReport {
    let mut stats = ColumnStats::new(column);
    for value in values {
        stats.add(value, &scanner.scan(value));
    }
    stats.finish(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_column_is_classified() {
        let values = ["13812345678", "13912345678", "", "n/a"];
        let report = classify_column(&Scanner::new(), "手机号", &values, &ColumnOptions::default());
        assert_eq!(report.entity, Some(EntityType::PhoneNumber));
        assert!((report.share - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(report.name_hint, Some(EntityType::PhoneNumber));
    }

    #[test]
    fn name_hint_lowers_the_share() {
        let values = ["13812345678", "unknown", "none", "-"];
        let hinted = classify_column(&Scanner::new(), "phone", &values, &ColumnOptions::default());
        assert_eq!(hinted.entity, Some(EntityType::PhoneNumber));
        let plain = classify_column(&Scanner::new(), "notes", &values, &ColumnOptions::default());
        assert_eq!(plain.entity, None);
    }

    #[test]
    fn name_column_is_person() {
        let report = classify_column(&Scanner::new(), "姓名", &["李伟", "王芳"], &ColumnOptions::default());
        assert_eq!(report.entity, Some(EntityType::Person));
    }

    #[test]
    fn uniqueness_sample_bounds_memory() {
        let mut unique = ColumnStats::new("code");
        for row in 0..DISTINCT_SAMPLE + 5_000 {
            unique.add(&format!("AB{row:08}"), &[]);
        }
        assert_eq!(unique.distinct.len(), DISTINCT_SAMPLE);
        assert!(unique.finish(&ColumnOptions::default()).quasi_identifier);

        let mut repeating = ColumnStats::new("code");
        for row in 0..1_000 {
            repeating.add(&format!("AB{:08}", row % 500), &[]);
        }
        assert!(repeating.distinct.is_empty(), "the hashes are dropped once a value repeats");
        assert!(!repeating.finish(&ColumnOptions::default()).quasi_identifier);
    }

    #[test]
    fn unique_codes_are_quasi_identifiers() {
        let values: Vec<String> = (0..20).map(|i| format!("EMP-{i:04}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let report = classify_column(&Scanner::new(), "employee", &values, &ColumnOptions::default());
        assert!(report.quasi_identifier);
        let repeated = vec!["A1B2"; 20];
        assert!(!classify_column(&Scanner::new(), "x", &repeated, &ColumnOptions::default()).quasi_identifier);
    }

    #[test]
    fn numeric_measurements_are_not_identifiers() {
        let values: Vec<String> = (0..20).map(|i| format!("{}.5", 30 + i)).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let report = classify_column(&Scanner::new(), "weight", &values, &ColumnOptions::default());
        assert_eq!(report.entity, None);
        assert!(!report.quasi_identifier);
    }
}
