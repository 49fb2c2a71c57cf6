//! Detection of the watermark in text, with or without the model that wrote it.
//!
//! A token is scored when its h previous tokens exist and none of the h + 1 tokens is the unknown
//! token. Each (context, token) pair is scored once, as Kirchenbauer et al. (2023) do for repeated
//! n-grams (section 7), because repeated text would otherwise count the same green or red draw
//! again. Under the null hypothesis the green count of `n` scored tokens is then `Bin(n, gamma)`,
//! and the verdict uses its exact upper tail.
//!
//! The false-positive rate is a probability over the key, for text written independently of it.
//! For one fixed key, texts that share many pairs share their green draws, so their verdicts are
//! correlated: a common phrase whose pairs happen to be mostly green lowers the p-value of every
//! text that contains it.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use serde::Serialize;

use crate::WatermarkError;
use crate::green::{GreenList, Seed};
use crate::stats::{self, Tail};
use crate::tokenizer::Tokenizer;
use crate::watermark::{WatermarkKey, WatermarkParams};

/// Seeds cached per context while scoring one text, enough for every context of a character
/// vocabulary; beyond it seeds are recomputed, which bounds memory on long texts with h > 1.
const MAX_CACHED_SEEDS: usize = 1 << 20;

/// With h = 1 and every id below this bound, seen pairs are kept in a bit matrix of at most 8 MiB
/// and seeds in a table indexed by id, so detection hashes nothing per token.
const DENSE_ID_BOUND: usize = 1 << 13;

/// Settings of the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DetectorConfig {
    /// False-positive rate: the largest p-value that counts as watermarked, in (0, 1).
    /// Default 0.01.
    pub fpr: f64,
    /// Texts with fewer scored tokens get [`Verdict::TooShort`], however small their p-value.
    /// Default 16, at least 1.
    pub min_scored_tokens: usize,
    /// Texts whose share of unknown tokens exceeds this get [`Verdict::TokenizerMismatch`], in
    /// [0, 1]. Default 0.5.
    pub max_unknown_fraction: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self { fpr: 0.01, min_scored_tokens: 16, max_unknown_fraction: 0.5 }
    }
}

impl DetectorConfig {
    /// Checks the ranges documented on each field.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::InvalidParameter`] naming the first invalid value.
    pub fn validate(&self) -> Result<(), WatermarkError> {
        if !(self.fpr > 0.0 && self.fpr < 1.0) {
            return Err(WatermarkError::invalid(
                "false-positive rate",
                self.fpr,
                "a probability in (0, 1), such as 0.01",
            ));
        }
        if self.min_scored_tokens == 0 {
            return Err(WatermarkError::invalid("minimum scored tokens", 0, "at least 1"));
        }
        if !(0.0..=1.0).contains(&self.max_unknown_fraction) {
            return Err(WatermarkError::invalid(
                "maximum unknown fraction",
                self.max_unknown_fraction,
                "a share in [0, 1], such as 0.5",
            ));
        }
        Ok(())
    }
}

/// Outcome of a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The p-value is at most the false-positive rate and enough tokens were scored.
    Watermarked,
    /// Enough tokens were scored, and the p-value is above the false-positive rate.
    NotWatermarked,
    /// Too few tokens were scored for a verdict.
    TooShort,
    /// Most of the text is unknown to the tokenizer, so it was probably not tokenized with the
    /// tokenizer the key was used with. No verdict is given.
    TokenizerMismatch,
}

/// Result of a detection over one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// Outcome at the configured false-positive rate.
    pub verdict: Verdict,
    /// Tokens in the text.
    pub tokens: usize,
    /// Tokens that are the unknown token.
    pub unknown_tokens: usize,
    /// Tokens scored: with a full context, no unknown token, and a (context, token) pair not seen
    /// before in the text.
    pub scored_tokens: usize,
    /// Scored tokens in their context's green list.
    pub green_tokens: usize,
    /// `green_tokens / scored_tokens`; 0 when nothing was scored.
    pub green_fraction: f64,
    /// Standardized green count, `(green - gamma n) / sqrt(n gamma (1 - gamma))`; 0 when nothing
    /// was scored.
    pub z_score: f64,
    /// Exact binomial `P(X >= green_tokens)` for `X ~ Bin(scored_tokens, gamma)`.
    pub p_value: f64,
    /// Natural logarithm of the p-value, accurate where `p_value` underflows to 0.
    pub ln_p_value: f64,
    /// False-positive rate of the verdict.
    pub fpr: f64,
}

