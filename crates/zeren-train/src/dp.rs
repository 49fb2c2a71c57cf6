//! DP-SGD: Poisson sampling, per-example clipping without per-example backward passes, and
//! Gaussian noise (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016, Algorithm 1).
//!
//! Per-example gradients of a linear layer `z = a W + b` are outer products: for example `i` with
//! input `a_i` and output gradient `g_i = ∂L_i/∂z_i`, the weight gradient is `a_i g_iᵀ`, whose
//! squared Frobenius norm is `‖a_i‖² ‖g_i‖²`, and the bias gradient is `g_i`. The output gradients
//! of the whole batch come from one backward pass of the summed loss through zero "probe" tensors
//! added to each layer's output (Goodfellow, "Efficient Per-Example Gradient Computations", 2015).
//! The clipped sum is then `Aᵀ diag(c) G` with `c_i = min(1, C / ‖∇_i‖)`. Every layer of the MLP is
//! linear, so no layer needs a per-example fallback.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use std::sync::mpsc;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::model::Mlp;
use burn::tensor::activation::sigmoid;

use crate::train::{LossKind, per_example_loss};

/// Added to norms before dividing, as Opacus does, so a zero gradient does not divide by zero.
const NORM_EPSILON: f64 = 1e-6;

/// Gradient clipping scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Clipping {
    /// One norm over all parameters of an example, clipped to C.
    #[default]
    Flat,
    /// Each layer's part of an example's gradient clipped to `C / sqrt(L)` for `L` layers, so the
    /// whole gradient still has norm at most C.
    PerLayer,
}

/// Settings of differentially private training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpConfig {
    /// Noise standard deviation divided by `max_grad_norm` (σ).
    pub noise_multiplier: f64,
    /// Clipping bound C on each example's gradient norm.
    pub max_grad_norm: f64,
    /// Clipping scheme.
    pub clipping: Clipping,
    /// Seed of the sampling and noise generator. `None` seeds ChaCha20 from the operating system,
    /// which the guarantee assumes; a seed makes the noise predictable to anyone who has it.
    pub noise_seed: Option<u64>,
}

impl DpConfig {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidConfig`] for a negative or non-finite noise multiplier or a
    /// non-positive clipping norm.
    pub fn validate(&self) -> Result<(), TrainError> {
        if !(self.noise_multiplier.is_finite() && self.noise_multiplier >= 0.0) {
            return Err(TrainError::InvalidConfig(format!(
                "noise multiplier {} is invalid; use 0 or more",
                self.noise_multiplier
            )));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm > 0.0) {
            return Err(TrainError::InvalidConfig(format!(
                "max grad norm {} is invalid; use a positive number such as 1",
                self.max_grad_norm
            )));
        }
        Ok(())
    }
}

/// The generator of Poisson sampling and noise: ChaCha20, a cryptographically secure generator,
/// seeded from the operating system unless a seed is given. `stream` separates the sampling and
/// noise generators of one seed.
pub fn noise_generator(seed: Option<u64>, stream: u64) -> ChaCha20Rng {
    match seed {
        Some(seed) => {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            rng.set_stream(stream);
            rng
        }
        None => ChaCha20Rng::from_os_rng(),
    }
}

/// Draws `count` values from `N(0, std²)`.
pub fn gaussian_noise(rng: &mut impl RngCore, count: usize, std: f64) -> Vec<f32> {
    if std <= 0.0 {
        return vec![0.0; count];
    }
    let normal = Normal::new(0.0f64, std).expect("a positive finite standard deviation");
    (0..count).map(|_| normal.sample(rng) as f32).collect()
}

/// Gaussian noise for every step, drawn ahead on a second thread so that generating it overlaps
/// with the gradient computation. The draws are the same as drawing in the training thread.
pub struct NoiseStream {
    receiver: mpsc::Receiver<Vec<f32>>,
}

impl NoiseStream {
    /// Starts drawing vectors of `count` values from `N(0, std²)` with `rng`.
    pub fn new(mut rng: ChaCha20Rng, count: usize, std: f64) -> Self {
        // Two steps ahead is enough to hide the latency; more would only hold memory.
        let (sender, receiver) = mpsc::sync_channel(2);
        std::thread::spawn(move || while sender.send(gaussian_noise(&mut rng, count, std)).is_ok() {});
        Self { receiver }
    }

    /// Returns the next step's noise.
    ///
    /// # Errors
    ///
    /// Returns an error if the drawing thread has stopped.
    pub fn next_step(&self) -> Result<Vec<f32>, TrainError> {
        self.receiver.recv().map_err(|_| TrainError::Backend("the noise thread stopped".into()))
    }
}

/// Draws a Poisson sample: each of `rows` records joins independently with probability `q`.
///
/// Gaps between chosen records are geometric, so the cost is proportional to the batch size.
pub fn poisson_sample(rows: usize, q: f64, rng: &mut impl RngCore) -> Vec<usize> {
    let mut chosen = Vec::with_capacity((rows as f64 * q * 1.2) as usize + 1);
    if q >= 1.0 {
        chosen.extend(0..rows);
        return chosen;
    }
    let log_keep = (1.0 - q).ln();
    let mut next = 0usize;
    loop {
        // P(gap = k) = (1 - q)^k q: the number of records skipped before the next one joins.
        let u: f64 = 1.0 - rng.random::<f64>();
        let skip = (u.ln() / log_keep).floor();
        if !skip.is_finite() || skip >= (rows - next) as f64 {
            break;
        }
        next += skip as usize;
        chosen.push(next);
        next += 1;
        if next >= rows {
            break;
        }
    }
    chosen
}

/// Per-example gradient information of one batch.
struct PerExample {
    /// Each layer's inputs, `[rows, inputs]`.
    inputs: Vec<Tensor<2>>,
    /// Each layer's output gradients, `[rows, outputs]`.
    output_gradients: Vec<Tensor<2>>,
    /// Each layer's per-example squared gradient norm (weights and bias), `[rows, 1]`.
    squared_norms: Vec<Tensor<2>>,
    /// Summed loss of the batch.
    loss_sum: f64,
}

/// Method that yields the per-example output gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputGradients {
    /// One autodiff backward pass through zero probes on each layer's output: works for any
    /// differentiable layer stack.
    Probes,
    /// Backpropagation written out for the MLP on the plain (non-autodiff) device:
    /// `G_L = ∂ℓ/∂z` in closed form and `G_l = (G_(l+1) W_(l+1)ᵀ) ⊙ act'(z_l)`. It gives the same
    /// values as `Probes` without the autodiff graph, which makes a DP-SGD epoch on the Adult MLP
    /// about a quarter faster (BENCHMARKS.md), so training uses it.
    Analytic,
}

