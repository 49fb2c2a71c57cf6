//! The multilayer perceptron and its serialisable weights.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Activation function of the hidden layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)`.
    #[default]
    Relu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid `1 / (1 + e^-x)`.
    Sigmoid,
}

impl Activation {
    pub(crate) fn apply(self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Activation::Relu => activation::relu(x),
            Activation::Tanh => activation::tanh(x),
            Activation::Sigmoid => activation::sigmoid(x),
        }
    }

    /// Computes the derivative at the pre-activation, written in terms of the activation's output `a`:
    /// `1[a > 0]` for ReLU, `1 - a²` for tanh, `a (1 - a)` for the sigmoid.
    pub(crate) fn derivative_from_output(self, a: Tensor<2>) -> Tensor<2> {
        match self {
            Activation::Relu => a.greater_elem(0.0).float(),
            Activation::Tanh => a.square().neg().add_scalar(1.0),
            Activation::Sigmoid => a.clone() * a.neg().add_scalar(1.0),
        }
    }
}

/// Shape of a multilayer perceptron with one output logit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Number of inputs.
    pub inputs: usize,
    /// Width of each hidden layer; empty for logistic regression.
    pub hidden: Vec<usize>,
    /// Activation after each hidden layer.
    pub activation: Activation,
}

/// Largest number of parameters a network may have: 2^30 `f32` values, 4 GiB of weights.
pub const MAX_PARAMETERS: usize = 1 << 30;

impl MlpConfig {
    /// Checks the layer widths.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidConfig`] for a hidden layer of width 0 or a network with more
    /// than [`MAX_PARAMETERS`] parameters.
    pub fn validate(&self) -> Result<(), TrainError> {
        if let Some(position) = self.hidden.iter().position(|&width| width == 0) {
            return Err(TrainError::InvalidConfig(format!(
                "hidden layer {} has width 0; every hidden layer needs at least 1 unit",
                position + 1
            )));
        }
        let parameters = self.layer_sizes().windows(2).try_fold(0usize, |total, w| {
            w[0].checked_mul(w[1]).and_then(|n| n.checked_add(w[1])).and_then(|n| total.checked_add(n))
        });
        match parameters {
            Some(count) if count <= MAX_PARAMETERS => Ok(()),
            _ => Err(TrainError::InvalidConfig(format!(
                "hidden layers {:?} give more than {MAX_PARAMETERS} parameters; use smaller layers",
                self.hidden
            ))),
        }
    }

    /// Number of trainable parameters (weights and biases).
    pub fn parameter_count(&self) -> usize {
        self.layer_sizes().windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// Sizes of every layer, inputs first and the single output last.
    pub fn layer_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.inputs];
        sizes.extend(&self.hidden);
        sizes.push(1);
        sizes
    }
}

/// A multilayer perceptron that outputs one logit per row.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Linear layers, input first.
    pub layers: Vec<Linear>,
    /// Activation after every layer but the last.
    #[module(skip)]
    pub activation: Activation,
}

