//! The pattern recognizers and the scanner that runs them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use regex::Regex;

use crate::normalize::Normalized;
use crate::validate;
use crate::{EntityType, Finding};

/// Bytes before a candidate searched for context words: about ten English words or twenty
/// Chinese characters.
const CONTEXT_BYTES: usize = 60;

/// Score added when a context word precedes a candidate (Presidio's context enhancer adds 0.35).
const CONTEXT_BOOST: f64 = 0.35;

/// A byte-level hint a text must contain before a recognizer's pattern can match, checked once
/// per text so that most recognizers skip text without digits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Digit,
    At,
    Scheme,
    Separator,
}

/// Characters present in a text, checked against [`Needs`].
struct Present {
    digit: bool,
    at: bool,
    scheme: bool,
    separator: bool,
}

impl Present {
    fn of(text: &str) -> Self {
        let bytes = text.as_bytes();
        Self {
            digit: bytes.iter().any(u8::is_ascii_digit),
            at: bytes.contains(&b'@'),
            scheme: text.contains("://") || text.contains("www.") || text.contains("WWW."),
            separator: bytes.contains(&b':') || bytes.contains(&b'-'),
        }
    }

    fn satisfies(&self, needs: Needs) -> bool {
        match needs {
            Needs::Digit => self.digit,
            Needs::At => self.at,
            Needs::Scheme => self.scheme,
            Needs::Separator => self.separator,
        }
    }
}

/// One recognizer: a pattern, its validation, a base score and its context words.
struct Recognizer {
    needs: Needs,
    entity: EntityType,
    pattern: Regex,
    /// Validation of the matched text (a check digit, a real address), when the format has one.
    check: Option<fn(&str) -> bool>,
    score: f64,
    /// No finding without a context word (for ambiguous formats such as dates).
    needs_context: bool,
    /// The match must not touch an ASCII letter or digit on either side.
    bounded: bool,
    context: &'static [&'static str],
}

const PHONE_WORDS: &[&str] =
    &["phone", "tel", "mobile", "cell", "call", "contact", "电话", "手机", "联系", "座机", "致电"];
const ID_WORDS: &[&str] = &["id", "identity", "身份证", "证件", "公民身份"];
const CARD_WORDS: &[&str] =
    &["card", "credit", "debit", "visa", "mastercard", "unionpay", "银行卡", "信用卡", "卡号", "借记卡", "银联"];
const BANK_WORDS: &[&str] = &["iban", "account", "bank", "账户", "账号", "银行"];
const EMAIL_WORDS: &[&str] = &["email", "e-mail", "mail", "邮箱", "邮件"];
const PASSPORT_WORDS: &[&str] = &["passport", "护照"];
const BIRTH_WORDS: &[&str] = &["born", "birth", "dob", "出生", "生日"];
const USCC_WORDS: &[&str] = &["统一社会信用代码", "信用代码", "credit code", "营业执照"];
const NETWORK_WORDS: &[&str] = &["ip", "address", "host", "server", "地址", "服务器"];
const URL_WORDS: &[&str] = &["url", "website", "link", "网址", "链接", "网站"];
const SSN_WORDS: &[&str] = &["ssn", "social security"];

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn card(text: &str) -> bool {
    let number = digits(text);
    validate::card_network(&number) && validate::luhn(&number)
}

fn ipv4(text: &str) -> bool {
    text.parse::<Ipv4Addr>().is_ok()
}

fn ipv6(text: &str) -> bool {
    text.matches(':').count() >= 2 && text.parse::<Ipv6Addr>().is_ok()
}

fn e164(text: &str) -> bool {
    (8..=15).contains(&digits(text).len())
}

fn compact_id(text: &str) -> bool {
    validate::cn_resident_id(text)
}