fn per_example(
    model: &Mlp,
    inputs: Tensor<2>,
    targets: Tensor<1>,
    weights: Option<Tensor<1>>,
    loss: LossKind,
    method: OutputGradients,
) -> Result<PerExample, TrainError> {
    match method {
        OutputGradients::Probes => per_example_probes(model, inputs, targets, weights, loss),
        OutputGradients::Analytic => {
            per_example_analytic(model, inputs.inner(), targets.inner(), weights.map(Tensor::inner), loss)
        }
    }
}

fn per_example_analytic(
    model: &Mlp,
    inputs: Tensor<2>,
    targets: Tensor<1>,
    weights: Option<Tensor<1>>,
    loss: LossKind,
) -> Result<PerExample, TrainError> {
    let rows = inputs.dims()[0];
    let last = model.layers.len() - 1;
    let parameters: Vec<(Tensor<2>, Option<Tensor<1>>)> = model
        .layers
        .iter()
        .map(|layer| (layer.weight.val().inner(), layer.bias.as_ref().map(|b| b.val().inner())))
        .collect();

    let mut layer_inputs = Vec::with_capacity(model.layers.len());
    let mut x = inputs;
    for (index, (weight, bias)) in parameters.iter().enumerate() {
        layer_inputs.push(x.clone());
        let mut z = x.matmul(weight.clone());
        if let Some(bias) = bias {
            z = z + bias.clone().unsqueeze::<2>();
        }
        x = if index < last { model.activation.apply(z) } else { z };
    }
    let logits = x.reshape([rows]);

    let mut per_row = per_example_loss(loss, logits.clone(), targets.clone());
    if let Some(weights) = &weights {
        per_row = per_row * weights.clone();
    }
    let loss_sum = f64::from(per_row.sum().into_scalar::<f32>());
    if !loss_sum.is_finite() {
        return Err(TrainError::Backend("the loss is not finite".into()));
    }

    // ∂ℓ/∂z of the output logit: σ(z) - y for cross-entropy on the logit, and
    // 2 (σ(z) - y) σ(z) (1 - σ(z)) for squared error on the sigmoid.
    let probability = sigmoid(logits);
    let residual = probability.clone() - targets;
    let mut output_gradient = match loss {
        LossKind::Bce => residual,
        LossKind::Mse => residual.mul_scalar(2.0) * probability.clone() * probability.neg().add_scalar(1.0),
    };
    if let Some(weights) = weights {
        output_gradient = output_gradient * weights;
    }

    let mut output_gradients = vec![output_gradient.reshape([rows, 1])];
    for layer in (0..last).rev() {
        let upstream = output_gradients.last().expect("one gradient per layer above").clone();
        let back = upstream.matmul(parameters[layer + 1].0.clone().transpose());
        output_gradients.push(back * model.activation.derivative_from_output(layer_inputs[layer + 1].clone()));
    }
    output_gradients.reverse();

    let squared_norms = squared_norms(&layer_inputs, &output_gradients);
    Ok(PerExample { inputs: layer_inputs, output_gradients, squared_norms, loss_sum })
}

