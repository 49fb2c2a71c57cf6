//! Folding full-width characters to ASCII while keeping byte offsets into the original text.

use std::borrow::Cow;

/// Text with full-width forms folded to ASCII, and the map back to the original bytes.
pub struct Normalized<'a> {
    /// The folded text: patterns run on it.
    pub text: Cow<'a, str>,
    /// For each byte of `text`, the byte offset in the original of the character it came from;
    /// `None` when `text` is the original unchanged.
    offsets: Option<Vec<usize>>,
    original_len: usize,
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
        if text.is_ascii() || !text.chars().any(|c| fold(c).is_some()) {
            return Self { text: Cow::Borrowed(text), offsets: None, original_len: text.len() };
        }
        let mut folded = String::with_capacity(text.len());
        let mut offsets = Vec::with_capacity(text.len());
        for (offset, c) in text.char_indices() {
            match fold(c) {
                Some(ascii) => {
                    folded.push(ascii);
                    offsets.push(offset);
                }
                None => {
                    folded.push(c);
                    offsets.extend(offset..offset + c.len_utf8());
                }
            }
        }
        Self { text: Cow::Owned(folded), offsets: Some(offsets), original_len: text.len() }
    }

    /// Maps a byte span of the folded text to the byte span of the original it came from.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        match &self.offsets {
            None => (start, end),
            Some(offsets) => {
                let original_start = offsets[start];
                let original_end = offsets.get(end).copied().unwrap_or(self.original_len);
                (original_start, original_end)
            }
        }
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
}
