//! The training loop: mini-batch gradient descent with early stopping.

use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::dp::{Clipping, DpConfig, NoiseStream, noise_generator, noisy_gradients, parameter_count, poisson_sample};
use crate::model::{Mlp, MlpConfig, MlpWeights};

/// Loss function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Binary cross-entropy on the logit, computed stably.
    #[default]
    Bce,
    /// Mean squared error between the sigmoid output and the 0/1 label.
    Mse,
}

/// Optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (Kingma and Ba 2015) with β1 = 0.9, β2 = 0.999, ε = 1e-8.
    #[default]
    Adam,
    /// Stochastic gradient descent, with optional momentum.
    Sgd,
}

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum number of passes over the training rows.
    pub epochs: usize,
    /// Rows per mini-batch; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Step size of the optimiser.
    pub learning_rate: f64,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Momentum factor of SGD in [0, 1); 0 turns momentum off. Ignored by Adam.
    pub momentum: f64,
    /// L2 penalty added to the gradient as `weight_decay * w`; 0 turns it off.
    pub weight_decay: f64,
    /// Loss function.
    pub loss: LossKind,
    /// Stop once the mean training loss of an epoch falls below this value.
    pub loss_threshold: Option<f64>,
    /// Stop when the validation loss has not improved for this many epochs, and keep the
    /// weights of the best epoch. Needs validation rows.
    pub patience: Option<usize>,
    /// Seed of the initial weights and the batch order.
    pub seed: u64,
    /// Differentially private training (DP-SGD) when present: Poisson batches of expected size
    /// `batch_size`, per-example clipping and Gaussian noise.
    pub dp: Option<DpConfig>,
}

impl TrainConfig {
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
        if self.batch_size == 0 {
            return invalid("batch size must be at least 1".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid(format!(
                "learning rate {} is invalid; use a positive number such as 0.001",
                self.learning_rate
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return invalid(format!("momentum {} is invalid; use a value in [0, 1)", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return invalid(format!("weight decay {} is invalid; use a value of 0 or more", self.weight_decay));
        }
        if self.patience == Some(0) {
            return invalid("patience must be at least 1 epoch".into());
        }
        if let Some(threshold) = self.loss_threshold
            && !(threshold.is_finite() && threshold > 0.0)
        {
            return invalid(format!("loss threshold {threshold} is invalid; use a positive number"));
        }
        if let Some(dp) = &self.dp {
            dp.validate()?;
        }
        Ok(())
    }
}

/// Rows to train or validate on.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    /// `count * width` inputs, row-major.
    pub features: &'a [f32],
    /// Whether each row is positive.
    pub labels: &'a [bool],
    /// Optional non-negative weight of each row in the loss.
    pub weights: Option<&'a [f32]>,
    /// Inputs per row.
    pub width: usize,
}

impl Rows<'_> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Checks whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Record of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches, weighted by batch size.
    pub train_loss: f64,
    /// Loss on the validation rows after the epoch.
    pub validation_loss: Option<f64>,
    /// Accuracy on the validation rows after the epoch, at threshold 0.5.
    pub validation_accuracy: Option<f64>,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// Reason training stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StopReason {
    /// The epoch budget was used up.
    MaxEpochs,
    /// The training loss fell below the threshold.
    LossThreshold { threshold: f64 },
    /// The validation loss did not improve for `patience` epochs.
    EarlyStopping { patience: usize },
}

/// A trained model and how it got there.
#[derive(Debug)]
pub struct TrainingOutcome {
    /// The trained network (the best epoch's weights under early stopping).
    pub model: Mlp,
    /// One record per epoch run.
    pub history: Vec<EpochRecord>,
    /// Reason training stopped.
    pub stop_reason: StopReason,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// Parameters for the privacy accountant, for a private run.
    pub privacy: Option<PrivateTraining>,
}

/// Parameters of a finished DP-SGD run, for the privacy accountant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivateTraining {
    /// Noisy steps taken in all epochs run.
    pub steps: u64,
    /// Poisson sample rate q = expected batch size / training rows.
    pub sample_rate: f64,
    /// Expected batch size; the noisy sum is divided by it.
    pub expected_batch_size: usize,
    /// Noise multiplier σ.
    pub noise_multiplier: f64,
    /// Clipping bound C.
    pub max_grad_norm: f64,
    /// Clipping scheme.
    pub clipping: Clipping,
    /// Whether the noise generator was seeded from the operating system.
    pub secure_noise: bool,
}

/// Trains a network on `train`, monitoring `validation` when it has rows.
///
/// Same seed, data and device type give bit-identical weights on the CPU backend: the initial
/// weights and the batch order come from seeded ChaCha8 generators, and no step draws from the
/// backend's own random generator.
///
/// # Errors
///
/// Returns an error for an invalid configuration, a shape mismatch, or a loss that becomes NaN
/// or infinite.
pub fn fit(
    model_config: &MlpConfig,
    config: &TrainConfig,
    train: Rows<'_>,
    validation: Rows<'_>,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<TrainingOutcome, TrainError> {
    train_from(model_config, None, config, train, validation, device, on_epoch)
}

/// Trains like [`fit`], but starts from stored weights instead of seeded random ones (a warm
/// start); the seed still sets the batch order.
///
/// # Errors
///
/// As [`fit`], and [`TrainError::InvalidWeights`] when the weights do not describe a valid
/// network.
pub fn fit_from(
    initial: &MlpWeights,
    config: &TrainConfig,
    train: Rows<'_>,
    validation: Rows<'_>,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<TrainingOutcome, TrainError> {
    train_from(&initial.config, Some(initial), config, train, validation, device, on_epoch)
}

fn train_from(
    model_config: &MlpConfig,
    initial: Option<&MlpWeights>,
    config: &TrainConfig,
    train: Rows<'_>,
    validation: Rows<'_>,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<TrainingOutcome, TrainError> {
    config.validate()?;
    model_config.validate()?;
    check_rows("training", train, model_config.inputs)?;
    check_rows("validation", validation, model_config.inputs)?;
    if train.is_empty() {
        return Err(TrainError::InvalidConfig("there are no training rows".into()));
    }
    if config.patience.is_some() && validation.is_empty() {
        return Err(TrainError::InvalidConfig(
            "early stopping (patience) needs validation rows; set a validation fraction above 0".into(),
        ));
    }

    let device = device.clone().autodiff();
    let mut model = match initial {
        Some(weights) => Mlp::from_weights(weights, &device)?,
        None => Mlp::init(model_config, config.seed, &device),
    };
    let mut optimizer = build_optimizer(config);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(0x5eed));
    let mut order: Vec<usize> = (0..train.len()).collect();

