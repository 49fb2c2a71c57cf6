//! `zeren lm train`: fits a tokenizer on a corpus, trains the model and writes a run directory.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use zeren_train::device;
use zeren_train::lm::{LmEpochRecord, LmProgress, LmStopReason, LmTrainConfig, TransformerLmConfig, fit_lm};
use zeren_watermark::Tokenizer;

use super::{CONFIG_FILE, LmTrainArgs, REPORT_FILE, TOKENIZER_FILE, TokenizerChoice, WEIGHTS_FILE};
use crate::error::CliError;
use crate::manifest::{self, Resource, RunPredicate};
use crate::run_dir::RunDirectory;

/// Tokens of a BPE tokenizer when `--vocab-size` is not given.
const DEFAULT_BPE_VOCAB_SIZE: usize = 1024;

/// Largest `--vocab-size`: learning costs one pass over the corpus's distinct words per merge.
const MAX_BPE_VOCAB_SIZE: usize = 65_536;

/// `config.json`: everything needed to repeat the run.
#[derive(Debug, Serialize, Deserialize)]
struct RunConfig {
    corpus: String,
    tokenizer: TokenizerChoice,
    min_count: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vocab_size: Option<usize>,
    validation_fraction: f64,
    model: TransformerLmConfig,
    training: LmTrainConfig,
}

/// `report.json`: how training went.
#[derive(Debug, Serialize)]
struct RunReport {
    zeren_version: String,
    command: Vec<String>,
    vocab_size: usize,
    parameters: usize,
    train_tokens: usize,
    validation_tokens: usize,
    /// Validation loss of the kept epoch, in nats per token.
    validation_loss: Option<f64>,
    validation_bits_per_token: Option<f64>,
    validation_perplexity: Option<f64>,
    /// Bits per token of the validation text under the training text's add-one smoothed unigram
    /// distribution: what a model that ignores context achieves.
    unigram_bits_per_token: Option<f64>,
    best_epoch: usize,
    epochs_run: usize,
    steps: usize,
    stop_reason: LmStopReason,
    seconds: f64,
    tokens_per_second: f64,
    history: Vec<LmEpochRecord>,
}