impl Mlp {
    /// Creates a network with seeded initial weights.
    ///
    /// Weights are drawn uniformly from `[-b, b]` with `b = gain * sqrt(6 / (fan_in + fan_out))`
    /// (Glorot and Bengio 2010, eq. 16) for tanh and sigmoid, and `b = sqrt(6 / fan_in)` for
    /// ReLU (He et al. 2015, eq. 10, uniform form); biases start at zero. The generator is
    /// ChaCha8 seeded with `seed`, so the initial weights are identical on every machine.
    pub fn init(config: &MlpConfig, seed: u64, device: &Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sizes = config.layer_sizes();
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(index, pair)| {
                let (fan_in, fan_out) = (pair[0], pair[1]);
                let is_output = index + 2 == sizes.len();
                let bound = match config.activation {
                    Activation::Relu if !is_output => (6.0 / fan_in as f64).sqrt(),
                    _ => (6.0 / (fan_in + fan_out) as f64).sqrt(),
                };
                let weight: Vec<f32> = (0..fan_in * fan_out).map(|_| rng.random_range(-bound..bound) as f32).collect();
                linear(&weight, &vec![0.0; fan_out], fan_in, fan_out, device)
            })
            .collect();
        Self { layers, activation: config.activation }
    }

    /// Computes the logits, shape `[rows]`, of inputs of shape `[rows, inputs]`.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<1> {
        let mut x = input;
        let last = self.layers.len() - 1;
        for (index, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if index < last {
                x = self.activation.apply(x);
            }
        }
        let rows = x.dims()[0];
        x.reshape([rows])
    }

    /// Computes the logits like [`Mlp::forward`], adding to each layer's pre-activation output a
    /// zero tensor that requires a gradient (a probe), so that one backward pass of the summed
    /// loss yields every example's gradient with respect to every layer's output.
    ///
    /// Weights and biases are detached: the backward pass computes only the probes' gradients.
    /// The returned layer inputs are detached too.
    pub fn forward_with_probes(&self, input: Tensor<2>) -> ProbedForward {
        let rows = input.dims()[0];
        let device = input.device();
        let mut x = input;
        let mut layer_inputs = Vec::with_capacity(self.layers.len());
        let mut probes = Vec::with_capacity(self.layers.len());
        let last = self.layers.len() - 1;
        for (index, layer) in self.layers.iter().enumerate() {
            layer_inputs.push(x.clone().detach());
            let weight = layer.weight.val().detach();
            let outputs = weight.dims()[1];
            let probe = Tensor::<2>::zeros([rows, outputs], &device).require_grad();
            let mut z = x.matmul(weight) + probe.clone();
            if let Some(bias) = &layer.bias {
                z = z + bias.val().detach().unsqueeze::<2>();
            }
            probes.push(probe);
            x = if index < last { self.activation.apply(z) } else { z };
        }
        ProbedForward { logits: x.reshape([rows]), layer_inputs, probes }
    }

    /// Copies the weights out of the network.
    ///
    /// # Errors
    ///
    /// Returns an error if the backend cannot read a tensor back.
    pub fn to_weights(&self) -> Result<MlpWeights, TrainError> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let [inputs, outputs] = layer.weight.dims();
            let weight = read(layer.weight.val().into_data())?;
            let bias = match &layer.bias {
                Some(bias) => read(bias.val().into_data())?,
                None => vec![0.0; outputs],
            };
            layers.push(LayerWeights { inputs, outputs, weight, bias });
        }
        let hidden = layers[..layers.len() - 1].iter().map(|l| l.outputs).collect();
        let config = MlpConfig { inputs: layers[0].inputs, hidden, activation: self.activation };
        Ok(MlpWeights { config, layers })
    }

    /// Rebuilds a network from stored weights.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidWeights`] when the shapes do not fit together.
    pub fn from_weights(weights: &MlpWeights, device: &Device) -> Result<Self, TrainError> {
        let sizes = weights.config.layer_sizes();
        if sizes.len() != weights.layers.len() + 1 {
            return Err(TrainError::InvalidWeights(format!(
                "the configuration has {} layers but {} are stored",
                sizes.len() - 1,
                weights.layers.len()
            )));
        }
        let mut layers = Vec::with_capacity(weights.layers.len());
        for (index, (layer, pair)) in weights.layers.iter().zip(sizes.windows(2)).enumerate() {
            let shape_ok = layer.inputs == pair[0]
                && layer.outputs == pair[1]
                && layer.weight.len() == layer.inputs * layer.outputs
                && layer.bias.len() == layer.outputs;
            if !shape_ok {
                return Err(TrainError::InvalidWeights(format!(
                    "layer {} should be {}x{} with {} biases",
                    index + 1,
                    pair[0],
                    pair[1],
                    pair[1]
                )));
            }
            layers.push(linear(&layer.weight, &layer.bias, layer.inputs, layer.outputs, device));
        }
        Ok(Self { layers, activation: weights.config.activation })
    }
}

/// Output of [`Mlp::forward_with_probes`].
#[derive(Debug)]
pub struct ProbedForward {
    /// Logits, shape `[rows]`.
    pub logits: Tensor<1>,
    /// Each layer's input activations, shape `[rows, inputs]`, detached.
    pub layer_inputs: Vec<Tensor<2>>,
    /// Each layer's probe, shape `[rows, outputs]`; its gradient is the per-example gradient
    /// of the loss with respect to the layer's pre-activation output.
    pub probes: Vec<Tensor<2>>,
}

fn linear(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize, device: &Device) -> Linear {
    let weight = Tensor::<2>::from_data(TensorData::new(weight.to_vec(), [inputs, outputs]), device);
    let bias = Tensor::<1>::from_data(TensorData::new(bias.to_vec(), [outputs]), device);
    Linear { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(bias)) }
}

fn read(data: TensorData) -> Result<Vec<f32>, TrainError> {
    data.try_to_vec::<f32>().map_err(|e| TrainError::Backend(format!("{e:?}")))
}

/// Weights of one linear layer, `y = x W + b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerWeights {
    /// Inputs of the layer.
    pub inputs: usize,
    /// Outputs of the layer.
    pub outputs: usize,
    /// `inputs x outputs` weights, row-major.
    pub weight: Vec<f32>,
    /// One bias per output.
    pub bias: Vec<f32>,
}

/// A trained network in a form that serialises to JSON and back without loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpWeights {
    /// Shape and activation.
    pub config: MlpConfig,
    /// Layers, input first.
    pub layers: Vec<LayerWeights>,
}
