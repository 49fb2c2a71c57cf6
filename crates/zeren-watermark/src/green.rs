//! The keyed green list: which tokens are green after a given context.
//!
//! A context of `h` tokens is hashed once, with HMAC-SHA-256 under the watermark key, into a
//! 256-bit seed. The seed keys ChaCha20, and token `t` is green when the 64-bit word at position
//! `t` of that keystream (block `t / 8`, words `2 (t mod 8)` and `2 (t mod 8) + 1`, little-endian)
//! is below `floor(gamma * 2^64)`. Each token is therefore green with probability at most gamma
//! and less than 2^-64 below it, independently of the others as far as a party without the key
//! can tell. The green list of a context holds about `gamma * vocab_size` tokens: its size is
//! binomial, not fixed as in Kirchenbauer et al.'s `randperm` partition, so that one membership
//! costs one ChaCha20 block and needs no vocabulary size.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::chacha;
use crate::watermark::{WatermarkKey, WatermarkParams};

/// Domain-separation prefix of the HMAC input, so seeds never collide with other uses of the key.
const SEED_LABEL: &[u8] = b"zeren-watermark green list v1\0";

/// ChaCha20 nonce of the membership keystream. The seed is already unique per context.
const NONCE: [u32; 3] = [0, 0, 0];

/// Tokens covered by one ChaCha20 block: sixteen 32-bit words make eight 64-bit draws.
const TOKENS_PER_BLOCK: usize = 8;

/// The ChaCha20 key derived from one context.
#[derive(Clone, Copy)]
pub(crate) struct Seed([u32; 8]);

/// The green-list function of one key and parameter set.
///
/// The same key, parameters and context give the same green list on every call and machine.
#[derive(Clone)]
pub struct GreenList {
    mac: Hmac<Sha256>,
    context_width: usize,
    threshold: u64,
}

