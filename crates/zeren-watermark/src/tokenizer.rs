//! Character-level, byte-level and byte-pair-encoding tokenizers, shared by the language model
//! and the detector.
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
use crate::bpe::{BYTE_TOKENS, Bpe};

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
    /// Byte-pair encoding learned by [`Tokenizer::fit_bpe`]: the 256 bytes and one token per
    /// merge, no unknown token, any language.
    Bpe,
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
    Bpe(Bpe),
}

/// Token ids of a text with the byte range of each token in that text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoding {
    /// Token ids, in text order.
    pub ids: Vec<u32>,
    /// Byte range in the text of each token. A byte-level token covers one byte and a BPE token
    /// one or more, which may begin or end inside a multi-byte character.
    pub offsets: Vec<Range<usize>>,
}

/// The JSON form of a tokenizer. A character-level file lists its characters in id order, from
/// id 1; id 0 is the unknown token. A BPE file lists its merges in the order learned, merge `i`
/// making token `256 + i` from the two token ids given.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenizerFile {
    format: String,
    version: u32,
    kind: TokenizerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chars: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    merges: Option<Vec<[u32; 2]>>,
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

    /// Learns a byte-level BPE tokenizer from `text` with at most `vocab_size` tokens: the 256
    /// bytes and up to `vocab_size - 256` merges. It stops early when no pair of tokens occurs
    /// twice, so the vocabulary can be smaller. Fitting the same text twice gives the same ids.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::InvalidParameter`] when `vocab_size` is below 257.
    pub fn fit_bpe(text: &str, vocab_size: usize) -> Result<Self, WatermarkError> {
        if vocab_size <= BYTE_TOKENS as usize {
            return Err(WatermarkError::invalid("vocab_size", vocab_size, "at least 257: the 256 bytes and one merge"));
        }
        Ok(Self { vocabulary: Vocabulary::Bpe(Bpe::fit(text, vocab_size)) })
    }

    /// Returns the kind of tokenizer.
    pub fn kind(&self) -> TokenizerKind {
        match self.vocabulary {
            Vocabulary::Char { .. } => TokenizerKind::Char,
            Vocabulary::Byte => TokenizerKind::Byte,
            Vocabulary::Bpe(_) => TokenizerKind::Bpe,
        }
    }

    /// Number of token ids, the unknown token included.
    pub fn vocab_size(&self) -> usize {
        match &self.vocabulary {
            Vocabulary::Char { chars, .. } => chars.len() + 1,
            Vocabulary::Byte => 256,
            Vocabulary::Bpe(bpe) => bpe.vocab_size(),
        }
    }

    /// Id of the unknown token, or `None` for the byte-level and BPE tokenizers, which have none.
    pub fn unknown_id(&self) -> Option<u32> {
        match self.vocabulary {
            Vocabulary::Char { .. } => Some(CHAR_UNKNOWN_ID),
            Vocabulary::Byte | Vocabulary::Bpe(_) => None,
        }
    }

    /// Converts text to token ids.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        match &self.vocabulary {
            Vocabulary::Char { ids, .. } => {
                text.chars().map(|c| ids.get(&c).copied().unwrap_or(CHAR_UNKNOWN_ID)).collect()
            }
            Vocabulary::Byte => text.bytes().map(u32::from).collect(),
            Vocabulary::Bpe(bpe) => bpe.encode_with_offsets(text).0,
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
            Vocabulary::Bpe(bpe) => {
                let (ids, offsets) = bpe.encode_with_offsets(text);
                Encoding { ids, offsets }
            }
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
            Vocabulary::Bpe(bpe) => {
                let mut bytes = Vec::with_capacity(ids.len() * 3);
                for &id in ids {
                    bytes.extend_from_slice(bpe.token_bytes(id).unwrap_or("\u{FFFD}".as_bytes()));
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }

    /// Returns the SHA-256, in hex, of a canonical encoding of the vocabulary: the kind and, for a
    /// character-level tokenizer, its characters in id order as 32-bit code points, for BPE its
    /// merges in order as pairs of 32-bit ids. Two tokenizers have the same fingerprint exactly
    /// when they map text to the same ids.
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
            Vocabulary::Bpe(bpe) => {
                hasher.update(b"bpe\0");
                hasher.update((bpe.merges().len() as u64).to_le_bytes());
                for [left, right] in bpe.merges() {
                    hasher.update(left.to_le_bytes());
                    hasher.update(right.to_le_bytes());
                }
            }
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
        let kind = file.kind;
        let misplaced = |list: &str| {
            WatermarkError::InvalidTokenizer(format!("a {} tokenizer has no `{list}` list", kind_name(kind)))
        };
        match (kind, file.chars, file.merges) {
            (TokenizerKind::Byte | TokenizerKind::Bpe, Some(_), _) => Err(misplaced("chars")),
            (TokenizerKind::Byte | TokenizerKind::Char, _, Some(_)) => Err(misplaced("merges")),
            (TokenizerKind::Byte, None, None) => Ok(Self::byte_level()),
            (TokenizerKind::Bpe, None, None) => {
                Err(WatermarkError::InvalidTokenizer("a BPE tokenizer needs a `merges` list".to_string()))
            }
            (TokenizerKind::Bpe, None, Some(merges)) => {
                let bpe = Bpe::from_merges(merges).map_err(WatermarkError::InvalidTokenizer)?;
                Ok(Self { vocabulary: Vocabulary::Bpe(bpe) })
            }
            (TokenizerKind::Char, None, None) => {
                Err(WatermarkError::InvalidTokenizer("a character-level tokenizer needs a `chars` list".to_string()))
            }
            (TokenizerKind::Char, Some(entries), None) => {
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
        let (chars, merges) = match &tokenizer.vocabulary {
            Vocabulary::Char { chars, .. } => (Some(chars.iter().map(char::to_string).collect()), None),
            Vocabulary::Byte => (None, None),
            Vocabulary::Bpe(bpe) => (None, Some(bpe.merges().to_vec())),
        };
        Self { format: FORMAT.to_string(), version: VERSION, kind: tokenizer.kind(), chars, merges }
    }
}

fn kind_name(kind: TokenizerKind) -> &'static str {
    match kind {
        TokenizerKind::Char => "character-level",
        TokenizerKind::Byte => "byte-level",
        TokenizerKind::Bpe => "BPE",
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

    const MIXED: &str = "The boat floats. 水能载舟，亦能覆舟。The boat floats again! 舟舟 🚣 café\n\n  done";

    #[test]
    fn bpe_roundtrip_and_offsets_cover_the_text() {
        let tokenizer = Tokenizer::fit_bpe(&MIXED.repeat(3), 320).unwrap();
        assert_eq!(tokenizer.kind(), TokenizerKind::Bpe);
        assert_eq!(tokenizer.unknown_id(), None);
        assert!(tokenizer.vocab_size() > 256, "no merge was learned");
        assert!(tokenizer.vocab_size() <= 320, "{} tokens", tokenizer.vocab_size());
        for text in [MIXED, "unseen words ünïcödé 新的句子", ""] {
            let encoding = tokenizer.encode_with_offsets(text);
            assert_eq!(encoding.ids, tokenizer.encode(text));
            assert_eq!(tokenizer.decode(&encoding.ids), text);
            let Vocabulary::Bpe(bpe) = &tokenizer.vocabulary else { unreachable!("fit_bpe makes a BPE tokenizer") };
            let mut end = 0;
            for (&id, range) in encoding.ids.iter().zip(&encoding.offsets) {
                assert_eq!(range.start, end, "offsets must be contiguous");
                assert_eq!(bpe.token_bytes(id), Some(&text.as_bytes()[range.clone()]), "token {id} at {range:?}");
                end = range.end;
            }
            assert_eq!(end, text.len());
        }
        // Merges shorten a text seen in training.
        assert!(tokenizer.encode(MIXED).len() < MIXED.len() / 2, "{}", tokenizer.encode(MIXED).len());
        assert_eq!(tokenizer, Tokenizer::fit_bpe(&MIXED.repeat(3), 320).unwrap());
    }

    #[test]
    fn bpe_learns_chinese_characters_first() {
        let tokenizer = Tokenizer::fit_bpe(&"春眠不觉晓，处处闻啼鸟。".repeat(4), 400).unwrap();
        // Each character's three UTF-8 bytes merge into one token before characters combine.
        let ids = tokenizer.encode("春眠");
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(tokenizer.decode(&ids), "春眠");
        assert_eq!(tokenizer.decode(&[ids[0], 9999]), "春眠\u{FFFD}");
    }

    #[test]
    fn bpe_rejects_too_small_vocabulary() {
        let error = Tokenizer::fit_bpe("text", 256).unwrap_err().to_string();
        assert!(error.contains("vocab_size"), "{error}");
        assert!(error.contains("at least 257"), "{error}");
    }

    #[test]
    fn save_and_load_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let tokenizers = [
            Tokenizer::fit_chars("春眠不觉晓 \"quoted\"\n", 1).unwrap(),
            Tokenizer::byte_level(),
            Tokenizer::fit_bpe(&MIXED.repeat(2), 300).unwrap(),
        ];
        for tokenizer in tokenizers {
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
            (r#"{"format":"zeren-tokenizer","version":1,"kind":"bpe"}"#, "needs a `merges` list"),
            (r#"{"format":"zeren-tokenizer","version":1,"kind":"bpe","merges":[[97,300]]}"#, "merge 0 is [97, 300]"),
            (r#"{"format":"zeren-tokenizer","version":1,"kind":"byte","merges":[]}"#, "has no `merges` list"),
            (r#"{"format":"zeren-tokenizer","version":1,"kind":"bpe","chars":["a"]}"#, "has no `chars` list"),
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
        let bpe = Tokenizer::fit_bpe("abab abab", 257).unwrap();
        assert_eq!(bpe.fingerprint(), Tokenizer::fit_bpe("abab abab", 257).unwrap().fingerprint());
        assert_ne!(bpe.fingerprint(), Tokenizer::fit_bpe("abab abab", 258).unwrap().fingerprint());
        assert_ne!(bpe.fingerprint(), Tokenizer::byte_level().fingerprint());
    }
}
