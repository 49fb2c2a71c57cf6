//! Times DP-SGD epochs against non-private epochs on an Adult-sized problem and prints one JSON
//! line with the median seconds of each and their ratio.
//!
//! `cargo run --release -p zeren-train --example dp_epoch_ratio -- [EPOCHS]` (default 10).
//! Data: 32,561 rows of 106 standardised random inputs with a learnable label; model: 106-64-1,
//! ReLU, Adam, batch 256 (the expected batch size under DP), C = 1, σ = 1.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zeren_train::dp::{Clipping, DpConfig};
use zeren_train::{Activation, LossKind, MlpConfig, OptimizerKind, Rows, TrainConfig, device, fit};

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let epochs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let (rows, width) = (32_561, 106);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let features: Vec<f32> = (0..rows * width).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let labels: Vec<bool> = (0..rows).map(|i| features[i * width] + features[i * width + 1] > 0.0).collect();
    let train = Rows { features: &features, labels: &labels, weights: None, width };
    let empty = Rows { features: &[], labels: &[], weights: None, width };
    let shape = MlpConfig { inputs: width, hidden: vec![64], activation: Activation::Relu };
    let plain = TrainConfig {
        epochs,
        batch_size: 256,
        learning_rate: 1e-3,
        optimizer: OptimizerKind::Adam,
        momentum: 0.0,
        weight_decay: 0.0,
        loss: LossKind::Bce,
        loss_threshold: None,
        patience: None,
        seed: 0,
        dp: None,
    };
    let private = TrainConfig {
        dp: Some(DpConfig { noise_multiplier: 1.0, max_grad_norm: 1.0, clipping: Clipping::Flat, noise_seed: None }),
        ..plain.clone()
    };

    let time = |config: &TrainConfig| {
        let start = Instant::now();
        let outcome = fit(&shape, config, train, empty, &device::cpu(), &mut |_| {}).expect("training runs");
        let total = start.elapsed().as_secs_f64();
        (median(outcome.history.iter().map(|r| r.seconds).collect()), total)
    };
    let (plain_epoch, _) = time(&plain);
    let (private_epoch, _) = time(&private);
    println!(
        "{{\"rows\": {rows}, \"epochs\": {epochs}, \"non_private_epoch_seconds\": {plain_epoch}, \"dp_epoch_seconds\": {private_epoch}, \"ratio\": {}}}",
        private_epoch / plain_epoch
    );
}