pub(super) fn train(args: LmTrainArgs) -> Result<(), CliError> {
    let started = Instant::now();
    if args.min_count.is_some() && args.tokenizer != TokenizerChoice::Char {
        return Err(CliError::usage("--min-count applies to --tokenizer char only; drop it or use --tokenizer char"));
    }
    if args.vocab_size.is_some() && args.tokenizer != TokenizerChoice::Bpe {
        return Err(CliError::usage("--vocab-size applies to --tokenizer bpe only; drop it or use --tokenizer bpe"));
    }
    let vocab_size = args.vocab_size.unwrap_or(DEFAULT_BPE_VOCAB_SIZE);
    if !(257..=MAX_BPE_VOCAB_SIZE).contains(&vocab_size) {
        return Err(CliError::usage(format!(
            "--vocab-size {vocab_size} is invalid; use 257 to {MAX_BPE_VOCAB_SIZE} (the 256 bytes and at least one merge)"
        )));
    }
    if !(0.0..1.0).contains(&args.validation_fraction) {
        return Err(CliError::usage(format!(
            "--validation-fraction {} is invalid; use a share in [0, 1), such as 0.1",
            args.validation_fraction
        )));
    }
    let signing_key = args.signing_key.as_deref().map(manifest::read_signing_key).transpose()?;
    let device = device::select(args.device)?;

    let (text, corpus_bytes) = read_corpus(&args.corpus)?;
    let min_count = args.min_count.unwrap_or(1);
    // The tokenizer is fitted on the whole corpus, validation part included, so that validation
    // characters are scored as themselves rather than as the unknown token.
    let tokenizer = match args.tokenizer {
        TokenizerChoice::Char => Tokenizer::fit_chars(&text, min_count).map_err(|e| CliError::usage(e.to_string()))?,
        TokenizerChoice::Byte => Tokenizer::byte_level(),
        TokenizerChoice::Bpe => {
            let tokenizer = Tokenizer::fit_bpe(&text, vocab_size).map_err(|e| CliError::usage(e.to_string()))?;
            if tokenizer.vocab_size() < vocab_size {
                tracing::warn!(
                    "the BPE tokenizer has {} tokens, fewer than --vocab-size {vocab_size}: no other pair of tokens \
                     occurs twice in the corpus",
                    tokenizer.vocab_size()
                );
            }
            tokenizer
        }
    };
    let tokens = tokenizer.encode(&text);
    let validation_len = (tokens.len() as f64 * args.validation_fraction).round() as usize;
    let (train_tokens, validation_tokens) = tokens.split_at(tokens.len() - validation_len);
    if args.validation_fraction > 0.0 && validation_tokens.len() < 2 {
        return Err(CliError::usage(format!(
            "{}: the validation share {} of {} tokens leaves fewer than 2 tokens; use a longer corpus or a larger share",
            args.corpus.display(),
            args.validation_fraction,
            tokens.len()
        )));
    }

    let model_config = model_config(&args, tokenizer.vocab_size());
    let train_config = train_config(&args, !validation_tokens.is_empty());
    model_config.validate()?;
    train_config.validate()?;

    // Claim the output directory before the long part, so a clash is reported at once.
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.corpus));
    let run_dir = RunDirectory::create(&out)?;

    let progress = StepProgress::new(&train_config, args.quiet);
    let outcome = fit_lm(
        &model_config,
        &train_config,
        train_tokens,
        validation_tokens,
        args.checkpoint.as_deref(),
        &device,
        &mut |event| progress.show(event),
    );
    progress.finish();
    let outcome = outcome?;

    let best = &outcome.history[outcome.best_epoch - 1];
    let steps = outcome.history.last().map_or(0, |record| record.steps);
    let window = model_config.context_len.min(train_tokens.len() - 1);
    // Seconds spent in optimiser steps, without validation.
    let epoch_tokens = (train_config.steps_per_epoch * train_config.batch_size * window) as f64;
    let training_seconds: f64 = outcome.history.iter().map(|r| epoch_tokens / r.tokens_per_second).sum();
    let report = RunReport {
        zeren_version: env!("CARGO_PKG_VERSION").to_string(),
        command: std::env::args().collect(),
        vocab_size: model_config.vocab_size,
        parameters: model_config.parameter_count(),
        train_tokens: train_tokens.len(),
        validation_tokens: validation_tokens.len(),
        validation_loss: best.validation_loss,
        validation_bits_per_token: best.validation_bits_per_token,
        validation_perplexity: best.validation_perplexity,
        unigram_bits_per_token: (!validation_tokens.is_empty())
            .then(|| unigram_bits(train_tokens, validation_tokens, model_config.vocab_size)),
        best_epoch: outcome.best_epoch,
        epochs_run: outcome.history.len(),
        steps,
        stop_reason: outcome.stop_reason.clone(),
        seconds: started.elapsed().as_secs_f64(),
        tokens_per_second: (steps * train_config.batch_size * window) as f64 / training_seconds.max(f64::EPSILON),
        history: outcome.history.clone(),
    };
    let config = RunConfig {
        corpus: args.corpus.display().to_string(),
        tokenizer: args.tokenizer,
        min_count: (args.tokenizer == TokenizerChoice::Char).then_some(min_count),
        vocab_size: (args.tokenizer == TokenizerChoice::Bpe).then_some(vocab_size),
        validation_fraction: args.validation_fraction,
        model: model_config,
        training: train_config,
    };

    run_dir.write(TOKENIZER_FILE, to_json(&tokenizer)?)?;
    run_dir.write(WEIGHTS_FILE, outcome.model.to_bytes()?)?;
    run_dir.write(CONFIG_FILE, to_json(&config)?)?;
    run_dir.write(REPORT_FILE, to_json(&report)?)?;
    let predicate = RunPredicate {
        zeren_version: report.zeren_version.clone(),
        command: report.command.clone(),
        seed: args.seed,
        materials: vec![Resource::of(&args.corpus.display().to_string(), &corpus_bytes)],
    };
    let (manifest_bytes, signature) = manifest::build(run_dir.written(), predicate, signing_key.as_ref())?;
    run_dir.write(manifest::MANIFEST, &manifest_bytes)?;
    if let Some(signature) = signature {
        run_dir.write(manifest::SIGNATURE, format!("{signature}\n"))?;
    }
    let path = run_dir.commit()?;
    print_summary(&path, &report);
    Ok(())
}

fn model_config(args: &LmTrainArgs, vocab_size: usize) -> TransformerLmConfig {
    let defaults = TransformerLmConfig::with_vocab_size(vocab_size);
    TransformerLmConfig {
        vocab_size,
        context_len: args.context_len.unwrap_or(defaults.context_len),
        d_model: args.d_model.unwrap_or(defaults.d_model),
        n_heads: args.heads.unwrap_or(defaults.n_heads),
        n_layers: args.layers.unwrap_or(defaults.n_layers),
        d_ff: args.d_ff.unwrap_or(defaults.d_ff),
        dropout: args.dropout.unwrap_or(defaults.dropout),
    }
}

