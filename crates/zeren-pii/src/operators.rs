//! Operators that replace what the recognizers find, and the policy that picks them.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::normalize::Normalized;
use crate::{EntityType, Finding, PiiError};

/// Replacement rule for a found value or a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// Replace with the entity tag, such as `<PHONE_NUMBER>`.
    Replace,
    /// Replace every character but the last `keep_last` with `*`.
    Mask { keep_last: usize },
    /// Replace with a keyed pseudonym: the first 16 hex digits of HMAC-SHA-256 of the value, so the
    /// same value gets the same pseudonym in every file hashed with the same key.
    Hash,
    /// Remove the whole column (structured data only; in text it acts as `Replace`).
    Drop,
    /// Leave the value as it is.
    Keep,
}

/// Operator choices by entity type and by column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Operator for entity types and columns not named below.
    pub default: Operator,
    /// Operator by entity type.
    pub entities: BTreeMap<EntityType, Operator>,
    /// Operator by column name; it wins over the entity type.
    pub columns: BTreeMap<String, Operator>,
}

impl Default for Policy {
    fn default() -> Self {
        Self { default: Operator::Replace, entities: BTreeMap::new(), columns: BTreeMap::new() }
    }
}

/// A policy file as written: operators as names or tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    default: Option<OperatorSpec>,
    #[serde(default)]
    entities: BTreeMap<String, OperatorSpec>,
    #[serde(default)]
    columns: BTreeMap<String, OperatorSpec>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OperatorSpec {
    Name(String),
    Table {
        operator: String,
        #[serde(rename = "keep-last", default)]
        keep_last: Option<usize>,
    },
}

impl OperatorSpec {
    fn resolve(&self, source: &str) -> Result<Operator, PiiError> {
        let (name, keep_last) = match self {
            OperatorSpec::Name(name) => (name.as_str(), None),
            OperatorSpec::Table { operator, keep_last } => (operator.as_str(), *keep_last),
        };
        match name {
            "replace" => Ok(Operator::Replace),
            "mask" => Ok(Operator::Mask { keep_last: keep_last.unwrap_or(4) }),
            "hash" => Ok(Operator::Hash),
            "drop" => Ok(Operator::Drop),
            "keep" => Ok(Operator::Keep),
            other => Err(PiiError::InvalidPolicy {
                source_name: source.to_string(),
                message: format!("unknown operator '{other}'; use replace, mask, hash, drop or keep"),
            }),
        }
    }
}

impl Policy {
    /// Parses a TOML policy:
    ///
    /// ```toml
    /// default = "replace"
    /// [entities]
    /// PHONE_NUMBER = { operator = "mask", keep-last = 4 }
    /// EMAIL_ADDRESS = "hash"
    /// [columns]
    /// "身份证号" = "drop"
    /// ```
    ///
    /// # Errors
    ///
    /// Returns an error naming an unknown entity, operator or key.
    pub fn from_toml(source: &str, text: &str) -> Result<Self, PiiError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PiiError::InvalidPolicy {
            source_name: source.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut policy = Policy::default();
        if let Some(default) = &file.default {
            policy.default = default.resolve(source)?;
        }
        for (name, spec) in &file.entities {
            let entity = EntityType::from_name(name)
                .ok_or_else(|| PiiError::UnknownEntity { source_name: source.to_string(), name: name.clone() })?;
            let operator = spec.resolve(source)?;
            if operator == Operator::Drop {
                return Err(PiiError::InvalidPolicy {
                    source_name: source.to_string(),
                    message: format!(
                        "entity {name}: drop removes whole columns, so it belongs under [columns]; use replace, mask, hash or keep"
                    ),
                });
            }
            policy.entities.insert(entity, operator);
        }
        for (column, spec) in &file.columns {
            policy.columns.insert(column.clone(), spec.resolve(source)?);
        }
        Ok(policy)
    }

    /// Returns the operator for a value of `entity`, in `column` when it comes from structured data.
    pub fn operator(&self, entity: EntityType, column: Option<&str>) -> &Operator {
        column.and_then(|c| self.columns.get(c)).or_else(|| self.entities.get(&entity)).unwrap_or(&self.default)
    }

    /// Checks whether any rule hashes, which needs a key.
    pub fn needs_key(&self) -> bool {
        std::iter::once(&self.default)
            .chain(self.entities.values())
            .chain(self.columns.values())
            .any(|o| *o == Operator::Hash)
    }
}

