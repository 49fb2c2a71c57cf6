//! Evaluates the text watermark end to end on one corpus.
//!
//! Trains a small transformer on the first 90% of the corpus for a time budget, then generates
//! texts with and without the watermark (Kirchenbauer et al. 2023, gamma 0.25, delta 2, context
//! width 1) from prompts taken out of the held-out 10%, and takes as many human passages of the
//! same length from the held-out text. It prints, as a Markdown table: the true-positive rate at
//! an empirical false-positive rate of 1% and at z >= 4, the false-positive rate on human text at
//! z >= 4, the perplexity of both kinds of generation under the (unwatermarked) model, the
//! true-positive rate after replacing 10%, 20% and 30% of the tokens at random, and generation
//! speed with and without the watermark.
//!
//! ```sh
//! cargo run --release -p zeren-cli --example watermark_eval -- CORPUS.txt char|byte|bpe [SECONDS] [TEXTS] [TOKENS]
//! ```

use std::error::Error;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zeren_train::device;
use zeren_train::lm::{GenerateConfig, LmTrainConfig, TransformerLmConfig, evaluate_lm, fit_lm, generate};
use zeren_watermark::{Detector, DetectorConfig, Tokenizer, WatermarkKey, WatermarkParams, Watermarker};

/// Tokens of each prompt, taken from the held-out text.
const PROMPT_TOKENS: usize = 16;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: watermark_eval CORPUS.txt char|byte|bpe [SECONDS] [TEXTS] [TOKENS]";
    let corpus = args.first().ok_or(usage)?;
    let kind = args.get(1).map_or("char", String::as_str);
    let seconds: f64 = args.get(2).map_or(Ok(180.0), |s| s.parse())?;
    let texts: usize = args.get(3).map_or(Ok(500), |s| s.parse())?;
    let length: usize = args.get(4).map_or(Ok(200), |s| s.parse())?;

    let text = std::fs::read_to_string(corpus)?;
    let mut split = text.len() * 9 / 10;
    while !text.is_char_boundary(split) {
        split += 1;
    }
    let (train_text, held_text) = text.split_at(split);
    let tokenizer = match kind {
        "char" => Tokenizer::fit_chars(train_text, 2)?,
        "byte" => Tokenizer::byte_level(),
        "bpe" => Tokenizer::fit_bpe(train_text, 1024)?,
        other => return Err(format!("tokenizer {other} is unknown; use char, byte or bpe").into()),
    };
    let train_ids = tokenizer.encode(train_text);
    let held_ids = tokenizer.encode(held_text);
    // The first half of the held-out text stops training early; prompts and human passages come
    // from the second half, which the model never saw.
    let (valid_ids, human_pool) = held_ids.split_at(held_ids.len() / 2);
    if human_pool.len() < length + PROMPT_TOKENS + 1 {
        return Err(format!("{corpus}: the held-out text is too short for passages of {length} tokens").into());
    }

    let shape = TransformerLmConfig::with_vocab_size(tokenizer.vocab_size());
    let config = LmTrainConfig { epochs: 10_000, time_limit_seconds: Some(seconds), ..LmTrainConfig::default() };
    let started = Instant::now();
    let outcome = fit_lm(&shape, &config, &train_ids, valid_ids, None, &device::cpu(), &mut |_| {})?;
    let model = outcome.model;
    let trained = started.elapsed().as_secs_f64();
    let validation_bits = evaluate_lm(&model, valid_ids, 256, 16)? / std::f64::consts::LN_2;

    // A fixed key makes the run repeatable; any 32 bytes serve.
    let key = WatermarkKey::derive(b"zeren watermark evaluation key, not secret")?;
    let params = WatermarkParams::default();
    let watermarker = Watermarker::for_tokenizer(&key, params.clone(), &tokenizer)?;
    let detector = Detector::new(&key, &params, DetectorConfig::default())?;
    let unknown = tokenizer.unknown_id();

    let mut rng = ChaCha8Rng::seed_from_u64(2023);
    let mut passage = |len: usize| {
        let start = rng.random_range(0..human_pool.len() - len);
        human_pool[start..start + len].to_vec()
    };
    let prompts: Vec<Vec<u32>> = (0..texts).map(|_| passage(PROMPT_TOKENS)).collect();
    let human: Vec<Vec<u32>> = (0..texts).map(|_| passage(length)).collect();

    let settings = |seed: u64| GenerateConfig { max_tokens: length, temperature: 1.0, top_k: None, top_p: None, seed };
    let started = Instant::now();
    let mut marked = Vec::with_capacity(texts);
    for (i, prompt) in prompts.iter().enumerate() {
        marked.push(generate(&model, prompt, &settings(i as u64), |context, logits| {
            watermarker.apply(context, logits).expect("logits have the vocabulary's length");
        })?);
    }
    let marked_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut plain = Vec::with_capacity(texts);
    for (i, prompt) in prompts.iter().enumerate() {
        plain.push(generate(&model, prompt, &settings(i as u64), |_, _| {})?);
    }
    let plain_seconds = started.elapsed().as_secs_f64();

    // Scores go through text, as `zeren watermark detect` does: re-encoding what a BPE model
    // generated can split it into other tokens than it sampled.
    let z = |ids: &[u32]| detector.detect_ids(&tokenizer.encode(&tokenizer.decode(ids)), unknown).z_score;
    let z_marked: Vec<f64> = marked.iter().map(|t| z(t)).collect();
    let z_plain: Vec<f64> = plain.iter().map(|t| z(t)).collect();
    let mut z_human: Vec<f64> = human.iter().map(|t| z(t)).collect();
    z_human.sort_by(f64::total_cmp);
    // The threshold that 1% of human passages exceed: the empirical 99th percentile.
    let threshold = z_human[(z_human.len() * 99).div_ceil(100).min(z_human.len()) - 1];
    let share = |values: &[f64], above: f64| values.iter().filter(|&&v| v > above).count() as f64 / values.len() as f64;
    let share_at_least =
        |values: &[f64], bound: f64| values.iter().filter(|&&v| v >= bound).count() as f64 / values.len() as f64;

    let perplexity = |set: &[Vec<u32>]| -> Result<f64, Box<dyn Error>> {
        let mut stream = Vec::new();
        for (prompt, generated) in prompts.iter().zip(set) {
            stream.extend_from_slice(prompt);
            stream.extend_from_slice(generated);
        }
        Ok(evaluate_lm(&model, &stream, 2 * set.len(), 16)?.exp())
    };

    let mut attacked = Vec::new();
    for fraction in [0.1, 0.2, 0.3] {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let scores: Vec<f64> = marked
            .iter()
            .map(|tokens| {
                let mut tokens = tokens.clone();
                let replaced = (fraction * tokens.len() as f64).round() as usize;
                for _ in 0..replaced {
                    let at = rng.random_range(0..tokens.len());
                    // Any known token; the unknown token (id 0 of a character vocabulary) is left out.
                    let low = u32::from(unknown.is_some());
                    tokens[at] = rng.random_range(low..tokenizer.vocab_size() as u32);
                }
                z(&tokens)
            })
            .collect();
        attacked.push((fraction, share_at_least(&scores, 4.0)));
    }

    let name = std::path::Path::new(corpus).file_name().map_or(corpus.clone(), |n| n.to_string_lossy().into_owned());
    println!("## {name} ({kind} tokenizer, vocabulary {})\n", tokenizer.vocab_size());
    println!(
        "Model: {} parameters, trained {trained:.0} s ({} epochs); validation {validation_bits:.3} bits per token.",
        shape.parameter_count(),
        outcome.history.len()
    );
    println!(
        "{texts} texts of {length} tokens per set, temperature 1, gamma {}, delta {}, context width {}.\n",
        params.gamma, params.delta, params.context_width
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| z threshold at empirical FPR 1% (human text) | {threshold:.2} |");
    println!("| TPR at empirical FPR 1% | {:.3} |", share(&z_marked, threshold));
    println!("| TPR at z >= 4 | {:.3} |", share_at_least(&z_marked, 4.0));
    println!("| FPR at z >= 4, human passages | {:.3} |", share_at_least(&z_human, 4.0));
    println!("| FPR at z >= 4, unwatermarked generations | {:.3} |", share_at_least(&z_plain, 4.0));
    println!(
        "| median z, watermarked / unwatermarked / human | {:.2} / {:.2} / {:.2} |",
        median(&z_marked),
        median(&z_plain),
        median(&z_human)
    );
    println!("| perplexity under the model, watermarked | {:.2} |", perplexity(&marked)?);
    println!("| perplexity under the model, unwatermarked | {:.2} |", perplexity(&plain)?);
    for (fraction, tpr) in attacked {
        println!("| TPR at z >= 4 after replacing {:.0}% of tokens | {tpr:.3} |", fraction * 100.0);
    }
    let total = (texts * length) as f64;
    println!("| generation, tokens/s, watermarked | {:.0} |", total / marked_seconds);
    println!("| generation, tokens/s, unwatermarked | {:.0} |", total / plain_seconds);
    println!("| watermark cost in generation time | {:+.1}% |", (marked_seconds / plain_seconds - 1.0) * 100.0);
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
