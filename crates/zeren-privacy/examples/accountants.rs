//! Prints ε from the RDP and PRV accountants for the given parameters, with the time each took.
//!
//! `cargo run --release -p zeren-privacy --example accountants -- Q SIGMA STEPS DELTA`

use std::time::Instant;

use zeren_privacy::{prv, rdp};

fn main() {
    let arguments: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let [q, sigma, steps, delta] = arguments[..] else {
        eprintln!("usage: accountants Q SIGMA STEPS DELTA");
        std::process::exit(2);
    };
    let start = Instant::now();
    let rdp = rdp::epsilon(q, sigma, steps as u64, delta).expect("valid parameters");
    let rdp_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let prv = prv::epsilon(q, sigma, steps as u64, delta).expect("valid parameters");
    let prv_seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"rdp\": {}, \"rdp_seconds\": {rdp_seconds}, \"prv\": {}, \"prv_error\": {}, \"prv_seconds\": {prv_seconds}}}",
        rdp.epsilon, prv.epsilon, prv.epsilon_error
    );
}