impl Detection {
    /// Returns whether the verdict is [`Verdict::Watermarked`].
    pub fn is_watermarked(&self) -> bool {
        self.verdict == Verdict::Watermarked
    }
}

/// Multiple-testing correction of a window scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Each of `m` windows is tested at `fpr / m`, so the chance of any false span in an
    /// unwatermarked text is at most `fpr`. Overlapping windows are strongly dependent, so the
    /// true rate is well below `fpr`.
    Bonferroni,
}

/// A passage found watermarked by [`Detector::scan_windows`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatermarkedSpan {
    /// Token indices, from the first to one past the last scored token of the flagged windows.
    pub tokens: Range<usize>,
    /// Byte range in the text, widened to character boundaries.
    pub bytes: Range<usize>,
    /// Range of Unicode scalar values (Rust `char`s) in the text.
    pub chars: Range<usize>,
    /// Scored tokens in the span.
    pub scored_tokens: usize,
    /// Green tokens among them.
    pub green_tokens: usize,
    /// `green_tokens / scored_tokens`.
    pub green_fraction: f64,
    /// z-score of the span as a whole; not corrected for the search over windows.
    pub z_score: f64,
    /// Smallest p-value of a window inside the span; each window passed `fpr / windows`.
    pub min_window_p_value: f64,
    /// Natural logarithm of `min_window_p_value`.
    pub min_window_ln_p_value: f64,
}

/// Result of a sliding-window scan for watermarked passages inside longer text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowScan {
    /// Scored tokens per window.
    pub window: usize,
    /// Windows tested: one per start position over the scored tokens. 0 when the text has fewer
    /// scored tokens than a window, or fails the tokenizer mismatch guard.
    pub windows: usize,
    /// Correction for testing many windows.
    pub correction: Correction,
    /// Largest p-value that flags a single window: the false-positive rate over the windows tested.
    pub window_fpr: f64,
    /// Merged runs of flagged windows, in text order.
    pub spans: Vec<WatermarkedSpan>,
}

/// Green and red outcomes of the scored tokens of one text.
struct Scoring {
    tokens: usize,
    unknown_tokens: usize,
    /// Index of each scored token in the token sequence.
    positions: Vec<usize>,
    green: Vec<bool>,
}

/// Detects the watermark of one key and parameter set.
#[derive(Debug, Clone)]
pub struct Detector {
    green_list: GreenList,
    gamma: f64,
    config: DetectorConfig,
}

impl Detector {
    /// Builds a detector. Only gamma and h of the parameters matter; delta does not change the
    /// test.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::InvalidParameter`] when the parameters or settings are invalid.
    pub fn new(key: &WatermarkKey, params: &WatermarkParams, config: DetectorConfig) -> Result<Self, WatermarkError> {
        config.validate()?;
        Ok(Self { green_list: GreenList::new(key, params)?, gamma: params.gamma, config })
    }

    /// Settings of the verdict.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Tokenizes `text` and tests it for the watermark.
    pub fn detect(&self, tokenizer: &Tokenizer, text: &str) -> Detection {
        let ids = tokenizer.encode(text);
        self.detect_ids(&ids, tokenizer.unknown_id())
    }

    /// Tests token ids for the watermark; `unknown_id` is the tokenizer's unknown token, if any.
    pub fn detect_ids(&self, ids: &[u32], unknown_id: Option<u32>) -> Detection {
        let scoring = self.score(ids, unknown_id);
        self.decide(&scoring)
    }

