//! The soft green-list watermark of Kirchenbauer et al. (2023), "A Watermark for Large Language
//! Models", arXiv:2301.10226, Algorithm 2: before each token is sampled, the logits of the green
//! list selected by the previous `h` tokens are raised by delta.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::WatermarkError;
use crate::green::GreenList;
use crate::tokenizer::Tokenizer;

/// Label mixed into key derivation, so the watermark key differs from the secret it comes from
/// (such as an Ed25519 signing key) and from keys derived for any other purpose.
const DERIVE_LABEL: &[u8] = b"zeren-watermark key v1";

/// Label of the key fingerprint hash, so the fingerprint reveals nothing usable as a key.
const FINGERPRINT_LABEL: &[u8] = b"zeren-watermark key fingerprint v1\0";

/// Secrets shorter than this are rejected by [`WatermarkKey::derive`]: 256 bits, as for HMAC keys.
pub const MIN_SECRET_BYTES: usize = 32;

/// Green lists cached by one [`Watermarker`] take at most this many bytes (32 MiB).
const CACHE_BYTES: usize = 32 << 20;

/// A 256-bit secret watermark key.
///
/// Anyone with the key can detect the watermark, and also forge or remove it, so share it only
/// with trusted detectors. `Debug` prints the fingerprint, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WatermarkKey([u8; 32]);

impl WatermarkKey {
    /// Wraps 32 secret bytes, which should come from a cryptographic random generator.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Derives a watermark key from a longer-lived secret, such as the 32-byte seed of the Ed25519
    /// key that `zeren keygen` writes: `HMAC-SHA-256(key = "zeren-watermark key v1", secret)`, the
    /// extract step of HKDF (RFC 5869) with the label as salt. The label keeps the watermark key
    /// different from the signing key, and the key reveals nothing about the secret.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::ShortSecret`] when the secret has fewer than
    /// [`MIN_SECRET_BYTES`] bytes.
    pub fn derive(secret: &[u8]) -> Result<Self, WatermarkError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WatermarkError::ShortSecret { len: secret.len() });
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(DERIVE_LABEL).expect("HMAC accepts keys of any length");
        mac.update(secret);
        Ok(Self(mac.finalize().into_bytes().into()))
    }

    /// Returns a short public identifier of the key: the first 16 hex digits of
    /// `SHA-256("zeren-watermark key fingerprint v1\0" || key)`. Safe to record in metadata.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(FINGERPRINT_LABEL);
        hasher.update(self.0);
        hex::encode(&hasher.finalize()[..8])
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for WatermarkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WatermarkKey(fingerprint {})", self.fingerprint())
    }
}

/// A watermarking scheme: how green lists are drawn and how logits are changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Scheme {
    /// Kirchenbauer et al.'s soft watermark, with green lists from HMAC-SHA-256 of the context and
    /// ChaCha20 keyed by that hash (see [`GreenList`]).
    #[default]
    #[serde(rename = "kgw-soft-hmac-sha256-chacha20-v1")]
    KgwSoftHmacSha256ChaCha20,
}

impl Scheme {
    /// Stable name recorded in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::KgwSoftHmacSha256ChaCha20 => "kgw-soft-hmac-sha256-chacha20-v1",
        }
    }
}

/// Parameters of the watermark. Generation and detection must use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkParams {
    /// Scheme that draws green lists.
    pub scheme: Scheme,
    /// Expected share of the vocabulary in each green list, in (0, 1). Default 0.25.
    pub gamma: f64,
    /// Amount added to green logits, at least 0; 0 leaves generation unchanged. Default 2.0.
    pub delta: f64,
    /// Number h of previous tokens that select the green list, at least 1. Default 1.
    pub context_width: usize,
}

impl Default for WatermarkParams {
    fn default() -> Self {
        Self { scheme: Scheme::default(), gamma: 0.25, delta: 2.0, context_width: 1 }
    }
}

impl WatermarkParams {
    /// Checks that gamma is in (0, 1), delta is finite and at least 0, and h is at least 1.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::InvalidParameter`] naming the first invalid value.
    pub fn validate(&self) -> Result<(), WatermarkError> {
        if !(self.gamma > 0.0 && self.gamma < 1.0) {
            return Err(WatermarkError::invalid("gamma", self.gamma, "a share strictly between 0 and 1, such as 0.25"));
        }
        if !(self.delta.is_finite() && self.delta >= 0.0) {
            return Err(WatermarkError::invalid("delta", self.delta, "a finite value of at least 0, such as 2.0"));
        }
        if self.context_width == 0 {
            return Err(WatermarkError::invalid("context width", 0, "at least 1 previous token"));
        }
        Ok(())
    }
}

