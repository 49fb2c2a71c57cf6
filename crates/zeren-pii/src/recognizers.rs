//! The pattern recognizers and the scanner that runs them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use aho_corasick::AhoCorasick;
use regex::Regex;

use crate::normalize::Normalized;
use crate::validate;
use crate::{EntityType, Finding};

/// Bytes before a candidate searched for context words: about ten English words or twenty
/// Chinese characters.
const CONTEXT_BYTES: usize = 60;

/// Score added when a context word precedes a candidate (Presidio's context enhancer adds 0.35).
const CONTEXT_BOOST: f64 = 0.35;

/// The shape of a text: counts that every match of a pattern needs, gathered in one pass so
/// that a recognizer whose pattern cannot match is skipped without running its regular
/// expression. Most lines of prose hold few digits, so most recognizers skip most lines.
#[derive(Debug, Default)]
struct Shape {
    digits: usize,
    longest_digit_run: usize,
    /// Maximum length of a run of ASCII digits and capital letters (USCC).
    longest_code_run: usize,
    dots: usize,
    colons: usize,
    hyphens: usize,
    plus: bool,
    at: bool,
    scheme: bool,
    /// Byte offsets of the first and the last ASCII digit.
    first_digit: usize,
    last_digit: usize,
    /// Offset of the first two capitals followed by two digits, the start of every IBAN.
    iban_prefix: Option<usize>,
    /// Offset of the first colon followed by at most four hex digits and another colon, which
    /// every IPv6 match contains.
    hex_colon_pair: Option<usize>,
    /// Whether the text contains `::`. Every IPv6 address contains it or has seven colons.
    double_colon: bool,
    /// Offset of the first colon or hyphen followed by exactly two hex digits and the same
    /// separator, which every MAC address contains.
    mac_pair: Option<usize>,
}

/// Byte classes of [`Shape::of`], as bits. Prose bytes (lower-case letters, spaces, the bytes
/// of Chinese characters) have none, so the loop passes over them on its cheapest path.
const DIGIT: u8 = 1;
const UPPER: u8 = 2;
const DOT: u8 = 4;
const COLON: u8 = 8;
const HYPHEN: u8 = 16;
const PLUS: u8 = 32;
const AT: u8 = 64;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = match b {
            b'0'..=b'9' => DIGIT,
            b'A'..=b'Z' => UPPER,
            b'.' => DOT,
            b':' => COLON,
            b'-' => HYPHEN,
            b'+' => PLUS,
            b'@' => AT,
            _ => 0,
        };
        byte += 1;
    }
    table
};

/// Finds the first separator followed by hex digits only, as many as `allowed` accepts, and the
/// same separator again: the pairs that IPv6 and MAC addresses are made of.
fn separator_pair(bytes: &[u8], separator: u8, allowed: impl Fn(usize) -> bool) -> Option<usize> {
    let mut previous: Option<usize> = None;
    for offset in (0..bytes.len()).filter(|&i| bytes[i] == separator) {
        if let Some(start) = previous
            && allowed(offset - start - 1)
            && bytes[start + 1..offset].iter().all(u8::is_ascii_hexdigit)
        {
            return Some(start);
        }
        previous = Some(offset);
    }
    None
}

