//! Byte-level byte-pair encoding (Sennrich, Haddow and Birch 2016, "Neural Machine Translation of
//! Rare Words with Subword Units", Algorithm 1), over UTF-8 bytes as in GPT-2 (Radford et al.
//! 2019, Section 2.2), so that every text has an encoding and no token is unknown.
//!
//! Text is first cut into chunks: runs of letters and digits, of white space, or of other
//! characters, with one space before a run joined to it (" the"). Merges never cross a chunk
//! boundary, so a token never spans two words. Chinese characters count as letters, so a Chinese
//! run up to the next punctuation is one chunk and merges join its frequent character pairs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;

use rustc_hash::FxHashMap;

/// Characters per chunk at most. A longer run (a long Chinese clause, a long number) is cut, so
/// that encoding, which is quadratic in the chunk's length, stays fast on any input.
const MAX_CHUNK_CHARS: usize = 32;

/// Token ids below this are the 256 bytes; merge `i` makes token `BYTE_TOKENS + i`.
pub(crate) const BYTE_TOKENS: u32 = 256;

/// The learned merges, in the order learned, and what they imply.
#[derive(Debug, Clone)]
pub(crate) struct Bpe {
    merges: Vec<[u32; 2]>,
    /// Rank (position in `merges`) of each merged pair.
    ranks: FxHashMap<[u32; 2], u32>,
    /// Bytes of every token id.
    tokens: Vec<Vec<u8>>,
}

impl PartialEq for Bpe {
    fn eq(&self, other: &Self) -> bool {
        self.merges == other.merges
    }
}

impl Eq for Bpe {}

/// Character class of the pre-tokenizer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_alphanumeric() {
        Class::Word
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// Returns the byte ranges of the chunks of `text`, in order and covering it.
pub(crate) fn chunks(text: &str) -> Vec<Range<usize>> {
    let mut runs: Vec<(Range<usize>, Class, usize)> = Vec::new();
    for (start, c) in text.char_indices() {
        let end = start + c.len_utf8();
        let kind = class(c);
        match runs.last_mut() {
            Some((range, last, chars)) if *last == kind && *chars < MAX_CHUNK_CHARS => {
                range.end = end;
                *chars += 1;
            }
            _ => runs.push((start..end, kind, 1)),
        }
    }
    // A space that ends a run of white space moves to the run after it.
    let mut chunks: Vec<Range<usize>> = Vec::with_capacity(runs.len());
    let mut carried: Option<usize> = None;
    for (index, (range, kind, _)) in runs.iter().enumerate() {
        let mut range = range.clone();
        if let Some(start) = carried.take() {
            range.start = start;
        }
        let next_is_text = runs.get(index + 1).is_some_and(|(_, next, _)| *next != Class::Space);
        if *kind == Class::Space && next_is_text && text[..range.end].ends_with(' ') {
            carried = Some(range.end - 1);
            range.end -= 1;
        }
        if !range.is_empty() {
            chunks.push(range);
        }
    }
    chunks
}

/// Replaces each occurrence of `pair` in `ids`, left to right, with `merged`.
fn merge_pair(ids: &mut Vec<u32>, pair: [u32; 2], merged: u32) {
    let mut write = 0;
    let mut read = 0;
    while read < ids.len() {
        if read + 1 < ids.len() && ids[read] == pair[0] && ids[read + 1] == pair[1] {
            ids[write] = merged;
            read += 2;
        } else {
            ids[write] = ids[read];
            read += 1;
        }
        write += 1;
    }
    ids.truncate(write);
}

