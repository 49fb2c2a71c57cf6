//! Check digits and structural rules of identifiers.

/// Luhn check (ISO/IEC 7812-1) of a string of ASCII digits.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (position, byte) in digits.bytes().rev().enumerate() {
        let mut digit = u32::from(byte - b'0');
        if position % 2 == 1 {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// Checks that a card number's issuer prefix and length belong to a card network: Visa (4; 13,
/// 16 or 19 digits), Mastercard (51-55 and 2221-2720; 16), American Express (34, 37; 15), Diners
/// Club (300-305, 36, 38; 14 or 16), JCB (3528-3589; 16-19), Discover (6011, 644-649, 65; 16-19)
/// and UnionPay (62; 16-19), after ISO/IEC 7812 issuer tables as published by the networks.
pub fn card_network(digits: &str) -> bool {
    let length = digits.len();
    let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
    match digits.as_bytes().first() {
        Some(b'4') => [13, 16, 19].contains(&length),
        Some(b'5') => (51..=55).contains(&prefix(2)) && length == 16,
        Some(b'2') => (2221..=2720).contains(&prefix(4)) && length == 16,
        Some(b'3') => match prefix(2) {
            34 | 37 => length == 15,
            36 | 38 => length == 14 || length == 16,
            30 => (300..=305).contains(&prefix(3)) && (length == 14 || length == 16),
            35 => (3528..=3589).contains(&prefix(4)) && (16..=19).contains(&length),
            _ => false,
        },
        Some(b'6') => {
            let known = prefix(4) == 6011 || (644..=649).contains(&prefix(3)) || prefix(2) == 65 || prefix(2) == 62;
            known && (16..=19).contains(&length)
        }
        _ => false,
    }
}

/// First two digits of mainland China's administrative division codes (GB/T 2260 provinces,
/// plus 71 Taiwan, 81 Hong Kong and 82 Macao as used on resident ID numbers).
const CN_PROVINCES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63,
    64, 65, 71, 81, 82,
];

/// Weights of the GB 11643-1999 check character, position 1 to 17.
const GB11643_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// Checks an 18-character resident identity number (GB 11643-1999): a known province code, a
/// real birth date `YYYYMMDD` between 1900 and 2099, and the ISO 7064 MOD 11-2 check character.
pub fn cn_resident_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if !valid_province(bytes) || !valid_date(&id[6..14]) {
        return false;
    }
    let sum: u32 = bytes[..17].iter().zip(GB11643_WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    bytes[17].to_ascii_uppercase() == check
}

/// Checks a 15-digit resident identity number (the form before 1999): province code and a real
/// birth date `YYMMDD` in the 1900s. It has no check digit.
pub fn cn_resident_id_15(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 15
        && bytes.iter().all(u8::is_ascii_digit)
        && valid_province(bytes)
        && valid_date(&format!("19{}", &id[6..12]))
}

fn valid_province(bytes: &[u8]) -> bool {
    let province = (bytes[0] - b'0') * 10 + (bytes[1] - b'0');
    CN_PROVINCES.contains(&province)
}

/// Checks a `YYYYMMDD` date between 1900-01-01 and 2099-12-31, leap years included.
fn valid_date(date: &str) -> bool {
    let Ok(year) = date[..4].parse::<u32>() else { return false };
    let Ok(month) = date[4..6].parse::<u32>() else { return false };
    let Ok(day) = date[6..8].parse::<u32>() else { return false };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2099).contains(&year) && (1..=days).contains(&day)
}