    /// Finds watermarked passages by testing every run of `window` consecutive scored tokens.
    /// The false-positive rate over all windows is controlled with the Bonferroni correction.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::InvalidParameter`] when `window` is below the minimum number of
    /// scored tokens of a verdict.
    pub fn scan_windows(&self, tokenizer: &Tokenizer, text: &str, window: usize) -> Result<WindowScan, WatermarkError> {
        if window < self.config.min_scored_tokens {
            return Err(WatermarkError::invalid(
                "window",
                window,
                format!("at least the minimum of {} scored tokens", self.config.min_scored_tokens),
            ));
        }
        let encoding = tokenizer.encode_with_offsets(text);
        let scoring = self.score(&encoding.ids, tokenizer.unknown_id());
        let scored = scoring.green.len();
        let mut scan = WindowScan {
            window,
            windows: 0,
            correction: Correction::Bonferroni,
            window_fpr: self.config.fpr,
            spans: Vec::new(),
        };
        if scored < window || self.decide(&scoring).verdict == Verdict::TokenizerMismatch {
            return Ok(scan);
        }

        scan.windows = scored - window + 1;
        scan.window_fpr = self.config.fpr / scan.windows as f64;
        // The tail falls as the green count rises, so one threshold count decides every window.
        let min_green = self.min_green_count(window, scan.window_fpr);

        let mut green_before = Vec::with_capacity(scored + 1);
        green_before.push(0usize);
        for &green in &scoring.green {
            green_before.push(green_before.last().copied().unwrap_or(0) + usize::from(green));
        }
        let window_green = |start: usize| green_before[start + window] - green_before[start];

        // Merge flagged windows that overlap or touch into runs of scored tokens.
        let mut runs: Vec<(Range<usize>, usize)> = Vec::new();
        for start in 0..scan.windows {
            let green = window_green(start);
            if green < min_green {
                continue;
            }
            match runs.last_mut() {
                Some((run, best)) if start <= run.end => {
                    run.end = start + window;
                    *best = (*best).max(green);
                }
                _ => runs.push((start..start + window, green)),
            }
        }

        for (run, best_green) in runs {
            let first = scoring.positions[run.start];
            let last = scoring.positions[run.end - 1];
            let bytes = char_aligned(text, encoding.offsets[first].start..encoding.offsets[last].end);
            let chars_before = text[..bytes.start].chars().count();
            let green_tokens = green_before[run.end] - green_before[run.start];
            let scored_tokens = run.len();
            let best = stats::binomial_upper_tail(best_green as u64, window as u64, self.gamma);
            scan.spans.push(WatermarkedSpan {
                tokens: first..last + 1,
                chars: chars_before..chars_before + text[bytes.clone()].chars().count(),
                bytes,
                scored_tokens,
                green_tokens,
                green_fraction: green_tokens as f64 / scored_tokens as f64,
                z_score: stats::z_score(green_tokens, scored_tokens, self.gamma),
                min_window_p_value: best.p_value,
                min_window_ln_p_value: best.ln_p_value,
            });
        }
        Ok(scan)
    }