/// Applies operators to values.
pub struct Redactor<'a> {
    policy: &'a Policy,
    key: Option<Vec<u8>>,
}

impl<'a> Redactor<'a> {
    /// Creates a redactor; `key` is the secret of the hash operator.
    ///
    /// # Errors
    ///
    /// Returns [`PiiError::MissingHashKey`] when the policy hashes and no key is given.
    pub fn new(policy: &'a Policy, key: Option<Vec<u8>>) -> Result<Self, PiiError> {
        if policy.needs_key() && key.is_none() {
            return Err(PiiError::MissingHashKey);
        }
        Ok(Self { policy, key })
    }

    /// Returns the replacement of one value.
    pub fn replace(&self, entity: EntityType, column: Option<&str>, value: &str) -> String {
        match self.policy.operator(entity, column) {
            Operator::Replace | Operator::Drop => format!("<{}>", entity.name()),
            Operator::Mask { keep_last } => {
                let count = value.chars().count();
                value.chars().enumerate().map(|(i, c)| if i + keep_last >= count { c } else { '*' }).collect()
            }
            Operator::Hash => {
                let key = self.key.as_deref().unwrap_or_default();
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
                mac.update(canonical(entity, value).as_bytes());
                let digest = mac.finalize().into_bytes();
                hex::encode(&digest[..8])
            }
            Operator::Keep => value.to_string(),
        }
    }

    /// Rewrites `text` with each finding replaced by the policy's operator.
    pub fn redact_text(&self, text: &str, findings: &[Finding], column: Option<&str>) -> String {
        let mut out = String::with_capacity(text.len());
        let mut position = 0;
        for finding in findings {
            if finding.start < position {
                continue;
            }
            out.push_str(&text[position..finding.start]);
            out.push_str(&self.replace(finding.entity, column, &text[finding.start..finding.end]));
            position = finding.end;
        }
        out.push_str(&text[position..]);
        out
    }
}

/// Returns the form of a value that the hash operator hashes, so that one identifier written in
/// different ways gets one pseudonym. Full-width characters are folded. Card and ID numbers,
/// IBANs and MAC addresses lose their separators and are written in capitals. Phone numbers take
/// their national form (see [`national_phone`]), e-mail addresses lower case and IP addresses
/// their standard form.
pub fn canonical(entity: EntityType, value: &str) -> String {
    let folded = Normalized::new(value).text;
    let compact =
        || -> String { folded.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect() };
    match entity {
        EntityType::PhoneNumber => national_phone(&folded),
        EntityType::CreditCard
        | EntityType::CnResidentId
        | EntityType::UsSsn
        | EntityType::IbanCode
        | EntityType::CnUscc
        | EntityType::MacAddress => compact(),
        EntityType::EmailAddress => folded.to_lowercase(),
        EntityType::IpAddress => {
            folded.parse::<std::net::IpAddr>().map_or_else(|_| folded.to_string(), |address| address.to_string())
        }
        _ => folded.into_owned(),
    }
}