/// Adds the watermark to logits before sampling.
///
/// Green lists are cached per context, up to 32 MiB, so that with h = 1 each context token's list
/// is computed once. The watermarker is `Sync` and can be shared between generation threads.
#[derive(Debug)]
pub struct Watermarker {
    green: GreenList,
    params: WatermarkParams,
    delta: f32,
    vocab_size: usize,
    unknown_id: Option<u32>,
    cache: Mutex<GreenCache>,
}

/// Green lists by context, each as a bit set of the vocabulary: a vocabulary of 8,000 tokens
/// takes 1 KB per context, so with h = 1 every context of such a vocabulary fits in the cache.
#[derive(Default)]
struct GreenCache {
    lists: HashMap<Box<[u32]>, Arc<[u64]>>,
    bytes: usize,
}

impl std::fmt::Debug for GreenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreenCache").field("contexts", &self.lists.len()).field("bytes", &self.bytes).finish()
    }
}

impl Watermarker {
    /// Builds a watermarker for a vocabulary of `vocab_size` tokens. Contexts that contain
    /// `unknown_id` are left unmarked, because detection cannot score tokens after them.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::InvalidParameter`] when the parameters are invalid or the
    /// vocabulary is empty.
    pub fn new(
        key: &WatermarkKey,
        params: WatermarkParams,
        vocab_size: usize,
        unknown_id: Option<u32>,
    ) -> Result<Self, WatermarkError> {
        if vocab_size == 0 {
            return Err(WatermarkError::invalid("vocabulary size", 0, "at least 1 token"));
        }
        let green = GreenList::new(key, &params)?;
        Ok(Self {
            green,
            params,
            delta: params.delta as f32,
            vocab_size,
            unknown_id,
            cache: Mutex::new(GreenCache::default()),
        })
    }

    /// Builds a watermarker for the vocabulary of a tokenizer.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::InvalidParameter`] when the parameters are invalid.
    pub fn for_tokenizer(
        key: &WatermarkKey,
        params: WatermarkParams,
        tokenizer: &Tokenizer,
    ) -> Result<Self, WatermarkError> {
        Self::new(key, params, tokenizer.vocab_size(), tokenizer.unknown_id())
    }

    /// Parameters of the watermark.
    pub fn params(&self) -> &WatermarkParams {
        &self.params
    }