    /// Returns the smallest green count `k` with `P(X >= k) <= fpr` for `X ~ Bin(window, gamma)`,
    /// or `window + 1` when no count reaches it.
    fn min_green_count(&self, window: usize, fpr: f64) -> usize {
        let ln_fpr = fpr.ln();
        let (mut low, mut high) = (0usize, window + 1);
        while low < high {
            let middle = (low + high) / 2;
            if stats::binomial_upper_tail(middle as u64, window as u64, self.gamma).ln_p_value <= ln_fpr {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        low
    }

    fn score(&self, ids: &[u32], unknown_id: Option<u32>) -> Scoring {
        let context_width = self.green_list.context_width();
        let unknown_tokens = unknown_id.map_or(0, |unknown| ids.iter().filter(|&&id| id == unknown).count());
        let mut scoring = Scoring { tokens: ids.len(), unknown_tokens, positions: Vec::new(), green: Vec::new() };
        let id_bound = ids.iter().max().map_or(0, |&max| max as usize + 1);
        let mut seen = PairSet::new(context_width, id_bound, ids.len());
        let mut seeds = SeedCache::new(context_width, id_bound);

        // Two passes: the first touches only the pair set, so the processor overlaps its cache
        // misses, which it cannot do when a ChaCha20 block is computed between two lookups.
        for position in context_width..ids.len() {
            let pair = &ids[position - context_width..=position];
            if unknown_id.is_some_and(|unknown| pair.contains(&unknown)) {
                continue;
            }
            if seen.insert(pair) {
                scoring.positions.push(position);
            }
        }
        scoring.green = scoring
            .positions
            .iter()
            .map(|&position| {
                let seed = seeds.seed(&self.green_list, &ids[position - context_width..position]);
                self.green_list.is_green_with(&seed, ids[position])
            })
            .collect();
        scoring
    }

    fn decide(&self, scoring: &Scoring) -> Detection {
        let scored = scoring.green.len();
        let green = scoring.green.iter().filter(|&&g| g).count();
        let Tail { p_value, ln_p_value } = stats::binomial_upper_tail(green as u64, scored as u64, self.gamma);

        let unknown_fraction =
            if scoring.tokens == 0 { 0.0 } else { scoring.unknown_tokens as f64 / scoring.tokens as f64 };
        let verdict = if unknown_fraction > self.config.max_unknown_fraction {
            Verdict::TokenizerMismatch
        } else if scored < self.config.min_scored_tokens {
            Verdict::TooShort
        } else if p_value <= self.config.fpr {
            Verdict::Watermarked
        } else {
            Verdict::NotWatermarked
        };

        Detection {
            verdict,
            tokens: scoring.tokens,
            unknown_tokens: scoring.unknown_tokens,
            scored_tokens: scored,
            green_tokens: green,
            green_fraction: if scored == 0 { 0.0 } else { green as f64 / scored as f64 },
            z_score: stats::z_score(green, scored, self.gamma),
            p_value,
            ln_p_value,
            fpr: self.config.fpr,
        }
    }
}

/// Packs up to four token ids into one integer, a hash key that is cheaper than a slice.
fn pack(tokens: &[u32]) -> u128 {
    tokens.iter().fold(0u128, |packed, &token| (packed << 32) | u128::from(token))
}

/// The (context, token) pairs already scored in one text.
enum PairSet<'a> {
    /// Bit `context * stride + token` is set once the pair is scored (h = 1 and small ids).
    Dense {
        bits: Vec<u64>,
        stride: usize,
    },
    /// Pairs of at most four tokens (h <= 3), packed.
    Packed(HashSet<u128>),
    Hashed(HashSet<&'a [u32]>),
}

impl<'a> PairSet<'a> {
    fn new(context_width: usize, id_bound: usize, tokens: usize) -> Self {
        if context_width == 1 && id_bound <= DENSE_ID_BOUND {
            PairSet::Dense { bits: vec![0; (id_bound * id_bound).div_ceil(64)], stride: id_bound }
        } else if context_width < 4 {
            PairSet::Packed(HashSet::with_capacity(tokens))
        } else {
            PairSet::Hashed(HashSet::with_capacity(tokens))
        }
    }

    /// Records `pair` (h context tokens, then the token) and returns whether it is new.
    fn insert(&mut self, pair: &'a [u32]) -> bool {
        match self {
            PairSet::Dense { bits, stride } => {
                let bit = pair[0] as usize * *stride + pair[1] as usize;
                let mask = 1u64 << (bit % 64);
                let new = bits[bit / 64] & mask == 0;
                bits[bit / 64] |= mask;
                new
            }
            PairSet::Packed(set) => set.insert(pack(pair)),
            PairSet::Hashed(set) => set.insert(pair),
        }
    }
}

/// Green-list seeds of the contexts met so far in one text.
enum SeedCache<'a> {
    /// Seed of the one-token context `id` at index `id` (h = 1 and small ids).
    Dense(Vec<Option<Seed>>),
    /// Seeds by context, packed when it has at most four tokens.
    Packed(HashedSeeds<u128>),
    Hashed(HashedSeeds<&'a [u32]>),
}

impl<'a> SeedCache<'a> {
    fn new(context_width: usize, id_bound: usize) -> Self {
        if context_width == 1 && id_bound <= DENSE_ID_BOUND {
            SeedCache::Dense(vec![None; id_bound])
        } else if context_width <= 4 {
            SeedCache::Packed(HashedSeeds::default())
        } else {
            SeedCache::Hashed(HashedSeeds::default())
        }
    }

    fn seed(&mut self, green_list: &GreenList, context: &'a [u32]) -> Seed {
        match self {
            SeedCache::Dense(seeds) => *seeds[context[0] as usize].get_or_insert_with(|| green_list.seed(context)),
            SeedCache::Packed(seeds) => seeds.seed(pack(context), green_list, context),
            SeedCache::Hashed(seeds) => seeds.seed(context, green_list, context),
        }
    }
}

/// A hash map of seeds that turns itself off when contexts rarely repeat, as in random text with
/// h > 1. There every lookup misses and costs more than the HMAC it tries to save.
struct HashedSeeds<K> {
    seeds: HashMap<K, Seed>,
    lookups: usize,
    hits: usize,
    enabled: bool,
}

impl<K> Default for HashedSeeds<K> {
    fn default() -> Self {
        Self { seeds: HashMap::new(), lookups: 0, hits: 0, enabled: true }
    }
}

impl<K: std::hash::Hash + Eq> HashedSeeds<K> {
    /// Lookups after which a hit rate below one in four turns the cache off.
    const TRIAL_LOOKUPS: usize = 1 << 16;

    fn seed(&mut self, key: K, green_list: &GreenList, context: &[u32]) -> Seed {
        if !self.enabled {
            return green_list.seed(context);
        }
        self.lookups += 1;
        if let Some(seed) = self.seeds.get(&key) {
            self.hits += 1;
            return *seed;
        }
        if self.lookups == Self::TRIAL_LOOKUPS && 4 * self.hits < self.lookups {
            self.enabled = false;
            self.seeds = HashMap::new();
        }
        let seed = green_list.seed(context);
        if self.enabled && self.seeds.len() < MAX_CACHED_SEEDS {
            self.seeds.insert(key, seed);
        }
        seed
    }
}

/// Widens a byte range to the nearest character boundaries, so that it can slice the text. A
/// byte-level token can start or end inside a multi-byte character.
fn char_aligned(text: &str, bytes: Range<usize>) -> Range<usize> {
    let mut start = bytes.start;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = bytes.end;
    while !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_aligned_widens_to_character_boundaries() {
        let text = "ab水c";
        assert_eq!(char_aligned(text, 3..4), 2..5);
        assert_eq!(char_aligned(text, 0..2), 0..2);
        assert_eq!(char_aligned(text, 2..6), 2..6);
    }

    #[test]
    fn min_green_count_is_first_count_under_rate() {
        let key = WatermarkKey::from_bytes([1; 32]);
        let detector = Detector::new(&key, &WatermarkParams::default(), DetectorConfig::default()).unwrap();
        let threshold = detector.min_green_count(100, 1e-6);
        assert!(stats::binomial_upper_tail(threshold as u64, 100, 0.25).p_value <= 1e-6);
        assert!(stats::binomial_upper_tail(threshold as u64 - 1, 100, 0.25).p_value > 1e-6);
        assert_eq!(detector.min_green_count(20, 1e-30), 21, "no count of 20 tokens reaches 1e-30");
    }

    #[test]
    fn detector_rejects_invalid_config() {
        let key = WatermarkKey::from_bytes([1; 32]);
        let params = WatermarkParams::default();
        for (config, name) in [
            (DetectorConfig { fpr: 0.0, ..DetectorConfig::default() }, "false-positive rate"),
            (DetectorConfig { fpr: 1.0, ..DetectorConfig::default() }, "false-positive rate"),
            (DetectorConfig { min_scored_tokens: 0, ..DetectorConfig::default() }, "minimum scored tokens"),
            (DetectorConfig { max_unknown_fraction: 1.5, ..DetectorConfig::default() }, "maximum unknown fraction"),
        ] {
            let error = Detector::new(&key, &params, config).unwrap_err().to_string();
            assert!(error.starts_with(&format!("invalid {name}")), "{error}");
        }
    }
}