impl Bpe {
    /// Learns merges from `text` until the vocabulary has `vocab_size` tokens or no pair of
    /// tokens occurs twice. Each step merges the most frequent adjacent pair, ties going to the
    /// pair of lowest ids, so the same text always gives the same merges.
    ///
    /// Pair counts are kept up to date rather than recounted. Each merge revisits only the
    /// distinct chunks that contain the merged pair, which an index from pairs to chunks lists.
    /// A max-heap gives the next pair, skipping entries whose count has since changed.
    pub(crate) fn fit(text: &str, vocab_size: usize) -> Self {
        let mut counts: FxHashMap<&str, usize> = FxHashMap::default();
        for range in chunks(text) {
            *counts.entry(&text[range]).or_default() += 1;
        }
        let mut words: Vec<(Vec<u32>, usize)> = counts
            .into_iter()
            .filter(|(word, _)| word.len() > 1)
            .map(|(word, count)| (word.bytes().map(u32::from).collect(), count))
            .collect();
        // Sorted, so that the index and hence the work done do not depend on hash order.
        words.sort_unstable();

        let mut pair_counts: FxHashMap<[u32; 2], usize> = FxHashMap::default();
        let mut index: FxHashMap<[u32; 2], Vec<u32>> = FxHashMap::default();
        for (position, (ids, count)) in words.iter().enumerate() {
            for pair in ids.windows(2) {
                let pair = [pair[0], pair[1]];
                *pair_counts.entry(pair).or_default() += count;
                index.entry(pair).or_default().push(position as u32);
            }
        }
        let mut heap: BinaryHeap<(usize, Reverse<[u32; 2]>)> =
            pair_counts.iter().map(|(&pair, &count)| (count, Reverse(pair))).collect();

        let mut merges = Vec::new();
        while (BYTE_TOKENS as usize) + merges.len() < vocab_size {
            let Some((count, Reverse(pair))) = heap.pop() else {
                break;
            };
            if pair_counts.get(&pair) != Some(&count) {
                continue;
            }
            if count < 2 {
                break;
            }
            let merged = BYTE_TOKENS + merges.len() as u32;
            let mut touched: Vec<[u32; 2]> = Vec::new();
            for position in index.remove(&pair).unwrap_or_default() {
                let (ids, count) = &mut words[position as usize];
                if !ids.windows(2).any(|window| window == pair) {
                    continue;
                }
                for window in ids.windows(2) {
                    let old = [window[0], window[1]];
                    if let Some(total) = pair_counts.get_mut(&old) {
                        *total -= *count;
                    }
                    touched.push(old);
                }
                merge_pair(ids, pair, merged);
                for window in ids.windows(2) {
                    let new = [window[0], window[1]];
                    *pair_counts.entry(new).or_default() += *count;
                    touched.push(new);
                    if new.contains(&merged) {
                        index.entry(new).or_default().push(position);
                    }
                }
            }
            touched.sort_unstable();
            touched.dedup();
            for touched in touched {
                match pair_counts.get(&touched) {
                    Some(0) => {
                        pair_counts.remove(&touched);
                    }
                    Some(&count) => heap.push((count, Reverse(touched))),
                    None => {}
                }
            }
            merges.push(pair);
        }
        Self::from_merges(merges).expect("learned merges only refer to earlier tokens")
    }