/// Per-example squared gradient norm of each layer: `(‖a_i‖² + 1) ‖g_i‖²` (weights and bias).
fn squared_norms(layer_inputs: &[Tensor<2>], output_gradients: &[Tensor<2>]) -> Vec<Tensor<2>> {
    layer_inputs
        .iter()
        .zip(output_gradients)
        .map(|(a, g)| (row_squared_norms(a).add_scalar(1.0)) * row_squared_norms(g))
        .collect()
}

/// Squared norm of each row, `[rows, 1]`, as a matrix product with a column of ones, which is
/// faster than `sum_dim` on burn 0.22's CPU backend: it took a DP-SGD epoch on the Adult MLP from
/// about 0.038 s to 0.035 s (`examples/dp_epoch_ratio.rs`).
fn row_squared_norms(x: &Tensor<2>) -> Tensor<2> {
    let columns = x.dims()[1];
    let ones = Tensor::<2>::ones([columns, 1], &x.device());
    x.clone().square().matmul(ones)
}

fn per_example_probes(
    model: &Mlp,
    inputs: Tensor<2>,
    targets: Tensor<1>,
    weights: Option<Tensor<1>>,
    loss: LossKind,
) -> Result<PerExample, TrainError> {
    let forward = model.forward_with_probes(inputs);
    let mut per_row = per_example_loss(loss, forward.logits, targets);
    if let Some(weights) = weights {
        per_row = per_row * weights;
    }
    let total = per_row.sum();
    let loss_sum = f64::from(total.clone().into_scalar::<f32>());
    if !loss_sum.is_finite() {
        return Err(TrainError::Backend("the loss is not finite".into()));
    }
    let gradients = total.backward();

    let layer_inputs: Vec<Tensor<2>> = forward.layer_inputs.into_iter().map(Tensor::inner).collect();
    let output_gradients = forward
        .probes
        .iter()
        .map(|probe| probe.grad(&gradients).ok_or_else(|| TrainError::Backend("a probe has no gradient".into())))
        .collect::<Result<Vec<_>, _>>()?;
    let squared_norms = squared_norms(&layer_inputs, &output_gradients);
    Ok(PerExample { inputs: layer_inputs, output_gradients, squared_norms, loss_sum })
}

/// Computes each example's gradient norm over all parameters, without clipping.
///
/// # Errors
///
/// Returns an error if the backend cannot compute or read the gradients.
pub fn per_example_gradient_norms(
    model: &Mlp,
    inputs: Tensor<2>,
    targets: Tensor<1>,
    loss: LossKind,
    method: OutputGradients,
) -> Result<Vec<f32>, TrainError> {
    let per_example = per_example(model, inputs, targets, None, loss, method)?;
    let total = per_example.squared_norms.into_iter().reduce(|a, b| a + b).expect("an MLP has a layer");
    read(total.sqrt())
}

fn read<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, TrainError> {
    tensor.into_data().try_to_vec::<f32>().map_err(|e| TrainError::Backend(format!("{e:?}")))
}

/// Result of one private gradient computation.
pub struct NoisyGradients {
    /// Clipped, noised and normalised gradients, ready for the optimiser.
    pub gradients: GradientsParams,
    /// Summed (weighted) loss of the examples in the batch.
    pub loss_sum: f64,
    /// Examples in the batch.
    pub batch_size: usize,
}

