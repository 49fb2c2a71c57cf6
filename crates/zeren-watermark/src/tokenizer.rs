//! Character-level and byte-level tokenizers, shared by the language model and the detector.
//!
//! A language-model run saves its tokenizer as `tokenizer.json`. Detection loads the same file,
//! because green lists are defined over token ids, and compares [`Tokenizer::fingerprint`] with
//! the one recorded when the text was generated.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::WatermarkError;

/// Value of the `format` field of a tokenizer file.
const FORMAT: &str = "zeren-tokenizer";
/// Version of the tokenizer file format.
const VERSION: u32 = 1;
/// Id of the unknown token of a character-level tokenizer; the characters follow from id 1.
const CHAR_UNKNOWN_ID: u32 = 0;

/// Kind of tokenizer: the unit of text that one token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    /// One token per Unicode scalar value, for the characters kept by [`Tokenizer::fit_chars`],
    /// and an unknown token (id 0) for all others.
    Char,
    /// One token per UTF-8 byte: 256 tokens, no unknown token, any language.
    Byte,
}

/// A tokenizer: a vocabulary and the rules that map text to token ids and back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TokenizerFile", into = "TokenizerFile")]
pub struct Tokenizer {
    vocabulary: Vocabulary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Vocabulary {
    Char { chars: Vec<char>, ids: HashMap<char, u32> },
    Byte,
}

/// Token ids of a text with the byte range of each token in that text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoding {
    /// Token ids, in text order.
    pub ids: Vec<u32>,
    /// Byte range in the text of each token; a byte-level token covers one byte, which may be part
    /// of a multi-byte character.
    pub offsets: Vec<Range<usize>>,
}

/// The JSON form of a tokenizer. A character-level file lists its characters in id order, from
/// id 1; id 0 is the unknown token.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenizerFile {
    format: String,
    version: u32,
    kind: TokenizerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chars: Option<Vec<String>>,
}

impl Tokenizer {
    /// Fits a character-level tokenizer that keeps the characters seen at least `min_count` times
    /// in `text`; all others map to the unknown token. Ids follow count, highest first, with ties
    /// broken by code point, so fitting the same text twice gives the same ids.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::EmptyVocabulary`] when no character occurs `min_count` times.
    pub fn fit_chars(text: &str, min_count: usize) -> Result<Self, WatermarkError> {
        let mut counts: HashMap<char, usize> = HashMap::new();
        for c in text.chars() {
            *counts.entry(c).or_default() += 1;
        }
        let distinct = counts.len();

        let mut kept: Vec<(char, usize)> = counts.into_iter().filter(|&(_, count)| count >= min_count).collect();
        if kept.is_empty() {
            return Err(WatermarkError::EmptyVocabulary { min_count, distinct });
        }
        kept.sort_by(|(a, count_a), (b, count_b)| count_b.cmp(count_a).then(a.cmp(b)));
        Self::from_chars(kept.into_iter().map(|(c, _)| c).collect())
    }

    /// Builds a character-level tokenizer whose character `chars[i]` has id `i + 1`.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::InvalidTokenizer`] when `chars` is empty or lists a character
    /// twice.
    pub fn from_chars(chars: Vec<char>) -> Result<Self, WatermarkError> {
        if chars.is_empty() {
            return Err(WatermarkError::InvalidTokenizer("the character list is empty".to_string()));
        }
        let mut ids = HashMap::with_capacity(chars.len());
        for (index, &c) in chars.iter().enumerate() {
            if ids.insert(c, index as u32 + 1).is_some() {
                return Err(WatermarkError::InvalidTokenizer(format!("character {c:?} is listed twice")));
            }
        }
        Ok(Self { vocabulary: Vocabulary::Char { chars, ids } })
    }

    /// Builds the byte-level tokenizer: token `b` is the UTF-8 byte `b`.
    pub fn byte_level() -> Self {
        Self { vocabulary: Vocabulary::Byte }
    }

    /// Returns the kind of tokenizer.
    pub fn kind(&self) -> TokenizerKind {
        match self.vocabulary {
            Vocabulary::Char { .. } => TokenizerKind::Char,
            Vocabulary::Byte => TokenizerKind::Byte,
        }
    }

    /// Number of token ids, the unknown token included.
    pub fn vocab_size(&self) -> usize {
        match &self.vocabulary {
            Vocabulary::Char { chars, .. } => chars.len() + 1,
            Vocabulary::Byte => 256,
        }
    }

    /// Id of the unknown token, or `None` for the byte-level tokenizer, which has none.
    pub fn unknown_id(&self) -> Option<u32> {
        match self.vocabulary {
            Vocabulary::Char { .. } => Some(CHAR_UNKNOWN_ID),
            Vocabulary::Byte => None,
        }
    }

