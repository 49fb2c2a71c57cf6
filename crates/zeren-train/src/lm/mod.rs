//! A small decoder-only transformer language model over token ids: training, saving and
//! generation with a key-value cache.
//!
//! The model maps `u32` token ids to next-token logits. Tokenizers live elsewhere, and any
//! mapping of text to ids below [`TransformerLmConfig::vocab_size`] works, for example the bytes
//! of UTF-8 text with a vocabulary of 256.
//!
//! ```no_run
//! use zeren_train::device;
//! use zeren_train::lm::{GenerateConfig, LmTrainConfig, TransformerLmConfig, fit_lm, generate};
//!
//! let text: Vec<u32> = "to be or not to be ".repeat(50).bytes().map(u32::from).collect();
//! let (train, valid) = text.split_at(900);
//! let shape = TransformerLmConfig { context_len: 32, ..TransformerLmConfig::with_vocab_size(256) };
//! let config = LmTrainConfig { epochs: 3, steps_per_epoch: 50, ..Default::default() };
//! let outcome = fit_lm(&shape, &config, train, valid, None, &device::cpu(), &mut |_| {}).unwrap();
//! let prompt: Vec<u32> = "to be".bytes().map(u32::from).collect();
//! let tokens = generate(&outcome.model, &prompt, &GenerateConfig::default(), |_, _| {}).unwrap();
//! assert_eq!(tokens.len(), 200);
//! ```

mod config;
mod generate;
mod model;
mod train;
mod weights;

pub use config::{MAX_LM_PARAMETERS, TransformerLmConfig};
pub use generate::{GenerateConfig, generate, generate_uncached};
pub use model::{KvCache, TransformerLm};
pub use train::{
    LmEpochRecord, LmProgress, LmStopReason, LmTrainConfig, LmTrainingOutcome, LrSchedule, evaluate_lm, fit_lm,
};

#[cfg(test)]
mod tests;
