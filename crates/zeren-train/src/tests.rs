//! Training tests on small synthetic problems, fast enough for every test run.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::*;

/// Two Gaussian blobs in 4 dimensions, centred at -1 and +1 on the first two axes.
fn blobs(rows: usize, seed: u64) -> (Vec<f32>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(rows * 4);
    let mut labels = Vec::with_capacity(rows);
    for i in 0..rows {
        let positive = i % 2 == 0;
        let centre = if positive { 1.0 } else { -1.0 };
        for axis in 0..4 {
            let noise: f32 = rng.random_range(-1.0..1.0);
            features.push(if axis < 2 { centre + noise } else { noise });
        }
        labels.push(positive);
    }
    (features, labels)
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 20,
        batch_size: 32,
        learning_rate: 0.01,
        optimizer: OptimizerKind::Adam,
        momentum: 0.0,
        weight_decay: 0.0,
        loss: LossKind::Bce,
        loss_threshold: None,
        patience: None,
        seed: 3,
        dp: None,
    }
}

fn model(hidden: Vec<usize>, activation: Activation) -> MlpConfig {
    MlpConfig { inputs: 4, hidden, activation }
}

fn accuracy(model: &Mlp, features: &[f32], labels: &[bool]) -> f64 {
    let probabilities = predict_probabilities(model, features, 4, &device::cpu()).unwrap();
    let correct = probabilities.iter().zip(labels).filter(|(p, y)| (**p >= 0.5) == **y).count();
    correct as f64 / labels.len() as f64
}

fn empty() -> Rows<'static> {
    Rows { features: &[], labels: &[], weights: None, width: 4 }
}

#[test]
fn learns_separable_blobs_with_each_setting() {
    let (features, labels) = blobs(400, 1);
    let rows = Rows { features: &features, labels: &labels, weights: None, width: 4 };
    let cases = [
        (OptimizerKind::Adam, LossKind::Bce, Activation::Relu),
        (OptimizerKind::Sgd, LossKind::Bce, Activation::Tanh),
        (OptimizerKind::Adam, LossKind::Mse, Activation::Sigmoid),
    ];
    for (optimizer, loss, activation) in cases {
        let config = TrainConfig { optimizer, loss, momentum: 0.9, learning_rate: 0.05, ..config() };
        let outcome = fit(&model(vec![8], activation), &config, rows, empty(), &device::cpu(), &mut |_| {}).unwrap();
        let accuracy = accuracy(&outcome.model, &features, &labels);
        assert!(accuracy > 0.95, "{optimizer:?} {loss:?} {activation:?}: accuracy {accuracy}");
        let first = outcome.history.first().unwrap().train_loss;
        let last = outcome.history.last().unwrap().train_loss;
        assert!(last < first, "{optimizer:?} {loss:?}: loss rose from {first} to {last}");
    }
}

#[test]
fn same_seed_gives_identical_weights() {
    let (features, labels) = blobs(300, 2);
    let rows = Rows { features: &features, labels: &labels, weights: None, width: 4 };
    let run = |seed| {
        let config = TrainConfig { seed, epochs: 5, ..config() };
        let outcome =
            fit(&model(vec![16, 8], Activation::Relu), &config, rows, empty(), &device::cpu(), &mut |_| {}).unwrap();
        outcome.model.to_weights().unwrap()
    };
    let first = run(11);
    assert_eq!(first, run(11));
    assert_ne!(first, run(12));
}

#[test]
fn early_stopping_keeps_best_epoch() {
    // Labels of the validation rows are flipped, so validation loss rises as training succeeds.
    let (features, labels) = blobs(200, 3);
    let flipped: Vec<bool> = labels.iter().map(|y| !y).collect();
    let train = Rows { features: &features, labels: &labels, weights: None, width: 4 };
    let validation = Rows { features: &features, labels: &flipped, weights: None, width: 4 };
    let config = TrainConfig { patience: Some(2), epochs: 50, ..config() };
    let outcome =
        fit(&model(vec![8], Activation::Relu), &config, train, validation, &device::cpu(), &mut |_| {}).unwrap();

    assert_eq!(outcome.stop_reason, StopReason::EarlyStopping { patience: 2 });
    assert_eq!(outcome.best_epoch, 1);
    assert_eq!(outcome.history.len(), 3);
}