fn train_config(args: &LmTrainArgs, has_validation: bool) -> LmTrainConfig {
    let defaults = LmTrainConfig::default();
    // Early stopping needs validation text, so without it the default patience is off.
    let default_patience = if has_validation { defaults.patience } else { None };
    LmTrainConfig {
        epochs: args.epochs.unwrap_or(defaults.epochs),
        steps_per_epoch: args.steps_per_epoch.unwrap_or(defaults.steps_per_epoch),
        batch_size: args.batch_size.unwrap_or(defaults.batch_size),
        learning_rate: args.learning_rate.unwrap_or(defaults.learning_rate),
        warmup_steps: args.warmup_steps.unwrap_or(defaults.warmup_steps),
        schedule: args.schedule.unwrap_or(defaults.schedule),
        weight_decay: args.weight_decay.unwrap_or(defaults.weight_decay),
        max_grad_norm: args.max_grad_norm.or(defaults.max_grad_norm),
        patience: args.patience.or(default_patience),
        min_delta: defaults.min_delta,
        validation_windows: defaults.validation_windows,
        seed: args.seed,
        time_limit_seconds: args.max_minutes.map(|minutes| minutes * 60.0),
    }
}

/// Reads a UTF-8 corpus, decompressing a `.gz` file, and returns the text and the file's bytes.
fn read_corpus(path: &Path) -> Result<(String, Vec<u8>), CliError> {
    if !path.is_file() {
        return Err(CliError::usage(format!("{}: file not found; check --corpus", path.display())));
    }
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read the corpus", path.display()))?;
    let decompressed = if path.extension().is_some_and(|e| e == "gz") {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut text).with_context(|| {
            format!("{}: not a valid gzip file; decompress it or drop the .gz from its name", path.display())
        })?;
        text
    } else {
        bytes.clone()
    };
    // Bad content is a failure of the data (exit 1), as for every other input file.
    let text = String::from_utf8(decompressed).map_err(|e| {
        CliError::Failure(anyhow::anyhow!(
            "{}: not valid UTF-8 (invalid byte at offset {}); convert the corpus to UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    if text.chars().count() < 2 {
        return Err(CliError::Failure(anyhow::anyhow!(
            "{}: the corpus has fewer than 2 characters; give more text",
            path.display()
        )));
    }
    Ok((text, bytes))
}

/// Cross-entropy in bits per token of `valid` under the add-one smoothed unigram distribution of
/// `train`.
fn unigram_bits(train: &[u32], valid: &[u32], vocab_size: usize) -> f64 {
    let mut counts = vec![1.0f64; vocab_size];
    for &token in train {
        counts[token as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    valid.iter().map(|&token| -(counts[token as usize] / total).log2()).sum::<f64>() / valid.len() as f64
}

fn default_out(corpus: &Path) -> PathBuf {
    let name = corpus.file_name().map_or("corpus".into(), |n| n.to_string_lossy().into_owned());
    let stem = name.split('.').next().filter(|s| !s.is_empty()).unwrap_or("corpus");
    crate::config::default_out(&format!("lm-{stem}"))
}

fn print_summary(path: &Path, report: &RunReport) {
    match (report.validation_bits_per_token, report.validation_perplexity, report.unigram_bits_per_token) {
        (Some(bits), Some(perplexity), Some(unigram)) => println!(
            "zeren: wrote {}: validation {bits:.3} bits per token (perplexity {perplexity:.2}, unigram baseline \
             {unigram:.3} bits) at epoch {} of {}",
            path.display(),
            report.best_epoch,
            report.epochs_run
        ),
        _ => println!(
            "zeren: wrote {}: {} epochs, no validation text, final training loss {:.3} nats per token",
            path.display(),
            report.epochs_run,
            report.history.last().map_or(f64::NAN, |r| r.train_loss)
        ),
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, CliError> {
    let mut json = serde_json::to_string_pretty(value).map_err(|e| CliError::Failure(e.into()))?;
    json.push('\n');
    Ok(json)
}

/// Shows training progress step by step: a bar on a terminal, one plain line per epoch otherwise
/// (CI logs), nothing when quiet.
struct StepProgress {
    bar: Option<ProgressBar>,
    plain: bool,
    epochs: usize,
}

impl StepProgress {
    fn new(config: &LmTrainConfig, quiet: bool) -> Self {
        let epochs = config.epochs;
        if quiet {
            return Self { bar: None, plain: false, epochs };
        }
        if !std::io::stderr().is_terminal() {
            return Self { bar: None, plain: true, epochs };
        }
        let bar = ProgressBar::new((config.epochs * config.steps_per_epoch) as u64);
        let style = ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} [{elapsed} elapsed, ~{eta} left]")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        Self { bar: Some(bar), plain: false, epochs }
    }

    fn show(&self, event: LmProgress<'_>) {
        match event {
            LmProgress::Step { .. } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            LmProgress::Epoch(record) => {
                // Both losses in bits per token, so that they compare directly.
                let mut message = format!("train {:.3}", record.train_loss / std::f64::consts::LN_2);
                if let Some(bits) = record.validation_bits_per_token {
                    message.push_str(&format!(", validation {bits:.3}"));
                }
                message.push_str(" bits per token");
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("(epoch {}: {message})", record.epoch));
                } else if self.plain {
                    eprintln!(
                        "zeren: epoch {}/{}: {message} ({:.1} s, {:.0} tokens/s)",
                        record.epoch, self.epochs, record.seconds, record.tokens_per_second
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
