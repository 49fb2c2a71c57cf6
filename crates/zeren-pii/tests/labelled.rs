//! A generator of labelled test text: real English and Chinese sentences with valid and invalid
//! identifiers inserted at known byte offsets. Shared by the evaluation test and example.

#![allow(dead_code)]

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zeren_pii::EntityType;
use zeren_pii::validate;

/// One generated line and the identifiers it truly holds.
pub struct Labelled {
    pub text: String,
    /// `(entity, start, end)` byte spans of valid identifiers.
    pub truth: Vec<(EntityType, usize, usize)>,
    /// Whether an invalid look-alike (failing its check) was inserted instead.
    pub decoy: Option<EntityType>,
}

/// Reads English review sentences and Chinese poem lines from a datasets directory.
pub fn sentences(datasets: &Path, english: usize) -> (Vec<String>, Vec<String>) {
    let mut reader = csv::Reader::from_path(datasets.join("text/reviews/fine_foods_train.csv")).expect("reviews file");
    let mut en = Vec::new();
    for record in reader.records() {
        let record = record.expect("review row");
        for sentence in record[1].replace("<br />", " ").split(". ") {
            let sentence = sentence.trim();
            if sentence.len() > 20 {
                en.push(sentence.to_string());
            }
        }
        if en.len() >= english {
            break;
        }
    }
    en.truncate(english);
    let poems = std::fs::read_to_string(datasets.join("text/zh/tang300.txt")).expect("tang300 file");
    let zh = poems
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "%" && !l.starts_with('《') && !l.starts_with("作者"))
        .map(str::to_string)
        .collect();
    (en, zh)
}

const REGIONS: [&str; 6] = ["110101", "310115", "440304", "510104", "330106", "420102"];
const USCC_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

fn digits(rng: &mut ChaCha8Rng, count: usize) -> String {
    (0..count).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

/// Completes `body` with the character from `candidates` that makes `valid` accept it; with
/// `corrupt`, with another character, so the result fails its check.
fn complete(body: &str, candidates: &[u8], valid: fn(&str) -> bool, corrupt: bool) -> String {
    let good = candidates
        .iter()
        .map(|&c| format!("{body}{}", char::from(c)))
        .find(|s| valid(s))
        .expect("a check character exists");
    if !corrupt {
        return good;
    }
    candidates
        .iter()
        .map(|&c| format!("{body}{}", char::from(c)))
        .find(|s| !valid(s))
        .expect("a wrong character exists")
}

fn full_width(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_digit() { char::from_u32(c as u32 + 0xFEE0).unwrap() } else { c }).collect()
}

/// Generates one identifier: its entity, text, context phrases (English, Chinese), and whether it
/// is a decoy that fails its check.
fn identifier(rng: &mut ChaCha8Rng) -> (EntityType, String, &'static str, &'static str, bool) {
    let decoy = rng.random_bool(0.2);
    match rng.random_range(0..10) {
        0 => {
            let id = complete(
                &format!(
                    "{}{}{:02}{:02}{}",
                    REGIONS[rng.random_range(0..6)],
                    rng.random_range(1950..2005),
                    rng.random_range(1..13),
                    rng.random_range(1..29),
                    digits(rng, 3)
                ),
                b"0123456789X",
                validate::cn_resident_id,
                decoy,
            );
            (EntityType::CnResidentId, id, "ID number", "身份证号", decoy)
        }
        1 => {
            let prefix = ["4", "51", "62", "62"][rng.random_range(0..4)];
            let length = if prefix == "62" { 19 } else { 16 };
            let body = format!("{prefix}{}", digits(rng, length - prefix.len() - 1));
            let number = complete(&body, b"0123456789", validate::luhn, decoy);
            let spaced = if length == 16 && rng.random_bool(0.5) {
                number.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" ")
            } else {
                number
            };
            (EntityType::CreditCard, spaced, "card", "银行卡号", decoy)
        }
        2 => {
            let bank = format!("WEST{}", digits(rng, 14));
            let iban = (0..100)
                .map(|check| format!("GB{check:02}{bank}"))
                .find(|s| validate::iban(s) != decoy)
                .expect("a check pair exists");
            (EntityType::IbanCode, iban, "IBAN", "账户", decoy)
        }
        3 => {
            // Department and kind "91", a division code, then nine organisation-code characters.
            let organisation: String = (0..9).map(|_| char::from(USCC_CHARS[rng.random_range(0..31)])).collect();
            let body = format!("91{}{organisation}", REGIONS[rng.random_range(0..6)]);
            (
                EntityType::CnUscc,
                complete(&body, USCC_CHARS, validate::cn_uscc, decoy),
                "credit code",
                "统一社会信用代码",
                decoy,
            )
        }
        4 => {
            let area = if decoy { 666 } else { rng.random_range(1..666) };
            (
                EntityType::UsSsn,
                format!("{area:03}-{:02}-{:04}", rng.random_range(1..100), rng.random_range(1..10000)),
                "SSN",
                "SSN",
                decoy,
            )
        }
        5 => {
            let number = format!("1{}{}", rng.random_range(3..10), digits(rng, 9));
            let shown = match rng.random_range(0..3) {
                0 => number,
                1 => format!("{} {} {}", &number[..3], &number[3..7], &number[7..]),
                _ => full_width(&number),
            };
            (EntityType::PhoneNumber, shown, "phone", "手机", false)
        }
        6 => (
            EntityType::EmailAddress,
            format!("user{}@example{}.com", digits(rng, 3), digits(rng, 2)),
            "email",
            "邮箱",
            false,
        ),
        7 => (
            EntityType::IpAddress,
            format!("10.{}.{}.{}", rng.random_range(0..256), rng.random_range(0..256), rng.random_range(1..255)),
            "server",
            "服务器地址",
            false,
        ),
        8 => {
            let mac: Vec<String> = (0..6).map(|_| format!("{:02X}", rng.random_range(0..256))).collect();
            (EntityType::MacAddress, mac.join(":"), "MAC", "MAC", false)
        }
        _ => (
            EntityType::Url,
            format!("https://www.example{}.org/item/{}", digits(rng, 2), digits(rng, 4)),
            "link",
            "链接",
            false,
        ),
    }
}

/// Generates `count` lines: every other line gets an identifier, after a context phrase half of
/// the time.
pub fn generate(en: &[String], zh: &[String], count: usize, seed: u64) -> Vec<Labelled> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let chinese = i % 3 == 0;
            let sentence = if chinese { &zh[i % zh.len()] } else { &en[i % en.len()] };
            if i % 2 == 1 {
                return Labelled { text: sentence.clone(), truth: vec![], decoy: None };
            }
            let (entity, value, context_en, context_zh, decoy) = identifier(&mut rng);
            let context = match (rng.random_bool(0.5), chinese) {
                (true, true) => format!("{context_zh}："),
                (true, false) => format!("{context_en}: "),
                (false, true) => String::new(),
                (false, false) => String::new(),
            };
            let (separator, end) = if chinese { ("", "。") } else { (" ", ".") };
            let prefix = format!("{sentence}{separator}{context}");
            let start = prefix.len();
            let text = format!("{prefix}{value}{end}");
            let truth = if decoy { vec![] } else { vec![(entity, start, start + value.len())] };
            Labelled { text, truth, decoy: decoy.then_some(entity) }
        })
        .collect()
}
