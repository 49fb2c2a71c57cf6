//! Recognizers of personal identifiers in English and Chinese text, with no deep-learning
//! dependency.
//!
//! Each recognizer finds candidates with a pattern, keeps only those that pass the identifier's
//! own validation (a check digit, a real date, a known region), and scores them; words such as
//! "phone" or 手机 shortly before a candidate raise its score. Full-width digits and separators
//! common in Chinese text are folded before matching, and every span is reported as byte offsets
//! into the original text. Entity names follow Microsoft Presidio's where one exists.
//!
//! ```
//! use zeren_pii::{EntityType, Scanner};
//!
//! let text = "联系人手机：１３８１２３４５６７８，邮箱 li.wei@example.com";
//! let findings = Scanner::new().scan(text);
//! assert_eq!(findings[0].entity, EntityType::PhoneNumber);
//! assert_eq!(&text[findings[0].start..findings[0].end], "１３８１２３４５６７８");
//! assert_eq!(findings[1].entity, EntityType::EmailAddress);
//! ```

pub mod columns;
mod normalize;
pub mod operators;
mod recognizers;
pub mod validate;

use serde::{Deserialize, Serialize};

pub use recognizers::Scanner;

/// A kind of personal identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntityType {
    /// E-mail address.
    EmailAddress,
    /// Telephone number: E.164, mainland China mobile and landline, US and UK formats.
    PhoneNumber,
    /// Payment or bank card number with a valid Luhn check digit, UnionPay included.
    CreditCard,
    /// International bank account number with a valid MOD 97 check.
    IbanCode,
    /// IPv4 or IPv6 address.
    IpAddress,
    /// MAC address.
    MacAddress,
    /// Web address.
    Url,
    /// US social security number.
    UsSsn,
    /// Date of birth (only near a word such as "born" or 出生).
    DateOfBirth,
    /// Passport number (only near a word such as "passport" or 护照).
    Passport,
    /// Mainland China resident identity number, 18 or 15 characters.
    CnResidentId,
    /// Mainland China unified social credit code of an organisation.
    CnUscc,
    /// A person's name. Found only through a column name such as `name` or 姓名: the text
    /// recognizers do not detect names.
    Person,
}

impl EntityType {
    /// Every entity type.
    pub const ALL: [EntityType; 13] = [
        EntityType::EmailAddress,
        EntityType::PhoneNumber,
        EntityType::CreditCard,
        EntityType::IbanCode,
        EntityType::IpAddress,
        EntityType::MacAddress,
        EntityType::Url,
        EntityType::UsSsn,
        EntityType::DateOfBirth,
        EntityType::Passport,
        EntityType::CnResidentId,
        EntityType::CnUscc,
        EntityType::Person,
    ];

    /// Returns the name used in reports and policies, as Presidio spells it (`PHONE_NUMBER`).
    pub fn name(self) -> &'static str {
        match self {
            EntityType::EmailAddress => "EMAIL_ADDRESS",
            EntityType::PhoneNumber => "PHONE_NUMBER",
            EntityType::CreditCard => "CREDIT_CARD",
            EntityType::IbanCode => "IBAN_CODE",
            EntityType::IpAddress => "IP_ADDRESS",
            EntityType::MacAddress => "MAC_ADDRESS",
            EntityType::Url => "URL",
            EntityType::UsSsn => "US_SSN",
            EntityType::DateOfBirth => "DATE_OF_BIRTH",
            EntityType::Passport => "PASSPORT",
            EntityType::CnResidentId => "CN_RESIDENT_ID",
            EntityType::CnUscc => "CN_USCC",
            EntityType::Person => "PERSON",
        }
    }

    /// Parses a name as [`EntityType::name`] writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// Errors from invalid policies and keys.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    /// A policy names an entity type that does not exist.
    #[error("{source_name}: unknown entity '{name}'; known entities: {}", EntityType::ALL.map(EntityType::name).join(", "))]
    UnknownEntity { source_name: String, name: String },
    /// A policy is not valid TOML or names an unknown operator or key.
    #[error("{source_name}: invalid policy: {message}")]
    InvalidPolicy { source_name: String, message: String },
    /// The policy hashes values but no key was given.
    #[error(
        "the policy uses the hash operator but no key was given; pass --key FILE holding at least 32 secret random bytes (for example: head -c 32 /dev/urandom > pii.key)"
    )]
    MissingHashKey,
}

/// An identifier found in text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Finding {
    /// Entity type of the finding.
    pub entity: EntityType,
    /// Byte offset of the first byte in the original text.
    pub start: usize,
    /// Byte offset one past the last byte in the original text.
    pub end: usize,
    /// Confidence in [0, 1].
    pub score: f64,
}
