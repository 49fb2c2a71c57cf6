//! Sampling text from a language model: temperature, top-k and nucleus (top-p) sampling from a
//! seeded ChaCha8 generator, with a hook on the raw logits of every step.

use std::cmp::Ordering;

use burn::tensor::{Int, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::lm::TransformerLm;
use crate::lm::model::token_data;

/// Settings of text generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// Number of tokens to generate after the prompt.
    pub max_tokens: usize,
    /// Divisor of the logits before sampling. 0 picks the most likely token (greedy decoding),
    /// values below 1 sharpen the distribution and values above 1 flatten it.
    pub temperature: f64,
    /// Number of most likely tokens to sample among, at least 1. `None` keeps all.
    pub top_k: Option<usize>,
    /// Probability mass `p` in (0, 1] of nucleus sampling: only the smallest set of most likely
    /// tokens whose probabilities sum to at least `p` is kept (Holtzman et al. 2020, "The Curious
    /// Case of Neural Text Degeneration", eq. 2). `None` keeps all.
    pub top_p: Option<f64>,
    /// Seed of the sampling generator.
    pub seed: u64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self { max_tokens: 200, temperature: 0.8, top_k: None, top_p: None, seed: 0 }
    }
}

impl GenerateConfig {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidConfig`] naming the setting and its valid range.
    pub fn validate(&self) -> Result<(), TrainError> {
        let invalid = |message: String| Err(TrainError::InvalidConfig(message));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return invalid(format!(
                "temperature {} is invalid; use 0 for greedy decoding or a positive number such as 0.8",
                self.temperature
            ));
        }
        if self.top_k == Some(0) {
            return invalid("top-k 0 keeps no token; use at least 1, or leave it unset to keep all".into());
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return invalid(format!("top-p {p} is invalid; use a probability in (0, 1]"));
        }
        Ok(())
    }
}

/// Generates `max_tokens` tokens after `prompt` and returns them, without the prompt.
///
/// Each step computes the logits of the next token and calls `logits_hook` with every token so
/// far (prompt and generated) and the raw logits. It then applies temperature, top-k and top-p to
/// the logits as the hook left them and draws the token. The hook is where a watermark adds its
/// bias.
/// The generator draws once per step whatever the hook does, so a hook that leaves the logits
/// alone gives the same tokens as `|_, _| {}` with the same seed.
///
/// Keys and values of past tokens are cached, so each step processes one position. When the
/// context fills `context_len`, the cache restarts from the last three quarters of the window in
/// one recomputation. After such a restart the model conditions on fewer tokens than
/// [`generate_uncached`], whose window slides by one at every step. A prompt longer than
/// `context_len` is cut to its last `context_len` tokens.
///
/// # Errors
///
/// Returns [`TrainError::InvalidConfig`] for an invalid configuration, an empty prompt or a token
/// id outside the vocabulary, when the hook leaves a NaN logit, or when it leaves no token with a
/// finite logit.
pub fn generate(
    model: &TransformerLm,
    prompt: &[u32],
    config: &GenerateConfig,
    mut logits_hook: impl FnMut(&[u32], &mut [f32]),
) -> Result<Vec<u32>, TrainError> {
    check_prompt(model, prompt, config)?;
    let context_len = model.config().context_len;
    let keep = (context_len - context_len / 4).max(1);
    let mut sampler = Sampler::new(config);
    let mut context = prompt.to_vec();
    let mut cache = model.new_cache();

    let start = context.len().saturating_sub(context_len);
    let mut logits = model.forward_cached(&context[start..], &mut cache)?;
    for step in 0..config.max_tokens {
        let mut values = read_logits(logits)?;
        logits_hook(&context, &mut values);
        let token = sampler.sample(&values)?;
        context.push(token);
        if step + 1 == config.max_tokens {
            break;
        }

        logits = if cache.len() < context_len {
            model.forward_cached(&[token], &mut cache)?
        } else {
            // The window is full: rebuild the cache from the last `keep` tokens in one pass, which
            // leaves room for the next `context_len - keep` tokens at one position each.
            cache = model.new_cache();
            model.forward_cached(&context[context.len() - keep..], &mut cache)?
        };
    }
    Ok(context.split_off(prompt.len()))
}

/// Generates like [`generate`] but recomputes the whole window of the last `context_len` tokens
/// at every step, without a cache.
///
/// Each step costs a full forward pass, so generation is quadratic in length. It is the reference
/// that [`generate`] is checked and timed against. Until the context first exceeds
/// `context_len`, both compute the same logits up to float rounding.
///
/// # Errors
///
/// As [`generate`].
pub fn generate_uncached(
    model: &TransformerLm,
    prompt: &[u32],
    config: &GenerateConfig,
    mut logits_hook: impl FnMut(&[u32], &mut [f32]),
) -> Result<Vec<u32>, TrainError> {
    check_prompt(model, prompt, config)?;
    let context_len = model.config().context_len;
    let device = model.device();
    let mut sampler = Sampler::new(config);
    let mut context = prompt.to_vec();

    for _ in 0..config.max_tokens {
        let window = &context[context.len().saturating_sub(context_len)..];
        let ids = Tensor::<2, Int>::from_data(token_data(window, 1), &device);
        let vocab_size = model.config().vocab_size;
        let logits = model.forward(ids)?.narrow(1, window.len() - 1, 1).reshape([vocab_size]);
        let mut values = read_logits(logits)?;
        logits_hook(&context, &mut values);
        context.push(sampler.sample(&values)?);
    }
    Ok(context.split_off(prompt.len()))
}

fn check_prompt(model: &TransformerLm, prompt: &[u32], config: &GenerateConfig) -> Result<(), TrainError> {
    config.validate()?;
    if prompt.is_empty() {
        return Err(TrainError::InvalidConfig("the prompt is empty; give at least one token".into()));
    }
    model.check_tokens(prompt)
}

fn read_logits(logits: Tensor<1>) -> Result<Vec<f32>, TrainError> {
    logits.into_data().try_to_vec::<f32>().map_err(|e| TrainError::Backend(format!("{e:?}")))
}

/// Draws tokens from logits with temperature, top-k and top-p.
pub(crate) struct Sampler {
    rng: ChaCha8Rng,
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
}

impl Sampler {
    pub(crate) fn new(config: &GenerateConfig) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            temperature: config.temperature,
            top_k: config.top_k,
            top_p: config.top_p,
        }
    }

    /// Draws one token id.
    ///
    /// One uniform value is drawn per call, also under greedy decoding, so the generator's state
    /// depends only on the number of steps.
    pub(crate) fn sample(&mut self, logits: &[f32]) -> Result<u32, TrainError> {
        let uniform: f64 = self.rng.random();
        if let Some(index) = logits.iter().position(|v| v.is_nan()) {
            return Err(TrainError::InvalidConfig(format!(
                "the logit of token {index} is NaN; the logits hook must leave numbers"
            )));
        }

        // Candidates from most to least likely. Equal logits go to the lower id first.
        let mut order: Vec<usize> = (0..logits.len()).filter(|&i| logits[i] > f32::NEG_INFINITY).collect();
        order.sort_by(|&a, &b| logits[b].partial_cmp(&logits[a]).unwrap_or(Ordering::Equal).then(a.cmp(&b)));
        let Some(&best) = order.first() else {
            return Err(TrainError::InvalidConfig(
                "no token has a finite logit; the logits hook must leave at least one".into(),
            ));
        };
        if self.temperature == 0.0 {
            return Ok(best as u32);
        }
        if let Some(k) = self.top_k {
            order.truncate(k);
        }

        // exp((l - l_max) / T) in f64: the largest weight is 1, so nothing overflows. A +inf
        // logit keeps all the mass on the +inf tokens.
        let max = logits[best] as f64;
        let mut weights: Vec<f64> = order
            .iter()
            .map(|&i| {
                let logit = logits[i] as f64;
                if max.is_infinite() {
                    if logit == max { 1.0 } else { 0.0 }
                } else {
                    ((logit - max) / self.temperature).exp()
                }
            })
            .collect();
        if let Some(p) = self.top_p {
            let total: f64 = weights.iter().sum();
            let mut cumulative = 0.0;
            let mut keep = weights.len();
            for (index, weight) in weights.iter().enumerate() {
                cumulative += weight / total;
                if cumulative >= p {
                    keep = index + 1;
                    break;
                }
            }
            weights.truncate(keep);
        }

        let total: f64 = weights.iter().sum();
        let mut threshold = uniform * total;
        for (&index, &weight) in order.iter().zip(&weights) {
            if threshold < weight {
                return Ok(index as u32);
            }
            threshold -= weight;
        }
        // Rounding can leave the threshold just above the last weight. The draw then fell on the
        // last token with a positive weight.
        let last = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
        Ok(order[last] as u32)
    }
}
