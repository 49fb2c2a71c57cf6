//! Training a language model: random windows, AdamW, a warmup and cosine schedule, gradient
//! clipping by global norm, and early stopping on validation loss.

use std::f64::consts::{LN_2, PI};
use std::path::Path;
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::lm::model::{DropoutSource, check_token_ids, token_data};
use crate::lm::{TransformerLm, TransformerLmConfig};

/// Learning-rate schedule after the warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The peak learning rate throughout.
    Constant,
    /// Cosine decay from the peak to a tenth of it at the last planned step (Loshchilov and
    /// Hutter 2017, eq. 5, without restarts).
    #[default]
    Cosine,
}

/// Fraction of the peak learning rate that the cosine schedule ends at.
const COSINE_FLOOR: f64 = 0.1;

/// Settings of a language-model training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmTrainConfig {
    /// Maximum number of epochs. Validation, early stopping and checkpoints run after each.
    pub epochs: usize,
    /// Optimiser steps per epoch. An epoch is a fixed number of steps rather than a pass over
    /// the text, because batches are random windows.
    pub steps_per_epoch: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// Peak learning rate of AdamW.
    pub learning_rate: f64,
    /// Steps of linear warmup from 0 to the peak learning rate.
    pub warmup_steps: usize,
    /// Schedule after the warmup.
    pub schedule: LrSchedule,
    /// Decoupled weight decay of AdamW (Loshchilov and Hutter 2019). 0 makes it plain Adam.
    pub weight_decay: f64,
    /// Maximum global L2 norm of the gradient over all parameters, enforced by rescaling. `None`
    /// turns clipping off.
    pub max_grad_norm: Option<f64>,
    /// Stop when the validation loss has not improved by more than `min_delta` for this many
    /// epochs, and keep the best epoch's weights. Needs validation tokens.
    pub patience: Option<usize>,
    /// Smallest decrease of the validation loss, in nats per token, that counts as an improvement.
    pub min_delta: f64,
    /// Maximum number of fixed, evenly spaced windows the validation loss is measured on.
    pub validation_windows: usize,
    /// Seed of the initial weights, the training windows and the dropout masks.
    pub seed: u64,
    /// Stop after the first epoch that ends past this many seconds of training. The number of
    /// epochs run then depends on the machine's speed, so results are no longer reproducible.
    pub time_limit_seconds: Option<f64>,
}

impl Default for LmTrainConfig {
    /// Creates the defaults: 30 epochs of 100 steps, batches of 16 windows, peak learning rate
    /// 2e-3 after 50 warmup steps with cosine decay, clipping at norm 1, patience 3, 64
    /// validation windows, seed 0. Small batches and the high rate suit the few minutes of CPU
    /// training that a small character-level model gets.
    fn default() -> Self {
        Self {
            epochs: 30,
            steps_per_epoch: 100,
            batch_size: 16,
            learning_rate: 2e-3,
            warmup_steps: 50,
            schedule: LrSchedule::Cosine,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
            patience: Some(3),
            min_delta: 0.0,
            validation_windows: 64,
            seed: 0,
            time_limit_seconds: None,
        }
    }
}