impl Shape {
    fn of(text: &str) -> Self {
        let mut shape = Shape::default();
        let bytes = text.as_bytes();
        let (mut digit_run, mut code_run) = (0, 0);
        let mut seen = 0u8;
        for (offset, &byte) in bytes.iter().enumerate() {
            let class = CLASSES[usize::from(byte)];
            if class == 0 {
                digit_run = 0;
                code_run = 0;
                continue;
            }
            seen |= class;
            if class == DIGIT {
                if shape.digits == 0 {
                    shape.first_digit = offset;
                }
                shape.last_digit = offset;
                shape.digits += 1;
                digit_run += 1;
                code_run += 1;
                shape.longest_digit_run = shape.longest_digit_run.max(digit_run);
                shape.longest_code_run = shape.longest_code_run.max(code_run);
                if digit_run == 2
                    && code_run >= 4
                    && shape.iban_prefix.is_none()
                    && bytes[offset - 2].is_ascii_uppercase()
                    && bytes[offset - 3].is_ascii_uppercase()
                {
                    shape.iban_prefix = Some(offset - 3);
                }
                continue;
            }
            digit_run = 0;
            if class == UPPER {
                code_run += 1;
                shape.longest_code_run = shape.longest_code_run.max(code_run);
                continue;
            }
            code_run = 0;
            shape.dots += usize::from(class == DOT);
            shape.colons += usize::from(class == COLON);
            shape.hyphens += usize::from(class == HYPHEN);
        }
        shape.plus = seen & PLUS != 0;
        shape.at = seen & AT != 0;
        if shape.colons >= 2 {
            shape.hex_colon_pair = separator_pair(bytes, b':', |hex| hex <= 4);
            shape.double_colon = text.contains("::");
        }
        let mac_colon = if shape.colons >= 5 { separator_pair(bytes, b':', |hex| hex == 2) } else { None };
        let mac_hyphen = if shape.hyphens >= 5 { separator_pair(bytes, b'-', |hex| hex == 2) } else { None };
        shape.mac_pair = match (mac_colon, mac_hyphen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        shape.scheme = (shape.colons > 0 && text.contains("://"))
            || (shape.dots > 0 && (text.contains("www.") || text.contains("WWW.")));
        shape
    }

    /// Returns the lowest offset at which a match of a separator pattern can start: a few hex
    /// digits before its first separator pair, moved back to a character boundary.
    fn start_before(text: &str, offset: Option<usize>, back: usize) -> usize {
        let mut start = offset.unwrap_or(0).saturating_sub(back);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        start
    }

    /// Returns the part of `text` that contains every match of a digit-anchored pattern. It runs
    /// from two bytes before the first digit (a `+`, `(` or passport letters) to three bytes
    /// after the last one (an `X` or a `日`), widened to character boundaries.
    fn digit_window(&self, text: &str) -> (usize, usize) {
        let mut start = self.first_digit.saturating_sub(2);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (self.last_digit + 4).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        (start, end)
    }
}

/// A compiled pattern, with a fully compiled DFA beside the general engine where that pays.
/// On the short spans the scanner searches, the general engine's setup per search (a cache
/// from a pool, a choice of strategy) costs more than the search, and a dense DFA has none.
struct Pattern {
    dense: Option<regex_automata::dfa::regex::Regex>,
    general: Regex,
}

impl Pattern {
    /// Compiles `pattern`, with a dense DFA too when `dense` is set and the pattern is ASCII
    /// without case folding, so that the DFA stays small.
    fn new(pattern: &str, dense: bool) -> Self {
        let dense = (dense && pattern.is_ascii() && !pattern.contains("(?i)"))
            .then(|| regex_automata::dfa::regex::Regex::new(pattern).ok())
            .flatten();
        Self { dense, general: Regex::new(pattern).expect("recognizer patterns are valid") }
    }