    /// Converts text to token ids.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        match &self.vocabulary {
            Vocabulary::Char { ids, .. } => {
                text.chars().map(|c| ids.get(&c).copied().unwrap_or(CHAR_UNKNOWN_ID)).collect()
            }
            Vocabulary::Byte => text.bytes().map(u32::from).collect(),
        }
    }

    /// Converts text to token ids and records the byte range of each token.
    pub fn encode_with_offsets(&self, text: &str) -> Encoding {
        match &self.vocabulary {
            Vocabulary::Char { ids, .. } => {
                let mut encoding = Encoding::default();
                for (start, c) in text.char_indices() {
                    encoding.ids.push(ids.get(&c).copied().unwrap_or(CHAR_UNKNOWN_ID));
                    encoding.offsets.push(start..start + c.len_utf8());
                }
                encoding
            }
            Vocabulary::Byte => Encoding {
                ids: text.bytes().map(u32::from).collect(),
                offsets: (0..text.len()).map(|start| start..start + 1).collect(),
            },
        }
    }

    /// Converts token ids to text, without ever failing. The unknown token and ids outside the
    /// vocabulary become U+FFFD (the replacement character). So do byte sequences that are not
    /// valid UTF-8, such as a character cut in the middle.
    pub fn decode(&self, ids: &[u32]) -> String {
        match &self.vocabulary {
            Vocabulary::Char { chars, .. } => ids
                .iter()
                .map(|&id| match id {
                    CHAR_UNKNOWN_ID => char::REPLACEMENT_CHARACTER,
                    id => chars.get(id as usize - 1).copied().unwrap_or(char::REPLACEMENT_CHARACTER),
                })
                .collect(),
            Vocabulary::Byte => {
                let mut bytes = Vec::with_capacity(ids.len());
                for &id in ids {
                    match u8::try_from(id) {
                        Ok(byte) => bytes.push(byte),
                        Err(_) => bytes.extend_from_slice("\u{FFFD}".as_bytes()),
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }

    /// Returns the SHA-256, in hex, of a canonical encoding of the vocabulary: the kind and, for a
    /// character-level tokenizer, its characters in id order as 32-bit code points. Two
    /// tokenizers have the same fingerprint exactly when they map text to the same ids.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"zeren-tokenizer v1\0");
        match &self.vocabulary {
            Vocabulary::Char { chars, .. } => {
                hasher.update(b"char\0");
                hasher.update((chars.len() as u64).to_le_bytes());
                for &c in chars {
                    hasher.update(u32::from(c).to_le_bytes());
                }
            }
            Vocabulary::Byte => hasher.update(b"byte\0"),
        }
        hex::encode(hasher.finalize())
    }

    /// Writes the tokenizer as JSON to `path`.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::Io`] naming the file when it cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), WatermarkError> {
        let mut json = serde_json::to_string_pretty(self).expect("a tokenizer always serializes");
        json.push('\n');
        std::fs::write(path, json).map_err(|source| WatermarkError::Io {
            path: path.to_path_buf(),
            action: "cannot write the tokenizer",
            source,
        })
    }

    /// Reads a tokenizer written by [`Tokenizer::save`].
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::Io`] when the file cannot be read and
    /// [`WatermarkError::InvalidTokenizerFile`] when it is not a valid tokenizer file; both name
    /// the file.
    pub fn load(path: &Path) -> Result<Self, WatermarkError> {
        let text = std::fs::read_to_string(path).map_err(|source| WatermarkError::Io {
            path: path.to_path_buf(),
            action: "cannot read the tokenizer",
            source,
        })?;
        serde_json::from_str(&text).map_err(|error| WatermarkError::InvalidTokenizerFile {
            path: path.to_path_buf(),
            message: error.to_string(),
        })
    }
}

impl TryFrom<TokenizerFile> for Tokenizer {
    type Error = WatermarkError;

    fn try_from(file: TokenizerFile) -> Result<Self, Self::Error> {
        if file.format != FORMAT {
            return Err(WatermarkError::InvalidTokenizer(format!("format is {:?}, expected {FORMAT:?}", file.format)));
        }
        if file.version != VERSION {
            return Err(WatermarkError::InvalidTokenizer(format!(
                "version {} is not supported; this build reads version {VERSION}",
                file.version
            )));
        }
        match (file.kind, file.chars) {
            (TokenizerKind::Byte, None) => Ok(Self::byte_level()),
            (TokenizerKind::Byte, Some(_)) => {
                Err(WatermarkError::InvalidTokenizer("a byte-level tokenizer has no `chars` list".to_string()))
            }
            (TokenizerKind::Char, None) => {
                Err(WatermarkError::InvalidTokenizer("a character-level tokenizer needs a `chars` list".to_string()))
            }
            (TokenizerKind::Char, Some(entries)) => {
                let mut chars = Vec::with_capacity(entries.len());
                for (index, entry) in entries.iter().enumerate() {
                    let mut iter = entry.chars();
                    match (iter.next(), iter.next()) {
                        (Some(c), None) => chars.push(c),
                        _ => {
                            return Err(WatermarkError::InvalidTokenizer(format!(
                                "entry {index} of `chars` is {entry:?}, expected exactly one character"
                            )));
                        }
                    }
                }
                Self::from_chars(chars)
            }
        }
    }
}

impl From<Tokenizer> for TokenizerFile {
    fn from(tokenizer: Tokenizer) -> Self {
        let chars = match &tokenizer.vocabulary {
            Vocabulary::Char { chars, .. } => Some(chars.iter().map(char::to_string).collect()),
            Vocabulary::Byte => None,
        };
        Self { format: FORMAT.to_string(), version: VERSION, kind: tokenizer.kind(), chars }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_orders_by_count_then_character() {
        let tokenizer = Tokenizer::fit_chars("bbbaacc学", 1).unwrap();
        assert_eq!(tokenizer.encode("bac学"), [1, 2, 3, 4]);
        assert_eq!(tokenizer.vocab_size(), 5);
        assert_eq!(tokenizer, Tokenizer::fit_chars("bbbaacc学", 1).unwrap());
    }

    #[test]
    fn fit_maps_rare_characters_to_unknown() {
        let tokenizer = Tokenizer::fit_chars("的的的是是是了", 2).unwrap();
        assert_eq!(tokenizer.vocab_size(), 3);
        assert_eq!(tokenizer.unknown_id(), Some(0));
        // 是 (U+662F) and 的 (U+7684) both occur three times, so the lower code point comes first.
        assert_eq!(tokenizer.encode("是了的x"), [1, 0, 2, 0]);
        assert_eq!(tokenizer.decode(&[1, 0, 2, 99]), "是\u{FFFD}的\u{FFFD}");
    }

    #[test]
    fn fit_rejects_empty_vocabulary() {
        let error = Tokenizer::fit_chars("abc", 2).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no character occurs at least 2 times among 3 distinct characters; lower min_count"
        );
        assert!(Tokenizer::fit_chars("", 1).is_err());
    }

    #[test]
    fn char_roundtrip_keeps_chinese_text() {
        let text = "水能载舟，亦能覆舟。Water carries the boat.";
        let tokenizer = Tokenizer::fit_chars(text, 1).unwrap();
        assert_eq!(tokenizer.decode(&tokenizer.encode(text)), text);
    }

    #[test]
    fn offsets_are_byte_ranges_of_tokens() {
        let text = "a水b";
        let chars = Tokenizer::fit_chars(text, 1).unwrap().encode_with_offsets(text);
        assert_eq!(chars.offsets, [0..1, 1..4, 4..5]);
        let bytes = Tokenizer::byte_level().encode_with_offsets(text);
        assert_eq!(bytes.ids, [0x61, 0xe6, 0xb0, 0xb4, 0x62]);
        assert_eq!(bytes.offsets[1..4], [1..2, 2..3, 3..4]);
    }

    #[test]
    fn byte_level_decodes_split_characters_lossily() {
        let tokenizer = Tokenizer::byte_level();
        let ids = tokenizer.encode("舟舟");
        assert_eq!(tokenizer.vocab_size(), 256);
        assert_eq!(tokenizer.unknown_id(), None);
        assert_eq!(tokenizer.decode(&ids), "舟舟");
        assert_eq!(tokenizer.decode(&ids[..4]), "舟\u{FFFD}");
        assert_eq!(tokenizer.decode(&ids[1..]), "\u{FFFD}\u{FFFD}舟");
        assert_eq!(tokenizer.decode(&[0x41, 300]), "A\u{FFFD}");
    }

    #[test]
    fn save_and_load_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        for tokenizer in [Tokenizer::fit_chars("春眠不觉晓 \"quoted\"\n", 1).unwrap(), Tokenizer::byte_level()] {
            tokenizer.save(&path).unwrap();
            let loaded = Tokenizer::load(&path).unwrap();
            assert_eq!(loaded, tokenizer);
            assert_eq!(loaded.fingerprint(), tokenizer.fingerprint());
        }
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let error = Tokenizer::load(&missing).unwrap_err().to_string();
        assert!(error.starts_with(&format!("{}: cannot read the tokenizer", missing.display())), "{error}");

        let cases = [
            ("not json", "expected"),
            (r#"{"format":"other","version":1,"kind":"byte"}"#, "format is \"other\""),
            (r#"{"format":"zeren-tokenizer","version":2,"kind":"byte"}"#, "version 2 is not supported"),
            (r#"{"format":"zeren-tokenizer","version":1,"kind":"char","chars":["ab"]}"#, "entry 0"),
            (r#"{"format":"zeren-tokenizer","version":1,"kind":"char","chars":["a","a"]}"#, "listed twice"),
            (r#"{"format":"zeren-tokenizer","version":1,"kind":"byte","extra":1}"#, "unknown field"),
        ];
        let path = dir.path().join("tokenizer.json");
        for (contents, expected) in cases {
            std::fs::write(&path, contents).unwrap();
            let error = Tokenizer::load(&path).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{}: not a zeren tokenizer file", path.display())), "{error}");
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn fingerprint_tracks_vocabulary() {
        let first = Tokenizer::fit_chars("aab", 1).unwrap();
        let reordered = Tokenizer::fit_chars("abb", 1).unwrap();
        assert_eq!(first.fingerprint().len(), 64);
        assert_eq!(first.fingerprint(), Tokenizer::fit_chars("baa", 1).unwrap().fingerprint());
        assert_ne!(first.fingerprint(), reordered.fingerprint());
        assert_ne!(first.fingerprint(), Tokenizer::byte_level().fingerprint());
    }
}