impl LmTrainConfig {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidConfig`] naming the setting and its valid range.
    pub fn validate(&self) -> Result<(), TrainError> {
        let invalid = |message: String| Err(TrainError::InvalidConfig(message));
        if self.epochs == 0 {
            return invalid("epochs must be at least 1".into());
        }
        if self.steps_per_epoch == 0 {
            return invalid("steps per epoch must be at least 1".into());
        }
        if self.batch_size == 0 {
            return invalid("batch size must be at least 1".into());
        }

        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid(format!(
                "learning rate {} is invalid; use a positive number such as 0.001",
                self.learning_rate
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return invalid(format!("weight decay {} is invalid; use a value of 0 or more", self.weight_decay));
        }
        if let Some(norm) = self.max_grad_norm
            && !(norm.is_finite() && norm > 0.0)
        {
            return invalid(format!("max grad norm {norm} is invalid; use a positive number such as 1.0"));
        }

        if self.patience == Some(0) {
            return invalid("patience must be at least 1 epoch".into());
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return invalid(format!("min delta {} is invalid; use a value of 0 or more", self.min_delta));
        }
        if self.validation_windows == 0 {
            return invalid("validation windows must be at least 1".into());
        }
        if let Some(limit) = self.time_limit_seconds
            && !(limit.is_finite() && limit > 0.0)
        {
            return invalid(format!("time limit {limit} s is invalid; use a positive number of seconds"));
        }
        Ok(())
    }

    /// Computes the learning rate of step `step`, counted from 0.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.learning_rate * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.schedule {
            LrSchedule::Constant => self.learning_rate,
            LrSchedule::Cosine => {
                let total = self.epochs.saturating_mul(self.steps_per_epoch);
                let decay_steps = total.saturating_sub(self.warmup_steps).max(1);
                let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
                let floor = self.learning_rate * COSINE_FLOOR;
                floor + 0.5 * (self.learning_rate - floor) * (1.0 + (PI * progress).cos())
            }
        }
    }
}

/// Record of one epoch of language-model training. Losses are mean cross-entropies in nats per
/// token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmEpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Optimiser steps taken so far, over all epochs.
    pub steps: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Loss on the validation windows after the epoch.
    pub validation_loss: Option<f64>,
    /// Validation loss in bits per token, `loss / ln 2`.
    pub validation_bits_per_token: Option<f64>,
    /// Validation perplexity, `exp(loss)`.
    pub validation_perplexity: Option<f64>,
    /// Learning rate of the epoch's last step.
    pub learning_rate: f64,
    /// Training tokens (predicted positions) per second over the epoch's steps.
    pub tokens_per_second: f64,
    /// Wall-clock seconds of the epoch, validation included.
    pub seconds: f64,
    /// Whether the validation loss improved on the best so far, which saves a checkpoint.
    pub improved: bool,
}

/// Progress of a training run, reported to the caller's callback.
#[derive(Debug, Clone, Copy)]
pub enum LmProgress<'a> {
    /// One optimiser step finished.
    Step {
        /// Epoch number, from 1.
        epoch: usize,
        /// Step within the epoch, from 1.
        step: usize,
        /// Steps per epoch.
        steps_per_epoch: usize,
        /// Training loss of the step's batch.
        loss: f64,
    },
    /// An epoch finished, validation included.
    Epoch(&'a LmEpochRecord),
}

/// Reason language-model training stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum LmStopReason {
    /// The epoch budget was used up.
    MaxEpochs,
    /// The validation loss did not improve for `patience` epochs.
    EarlyStopping { patience: usize },
    /// The time limit was reached.
    TimeLimit { seconds: f64 },
}

/// A trained language model and how it got there.
#[derive(Debug)]
pub struct LmTrainingOutcome {
    /// The trained model: the best epoch's weights when there are validation tokens, otherwise
    /// the last epoch's.
    pub model: TransformerLm,
    /// One record per epoch run.
    pub history: Vec<LmEpochRecord>,
    /// Reason training stopped.
    pub stop_reason: LmStopReason,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
}

/// Trains a transformer language model on `train_tokens`, measuring the loss on
/// `valid_tokens` after each epoch when there are any.
///
/// Each step draws `batch_size` windows of `context_len + 1` tokens at random offsets, or fewer
/// tokens when the text is shorter, and minimises the mean cross-entropy of predicting every
/// window position from the positions before it. With validation tokens the weights of the epoch
/// with the lowest validation loss are kept and, when `checkpoint` is given, written there
/// atomically after each improving epoch.
///
/// Same seed, data and configuration give bit-identical weights on the CPU backend: initial
/// weights, window offsets and dropout masks come from seeded ChaCha8 generators, and no step
/// draws from the backend's own random generator. A time limit breaks this, because the number
/// of epochs then depends on the machine.
///
/// # Errors
///
/// Returns an error for an invalid configuration, a token id outside the vocabulary, fewer than
/// two training tokens, early stopping without validation tokens, a loss that becomes NaN or
/// infinite, or a checkpoint that cannot be written.
pub fn fit_lm(
    model_config: &TransformerLmConfig,
    config: &LmTrainConfig,
    train_tokens: &[u32],
    valid_tokens: &[u32],
    checkpoint: Option<&Path>,
    device: &Device,
    on_progress: &mut dyn FnMut(LmProgress<'_>),
) -> Result<LmTrainingOutcome, TrainError> {
    config.validate()?;
    model_config.validate()?;
    check_token_ids(train_tokens, model_config.vocab_size)?;
    check_token_ids(valid_tokens, model_config.vocab_size)?;
    if train_tokens.len() < 2 {
        return Err(TrainError::InvalidConfig(format!(
            "the training text has {} tokens; it needs at least 2",
            train_tokens.len()
        )));
    }
    if valid_tokens.len() == 1 {
        return Err(TrainError::InvalidConfig(
            "the validation text has 1 token; it needs at least 2, or none to skip validation".into(),
        ));
    }
    if config.patience.is_some() && valid_tokens.is_empty() {
        return Err(TrainError::InvalidConfig(
            "early stopping (patience) needs validation tokens; give a validation text or turn patience off".into(),
        ));
    }

    let autodiff = device.clone().autodiff();
    let mut model = TransformerLm::init(model_config, config.seed, &autodiff)?;
    let mut optimizer = AdamWConfig::new()
        // β2 = 0.99 rather than 0.999 suits the few tokens per step of small character-level
        // models (Karpathy's nanoGPT, config/train_shakespeare_char.py).
        .with_beta_2(0.99)
        .with_epsilon(1e-8)
        .with_weight_decay(config.weight_decay as f32)
        .init();
    let mut window_rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(0x77_1d0f));
    let mut dropout_rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(0xd120_9017));

    let window_len = model_config.context_len.min(train_tokens.len() - 1);
    let validation = ValidationWindows::new(valid_tokens, model_config.context_len, config.validation_windows);
    let start = Instant::now();
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, TransformerLm)> = None;
    let mut stop_reason = LmStopReason::MaxEpochs;
    let mut step = 0;

    for epoch in 1..=config.epochs {
        let epoch_start = Instant::now();
        let mut loss_sum = 0.0;
        let mut learning_rate = config.learning_rate;
        for step_in_epoch in 1..=config.steps_per_epoch {
            let (inputs, targets) = sample_windows(train_tokens, window_len, config.batch_size, &mut window_rng);
            let inputs = Tensor::<2, Int>::from_data(inputs, &autodiff);
            let targets = Tensor::<2, Int>::from_data(targets, &autodiff);
            let dropout = DropoutSource { probability: model_config.dropout, rng: &mut dropout_rng };
            let logits = model.forward_with_dropout(inputs, Some(dropout));
            let loss = mean_cross_entropy(logits, targets);
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged { epoch, learning_rate });
            }
            loss_sum += loss_value;

            let mut gradients = GradientsParams::from_grads(loss.backward(), &model);
            if let Some(max_norm) = config.max_grad_norm {
                gradients = clip_global_norm(&model, gradients, max_norm);
            }
            learning_rate = config.learning_rate_at(step);
            model = optimizer.step(learning_rate, model, gradients);
            step += 1;
            on_progress(LmProgress::Step {
                epoch,
                step: step_in_epoch,
                steps_per_epoch: config.steps_per_epoch,
                loss: loss_value,
            });
        }
        let training_seconds = epoch_start.elapsed().as_secs_f64();

        let validation_loss = match &validation {
            Some(windows) => Some(windows.mean_loss(&model.valid(), config.batch_size)?),
            None => None,
        };
        let improved = match (validation_loss, &best) {
            (Some(loss), Some((best_loss, _, _))) => loss < best_loss - config.min_delta,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if improved && let Some(loss) = validation_loss {
            if let Some(path) = checkpoint {
                model.valid().save(path)?;
            }
            best = Some((loss, epoch, model.clone()));
        }

        let record = LmEpochRecord {
            epoch,
            steps: step,
            train_loss: loss_sum / config.steps_per_epoch as f64,
            validation_loss,
            validation_bits_per_token: validation_loss.map(|loss| loss / LN_2),
            validation_perplexity: validation_loss.map(f64::exp),
            learning_rate,
            tokens_per_second: (config.steps_per_epoch * config.batch_size * window_len) as f64 / training_seconds,
            seconds: epoch_start.elapsed().as_secs_f64(),
            improved,
        };
        on_progress(LmProgress::Epoch(&record));
        history.push(record);

        if let (Some(patience), Some((_, best_epoch, _))) = (config.patience, &best)
            && epoch - best_epoch >= patience
        {
            stop_reason = LmStopReason::EarlyStopping { patience };
            break;
        }
        if let Some(limit) = config.time_limit_seconds
            && start.elapsed().as_secs_f64() >= limit
            && epoch < config.epochs
        {
            stop_reason = LmStopReason::TimeLimit { seconds: limit };
            break;
        }
    }

    let (model, best_epoch) = match best {
        Some((_, epoch, best_model)) => (best_model, epoch),
        None => (model, history.len()),
    };
    Ok(LmTrainingOutcome { model: model.valid(), history, stop_reason, best_epoch })
}

/// Computes the mean loss of a model on `tokens`, in nats per token, over up to `max_windows`
/// evenly spaced windows of `context_len + 1` tokens, `batch_size` windows per forward pass.
///
/// Every position of a window is scored, so early positions are predicted from a short context.
/// This is the same loss that training minimises.
///
/// # Errors
///
/// Returns [`TrainError::InvalidConfig`] for fewer than two tokens, an id outside the
/// vocabulary, or a batch size or window count of 0.
pub fn evaluate_lm(
    model: &TransformerLm,
    tokens: &[u32],
    max_windows: usize,
    batch_size: usize,
) -> Result<f64, TrainError> {
    model.check_tokens(tokens)?;
    if batch_size == 0 || max_windows == 0 {
        return Err(TrainError::InvalidConfig("batch size and window count must be at least 1".into()));
    }
    match ValidationWindows::new(tokens, model.config().context_len, max_windows) {
        Some(windows) => windows.mean_loss(model, batch_size),
        None => {
            Err(TrainError::InvalidConfig(format!("the text has {} tokens; scoring needs at least 2", tokens.len())))
        }
    }
}

/// Draws `batch` windows of `len + 1` tokens at uniform random offsets. The first `len` tokens of
/// each are the inputs and the last `len` the targets.
fn sample_windows(
    tokens: &[u32],
    len: usize,
    batch: usize,
    rng: &mut ChaCha8Rng,
) -> (burn::tensor::TensorData, burn::tensor::TensorData) {
    let mut inputs = Vec::with_capacity(batch * len);
    let mut targets = Vec::with_capacity(batch * len);
    for _ in 0..batch {
        let offset = rng.random_range(0..=tokens.len() - len - 1);
        inputs.extend_from_slice(&tokens[offset..offset + len]);
        targets.extend_from_slice(&tokens[offset + 1..offset + len + 1]);
    }
    (token_data(&inputs, batch), token_data(&targets, batch))
}

/// Mean over all positions of `-log softmax(logits)[target]`.
fn mean_cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [batch, len, vocab] = logits.dims();
    let log_probabilities = log_softmax(logits.reshape([batch * len, vocab]), 1);
    let targets = targets.reshape([batch * len, 1]);
    log_probabilities.gather(1, targets).mean().neg()
}

/// Fixed validation windows: their offsets never change between epochs, so epochs compare.
struct ValidationWindows<'a> {
    tokens: &'a [u32],
    len: usize,
    offsets: Vec<usize>,
}

impl<'a> ValidationWindows<'a> {
    /// Spreads up to `max_windows` windows of `context_len + 1` tokens (fewer for a short text)
    /// evenly over the text, without overlap while the text has room. Returns `None` for fewer
    /// than two tokens.
    fn new(tokens: &'a [u32], context_len: usize, max_windows: usize) -> Option<Self> {
        if tokens.len() < 2 {
            return None;
        }
        let len = context_len.min(tokens.len() - 1);
        let last_offset = tokens.len() - len - 1;
        let count = max_windows.min((tokens.len() - 1) / len).max(1);
        let offsets = (0..count).map(|i| if count == 1 { 0 } else { i * last_offset / (count - 1) }).collect();
        Some(Self { tokens, len, offsets })
    }

    fn mean_loss(&self, model: &TransformerLm, batch_size: usize) -> Result<f64, TrainError> {
        let device = model.device();
        let mut total = 0.0;
        for chunk in self.offsets.chunks(batch_size) {
            let mut inputs = Vec::with_capacity(chunk.len() * self.len);
            let mut targets = Vec::with_capacity(chunk.len() * self.len);
            for &offset in chunk {
                inputs.extend_from_slice(&self.tokens[offset..offset + self.len]);
                targets.extend_from_slice(&self.tokens[offset + 1..offset + self.len + 1]);
            }
            let inputs = Tensor::<2, Int>::from_data(token_data(&inputs, chunk.len()), &device);
            let targets = Tensor::<2, Int>::from_data(token_data(&targets, chunk.len()), &device);
            let loss =
                mean_cross_entropy(model.forward_with_dropout(inputs, None), targets).into_scalar::<f32>() as f64;
            total += loss * chunk.len() as f64;
        }
        Ok(total / self.offsets.len() as f64)
    }
}

/// Scales all gradients by `min(1, max_norm / ‖g‖)`, where `‖g‖` is the L2 norm of all
/// parameters' gradients together (Pascanu et al. 2013, Algorithm 1).
fn clip_global_norm(model: &TransformerLm, mut gradients: GradientsParams, max_norm: f64) -> GradientsParams {
    let mut squared = SquaredNorm { gradients: &gradients, total: None };
    model.visit(&mut squared);
    let Some(total) = squared.total else {
        return gradients;
    };
    let norm = (total.into_scalar::<f32>() as f64).sqrt();
    if norm <= max_norm || !norm.is_finite() {
        return gradients;
    }
    let mut scale = Scale { gradients: &mut gradients, factor: (max_norm / norm) as f32 };
    model.visit(&mut scale);
    gradients
}

struct SquaredNorm<'a> {
    gradients: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(gradient) = self.gradients.get::<D>(param.id) {
            let sum = gradient.square().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + sum,
                None => sum,
            });
        }
    }
}

struct Scale<'a> {
    gradients: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(gradient) = self.gradients.remove::<D>(param.id) {
            self.gradients.register(param.id, gradient.mul_scalar(self.factor));
        }
    }
}