/// Writes a phone number in its national form where its country code is one handled here.
/// For mainland China (+86) that is a mobile number as it is and a landline after a trunk 0, for
/// the North American plan (+1) the ten digits, and for the United Kingdom (+44) the number after
/// a trunk 0. A number without a country code is already national, and others keep all digits.
fn national_phone(folded: &str) -> String {
    let trimmed = folded.trim_start();
    let international = trimmed.starts_with('+') || trimmed.starts_with("00");
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if !international {
        return digits;
    }
    let digits = digits.strip_prefix("00").unwrap_or(&digits);
    if let Some(rest) = digits.strip_prefix("86") {
        let mobile = rest.len() == 11 && rest.starts_with('1');
        return if mobile { rest.to_string() } else { format!("0{rest}") };
    }
    if let Some(rest) = digits.strip_prefix('1').filter(|rest| rest.len() == 10) {
        return rest.to_string();
    }
    if let Some(rest) = digits.strip_prefix("44") {
        return format!("0{rest}");
    }
    digits.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scanner;

    const POLICY: &str = r#"
default = "replace"
[entities]
PHONE_NUMBER = { operator = "mask", keep-last = 4 }
EMAIL_ADDRESS = "hash"
[columns]
"身份证号" = "drop"
"#;

    #[test]
    fn hash_gives_one_pseudonym_per_identifier() {
        let policy = Policy::from_toml("policy.toml", "default = \"hash\"").unwrap();
        let redactor = Redactor::new(&policy, Some(b"a key of thirty-two bytes or more!".to_vec())).unwrap();
        let hash = |entity, value| redactor.replace(entity, None, value);
        let phone = hash(EntityType::PhoneNumber, "13912345678");
        for form in ["１３９１２３４５６７８", "+86 139 1234 5678", "139-1234-5678", "0086 13912345678"] {
            assert_eq!(hash(EntityType::PhoneNumber, form), phone, "{form}");
        }
        assert_ne!(hash(EntityType::PhoneNumber, "13912345679"), phone);

        let forms = [
            ["+86 10 6234 5678", "010-62345678"],
            ["+1 212 736 5000", "(212) 736-5000"],
            ["+44 20 7946 0018", "020 7946 0018"],
        ];
        for [international, national] in forms {
            assert_eq!(hash(EntityType::PhoneNumber, international), hash(EntityType::PhoneNumber, national));
        }

        let id = hash(EntityType::CnResidentId, "110101199003071233");
        assert_eq!(hash(EntityType::CnResidentId, "110101 19900307 1233"), id);
        assert_eq!(
            hash(EntityType::CreditCard, "4111 1111 1111 1111"),
            hash(EntityType::CreditCard, "4111-1111-1111-1111")
        );
        assert_eq!(
            hash(EntityType::CnResidentId, "11010519491231002x"),
            hash(EntityType::CnResidentId, "11010519491231002X")
        );
        assert_eq!(
            hash(EntityType::EmailAddress, "Li.Wei@Example.com"),
            hash(EntityType::EmailAddress, "li.wei@example.com")
        );
        assert_eq!(hash(EntityType::IpAddress, "2001:0db8:0:0:0:0:0:1"), hash(EntityType::IpAddress, "2001:db8::1"));
        assert_eq!(
            hash(EntityType::MacAddress, "00-1a-2b-3c-4d-5e"),
            hash(EntityType::MacAddress, "00:1A:2B:3C:4D:5E")
        );
        assert_eq!(phone.len(), 16);
    }

    #[test]
    fn policy_picks_operators_by_entity_and_column() {
        let policy = Policy::from_toml("p.toml", POLICY).unwrap();
        assert_eq!(policy.operator(EntityType::PhoneNumber, None), &Operator::Mask { keep_last: 4 });
        assert_eq!(policy.operator(EntityType::CnResidentId, Some("身份证号")), &Operator::Drop);
        assert_eq!(policy.operator(EntityType::Url, None), &Operator::Replace);
        assert!(policy.needs_key());
    }

    #[test]
    fn unknown_entity_and_operator_are_named() {
        let error = Policy::from_toml("p.toml", "[entities]\nPHONE = \"mask\"\n").unwrap_err();
        assert!(error.to_string().contains("unknown entity 'PHONE'"), "{error}");
        let error = Policy::from_toml("p.toml", "default = \"shred\"\n").unwrap_err();
        assert!(error.to_string().contains("unknown operator 'shred'"), "{error}");
        let error = Policy::from_toml("p.toml", "defaults = \"mask\"\n").unwrap_err();
        assert!(error.to_string().contains("defaults"), "{error}");
    }

    #[test]
    fn hash_needs_key_and_is_stable() {
        let policy = Policy::from_toml("p.toml", POLICY).unwrap();
        assert!(matches!(Redactor::new(&policy, None), Err(PiiError::MissingHashKey)));
        let redactor = Redactor::new(&policy, Some(b"0123456789abcdef0123456789abcdef".to_vec())).unwrap();
        let first = redactor.replace(EntityType::EmailAddress, None, "li.wei@example.com");
        assert_eq!(first, redactor.replace(EntityType::EmailAddress, None, "li.wei@example.com"));
        assert_ne!(first, redactor.replace(EntityType::EmailAddress, None, "wang.fang@example.com"));
        assert_eq!(first.len(), 16);
    }

    #[test]
    fn redacts_text_keeping_the_rest() {
        let policy = Policy::from_toml("p.toml", POLICY).unwrap();
        let redactor = Redactor::new(&policy, Some(vec![7; 32])).unwrap();
        let text = "手机：１３８１２３４５６７８，网址 https://example.org";
        let findings = Scanner::new().scan(text);
        let redacted = redactor.redact_text(text, &findings, None);
        assert_eq!(redacted, "手机：*******５６７８，网址 <URL>");
    }
}
