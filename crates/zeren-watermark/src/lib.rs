//! Keyed watermarks for generated text, their detector, the tokenizers they are defined over, and
//! visible labels with provenance metadata. The crate has no deep-learning dependency: the language
//! model calls [`Watermarker::apply`] on its logits, and the detector needs only the key and the
//! tokenizer, never the model.
//!
//! The watermark is the soft green-list scheme of Kirchenbauer, Geiping, Wen, Katz, Miers and
//! Goldstein (2023), "A Watermark for Large Language Models", arXiv:2301.10226. Before each token
//! is sampled, a keyed hash of the previous h tokens selects a green list of about a share gamma
//! of the vocabulary, and delta is added to the green logits. Text written without the key has a
//! share of about gamma green tokens; watermarked text has more, which a one-sided binomial test
//! detects.
//!
//! ```
//! use zeren_watermark::{DetectorConfig, Detector, Tokenizer, Verdict, WatermarkKey, WatermarkParams, Watermarker};
//!
//! let key = WatermarkKey::derive(&[7u8; 32])?;
//! let params = WatermarkParams::default();
//! let tokenizer = Tokenizer::byte_level();
//! let watermarker = Watermarker::for_tokenizer(&key, params, &tokenizer)?;
//!
//! // A stand-in for a language model: logits that change with each step, and greedy decoding.
//! let mut tokens = tokenizer.encode("a");
//! for step in 0..200 {
//!     let mut logits: Vec<f32> = (0..256).map(|i| ((i * 37 + step * 11) % 256) as f32 / 64.0).collect();
//!     watermarker.apply(&tokens, &mut logits)?;
//!     let next = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
//!     tokens.push(next as u32);
//! }
//!
//! let detector = Detector::new(&key, &params, DetectorConfig::default())?;
//! let detection = detector.detect_ids(&tokens, tokenizer.unknown_id());
//! assert_eq!(detection.verdict, Verdict::Watermarked);
//! # Ok::<(), zeren_watermark::WatermarkError>(())
//! ```

mod bpe;
mod chacha;
pub mod detect;
mod green;
pub mod label;
pub mod stats;
pub mod tokenizer;
pub mod watermark;

use std::path::PathBuf;

pub use detect::{Correction, Detection, Detector, DetectorConfig, Verdict, WatermarkedSpan, WindowScan};
pub use green::GreenList;
pub use label::{ContentMetadata, Generator, Label, LabelPosition, WatermarkRecord};
pub use tokenizer::{Encoding, Tokenizer, TokenizerKind};
pub use watermark::{Scheme, WatermarkKey, WatermarkParams, Watermarker};

/// An error of the watermark library.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    /// A parameter or setting is outside its valid range.
    #[error("invalid {name} {value}; expected {expected}")]
    InvalidParameter { name: &'static str, value: String, expected: String },
    /// The secret given to [`WatermarkKey::derive`] is too short.
    #[error(
        "a secret of {len} bytes is too short to derive a watermark key; use at least {} random bytes",
        watermark::MIN_SECRET_BYTES
    )]
    ShortSecret { len: usize },
    /// [`Watermarker::apply`] got a logits slice of the wrong length.
    #[error("got {actual} logits for a vocabulary of {expected} tokens; pass one logit per token")]
    LogitsLength { expected: usize, actual: usize },
    /// No character is frequent enough to enter a character vocabulary.
    #[error("no character occurs at least {min_count} times among {distinct} distinct characters; lower min_count")]
    EmptyVocabulary { min_count: usize, distinct: usize },
    /// A tokenizer's contents are invalid.
    #[error("{0}")]
    InvalidTokenizer(String),
    /// A tokenizer file is not valid JSON or not a valid tokenizer.
    #[error("{}: not a zeren tokenizer file: {message}", path.display())]
    InvalidTokenizerFile { path: PathBuf, message: String },
    /// A metadata sidecar is not valid.
    #[error("{}: invalid metadata: {message}", path.display())]
    InvalidMetadata { path: PathBuf, message: String },
    /// A label's wording is not usable.
    #[error("{0}")]
    InvalidLabel(String),
    /// A file could not be read or written.
    #[error("{}: {action}: {source}", path.display())]
    Io { path: PathBuf, action: &'static str, source: std::io::Error },
}

impl WatermarkError {
    pub(crate) fn invalid(name: &'static str, value: impl std::fmt::Display, expected: impl Into<String>) -> Self {
        WatermarkError::InvalidParameter { name, value: value.to_string(), expected: expected.into() }
    }
}
