//! Neural-network training for zeren, on burn.
//!
//! A multilayer perceptron with one output logit, trained by mini-batch gradient descent (SGD
//! with momentum or Adam) on binary cross-entropy or mean squared error, with early stopping on a
//! validation split. Initial weights and batch order come from seeded ChaCha8 generators, so a
//! run on the CPU backend is reproducible bit for bit.
//!
//! ```no_run
//! use zeren_train::{Activation, MlpConfig, Rows, TrainConfig, device, fit};
//!
//! let features = vec![0.0, 1.0, 1.0, 0.0];
//! let labels = vec![false, true];
//! let rows = Rows { features: &features, labels: &labels, weights: None, width: 2 };
//! let none = Rows { features: &[], labels: &[], weights: None, width: 2 };
//! let model = MlpConfig { inputs: 2, hidden: vec![8], activation: Activation::Relu };
//! let config = TrainConfig {
//!     epochs: 50, batch_size: 2, learning_rate: 0.01, optimizer: Default::default(),
//!     momentum: 0.0, weight_decay: 0.0, loss: Default::default(),
//!     loss_threshold: None, patience: None, seed: 0, dp: None,
//! };
//! let outcome = fit(&model, &config, rows, none, &device::cpu(), &mut |_| {}).unwrap();
//! assert_eq!(outcome.history.len(), 50);
//! ```

pub mod device;
pub mod dp;
pub mod lm;
mod model;
mod train;

/// The burn device type that runs training and inference.
pub use burn::tensor::Device;
pub use model::{Activation, LayerWeights, Mlp, MlpConfig, MlpWeights, ProbedForward};
pub use train::{
    EpochRecord, LossKind, OptimizerKind, PrivateTraining, Rows, StopReason, TrainConfig, TrainingOutcome, fit,
    fit_from, gather, predict_probabilities,
};

/// Errors from training and inference.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A training setting is invalid.
    #[error("{0}")]
    InvalidConfig(String),
    /// The loss became NaN or infinite.
    #[error(
        "training diverged in epoch {epoch}: the loss is not finite; lower the learning rate (now {learning_rate})"
    )]
    Diverged { epoch: usize, learning_rate: f64 },
    /// Stored weights do not describe a valid network.
    #[error("stored model weights are invalid: {0}")]
    InvalidWeights(String),
    /// The requested device is not available in this build or on this machine.
    #[error("{0}")]
    Device(String),
    /// The tensor backend failed.
    #[error("tensor backend error: {0}")]
    Backend(String),
    /// A model file could not be read or written.
    #[error("failed to access '{}': {source}", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod dp_tests;