    let mut history = Vec::new();
    let mut best: Option<(f64, usize, Mlp)> = None;
    let mut stop_reason = StopReason::MaxEpochs;

    // DP-SGD runs round(N / expected batch size) Poisson-sampled steps per epoch.
    let expected_batch_size = config.batch_size.min(train.len());
    let sample_rate = expected_batch_size as f64 / train.len() as f64;
    let private_steps_per_epoch = ((train.len() as f64 / expected_batch_size as f64).round() as u64).max(1);
    let mut sampling_rng = config.dp.as_ref().map(|dp| noise_generator(dp.noise_seed, 0));
    let noise_stream = config.dp.as_ref().map(|dp| {
        NoiseStream::new(
            noise_generator(dp.noise_seed, 1),
            parameter_count(&model),
            dp.noise_multiplier * dp.max_grad_norm,
        )
    });
    let mut steps_run = 0u64;

    for epoch in 1..=config.epochs {
        let start = Instant::now();
        let mut loss_sum = 0.0;
        let mut loss_rows = 0usize;
        if let (Some(dp), Some(sampling_rng), Some(noise_stream)) = (&config.dp, sampling_rng.as_mut(), &noise_stream) {
            for _ in 0..private_steps_per_epoch {
                let batch = poisson_sample(train.len(), sample_rate, sampling_rng);
                let tensors = (!batch.is_empty()).then(|| gather(train, &batch, &device));
                let noise = noise_stream.next_step()?;
                let step =
                    noisy_gradients(&model, tensors, config.loss, dp, expected_batch_size as f64, &noise, &device)
                        .map_err(|_| TrainError::Diverged { epoch, learning_rate: config.learning_rate })?;
                loss_sum += step.loss_sum;
                loss_rows += step.batch_size;
                model = optimizer.step(config.learning_rate, model, step.gradients);
                steps_run += 1;
            }
        } else {
            order.shuffle(&mut rng);
            for batch in order.chunks(config.batch_size) {
                let (inputs, targets, weights) = gather(train, batch, &device);
                let logits = model.forward(inputs);
                let loss = loss(config.loss, logits, targets, weights);
                let loss_value = loss.clone().into_scalar::<f32>() as f64;
                if !loss_value.is_finite() {
                    return Err(TrainError::Diverged { epoch, learning_rate: config.learning_rate });
                }
                loss_sum += loss_value * batch.len() as f64;
                loss_rows += batch.len();

                let gradients = GradientsParams::from_grads(loss.backward(), &model);
                model = optimizer.step(config.learning_rate, model, gradients);
            }
        }
        let train_loss = loss_sum / loss_rows.max(1) as f64;

        let (validation_loss, validation_accuracy) = if validation.is_empty() {
            (None, None)
        } else {
            let (loss, accuracy) = evaluate(&model.valid(), config.loss, validation)?;
            (Some(loss), Some(accuracy))
        };
        let record = EpochRecord {
            epoch,
            train_loss,
            validation_loss,
            validation_accuracy,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&record);
        history.push(record);

        if let (Some(patience), Some(loss)) = (config.patience, validation_loss) {
            let improved = best.as_ref().is_none_or(|(best_loss, _, _)| loss < *best_loss);
            if improved {
                best = Some((loss, epoch, model.clone()));
            } else if epoch - best.as_ref().map_or(0, |b| b.1) >= patience {
                stop_reason = StopReason::EarlyStopping { patience };
                break;
            }
        }
        if let Some(threshold) = config.loss_threshold
            && train_loss < threshold
        {
            stop_reason = StopReason::LossThreshold { threshold };
            break;
        }
    }

