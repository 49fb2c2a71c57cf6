//! `zeren lm train` and `zeren lm generate`: a small transformer language model over a character-
//! or byte-level tokenizer, and labelled, optionally watermarked generation from it.

mod generate;
mod train;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use zeren_train::device::DeviceKind;
use zeren_train::lm::LrSchedule;

use crate::error::CliError;

/// Tokenizer file of a language-model run directory, the file `zeren watermark detect` reads.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Weights and model configuration, in safetensors layout.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Resolved settings of the run.
pub const CONFIG_FILE: &str = "config.json";
/// Validation loss, history and timing of the run.
pub const REPORT_FILE: &str = "report.json";

#[derive(Debug, Subcommand)]
pub enum LmCommand {
    /// Train a transformer language model on a text file and write a run directory.
    #[command(allow_negative_numbers = true)]
    Train(Box<LmTrainArgs>),
    /// Generate text from a trained language model, labelled and optionally watermarked.
    #[command(allow_negative_numbers = true)]
    Generate(Box<LmGenerateArgs>),
}

/// Unit of text that one token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerChoice {
    /// One token per character seen at least --min-count times, and one for all other characters.
    Char,
    /// One token per UTF-8 byte: 256 tokens, any language.
    Byte,
    /// Byte-pair encoding learned on the corpus: the 256 bytes and up to --vocab-size - 256
    /// merged byte sequences, any language.
    Bpe,
}

#[derive(Debug, Args)]
pub struct LmTrainArgs {
    /// UTF-8 text file to train on. A name ending in .gz is decompressed.
    #[arg(long, value_name = "FILE")]
    pub corpus: PathBuf,
    /// Tokenizer to fit on the corpus.
    #[arg(long, value_enum, default_value_t = TokenizerChoice::Char)]
    pub tokenizer: TokenizerChoice,
    /// Characters seen fewer times than this share the unknown token (char tokenizer only).
    #[arg(long, value_name = "K")]
    pub min_count: Option<usize>,
    /// Most tokens a BPE tokenizer learns, the 256 bytes included (bpe tokenizer only;
    /// default 1024). Learning stops earlier when no pair of tokens occurs twice.
    #[arg(long, value_name = "N")]
    pub vocab_size: Option<usize>,
    /// Run directory to create (default runs/lm-CORPUS-TIMESTAMP).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// Share of the corpus, taken from its end, that measures the validation loss. 0 turns
    /// validation and early stopping off.
    #[arg(long, value_name = "SHARE", default_value_t = 0.1)]
    pub validation_fraction: f64,
    /// Maximum number of epochs (default 30).
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Optimiser steps per epoch (default 100).
    #[arg(long, value_name = "N")]
    pub steps_per_epoch: Option<usize>,
    /// Windows of text per step (default 16).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Peak learning rate of AdamW (default 0.002).
    #[arg(long, value_name = "RATE")]
    pub learning_rate: Option<f64>,
    /// Steps of linear learning-rate warmup (default 50).
    #[arg(long, value_name = "N")]
    pub warmup_steps: Option<usize>,
    /// Learning-rate schedule after the warmup (default cosine).
    #[arg(long, value_enum)]
    pub schedule: Option<LrSchedule>,
    /// Decoupled weight decay of AdamW (default 0).
    #[arg(long, value_name = "DECAY")]
    pub weight_decay: Option<f64>,
    /// Maximum global L2 norm of the gradient (default 1). Larger gradients are scaled down to it.
    #[arg(long, value_name = "NORM")]
    pub max_grad_norm: Option<f64>,
    /// Stop after this many epochs without a lower validation loss, keeping the best epoch
    /// (default 3).
    #[arg(long, value_name = "EPOCHS")]
    pub patience: Option<usize>,
    /// Stop after the first epoch that ends past this many minutes of training (default: no limit).
    #[arg(long, value_name = "MINUTES")]
    pub max_minutes: Option<f64>,
    /// Tokens the model attends over (default 64).
    #[arg(long, value_name = "TOKENS")]
    pub context_len: Option<usize>,
    /// Width of the embeddings and the residual stream (default 128).
    #[arg(long, value_name = "WIDTH")]
    pub d_model: Option<usize>,
    /// Attention heads per layer, which must divide --d-model (default 4).
    #[arg(long, value_name = "N")]
    pub heads: Option<usize>,
    /// Transformer blocks (default 2).
    #[arg(long, value_name = "N")]
    pub layers: Option<usize>,
    /// Hidden width of each block's feed-forward network (default 512).
    #[arg(long, value_name = "WIDTH")]
    pub d_ff: Option<usize>,
    /// Dropout probability during training, in [0, 1), on embeddings, attention weights and residual
    /// branches (default 0).
    #[arg(long, value_name = "P")]
    pub dropout: Option<f64>,
    /// Seed of the initial weights, the training windows and dropout.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    pub seed: u64,
    /// Also write the best weights to FILE after each improving epoch, so that an interrupted run
    /// leaves them behind.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Private key (from `zeren keygen`) that signs the run's manifest.
    #[arg(long, value_name = "PATH")]
    pub signing_key: Option<PathBuf>,
    /// Device to train on.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Print nothing but errors and the final summary.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct LmGenerateArgs {
    /// Run directory written by `zeren lm train`.
    #[arg(long, value_name = "RUN_DIR")]
    pub model: PathBuf,
    /// Text to continue. The output starts with it.
    #[arg(long, value_name = "TEXT")]
    pub prompt: String,
    /// Number of tokens to generate after the prompt.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub max_tokens: usize,
    /// Sampling temperature. 0 always picks the most likely token.
    #[arg(long, value_name = "T", default_value_t = 0.8)]
    pub temperature: f64,
    /// Sample only among the K most likely tokens.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample only from the most likely tokens that together have probability P (nucleus).
    #[arg(long, value_name = "P")]
    pub top_p: Option<f64>,
    /// Seed of the sampling generator. The same seed, model and flags give the same text.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    pub seed: u64,
    /// Write the text to FILE and its provenance to FILE.meta.json instead of standard output.
    /// Neither file may exist.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Private key written by `zeren keygen`. The text is watermarked with a key derived from
    /// it.
    #[arg(long, value_name = "FILE")]
    pub watermark_key: Option<PathBuf>,
    /// Expected share of the vocabulary in each green list, in (0, 1) (default 0.25).
    #[arg(long, value_name = "G", requires = "watermark_key")]
    pub gamma: Option<f64>,
    /// Amount added to the logits of green tokens, at least 0 (default 2.0).
    #[arg(long, value_name = "D", requires = "watermark_key")]
    pub delta: Option<f64>,
    /// Private key written by `zeren keygen` that signs FILE.meta.json; the signature goes to
    /// FILE.meta.json.sig. Needs --out.
    #[arg(long, value_name = "PATH", requires = "out")]
    pub signing_key: Option<PathBuf>,
    /// Leave out the visible label stating that the text was generated by AI.
    #[arg(long, conflicts_with = "label")]
    pub no_label: bool,
    /// Wording of the visible label, on its own line before the text (default: an English or
    /// Chinese label, following the text's language).
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// Device to generate on.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
}

/// Runs `zeren lm`.
pub fn run(command: LmCommand) -> Result<(), CliError> {
    match command {
        LmCommand::Train(args) => train::train(*args),
        LmCommand::Generate(args) => generate::generate_text(*args),
    }
}