impl std::fmt::Debug for GreenList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreenList")
            .field("context_width", &self.context_width)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl GreenList {
    /// Builds the green-list function of a key.
    ///
    /// # Errors
    ///
    /// Returns [`crate::WatermarkError::InvalidParameter`] when the parameters are invalid.
    pub fn new(key: &WatermarkKey, params: &WatermarkParams) -> Result<Self, crate::WatermarkError> {
        params.validate()?;
        let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
        // gamma * 2^64 is exact in binary floating point, and the cast rounds down, so the chance
        // that a token is green never exceeds gamma and the binomial test stays conservative.
        let threshold = (params.gamma * 18_446_744_073_709_551_616.0) as u64;
        Ok(Self { mac, context_width: params.context_width, threshold })
    }

    /// Number of previous tokens that select the green list.
    pub fn context_width(&self) -> usize {
        self.context_width
    }

    /// Returns whether `token` is green after `context`, or `None` when the context is shorter
    /// than the context width. Only the last `context_width` tokens of `context` are used.
    pub fn is_green(&self, context: &[u32], token: u32) -> Option<bool> {
        let window = self.last_window(context)?;
        Some(self.is_green_with(&self.seed(window), token))
    }

    /// Returns the green tokens among `0..vocab_size` after `context`, in increasing order, or
    /// `None` when the context is shorter than the context width.
    pub fn green_tokens(&self, context: &[u32], vocab_size: usize) -> Option<Vec<u32>> {
        let window = self.last_window(context)?;
        let mut green = Vec::new();
        self.green_tokens_with(&self.seed(window), vocab_size, &mut green);
        Some(green)
    }

    fn last_window<'c>(&self, context: &'c [u32]) -> Option<&'c [u32]> {
        context.len().checked_sub(self.context_width).map(|start| &context[start..])
    }

    /// Hashes exactly `context_width` tokens into the seed of their green list.
    pub(crate) fn seed(&self, window: &[u32]) -> Seed {
        debug_assert_eq!(window.len(), self.context_width);
        let mut mac = self.mac.clone();
        mac.update(SEED_LABEL);
        mac.update(&(self.context_width as u64).to_le_bytes());
        for token in window {
            mac.update(&token.to_le_bytes());
        }
        let digest = mac.finalize().into_bytes();
        Seed(std::array::from_fn(|i| u32::from_le_bytes(digest[4 * i..4 * i + 4].try_into().unwrap())))
    }

    pub(crate) fn is_green_with(&self, seed: &Seed, token: u32) -> bool {
        let counter = token / TOKENS_PER_BLOCK as u32;
        let words = chacha::block(&seed.0, counter, &NONCE);
        self.is_green_in_block(&words, token as usize % TOKENS_PER_BLOCK)
    }

    #[inline]
    fn is_green_in_block(&self, words: &[u32; 16], slot: usize) -> bool {
        let draw = u64::from(words[2 * slot]) | (u64::from(words[2 * slot + 1]) << 32);
        draw < self.threshold
    }

    /// Appends the green tokens among `0..vocab_size` to `green`, in increasing order.
    pub(crate) fn green_tokens_with(&self, seed: &Seed, vocab_size: usize, green: &mut Vec<u32>) {
        for counter in 0..vocab_size.div_ceil(TOKENS_PER_BLOCK) {
            let words = chacha::block(&seed.0, counter as u32, &NONCE);
            let first_token = counter * TOKENS_PER_BLOCK;
            for slot in 0..TOKENS_PER_BLOCK.min(vocab_size - first_token) {
                if self.is_green_in_block(&words, slot) {
                    green.push((first_token + slot) as u32);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn green_list(key_byte: u8, gamma: f64, context_width: usize) -> GreenList {
        let params = WatermarkParams { gamma, context_width, ..WatermarkParams::default() };
        GreenList::new(&WatermarkKey::from_bytes([key_byte; 32]), &params).unwrap()
    }

    #[test]
    fn known_answer_vector_is_stable() {
        // Pins the scheme: key bytes 0..32, gamma 0.25, h = 1, context [7], vocabulary 64. The list
        // was checked against a separate Python implementation of the module documentation, with
        // its standard hmac and hashlib modules. Any change here makes every watermark embedded
        // before it undetectable.
        let key = WatermarkKey::from_bytes(std::array::from_fn(|i| i as u8));
        let list = GreenList::new(&key, &WatermarkParams::default()).unwrap();
        let green = list.green_tokens(&[7], 64).unwrap();
        assert_eq!(green, [3, 6, 8, 32, 33, 39, 45, 46, 47, 48, 50, 52, 53, 54, 60, 61, 62]);
    }

    #[test]
    fn green_list_repeats_for_same_inputs() {
        let first = green_list(3, 0.25, 2);
        let second = green_list(3, 0.25, 2);
        let list = first.green_tokens(&[10, 11, 12], 5_000).unwrap();
        assert_eq!(list, first.green_tokens(&[10, 11, 12], 5_000).unwrap());
        assert_eq!(list, second.green_tokens(&[99, 11, 12], 5_000).unwrap(), "only the last h tokens count");
    }

    #[test]
    fn green_list_depends_on_key_and_context() {
        let list = green_list(3, 0.25, 1);
        let other_key = green_list(4, 0.25, 1);
        let reference = list.green_tokens(&[42], 1_000).unwrap();
        assert_ne!(reference, list.green_tokens(&[43], 1_000).unwrap());
        assert_ne!(reference, other_key.green_tokens(&[42], 1_000).unwrap());
    }

    #[test]
    fn membership_matches_marked_list() {
        let list = green_list(5, 0.3, 1);
        let green = list.green_tokens(&[9], 777).unwrap();
        for token in 0..777u32 {
            assert_eq!(list.is_green(&[9], token).unwrap(), green.binary_search(&token).is_ok(), "token {token}");
        }
    }

    #[test]
    fn green_share_is_close_to_gamma() {
        let list = green_list(6, 0.25, 1);
        let vocab_size = 5_000;
        let contexts = 200;
        let total: usize = (0..contexts).map(|c| list.green_tokens(&[c], vocab_size).unwrap().len()).sum();
        let share = total as f64 / (contexts as usize * vocab_size) as f64;
        // One million Bernoulli(0.25) draws: standard error 0.00043, so 0.003 is seven of them.
        assert!((share - 0.25).abs() < 0.003, "green share {share}");
    }

    #[test]
    fn short_context_has_no_green_list() {
        let list = green_list(1, 0.25, 3);
        assert_eq!(list.green_tokens(&[1, 2], 100), None);
        assert_eq!(list.is_green(&[], 5), None);
    }
}