    let last_epoch = history.len();
    let (model, best_epoch) = match best {
        Some((_, epoch, best_model)) if config.patience.is_some() => (best_model, epoch),
        _ => (model, last_epoch),
    };
    // The kept epoch was chosen by looking at later models' validation loss, so the privacy cost
    // counts every step run, not only the steps up to the kept epoch.
    let privacy = config.dp.as_ref().map(|dp| PrivateTraining {
        steps: steps_run,
        sample_rate,
        expected_batch_size,
        noise_multiplier: dp.noise_multiplier,
        max_grad_norm: dp.max_grad_norm,
        clipping: dp.clipping,
        secure_noise: dp.noise_seed.is_none(),
    });
    Ok(TrainingOutcome { model: model.valid(), history, stop_reason, best_epoch, privacy })
}

fn check_rows(what: &str, rows: Rows<'_>, width: usize) -> Result<(), TrainError> {
    let weights_ok = rows.weights.is_none_or(|w| w.len() == rows.len());
    if rows.width != width || rows.features.len() != rows.len() * width || !weights_ok {
        return Err(TrainError::InvalidConfig(format!(
            "{what} rows do not match the model: expected {width} inputs per row and one label and weight per row"
        )));
    }
    if let Some(weights) = rows.weights
        && let Some(row) = weights.iter().position(|w| !w.is_finite() || *w < 0.0)
    {
        return Err(TrainError::InvalidConfig(format!(
            "{what} sample weight {} in row {} is invalid; weights must be finite and non-negative",
            weights[row],
            row + 1
        )));
    }
    Ok(())
}

fn build_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let weight_decay = (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    match config.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_epsilon(1e-8).with_weight_decay(weight_decay).init(),
        OptimizerKind::Sgd => {
            // PyTorch's SGD semantics: no dampening, no Nesterov.
            let momentum = (config.momentum > 0.0).then_some(MomentumConfig {
                momentum: config.momentum,
                dampening: 0.0,
                nesterov: false,
            });
            SgdConfig::new().with_momentum(momentum).with_weight_decay(weight_decay).init()
        }
    }
}