    /// Rebuilds the encoder from its merges, checking that each refers only to earlier tokens
    /// and that no pair is merged twice.
    pub(crate) fn from_merges(merges: Vec<[u32; 2]>) -> Result<Self, String> {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|byte| vec![byte]).collect();
        let mut ranks = FxHashMap::default();
        for (rank, &[left, right]) in merges.iter().enumerate() {
            let next = tokens.len() as u32;
            if left >= next || right >= next {
                return Err(format!(
                    "merge {rank} is [{left}, {right}], but only tokens below {next} exist at that point"
                ));
            }
            if ranks.insert([left, right], rank as u32).is_some() {
                return Err(format!("merge {rank} repeats the pair [{left}, {right}]"));
            }
            let bytes = [tokens[left as usize].as_slice(), tokens[right as usize].as_slice()].concat();
            tokens.push(bytes);
        }
        Ok(Self { merges, ranks, tokens })
    }

    pub(crate) fn merges(&self) -> &[[u32; 2]] {
        &self.merges
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Bytes of a token, or `None` for an id outside the vocabulary.
    pub(crate) fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.tokens.get(id as usize).map(Vec::as_slice)
    }

    /// Encodes one chunk: starting from its bytes, applies the merge of lowest rank among the
    /// adjacent pairs until none applies, which gives the tokens training would have made.
    fn encode_chunk(&self, chunk: &str, out: &mut Vec<u32>) {
        let mut ids: Vec<u32> = chunk.bytes().map(u32::from).collect();
        loop {
            let best = ids
                .windows(2)
                .filter_map(|pair| self.ranks.get(&[pair[0], pair[1]]).map(|&rank| (rank, [pair[0], pair[1]])))
                .min();
            let Some((rank, pair)) = best else {
                break;
            };
            merge_pair(&mut ids, pair, BYTE_TOKENS + rank);
        }
        out.extend_from_slice(&ids);
    }

    /// Encodes `text`, returning each token's id and byte range in `text`.
    pub(crate) fn encode_with_offsets(&self, text: &str) -> (Vec<u32>, Vec<Range<usize>>) {
        let mut ids = Vec::with_capacity(text.len() / 2);
        let mut offsets = Vec::with_capacity(text.len() / 2);
        // Repeated words are encoded once.
        let mut cache: FxHashMap<&str, Vec<u32>> = FxHashMap::default();
        for range in chunks(text) {
            let chunk = &text[range.clone()];
            let encoded = cache.entry(chunk).or_insert_with(|| {
                let mut encoded = Vec::new();
                self.encode_chunk(chunk, &mut encoded);
                encoded
            });
            let mut start = range.start;
            for &id in encoded.iter() {
                let end = start + self.tokens[id as usize].len();
                ids.push(id);
                offsets.push(start..end);
                start = end;
            }
        }
        (ids, offsets)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        chunks(text).into_iter().map(|range| &text[range]).collect()
    }

    #[test]
    fn chunks_join_a_space_to_the_next_word() {
        assert_eq!(pieces("the cat  sat."), ["the", " cat", " ", " sat", "."]);
        assert_eq!(pieces("春眠不觉晓，处处闻啼鸟。"), ["春眠不觉晓", "，", "处处闻啼鸟", "。"]);
        assert_eq!(pieces(" x\n\ny 42"), [" x", "\n\n", "y", " 42"]);
        assert_eq!(pieces(""), Vec::<&str>::new());
    }

    #[test]
    fn long_runs_are_cut() {
        let text = "字".repeat(70);
        let lengths: Vec<usize> = pieces(&text).iter().map(|piece| piece.chars().count()).collect();
        assert_eq!(lengths, [32, 32, 6]);
    }

    #[test]
    fn merge_pair_is_left_to_right() {
        let mut ids = vec![1, 1, 1, 2, 1, 1];
        merge_pair(&mut ids, [1, 1], 9);
        assert_eq!(ids, [9, 1, 2, 9]);
    }

    #[test]
    fn fit_learns_the_textbook_merges() {
        // Sennrich et al. 2016's example words, each with a leading space but the first: "es"
        // and "est" occur 9 times (newest 6, widest 3), then "lo" and "low" 7 times (low 5,
        // lower 2). Ties go to the lower pair: ('e','s') before ('s','t').
        let text = "low low low low low lower lower newest newest newest newest newest newest widest widest widest";
        let bpe = Bpe::fit(text, 260);
        let pair = |a: char, b: u32| [a as u32, b];
        assert_eq!(bpe.merges(), [pair('e', 's' as u32), [256, 't' as u32], pair('l', 'o' as u32), [258, 'w' as u32]]);
        assert_eq!(bpe.vocab_size(), 260);
        assert_eq!(bpe.token_bytes(257), Some(&b"est"[..]));
        let (ids, offsets) = bpe.encode_with_offsets(" lowest");
        assert_eq!(ids, [32, 259, 257]);
        assert_eq!(offsets, [0..1, 1..4, 4..7]);
    }

    /// Learns merges the plain way, recounting every pair before each merge.
    fn fit_by_recounting(text: &str, vocab_size: usize) -> Vec<[u32; 2]> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for range in chunks(text) {
            *counts.entry(&text[range]).or_default() += 1;
        }
        let mut words: Vec<(Vec<u32>, usize)> =
            counts.into_iter().map(|(word, count)| (word.bytes().map(u32::from).collect(), count)).collect();
        let mut merges = Vec::new();
        while (BYTE_TOKENS as usize) + merges.len() < vocab_size {
            let mut pairs: HashMap<[u32; 2], usize> = HashMap::new();
            for (ids, count) in &words {
                for pair in ids.windows(2) {
                    *pairs.entry([pair[0], pair[1]]).or_default() += count;
                }
            }
            let best = pairs
                .into_iter()
                .filter(|&(_, count)| count >= 2)
                .max_by(|(pair_a, count_a), (pair_b, count_b)| count_a.cmp(count_b).then(pair_b.cmp(pair_a)));
            let Some((pair, _)) = best else {
                break;
            };
            let merged = BYTE_TOKENS + merges.len() as u32;
            for (ids, _) in &mut words {
                merge_pair(ids, pair, merged);
            }
            merges.push(pair);
        }
        merges
    }

    #[test]
    fn incremental_fit_equals_recounting() {
        let texts = [
            "aaaa aaa aa a abab baba aaaa".to_string(),
            "the cat sat on the mat; the cat ate the rat. ".repeat(5),
            "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。春眠不觉晓。".repeat(3),
            (0..400).map(|i| ["ab", "ba", "aab", " ", "bb", "a", "。"][i * 7 % 11 % 7]).collect::<String>(),
        ];
        for text in &texts {
            for vocab_size in [260, 300, 400] {
                assert_eq!(Bpe::fit(text, vocab_size).merges(), fit_by_recounting(text, vocab_size), "{text:?}");
            }
        }
    }

    #[test]
    fn fit_stops_when_no_pair_repeats() {
        let bpe = Bpe::fit("abcd", 1000);
        assert!(bpe.merges().is_empty());
        assert_eq!(bpe.vocab_size(), 256);
    }

    #[test]
    fn merges_referring_ahead_are_rejected() {
        assert!(Bpe::from_merges(vec![[97, 98], [256, 99]]).is_ok());
        let error = Bpe::from_merges(vec![[97, 98], [257, 99]]).unwrap_err();
        assert_eq!(error, "merge 1 is [257, 99], but only tokens below 257 exist at that point");
        let error = Bpe::from_merges(vec![[97, 98], [97, 98]]).unwrap_err();
        assert_eq!(error, "merge 1 repeats the pair [97, 98]");
    }
}