/// The 31 characters of the unified social credit code, in value order (GB 32100-2015; I, O, S,
/// V and Z are not used).
const USCC_CHARACTERS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights `3^(i) mod 31` of the GB 32100-2015 check character, position 1 to 17.
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Checks an 18-character unified social credit code: characters 3 to 8 are an administrative
/// division code with a known province, and the last is the GB 32100-2015 check character.
pub fn cn_uscc(code: &str) -> bool {
    let bytes = code.as_bytes();
    if bytes.len() != 18 || !bytes[2..8].iter().all(u8::is_ascii_digit) || !valid_province(&bytes[2..4]) {
        return false;
    }
    let value = |b: u8| USCC_CHARACTERS.iter().position(|&c| c == b.to_ascii_uppercase()).map(|v| v as u32);
    let mut sum = 0;
    for (&byte, weight) in bytes[..17].iter().zip(USCC_WEIGHTS) {
        let Some(v) = value(byte) else { return false };
        sum += v * weight;
    }
    let check = (31 - sum % 31) % 31;
    value(bytes[17]) == Some(check)
}

/// Checks an IBAN by ISO 13616 MOD 97-10: spaces ignored, 15 to 34 characters, remainder 1.
pub fn iban(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| *b != b' ').map(|b| b.to_ascii_uppercase()).collect();
    if !(15..=34).contains(&compact.len())
        || !compact[..2].iter().all(u8::is_ascii_uppercase)
        || !compact[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder = 0u32;
    for &byte in rearranged {
        let value = match byte {
            b'0'..=b'9' => u32::from(byte - b'0'),
            b'A'..=b'Z' => u32::from(byte - b'A') + 10,
            _ => return false,
        };
        let factor = if value >= 10 { 100 } else { 10 };
        remainder = (remainder * factor + value) % 97;
    }
    remainder == 1
}

/// Checks a US social security number `AAA-GG-SSSS`: area not 000, 666 or 900-999, group not 00,
/// serial not 0000 (SSA, "Social Security Number Randomization", 2011).
pub fn us_ssn(text: &str) -> bool {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 9 {
        return false;
    }
    let area: u32 = digits[..3].parse().unwrap_or(0);
    let group: u32 = digits[3..5].parse().unwrap_or(0);
    let serial: u32 = digits[5..].parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_valid_cards() {
        // Visa's test number and a 19-digit UnionPay number completed by the Luhn algorithm.
        assert!(luhn("4111111111111111"));
        assert!(luhn("6217000012345678907"));
        assert!(!luhn("4111111111111112"));
    }

    #[test]
    fn card_network_checks_prefix_and_length() {
        assert!(card_network("4111111111111111"));
        assert!(card_network("6217000012345678907"));
        assert!(card_network("378282246310005"));
        assert!(!card_network("411111111111111111"), "18-digit Visa");
        assert!(!card_network("3301061979032779"), "33 is no network");
        assert!(!card_network("9111111111111111"));
    }

    #[test]
    fn resident_id_checks_digit_region_and_date() {
        // The sample number of GB 11643-1999 and numbers completed with its check character.
        assert!(cn_resident_id("11010519491231002X"));
        assert!(cn_resident_id("11010519491231002x"));
        assert!(cn_resident_id("310115198510205436"));
        assert!(!cn_resident_id("110105194912310021"), "wrong check character");
        assert!(!cn_resident_id("99010519491231002X"), "unknown province");
        assert!(!cn_resident_id("110105194902300028"), "30 February");
    }

    #[test]
    fn old_resident_id_checks_region_and_date() {
        assert!(cn_resident_id_15("110105491231002"));
        assert!(!cn_resident_id_15("110105491331002"));
    }

    #[test]
    fn uscc_checks_character() {
        // The example code of GB 32100-2015 explanations, and one completed by the algorithm.
        assert!(cn_uscc("91350100M000100Y43"));
        assert!(cn_uscc("91110000100000000R"));
        assert!(!cn_uscc("91350100M000100Y44"));
        assert!(!cn_uscc("91350100M000100Y4I"));
        assert!(!cn_uscc("420102197806211820"), "characters 3 to 8 are not a division code");
    }

    #[test]
    fn iban_checks_mod_97() {
        // Example IBANs of the European Committee for Banking Standards.
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("GB82 WEST 1234 5698 7654 33"));
    }

    #[test]
    fn ssn_rejects_unassigned_numbers() {
        assert!(us_ssn("123-45-6789"));
        for invalid in ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"] {
            assert!(!us_ssn(invalid), "{invalid}");
        }
    }
}