/// Copies the rows of a batch into tensors: inputs, 0/1 targets and optional weights.
pub fn gather(rows: Rows<'_>, batch: &[usize], device: &Device) -> (Tensor<2>, Tensor<1>, Option<Tensor<1>>) {
    let width = rows.width;
    let mut inputs = Vec::with_capacity(batch.len() * width);
    for &row in batch {
        inputs.extend_from_slice(&rows.features[row * width..(row + 1) * width]);
    }
    let targets: Vec<f32> = batch.iter().map(|&row| if rows.labels[row] { 1.0 } else { 0.0 }).collect();
    let weights = rows.weights.map(|w| {
        let values: Vec<f32> = batch.iter().map(|&row| w[row]).collect();
        Tensor::<1>::from_data(TensorData::new(values, [batch.len()]), device)
    });
    (
        Tensor::<2>::from_data(TensorData::new(inputs, [batch.len(), width]), device),
        Tensor::<1>::from_data(TensorData::new(targets, [batch.len()]), device),
        weights,
    )
}

/// Computes the mean (or sample-weighted mean) loss of a batch.
fn loss(kind: LossKind, logits: Tensor<1>, targets: Tensor<1>, weights: Option<Tensor<1>>) -> Tensor<1> {
    let per_row = per_example_loss(kind, logits, targets);
    match weights {
        Some(weights) => (per_row * weights.clone()).sum() / weights.sum().clamp_min(f32::MIN_POSITIVE),
        None => per_row.mean(),
    }
}

/// Computes the loss of each row.
pub(crate) fn per_example_loss(kind: LossKind, logits: Tensor<1>, targets: Tensor<1>) -> Tensor<1> {
    match kind {
        // max(z, 0) - z y + log(1 + exp(-|z|)) equals -y log σ(z) - (1 - y) log(1 - σ(z)) without
        // overflow for large |z|.
        LossKind::Bce => logits.clone().clamp_min(0.0) - logits.clone() * targets + logits.abs().neg().exp().log1p(),
        LossKind::Mse => (sigmoid(logits) - targets).square(),
    }
}

/// Rows scored per forward pass when predicting, to bound memory on large inputs.
const PREDICTION_CHUNK: usize = 8192;

/// Computes the probability of the positive class for each row.
///
/// # Errors
///
/// Returns an error if the inputs do not have the model's width or a tensor cannot be read back.
pub fn predict_probabilities(
    model: &Mlp,
    features: &[f32],
    width: usize,
    device: &Device,
) -> Result<Vec<f32>, TrainError> {
    let expected = model.layers[0].weight.dims()[0];
    if width != expected || !features.len().is_multiple_of(width.max(1)) {
        return Err(TrainError::InvalidConfig(format!(
            "inputs have {width} values per row but the model expects {expected}"
        )));
    }
    let rows = features.len() / width;
    let mut probabilities = Vec::with_capacity(rows);
    for start in (0..rows).step_by(PREDICTION_CHUNK) {
        let end = (start + PREDICTION_CHUNK).min(rows);
        let data = TensorData::new(features[start * width..end * width].to_vec(), [end - start, width]);
        let logits = model.forward(Tensor::<2>::from_data(data, device));
        let values =
            sigmoid(logits).into_data().try_to_vec::<f32>().map_err(|e| TrainError::Backend(format!("{e:?}")))?;
        probabilities.extend(values);
    }
    Ok(probabilities)
}

/// Returns the loss and accuracy of a model on rows.
fn evaluate(model: &Mlp, kind: LossKind, rows: Rows<'_>) -> Result<(f64, f64), TrainError> {
    let device = model.layers[0].weight.device();
    let probabilities = predict_probabilities(model, rows.features, rows.width, &device)?;
    let mut loss_sum = 0.0;
    let mut weight_sum = 0.0;
    let mut correct = 0.0;
    for (i, (&p, &y)) in probabilities.iter().zip(rows.labels).enumerate() {
        let p = p as f64;
        let weight = rows.weights.map_or(1.0, |w| w[i] as f64);
        let target = if y { 1.0 } else { 0.0 };
        let row_loss = match kind {
            LossKind::Bce => {
                let p = p.clamp(1e-12, 1.0 - 1e-12);
                -(target * p.ln() + (1.0 - target) * (1.0 - p).ln())
            }
            LossKind::Mse => (p - target).powi(2),
        };
        loss_sum += weight * row_loss;
        weight_sum += weight;
        if (p >= 0.5) == y {
            correct += weight;
        }
    }
    Ok((loss_sum / weight_sum, correct / weight_sum))
}