    /// Adds delta to the logits of the green list selected by the last h tokens of `context`.
    ///
    /// Logits stay bit-identical when delta is 0, when the context is shorter than h, or when one
    /// of its last h tokens is the unknown token. The unknown token's own logit is never raised.
    ///
    /// # Errors
    ///
    /// Returns [`WatermarkError::LogitsLength`] when `logits` does not have one entry per token
    /// of the vocabulary.
    pub fn apply(&self, context: &[u32], logits: &mut [f32]) -> Result<(), WatermarkError> {
        if logits.len() != self.vocab_size {
            return Err(WatermarkError::LogitsLength { expected: self.vocab_size, actual: logits.len() });
        }
        // Adding 0.0 would still turn -0.0 into +0.0, so return before touching the logits.
        if self.params.delta == 0.0 {
            return Ok(());
        }
        let Some(start) = context.len().checked_sub(self.params.context_width) else {
            return Ok(());
        };
        let window = &context[start..];
        if self.unknown_id.is_some_and(|unknown| window.contains(&unknown)) {
            return Ok(());
        }

        let green = self.cached_green_set(window);
        for (word_index, &word) in green.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let token = word_index * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if Some(token as u32) != self.unknown_id {
                    logits[token] += self.delta;
                }
            }
        }
        Ok(())
    }

    fn cached_green_set(&self, window: &[u32]) -> Arc<[u64]> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(green) = cache.lists.get(window) {
            return Arc::clone(green);
        }

        let mut tokens = Vec::with_capacity((self.params.gamma * self.vocab_size as f64 * 1.1) as usize + 8);
        self.green.green_tokens_with(&self.green.seed(window), self.vocab_size, &mut tokens);
        let mut set = vec![0u64; self.vocab_size.div_ceil(64)];
        for token in tokens {
            set[token as usize / 64] |= 1 << (token % 64);
        }
        let green: Arc<[u64]> = set.into();
        let entry_bytes = 8 * green.len() + 4 * window.len() + 64;
        if cache.bytes + entry_bytes > CACHE_BYTES {
            cache.lists.clear();
            cache.bytes = 0;
        }
        cache.bytes += entry_bytes;
        cache.lists.insert(window.into(), Arc::clone(&green));
        green
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> WatermarkKey {
        WatermarkKey::from_bytes([9; 32])
    }

    #[test]
    fn rejects_invalid_parameters() {
        for (gamma, delta, context_width, name) in [
            (0.0, 2.0, 1, "gamma"),
            (1.0, 2.0, 1, "gamma"),
            (f64::NAN, 2.0, 1, "gamma"),
            (0.25, -0.5, 1, "delta"),
            (0.25, f64::INFINITY, 1, "delta"),
            (0.25, 2.0, 0, "context width"),
        ] {
            let params = WatermarkParams { gamma, delta, context_width, ..WatermarkParams::default() };
            let error = params.validate().unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
        }
    }

    #[test]
    fn zero_delta_leaves_logits_bit_identical() {
        let params = WatermarkParams { delta: 0.0, ..WatermarkParams::default() };
        let watermarker = Watermarker::new(&key(), params, 6, None).unwrap();
        let original = [-0.0f32, 1.5, f32::NEG_INFINITY, f32::NAN, 3.0e-40, -7.25];
        let mut logits = original;
        watermarker.apply(&[1], &mut logits).unwrap();
        let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&logits), bits(&original));
    }

    #[test]
    fn apply_raises_exactly_green_logits() {
        let params = WatermarkParams { delta: 1.5, ..WatermarkParams::default() };
        let watermarker = Watermarker::new(&key(), params, 300, None).unwrap();
        let green = GreenList::new(&key(), &params).unwrap().green_tokens(&[17], 300).unwrap();
        for _ in 0..2 {
            // The second pass reads the cached list.
            let mut logits = vec![0.25f32; 300];
            watermarker.apply(&[3, 17], &mut logits).unwrap();
            for (token, logit) in logits.iter().enumerate() {
                let expected = if green.contains(&(token as u32)) { 1.75 } else { 0.25 };
                assert_eq!(*logit, expected, "token {token}");
            }
        }
    }

    #[test]
    fn apply_skips_short_and_unknown_contexts() {
        let params = WatermarkParams { context_width: 2, ..WatermarkParams::default() };
        let watermarker = Watermarker::new(&key(), params, 50, Some(0)).unwrap();
        let mut logits = vec![1.0f32; 50];
        watermarker.apply(&[4], &mut logits).unwrap();
        watermarker.apply(&[4, 0], &mut logits).unwrap();
        watermarker.apply(&[0, 4], &mut logits).unwrap();
        assert!(logits.iter().all(|&logit| logit == 1.0));
    }

    #[test]
    fn apply_never_raises_unknown_token() {
        let watermarker = Watermarker::new(&key(), WatermarkParams::default(), 64, Some(0)).unwrap();
        let list = GreenList::new(&key(), &WatermarkParams::default()).unwrap();
        let context = (1..64).find(|&c| list.is_green(&[c], 0).unwrap()).expect("some context makes token 0 green");
        let mut logits = vec![0.0f32; 64];
        watermarker.apply(&[context], &mut logits).unwrap();
        assert_eq!(logits[0], 0.0);
        assert!(logits.contains(&2.0));
    }

    #[test]
    fn apply_rejects_wrong_logits_length() {
        let watermarker = Watermarker::new(&key(), WatermarkParams::default(), 10, None).unwrap();
        let error = watermarker.apply(&[1], &mut [0.0; 9]).unwrap_err();
        assert_eq!(error.to_string(), "got 9 logits for a vocabulary of 10 tokens; pass one logit per token");
    }

    #[test]
    fn derived_key_differs_from_secret_and_is_stable() {
        let secret = [1u8; 32];
        let key = WatermarkKey::derive(&secret).unwrap();
        assert_ne!(key.as_bytes(), &secret);
        assert_eq!(key, WatermarkKey::derive(&secret).unwrap());
        assert_ne!(key, WatermarkKey::derive(&[2u8; 32]).unwrap());
        assert!(matches!(WatermarkKey::derive(&[1u8; 31]), Err(WatermarkError::ShortSecret { len: 31 })));
    }

    #[test]
    fn debug_shows_fingerprint_not_key() {
        let key = WatermarkKey::from_bytes([0xab; 32]);
        let printed = format!("{key:?}");
        assert_eq!(key.fingerprint().len(), 16);
        assert!(printed.contains(&key.fingerprint()), "{printed}");
        assert!(!printed.to_lowercase().contains("abab"), "{printed}");
        assert!(!printed.contains("171"), "{printed}");
    }

    #[test]
    fn scheme_name_matches_serialized_form() {
        let json = serde_json::to_string(&Scheme::default()).unwrap();
        assert_eq!(json, format!("\"{}\"", Scheme::default().name()));
    }
}
