//! Times the fairness audit on synthetic predictions and prints one JSON line.
//!
//! `cargo run --release -p zeren-fairness --example audit_throughput -- [ROWS] [GROUPS] [BOOTSTRAP]`
//! (defaults 1000000, 5, 0). Labels, predictions and groups are uniform random with seed 0, the
//! same workload as Fairlearn's timing in `scripts/benchmark.sh`.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zeren_fairness::audit::{AuditOptions, Predictions, SensitiveFeature, audit};

fn argument(index: usize, default: usize) -> usize {
    std::env::args().nth(index).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let rows = argument(1, 1_000_000);
    let groups = argument(2, 5);
    let bootstrap = argument(3, 0);

    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let y_true: Vec<bool> = (0..rows).map(|_| rng.random()).collect();
    let y_pred: Vec<bool> = (0..rows).map(|_| rng.random()).collect();
    let labels: Vec<String> = (0..groups).map(|g| g.to_string()).collect();
    let feature = SensitiveFeature {
        name: "group".to_string(),
        groups: (0..rows).map(|_| labels[rng.random_range(0..groups)].clone()).collect(),
    };

    let predictions = Predictions { y_true: &y_true, y_pred: &y_pred, scores: None, weights: None };
    let options = AuditOptions { bootstrap_resamples: bootstrap, ..AuditOptions::default() };
    let start = Instant::now();
    let result = audit(predictions, &[feature], &options).expect("valid synthetic input");
    let seconds = start.elapsed().as_secs_f64();

    assert_eq!(result["group"].groups.len(), groups);
    println!(
        "{{\"tool\": \"zeren\", \"rows\": {rows}, \"groups\": {groups}, \"bootstrap\": {bootstrap}, \"seconds\": {seconds}, \"rows_per_second\": {}}}",
        rows as f64 / seconds
    );
}
