//! Trains a transformer language model on a text file for a fixed time and prints one JSON line
//! with training speed, validation bits per token, a unigram baseline and generation speed with
//! and without the key-value cache.
//!
//! `cargo run --release -p zeren-train --example lm_speed -- FILE [char|byte] [MINUTES] [key=value ...]`
//!
//! FILE may be gzip-compressed (`.gz`). The last 10% of the tokens are the validation text.
//! Keys: `d_model`, `n_heads`, `n_layers`, `d_ff`, `context_len`, `dropout`, `batch_size`,
//! `steps_per_epoch`, `learning_rate`, `warmup_steps`, `seed`.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::time::Instant;

use zeren_train::device;
use zeren_train::lm::{
    GenerateConfig, LmProgress, LmTrainConfig, LrSchedule, TransformerLmConfig, fit_lm, generate, generate_uncached,
};

fn read_text(path: &str) -> String {
    let raw = std::fs::read(path).expect("the corpus file is readable");
    if path.ends_with(".gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_string(&mut text).expect("the corpus is gzip UTF-8");
        text
    } else {
        String::from_utf8(raw).expect("the corpus is UTF-8")
    }
}

/// Encodes characters as their rank among the distinct characters, or bytes as themselves.
fn tokenize(text: &str, level: &str) -> (Vec<u32>, usize) {
    if level == "byte" {
        return (text.bytes().map(u32::from).collect(), 256);
    }
    let alphabet: BTreeSet<char> = text.chars().collect();
    let ids: HashMap<char, u32> = alphabet.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
    (text.chars().map(|c| ids[&c]).collect(), alphabet.len())
}

/// Cross-entropy in bits per token of `valid` under the add-one smoothed unigram distribution of
/// `train`: the loss of a model that ignores context.
fn unigram_bits(train: &[u32], valid: &[u32], vocab_size: usize) -> f64 {
    let mut counts = vec![1.0f64; vocab_size];
    for &token in train {
        counts[token as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    valid.iter().map(|&t| -(counts[t as usize] / total).log2()).sum::<f64>() / valid.len() as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().expect("usage: lm_speed FILE [char|byte] [MINUTES] [key=value ...]");
    let level = args.get(1).map_or("char", String::as_str);
    let minutes: f64 = args.get(2).map_or(2.0, |m| m.parse().expect("MINUTES is a number"));
    let settings: HashMap<&str, &str> = args.iter().skip(3).filter_map(|a| a.split_once('=')).collect();
    let setting = |key: &str, default: f64| settings.get(key).map_or(default, |v| v.parse().expect("a number"));

    let text = read_text(path);
    let (tokens, vocab_size) = tokenize(&text, level);
    let split = tokens.len() * 9 / 10;
    let (train, valid) = tokens.split_at(split);

    let defaults = TransformerLmConfig::with_vocab_size(vocab_size);
    let shape = TransformerLmConfig {
        vocab_size,
        context_len: setting("context_len", defaults.context_len as f64) as usize,
        d_model: setting("d_model", defaults.d_model as f64) as usize,
        n_heads: setting("n_heads", defaults.n_heads as f64) as usize,
        n_layers: setting("n_layers", defaults.n_layers as f64) as usize,
        d_ff: setting("d_ff", defaults.d_ff as f64) as usize,
        dropout: setting("dropout", defaults.dropout),
    };
    let base = LmTrainConfig::default();
    let config = LmTrainConfig {
        epochs: 10_000,
        batch_size: setting("batch_size", base.batch_size as f64) as usize,
        steps_per_epoch: setting("steps_per_epoch", base.steps_per_epoch as f64) as usize,
        learning_rate: setting("learning_rate", base.learning_rate),
        warmup_steps: setting("warmup_steps", base.warmup_steps as f64) as usize,
        // Over an open-ended run a cosine schedule would stay at its peak anyway.
        schedule: LrSchedule::Constant,
        patience: None,
        seed: setting("seed", 0.0) as u64,
        time_limit_seconds: Some(minutes * 60.0),
        ..base
    };

    let start = Instant::now();
    let outcome = fit_lm(&shape, &config, train, valid, None, &device::cpu(), &mut |progress| {
        if let LmProgress::Epoch(record) = progress {
            eprintln!(
                "epoch {:>3} at {:>6.1} s: train {:.3} nats, validation {:.3} bits per token, {:.0} tokens/s",
                record.epoch,
                start.elapsed().as_secs_f64(),
                record.train_loss,
                record.validation_bits_per_token.unwrap_or(f64::NAN),
                record.tokens_per_second
            );
        }
    })
    .expect("training runs");
    let seconds = start.elapsed().as_secs_f64();
    let last = outcome.history.last().expect("at least one epoch");
    let best = &outcome.history[outcome.best_epoch - 1];
    let steps = last.steps;
    let window = shape.context_len.min(train.len() - 1);
    // Seconds spent in optimiser steps, without validation.
    let epoch_tokens = (config.steps_per_epoch * config.batch_size * window) as f64;
    let training_seconds: f64 = outcome.history.iter().map(|r| epoch_tokens / r.tokens_per_second).sum();

    let prompt = &valid[..16.min(valid.len())];
    let generation = GenerateConfig { max_tokens: 200, temperature: 0.8, top_k: None, top_p: None, seed: 1 };
    let timer = Instant::now();
    let sample = generate(&outcome.model, prompt, &generation, |_, _| {}).expect("generation runs");
    let cached = sample.len() as f64 / timer.elapsed().as_secs_f64();
    let timer = Instant::now();
    let uncached_tokens = generate_uncached(&outcome.model, prompt, &generation, |_, _| {}).expect("generation runs");
    let uncached = uncached_tokens.len() as f64 / timer.elapsed().as_secs_f64();
    if level == "byte" {
        let bytes: Vec<u8> = sample.iter().map(|&t| t as u8).collect();
        eprintln!("sample: {}", String::from_utf8_lossy(&bytes));
    }

    println!(
        "{{\"corpus\": {path:?}, \"level\": {level:?}, \"vocab_size\": {vocab_size}, \"train_tokens\": {}, \
         \"parameters\": {}, \"model\": {}, \"batch_size\": {}, \"seconds\": {seconds:.1}, \"steps\": {steps}, \
         \"steps_per_second\": {:.2}, \"tokens_per_second\": {:.0}, \"validation_bits_per_token\": {:.4}, \
         \"best_validation_bits_per_token\": {:.4}, \"validation_perplexity\": {:.3}, \"unigram_bits_per_token\": {:.4}, \
         \"generate_tokens_per_second_cached\": {cached:.1}, \"generate_tokens_per_second_uncached\": {uncached:.1}}}",
        train.len(),
        shape.parameter_count(),
        serde_json::to_string(&shape).expect("serialisable"),
        config.batch_size,
        steps as f64 / training_seconds,
        (steps * config.batch_size * window) as f64 / training_seconds,
        last.validation_bits_per_token.unwrap_or(f64::NAN),
        best.validation_bits_per_token.unwrap_or(f64::NAN),
        last.validation_perplexity.unwrap_or(f64::NAN),
        unigram_bits(train, valid, vocab_size),
    );
}