    /// Finds the leftmost-first match that starts at or after `at`, as a byte span.
    fn find_at(&self, haystack: &str, at: usize) -> Option<(usize, usize)> {
        if let Some(dense) = &self.dense {
            // The patterns have no look-around, so the DFA cannot quit with an error. If it
            // did, the general engine would run the search instead.
            if let Ok(found) = dense.try_search(&regex_automata::Input::new(haystack).range(at..)) {
                return found.map(|m| (m.start(), m.end()));
            }
        }
        self.general.find_at(haystack, at).map(|m| (m.start(), m.end()))
    }
}

/// One recognizer: a pattern, its validation, a base score and its context words.
struct Recognizer {
    /// Whether a text of this shape can hold a match: a necessary condition of the pattern.
    can_match: fn(&Shape) -> bool,
    /// Every match starts at most two bytes before a digit and ends at most three bytes after
    /// one, so only the text's digit window is searched.
    digit_anchored: bool,
    /// Lowest offset at which a match can start, for the patterns that are not digit-anchored.
    earliest_start: fn(&Shape, &str) -> usize,
    entity: EntityType,
    pattern: Pattern,
    /// Validation of the matched text (a check digit, a real address), when the format has one.
    check: Option<fn(&str) -> bool>,
    score: f64,
    /// No finding without a context word (for ambiguous formats such as dates).
    needs_context: bool,
    /// The match must not touch an ASCII letter or digit on either side.
    bounded: bool,
    /// The context words, matched ignoring ASCII case. The words are lower-case ASCII or
    /// Chinese, so ASCII case folding is all the matching needs, and no text is copied.
    context: AhoCorasick,
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

/// Validates a resident ID written whole or grouped 6-8-4 (region, birth date, sequence and
/// check character) with spaces or hyphens.
fn resident_id(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    validate::cn_resident_id(&compact)
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
        let recognizer = |entity, pattern: &str, check, score, needs_context, bounded, context, can_match| Recognizer {
            can_match,
            // Patterns of letters (e-mail, URL, IBAN, USCC) and of colon-separated hex (IPv6,
            // MAC) may start or end far from a digit. The others begin and end at one.
            digit_anchored: !matches!(
                entity,
                EntityType::EmailAddress
                    | EntityType::Url
                    | EntityType::MacAddress
                    | EntityType::IbanCode
                    | EntityType::CnUscc
            ) && !pattern.contains(':'),
            earliest_start: match entity {
                EntityType::IpAddress if pattern.contains(':') => {
                    |s: &Shape, t: &str| Shape::start_before(t, s.hex_colon_pair, 4)
                }
                EntityType::MacAddress => |s: &Shape, t: &str| Shape::start_before(t, s.mac_pair, 2),
                EntityType::IbanCode => |s: &Shape, _: &str| s.iban_prefix.unwrap_or(0),
                _ => |_: &Shape, _: &str| 0,
            },
            entity,
            // `\d` would match any Unicode digit; the validators and the shape count ASCII digits,
            // which is what identifiers use once full-width digits are folded. Card and IBAN
            // patterns get no dense DFA: measured, it searched them no faster.
            pattern: Pattern::new(
                &pattern.replace(r"\d", "[0-9]"),
                !matches!(entity, EntityType::CreditCard | EntityType::IbanCode),
            ),
            check,
            score,
            needs_context,
            bounded,
            context: AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(context)
                .expect("context words build an automaton"),
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
                |s| s.at,
            ),
            recognizer(
                Url,
                r#"(?i)(?:https?://|www\.)[^\s<>"'，。、；！？）」》]+"#,
                None,
                0.6,
                false,
                false,
                URL_WORDS,
                |s| s.scheme,
            ),
            recognizer(
                IpAddress,
                r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
                Some(ipv4),
                0.6,
                false,
                true,
                NETWORK_WORDS,
                |s| s.digits >= 4 && s.dots >= 3,
            ),
            recognizer(
                IpAddress,
                // The dotted tail takes in an embedded IPv4 address, as in `::ffff:192.0.2.1`.
                r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:(?:\.\d{1,3}){3})?",
                Some(ipv6),
                0.6,
                false,
                true,
                NETWORK_WORDS,
                // A MAC address has five colons and no `::`, so its lines skip this pattern.
                |s| s.hex_colon_pair.is_some() && (s.colons >= 7 || s.double_colon),
            ),
            recognizer(
                MacAddress,
                r"(?i)[0-9a-f]{2}(?::[0-9a-f]{2}){5}|[0-9a-f]{2}(?:-[0-9a-f]{2}){5}",
                None,
                0.7,
                false,
                true,
                NETWORK_WORDS,
                |s| s.mac_pair.is_some(),
            ),
            // Mainland China mobile: 11 digits from 13-19, optionally after +86 or 0086, grouped 3-4-4.
            // The scan loop takes in the 00 of 0086, which in the pattern cost 3% of throughput.
            recognizer(
                PhoneNumber,
                r"(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}",
                None,
                0.7,
                false,
                true,
                PHONE_WORDS,
                |s| s.digits >= 11,
            ),
            // Mainland China landline: area code 0XX or 0XXX, then 7 or 8 digits, which may be
            // grouped 3-4 or 4-4.
            recognizer(
                PhoneNumber,
                r"\(?0[1-9]\d{1,2}\)?[ -]?[2-9]\d{2,3}[ -]?\d{4}",
                None,
                0.4,
                false,
                true,
                PHONE_WORDS,
                |s| s.digits >= 10,
            ),
            // International E.164: + and 8 to 15 digits in all.
            recognizer(PhoneNumber, r"\+[1-9](?:[ -]?\d){7,14}", Some(e164), 0.6, false, true, PHONE_WORDS, |s| {
                s.plus && s.digits >= 8
            }),
            // North American numbering plan.
            recognizer(
                PhoneNumber,
                r"(?:\+1[ .-]?)?(?:\([2-9]\d{2}\)|[2-9]\d{2})[ .-]?[2-9]\d{2}[ .-]\d{4}",
                None,
                0.4,
                false,
                true,
                PHONE_WORDS,
                |s| s.digits >= 10,
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
                |s| s.digits >= 10,
            ),
            recognizer(CreditCard, r"\d(?:[ -]?\d){12,18}", Some(card), 0.8, false, true, CARD_WORDS, |s| {
                s.digits >= 13
            }),
            recognizer(
                IbanCode,
                r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?",
                Some(validate::iban),
                0.9,
                false,
                true,
                BANK_WORDS,
                |s| s.iban_prefix.is_some(),
            ),
            recognizer(UsSsn, r"\d{3}-\d{2}-\d{4}", Some(validate::us_ssn), 0.5, false, true, SSN_WORDS, |s| {
                s.digits >= 9 && s.hyphens >= 2
            }),
            recognizer(CnResidentId, r"\d{17}[\dXx]", Some(resident_id), 0.9, false, true, ID_WORDS, |s| {
                s.longest_digit_run >= 17
            }),
            recognizer(
                CnResidentId,
                r"\d{6}[ -]\d{8}[ -]\d{3}[\dXx]",
                Some(resident_id),
                0.9,
                false,
                true,
                ID_WORDS,
                // The 8-digit birth date is a run, and the other groups hold at least 9 digits
                // outside the longest run, whichever run that is.
                |s| s.longest_digit_run >= 8 && s.digits >= s.longest_digit_run + 9,
            ),
            recognizer(CnResidentId, r"\d{15}", Some(validate::cn_resident_id_15), 0.4, false, true, ID_WORDS, |s| {
                s.longest_digit_run >= 15
            }),
            recognizer(
                CnUscc,
                r"[0-9A-HJ-NP-RTUWXY]{18}",
                Some(validate::cn_uscc),
                0.85,
                false,
                true,
                USCC_WORDS,
                |s| s.longest_code_run >= 18,
            ),
            recognizer(Passport, r"[A-Z]{1,2}\d{6,9}|\d{9}", None, 0.5, true, true, PASSPORT_WORDS, |s| {
                s.longest_digit_run >= 6
            }),
            recognizer(
                DateOfBirth,
                r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{4}年\d{1,2}月\d{1,2}日?|\d{1,2}/\d{1,2}/\d{4}",
                None,
                0.5,
                true,
                true,
                BIRTH_WORDS,
                |s| s.longest_digit_run >= 4 && s.digits >= 6,
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
        let shape = Shape::of(folded);
        let mut candidates = Vec::new();
        let window = shape.digit_window(folded);
        for recognizer in self.recognizers.iter().filter(|r| (r.can_match)(&shape)) {
            // A recognizer that needs a context word finds nothing in a text without one, so its
            // pattern is not run there.
            if recognizer.needs_context && !recognizer.context.is_match(folded) {
                continue;
            }
            // Cutting the text after the window changes no match: every match ends inside it.
            let (mut at, haystack) = if recognizer.digit_anchored {
                (window.0, &folded[..window.1])
            } else {
                ((recognizer.earliest_start)(&shape, folded), folded)
            };
            while let Some((mut start, found_end)) = recognizer.pattern.find_at(haystack, at) {
                if recognizer.entity == EntityType::PhoneNumber
                    && folded[start..found_end].starts_with("86")
                    && folded[..start].ends_with("00")
                {
                    start -= 2;
                }
                let matched = trim_url(recognizer.entity, &haystack[start..found_end]);
                let end = start + matched.len();
                // A rejected match may hide a valid one that starts inside it ("MAC:12:34..."
                // first matches "AC:12:..."), so the search resumes one character later.
                let rejected = (recognizer.bounded && !bounded(folded, start, end))
                    || recognizer.check.is_some_and(|valid| !valid(matched))
                    || part_of_longer_address(recognizer.entity, matched, folded, start, end);
                if rejected {
                    let glued_before = folded[..start].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric());
                    at = if recognizer.bounded && glued_before {
                        // Every start up to the end of this run of letters and digits is glued to the
                        // character before it too, so the search resumes after the run's first
                        // other character. Inside a long number, this saves one search per digit.
                        let run_end = folded[start..]
                            .find(|c: char| !c.is_ascii_alphanumeric())
                            .map_or(folded.len(), |offset| start + offset);
                        run_end + folded[run_end..].chars().next().map_or(0, char::len_utf8)
                    } else {
                        start + folded[start..].chars().next().map_or(1, char::len_utf8)
                    };
                    if at > haystack.len() {
                        break;
                    }
                    continue;
                }
                at = end.max(start + 1);
                let has_context = has_context(folded, start, &recognizer.context);
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

/// Checks whether a MAC or IPv4 match is a piece of a longer run of the same shape: an EUI-64
/// (`00-1a-2b-3c-4d-5e-6f-70`) rather than a MAC address, or a version number (`1.2.3.4.5`)
/// rather than an IPv4 address. A port after an IPv4 address (`192.0.2.1:8080`) and a label
/// before a MAC address (`MAC:00:1a:...`) are no such run.
fn part_of_longer_address(entity: EntityType, matched: &str, text: &str, start: usize, end: usize) -> bool {
    if !matches!(entity, EntityType::MacAddress | EntityType::IpAddress) {
        return false;
    }
    let mut after = [None; 2];
    for (slot, c) in after.iter_mut().zip(text[end..].chars()) {
        *slot = Some(c);
    }
    let mut before = [None; 4];
    for (slot, c) in before.iter_mut().zip(text[..start].chars().rev()) {
        *slot = Some(c);
    }
    match entity {
        EntityType::MacAddress => {
            let separator = |c: Option<char>| matches!(c, Some(':' | '-'));
            let hex = |c: Option<char>| c.is_some_and(|c| c.is_ascii_hexdigit());
            let group_after = separator(after[0]) && hex(after[1]);
            // A whole group of two hex digits before the separator, not the end of a word.
            let group_before = separator(before[0])
                && hex(before[1])
                && hex(before[2])
                && !before[3].is_some_and(|c| c.is_ascii_alphanumeric());
            group_after || group_before
        }
        EntityType::IpAddress if !matched.contains(':') => {
            let joined = |pair: &[Option<char>]| pair[0] == Some('.') && pair[1].is_some_and(|c| c.is_ascii_digit());
            joined(&after) || joined(&before[..2])
        }
        _ => false,
    }
}

/// Checks that the span is not glued to an ASCII letter or digit (a Chinese character may touch it).
fn bounded(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !glued(before) && !glued(after)
}

/// Checks whether a context word occurs within [`CONTEXT_BYTES`] before `start`, ignoring case.
fn has_context(text: &str, start: usize, words: &AhoCorasick) -> bool {
    let mut from = start.saturating_sub(CONTEXT_BYTES);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    words.is_match(&text[from..start])
}

/// Keeps the best of overlapping findings: higher score first, then the longer span.
fn resolve_overlaps(mut candidates: Vec<Finding>) -> Vec<Finding> {
    if candidates.len() < 2 {
        return candidates;
    }
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
