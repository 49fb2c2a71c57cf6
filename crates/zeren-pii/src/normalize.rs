//! Folding full-width characters to ASCII while keeping byte offsets into the original text.

use std::borrow::Cow;

/// Text with full-width forms folded to ASCII, and the map back to the original bytes.
pub struct Normalized<'a> {
    /// The folded text: patterns run on it.
    pub text: Cow<'a, str>,
    /// For each folded character, the offset in `text` just after it and the bytes removed by
    /// folding up to there, in order. Empty when `text` is the original unchanged.
    shifts: Vec<(usize, usize)>,
}

/// Maps a character to its ASCII form when Chinese and Japanese text commonly writes it full
/// width: the full-width forms U+FF01..U+FF5E (digits, letters, `＋`, `－`, `＠`, `．`...), the
/// ideographic space U+3000, and the dashes U+2010..U+2015 and minus U+2212.
fn fold(c: char) -> Option<char> {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0),
        '\u{3000}' => Some(' '),
        '\u{2010}'..='\u{2015}' | '\u{2212}' => Some('-'),
        _ => None,
    }
}

impl<'a> Normalized<'a> {
    /// Folds `text`; borrows it unchanged when nothing needs folding.
    pub fn new(text: &'a str) -> Self {
        // Every character that folds is three bytes long in UTF-8 and starts with 0xE2, 0xE3 or
        // 0xEF, so only those lead bytes are decoded. Chinese characters (0xE4 to 0xE9) are not.
        let mut folded: Option<String> = None;
        let mut shifts = Vec::new();
        let (mut copied, mut removed) = (0, 0);
        for lead in memchr::memchr3_iter(0xE2, 0xE3, 0xEF, text.as_bytes()) {
            let Some(ascii) = text[lead..].chars().next().and_then(fold) else {
                continue;
            };
            let out = folded.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..lead]);
            out.push(ascii);
            removed += 2;
            shifts.push((out.len(), removed));
            copied = lead + 3;
        }
        match folded {
            None => Self { text: Cow::Borrowed(text), shifts },
            Some(mut out) => {
                out.push_str(&text[copied..]);
                Self { text: Cow::Owned(out), shifts }
            }
        }
    }

    /// Maps a byte offset of the folded text back to the original text.
    fn original(&self, offset: usize) -> usize {
        // The last folded character that ends at or before `offset` gives the bytes removed so far.
        let index = self.shifts.partition_point(|&(end, _)| end <= offset);
        offset + if index == 0 { 0 } else { self.shifts[index - 1].1 }
    }

    /// Maps a byte span of the folded text back to the original text.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        (self.original(start), self.original(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_characters_share_three_lead_bytes() {
        for code in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            if fold(code).is_some() {
                let mut buffer = [0; 4];
                let encoded = code.encode_utf8(&mut buffer).as_bytes();
                assert_eq!(encoded.len(), 3, "{code:?}");
                assert!([0xE2, 0xE3, 0xEF].contains(&encoded[0]), "{code:?}");
            }
        }
    }

    #[test]
    fn ascii_text_is_borrowed() {
        let normalized = Normalized::new("phone 13812345678");
        assert!(matches!(normalized.text, Cow::Borrowed(_)));
        assert_eq!(normalized.original_span(6, 17), (6, 17));
    }

    #[test]
    fn full_width_digits_fold_and_map_back() {
        let text = "电话：１３８－１２３４－５６７８。";
        let normalized = Normalized::new(text);
        assert_eq!(normalized.text, "电话:138-1234-5678。");
        let start = normalized.text.find("138").unwrap();
        let end = start + "138-1234-5678".len();
        let (original_start, original_end) = normalized.original_span(start, end);
        assert_eq!(&text[original_start..original_end], "１３８－１２３４－５６７８");
    }

    #[test]
    fn spans_map_back_around_and_between_folded_characters() {
        let text = "a１b　c—d";
        let normalized = Normalized::new(text);
        assert_eq!(normalized.text, "a1b c-d");
        for (start, end) in [(0, 1), (1, 2), (1, 3), (2, 4), (3, 7), (6, 7), (0, 7)] {
            let (original_start, original_end) = normalized.original_span(start, end);
            let expected: String = text[original_start..original_end].chars().map(|c| fold(c).unwrap_or(c)).collect();
            assert_eq!(expected, &normalized.text[start..end], "span {start}..{end}");
        }
    }
}