#[test]
fn loss_threshold_stops_training() {
    let (features, labels) = blobs(400, 4);
    let rows = Rows { features: &features, labels: &labels, weights: None, width: 4 };
    let config = TrainConfig { loss_threshold: Some(0.3), epochs: 100, learning_rate: 0.05, ..config() };
    let outcome = fit(&model(vec![8], Activation::Relu), &config, rows, empty(), &device::cpu(), &mut |_| {}).unwrap();

    assert_eq!(outcome.stop_reason, StopReason::LossThreshold { threshold: 0.3 });
    assert!(outcome.history.len() < 100);
    assert!(outcome.history.last().unwrap().train_loss < 0.3);
}

#[test]
fn sample_weights_of_zero_ignore_rows() {
    // Half the rows of each class carry the wrong label with weight 0: the model must learn
    // the true rule from the other half.
    let (features, labels) = blobs(400, 5);
    let mut noisy = labels.clone();
    let mut weights = vec![1.0f32; labels.len()];
    for i in (0..labels.len()).filter(|i| i % 4 < 2) {
        noisy[i] = !noisy[i];
        weights[i] = 0.0;
    }
    let rows = Rows { features: &features, labels: &noisy, weights: Some(&weights), width: 4 };
    let outcome = fit(&model(vec![], Activation::Relu), &config(), rows, empty(), &device::cpu(), &mut |_| {}).unwrap();
    assert!(accuracy(&outcome.model, &features, &labels) > 0.95);
}

#[test]
fn weights_round_trip_through_json() {
    let mlp = Mlp::init(&model(vec![5, 3], Activation::Tanh), 9, &device::cpu());
    let weights = mlp.to_weights().unwrap();
    let json = serde_json::to_string(&weights).unwrap();
    let restored: MlpWeights = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, weights);
    let rebuilt = Mlp::from_weights(&restored, &device::cpu()).unwrap();
    assert_eq!(rebuilt.to_weights().unwrap(), weights);
    assert_eq!(weights.config.parameter_count(), 4 * 5 + 5 + 5 * 3 + 3 + 3 + 1);
}

#[test]
fn rejects_invalid_settings() {
    let (features, labels) = blobs(10, 6);
    let rows = Rows { features: &features, labels: &labels, weights: None, width: 4 };
    let cases = [
        TrainConfig { learning_rate: 0.0, ..config() },
        TrainConfig { batch_size: 0, ..config() },
        TrainConfig { momentum: 1.5, ..config() },
        TrainConfig { patience: Some(3), ..config() },
    ];
    for config in cases {
        let result = fit(&model(vec![4], Activation::Relu), &config, rows, empty(), &device::cpu(), &mut |_| {});
        assert!(matches!(result, Err(TrainError::InvalidConfig(_))), "{config:?} was accepted");
    }
}

#[test]
fn huge_learning_rate_reports_divergence() {
    let (mut features, labels) = blobs(64, 7);
    for value in &mut features {
        *value *= 1e30;
    }
    let rows = Rows { features: &features, labels: &labels, weights: None, width: 4 };
    let config = TrainConfig { learning_rate: 1e30, optimizer: OptimizerKind::Sgd, ..config() };
    let result = fit(&model(vec![], Activation::Relu), &config, rows, empty(), &device::cpu(), &mut |_| {});
    assert!(matches!(result, Err(TrainError::Diverged { .. })), "{result:?}");
}

#[test]
fn warm_start_continues_from_stored_weights() {
    let (features, labels) = blobs(400, 5);
    let rows = Rows { features: &features, labels: &labels, weights: None, width: 4 };
    let short = TrainConfig { epochs: 1, ..config() };
    let trained =
        fit(&model(vec![8], Activation::Relu), &config(), rows, empty(), &device::cpu(), &mut |_| {}).unwrap();
    let weights = trained.model.to_weights().unwrap();
    let trained_loss = trained.history.last().unwrap().train_loss;

    let cold = fit(&model(vec![8], Activation::Relu), &short, rows, empty(), &device::cpu(), &mut |_| {}).unwrap();
    let warm = fit_from(&weights, &short, rows, empty(), &device::cpu(), &mut |_| {}).unwrap();
    let warm_loss = warm.history[0].train_loss;
    // One epoch from the trained weights stays near their loss; one from scratch does not.
    assert!(warm_loss < cold.history[0].train_loss / 2.0, "warm {warm_loss}, cold {}", cold.history[0].train_loss);
    assert!(warm_loss < trained_loss * 1.5, "warm {warm_loss}, trained {trained_loss}");
    assert_eq!(warm.model.to_weights().unwrap().config, weights.config);
}