/// Runs every recognizer over text and resolves overlaps.
pub struct Scanner {
    recognizers: Vec<Recognizer>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// Builds the scanner with every recognizer.
    pub fn new() -> Self {
        let recognizer = |entity, pattern: &str, check, score, needs_context, bounded, context| Recognizer {
            needs: match entity {
                EntityType::EmailAddress => Needs::At,
                EntityType::Url => Needs::Scheme,
                EntityType::MacAddress => Needs::Separator,
                EntityType::IpAddress if pattern.contains(':') => Needs::Separator,
                _ => Needs::Digit,
            },
            entity,
            pattern: Regex::new(pattern).expect("recognizer patterns are valid"),
            check,
            score,
            needs_context,
            bounded,
            context,
        };
        use EntityType::*;
        let recognizers = vec![
            recognizer(
                EmailAddress,
                r"(?i)[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}",
                None,
                0.9,
                false,
                true,
                EMAIL_WORDS,
            ),
            recognizer(
                Url,
                r#"(?i)(?:https?://|www\.)[^\s<>"'，。、；！？）」》]+"#,
                None,
                0.6,
                false,
                false,
                URL_WORDS,
            ),
            recognizer(IpAddress, r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", Some(ipv4), 0.6, false, true, NETWORK_WORDS),
            recognizer(
                IpAddress,
                r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}",
                Some(ipv6),
                0.6,
                false,
                true,
                NETWORK_WORDS,
            ),
            recognizer(
                MacAddress,
                r"(?i)[0-9a-f]{2}(?::[0-9a-f]{2}){5}|[0-9a-f]{2}(?:-[0-9a-f]{2}){5}",
                None,
                0.7,
                false,
                true,
                NETWORK_WORDS,
            ),
            // Mainland China mobile: 11 digits from 13-19, optionally after +86, grouped 3-4-4.
            recognizer(PhoneNumber, r"(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}", None, 0.7, false, true, PHONE_WORDS),
            // Mainland China landline: area code 0XX or 0XXX, then 7 or 8 digits.
            recognizer(PhoneNumber, r"\(?0[1-9]\d{1,2}\)?[ -]?[2-9]\d{6,7}", None, 0.4, false, true, PHONE_WORDS),
            // International E.164: + and 8 to 15 digits in all.
            recognizer(PhoneNumber, r"\+[1-9](?:[ -]?\d){7,14}", Some(e164), 0.6, false, true, PHONE_WORDS),
            // North American numbering plan.
            recognizer(
                PhoneNumber,
                r"(?:\+1[ .-]?)?(?:\([2-9]\d{2}\)|[2-9]\d{2})[ .-]?[2-9]\d{2}[ .-]\d{4}",
                None,
                0.4,
                false,
                true,
                PHONE_WORDS,
            ),
            // UK mobile 07xxx and London 020.
            recognizer(
                PhoneNumber,
                r"(?:\+44 ?|0)(?:7\d{3} ?\d{3} ?\d{3}|20 ?\d{4} ?\d{4})",
                None,
                0.4,
                false,
                true,
                PHONE_WORDS,
            ),
            recognizer(CreditCard, r"\d(?:[ -]?\d){12,18}", Some(card), 0.8, false, true, CARD_WORDS),
            recognizer(
                IbanCode,
                r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?",
                Some(validate::iban),
                0.9,
                false,
                true,
                BANK_WORDS,
            ),
            recognizer(UsSsn, r"\d{3}-\d{2}-\d{4}", Some(validate::us_ssn), 0.5, false, true, SSN_WORDS),
            recognizer(CnResidentId, r"\d{17}[\dXx]", Some(compact_id), 0.9, false, true, ID_WORDS),
            recognizer(CnResidentId, r"\d{15}", Some(validate::cn_resident_id_15), 0.4, false, true, ID_WORDS),
            recognizer(CnUscc, r"[0-9A-HJ-NP-RTUWXY]{18}", Some(validate::cn_uscc), 0.85, false, true, USCC_WORDS),
            recognizer(Passport, r"[A-Z]{1,2}\d{6,9}|\d{9}", None, 0.5, true, true, PASSPORT_WORDS),
            recognizer(
                DateOfBirth,
                r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{4}年\d{1,2}月\d{1,2}日?|\d{1,2}/\d{1,2}/\d{4}",
                None,
                0.5,
                true,
                true,
                BIRTH_WORDS,
            ),
        ];
        Self { recognizers }
    }

    /// Finds identifiers in `text`: spans are byte offsets into `text` itself, sorted by start.
    ///
    /// Where candidates overlap, the higher score wins, then the longer span.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let normalized = Normalized::new(text);
        let folded = normalized.text.as_ref();
        let present = Present::of(folded);
        let mut candidates = Vec::new();
        for recognizer in self.recognizers.iter().filter(|r| present.satisfies(r.needs)) {
            let mut at = 0;
            while let Some(found) = recognizer.pattern.find_at(folded, at) {
                let start = found.start();
                let matched = trim_url(recognizer.entity, found.as_str());
                let end = start + matched.len();
                // A rejected match may hide a valid one that starts inside it ("MAC:12:34..."
                // first matches "AC:12:..."), so the search resumes one character later.
                let rejected = (recognizer.bounded && !bounded(folded, start, end))
                    || recognizer.check.is_some_and(|valid| !valid(matched));
                if rejected {
                    at = start + folded[start..].chars().next().map_or(1, char::len_utf8);
                    continue;
                }
                at = end.max(start + 1);
                let has_context = has_context(folded, start, recognizer.context);
                if recognizer.needs_context && !has_context {
                    continue;
                }
                let score = if has_context { (recognizer.score + CONTEXT_BOOST).min(1.0) } else { recognizer.score };
                let (original_start, original_end) = normalized.original_span(start, end);
                candidates.push(Finding { entity: recognizer.entity, start: original_start, end: original_end, score });
            }
        }
        resolve_overlaps(candidates)
    }
}

/// Drops trailing punctuation that ends a sentence rather than the address.
fn trim_url(entity: EntityType, matched: &str) -> &str {
    if entity == EntityType::Url { matched.trim_end_matches(['.', ',', ';', ':', '!', '?', ')']) } else { matched }
}

/// Checks that the span is not glued to an ASCII letter or digit (a Chinese character may touch it).
fn bounded(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !glued(before) && !glued(after)
}

/// Checks whether a context word occurs within [`CONTEXT_BYTES`] before `start`, ignoring case.
fn has_context(text: &str, start: usize, words: &[&str]) -> bool {
    let mut from = start.saturating_sub(CONTEXT_BYTES);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let window = text[from..start].to_lowercase();
    words.iter().any(|word| window.contains(word))
}

/// Keeps the best of overlapping findings: higher score first, then the longer span.
fn resolve_overlaps(mut candidates: Vec<Finding>) -> Vec<Finding> {
    candidates.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then((b.end - b.start).cmp(&(a.end - a.start))).then(a.start.cmp(&b.start))
    });
    // Kept spans never overlap, so ordered by start they are also ordered by end: a candidate
    // only needs checking against its neighbours by start, in O(log n).
    let mut kept: BTreeMap<usize, Finding> = BTreeMap::new();
    for candidate in candidates {
        let before = kept.range(..=candidate.start).next_back().map(|(_, k)| k);
        let after = kept.range(candidate.start..).next().map(|(_, k)| k);
        let clear_before = before.is_none_or(|k| k.end <= candidate.start);
        let clear_after = after.is_none_or(|k| k.start >= candidate.end);
        if clear_before && clear_after {
            kept.insert(candidate.start, candidate);
        }
    }
    kept.into_values().collect()
}

#[cfg(test)]
mod tests;