/// Computes the DP-SGD gradient of one Poisson batch: per-example clipping, the clipped sum, the
/// given `N(0, σ²C²)` noise (one value per parameter, layer by layer, weights before biases), and
/// division by the expected batch size.
///
/// Dividing by the expected rather than the actual batch size keeps the sensitivity of the
/// result at `C / expected_batch_size` whatever the batch size, as in Opacus. An empty batch gives
/// noise alone. `inputs` is `None` for an empty batch.
///
/// # Errors
///
/// Returns an error if the backend fails or the loss is not finite.
pub fn noisy_gradients(
    model: &Mlp,
    batch: Option<(Tensor<2>, Tensor<1>, Option<Tensor<1>>)>,
    loss: LossKind,
    config: &DpConfig,
    expected_batch_size: f64,
    noise: &[f32],
    device: &Device,
) -> Result<NoisyGradients, TrainError> {
    let layer_count = model.layers.len();
    let mut sums: Vec<(Tensor<2>, Tensor<1>)> = Vec::with_capacity(layer_count);
    let mut loss_sum = 0.0;
    let mut batch_size = 0;

    if let Some((inputs, targets, weights)) = batch {
        batch_size = inputs.dims()[0];
        let per_example = per_example(model, inputs, targets, weights, loss, OutputGradients::Analytic)?;
        loss_sum = per_example.loss_sum;
        // Folding 1 / expected batch size into the clip factors scales the sums without an extra
        // tensor operation per parameter.
        let scale = 1.0 / expected_batch_size;
        let factors: Vec<Tensor<2>> =
            clip_factors(&per_example.squared_norms, config).into_iter().map(|f| f.mul_scalar(scale)).collect();
        for layer in 0..layer_count {
            let factor = factors[layer.min(factors.len() - 1)].clone();
            let g = per_example.output_gradients[layer].clone() * factor;
            let weight_sum = per_example.inputs[layer].clone().transpose().matmul(g.clone());
            let bias_sum = g.sum_dim(0).squeeze_dim::<1>(0);
            sums.push((weight_sum, bias_sum));
        }
    } else {
        for layer in &model.layers {
            let [inputs, outputs] = layer.weight.dims();
            sums.push((Tensor::zeros([inputs, outputs], device), Tensor::zeros([outputs], device)));
        }
    }

    if noise.len() != parameter_count(model) {
        return Err(TrainError::InvalidConfig(format!(
            "{} noise values for {} parameters",
            noise.len(),
            parameter_count(model)
        )));
    }
    let mut offset = 0;
    let scale = (1.0 / expected_batch_size) as f32;
    let mut take = |shape: Vec<usize>| {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = noise[offset..offset + count].iter().map(|v| v * scale).collect();
        offset += count;
        TensorData::new(values, shape)
    };

    // The sums are already divided by the expected batch size; so is the noise here.
    let mut gradients = GradientsParams::new();
    for (layer, (weight_sum, bias_sum)) in model.layers.iter().zip(sums) {
        let weight_noise = Tensor::<2>::from_data(take(weight_sum.dims().to_vec()), device);
        gradients.register(layer.weight.id, weight_sum + weight_noise);
        if let Some(bias) = &layer.bias {
            let bias_noise = Tensor::<1>::from_data(take(bias_sum.dims().to_vec()), device);
            gradients.register(bias.id, bias_sum + bias_noise);
        }
    }
    Ok(NoisyGradients { gradients, loss_sum, batch_size })
}

/// Number of weights and biases of a network: the length of one step's noise.
pub fn parameter_count(model: &Mlp) -> usize {
    model
        .layers
        .iter()
        .map(|l| l.weight.dims().iter().product::<usize>() + l.bias.as_ref().map_or(0, |b| b.dims()[0]))
        .sum()
}

/// Clip factors `min(1, C / (‖∇_i‖ + 1e-6))`, shape `[rows, 1]`: one tensor for flat clipping,
/// one per layer for per-layer clipping.
fn clip_factors(squared_norms: &[Tensor<2>], config: &DpConfig) -> Vec<Tensor<2>> {
    let factor = |squared: Tensor<2>, bound: f64| {
        squared.sqrt().add_scalar(NORM_EPSILON).recip().mul_scalar(bound).clamp_max(1.0)
    };
    match config.clipping {
        Clipping::Flat => {
            let total = squared_norms.iter().cloned().reduce(|a, b| a + b).expect("an MLP has a layer");
            vec![factor(total, config.max_grad_norm)]
        }
        Clipping::PerLayer => {
            let bound = config.max_grad_norm / (squared_norms.len() as f64).sqrt();
            squared_norms.iter().map(|s| factor(s.clone(), bound)).collect()
        }
    }
}
