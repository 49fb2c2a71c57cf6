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
        let first = if text.is_ascii() { None } else { text.char_indices().find(|(_, c)| fold(*c).is_some()) };
        let Some((first, _)) = first else {
            return Self { text: Cow::Borrowed(text), shifts: Vec::new() };
        };
        let mut folded = String::with_capacity(text.len());
        folded.push_str(&text[..first]);
        let mut shifts = Vec::new();
        let mut removed = 0;
        for c in text[first..].chars() {
            match fold(c) {
                Some(ascii) => {
                    folded.push(ascii);
                    removed += c.len_utf8() - 1;
                    shifts.push((folded.len(), removed));
                }
                None => folded.push(c),
            }
        }
        Self { text: Cow::Owned(folded), shifts }
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
