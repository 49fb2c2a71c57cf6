//! Rényi differential privacy (RDP) of the Poisson-subsampled Gaussian mechanism.
//!
//! The mechanism is one DP-SGD step: each record joins the batch independently with probability
//! `q`, per-record gradients are clipped to norm `C`, and Gaussian noise of standard deviation
//! `σC` is added to their sum. Its RDP at order `α` is computed as in Mironov, Talwar and Zhang,
//! "Rényi Differential Privacy of the Sampled Gaussian Mechanism" (2019), Section 3.3, the same
//! computation as Opacus 1.6 and TensorFlow Privacy. RDP composes additively over steps.

use serde::Serialize;

use crate::PrivacyError;
use crate::special::{log_abs_binomial, log_add, log_ndtr, log_sub};

/// Opacus's default RDP orders: `1 + x/10` for `x = 1..99`, then the integers 12 to 63.
pub fn default_orders() -> Vec<f64> {
    let mut orders: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    orders.extend((12..64).map(f64::from));
    orders
}

/// Computes the RDP at order `alpha` of one step of the subsampled Gaussian mechanism with
/// sample rate `q` and noise multiplier `sigma`.
///
/// Edge cases: `q = 0` gives 0 (the record is never used), `sigma = 0` gives infinity, and
/// `q = 1` gives the Gaussian mechanism's `α / (2σ²)`.
pub fn rdp_step(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 || alpha.is_infinite() {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    log_a(q, sigma, alpha) / (alpha - 1.0)
}

/// `ln A_α` of Mironov, Talwar and Zhang (2019): Section 3.3 for integer `α`, and the two-sided
/// series of their fractional-order computation otherwise.
fn log_a(q: f64, sigma: f64, alpha: f64) -> f64 {
    if alpha.fract() == 0.0 { log_a_integer(q, sigma, alpha as u32) } else { log_a_fractional(q, sigma, alpha) }
}

fn log_a_integer(q: f64, sigma: f64, alpha: u32) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    for i in 0..=alpha {
        let (log_binomial, _) = log_abs_binomial(f64::from(alpha), i);
        let i = f64::from(i);
        let log_coefficient = log_binomial + i * q.ln() + (f64::from(alpha) - i) * (1.0 - q).ln();
        log_a = log_add(log_a, log_coefficient + (i * i - i) / (2.0 * sigma * sigma));
    }
    log_a
}

fn log_a_fractional(q: f64, sigma: f64, alpha: f64) -> f64 {
    let mut log_a0 = f64::NEG_INFINITY;
    let mut log_a1 = f64::NEG_INFINITY;
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let mut i = 0u32;
    loop {
        let (log_coefficient, sign) = log_abs_binomial(alpha, i);
        let fi = f64::from(i);
        let j = alpha - fi;
        let log_t0 = log_coefficient + fi * q.ln() + j * (1.0 - q).ln();
        let log_t1 = log_coefficient + j * q.ln() + fi * (1.0 - q).ln();
        // ln(erfc(y)/2) with y = (i - z0)/(√2 σ) equals ln Φ((z0 - i)/σ).
        let log_e0 = log_ndtr((z0 - fi) / sigma);
        let log_e1 = log_ndtr((j - z0) / sigma);
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        if sign > 0.0 {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        } else {
            log_a0 = log_sub(log_a0, log_s0);
            log_a1 = log_sub(log_a1, log_s1);
        }
        i += 1;
        if log_s0.max(log_s1) < -30.0 {
            break;
        }
    }
    log_add(log_a0, log_a1)
}

/// An (ε, δ) guarantee from RDP, with the order that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RdpEpsilon {
    /// The smallest ε over the orders.
    pub epsilon: f64,
    /// The order that achieved it.
    pub order: f64,
    /// Whether that order is the first or last of the grid, so a wider grid might give less.
    pub at_grid_edge: bool,
}

/// Converts an RDP curve (total over all steps) to (ε, δ)-DP.
///
/// Uses Balle, Barthe, Gaboardi, Hsu and Sato, "Hypothesis Testing Interpretations and Rényi
/// Differential Privacy" (AISTATS 2020), Theorem 21:
/// `ε = rdp(α) + ln((α - 1)/α) - (ln δ + ln α)/(α - 1)`, minimised over the orders, the
/// conversion of Opacus 1.6 and TensorFlow Privacy.
///
/// # Errors
///
/// Returns an error when δ is not in (0, 1) or no order gives a finite ε.
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> Result<RdpEpsilon, PrivacyError> {
    check_delta(delta)?;
    let mut best: Option<(usize, f64)> = None;
    for (index, (&alpha, &value)) in orders.iter().zip(rdp).enumerate() {
        let epsilon = value + ((alpha - 1.0) / alpha).ln() - (delta.ln() + alpha.ln()) / (alpha - 1.0);
        if epsilon.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, current)| epsilon < current) {
            best = Some((index, epsilon));
        }
    }
    match best {
        Some((index, epsilon)) if epsilon.is_finite() => Ok(RdpEpsilon {
            epsilon: epsilon.max(0.0),
            order: orders[index],
            at_grid_edge: index == 0 || index + 1 == orders.len(),
        }),
        _ => Err(PrivacyError::NoFiniteEpsilon),
    }
}

/// Computes ε after `steps` steps of the subsampled Gaussian mechanism, over Opacus's orders.
///
/// # Errors
///
/// Returns an error for invalid parameters (see [`crate::check_parameters`]).
pub fn epsilon(sample_rate: f64, noise_multiplier: f64, steps: u64, delta: f64) -> Result<RdpEpsilon, PrivacyError> {
    crate::check_parameters(sample_rate, noise_multiplier, delta)?;
    let orders = default_orders();
    let rdp: Vec<f64> =
        orders.iter().map(|&alpha| rdp_step(sample_rate, noise_multiplier, alpha) * steps as f64).collect();
    let result = epsilon_from_rdp(&orders, &rdp, delta)?;
    if result.at_grid_edge {
        tracing::warn!(
            "the best RDP order {} is at the edge of the order grid; epsilon {} may be loose",
            result.order,
            result.epsilon
        );
    }
    Ok(result)
}

pub(crate) fn check_delta(delta: f64) -> Result<(), PrivacyError> {
    if delta > 0.0 && delta < 1.0 { Ok(()) } else { Err(PrivacyError::InvalidDelta(delta)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative_error(actual: f64, expected: f64) -> f64 {
        ((actual - expected) / expected).abs()
    }

    #[test]
    fn matches_opacus_reference_values() {
        // Opacus 1.6 RDPAccountant with its default orders.
        let cases = [
            (256.0 / 60_000.0, 1.1, 14_063, 1e-5, 2.596_655_528_688_368_4, 8.1),
            (0.04, 1.5, 2_250, 1e-5, 7.329_111_171_438_654_5, 3.9),
            (150.0 / 60_000.0, 1.3, 6_000, 1e-5, 0.724_223_402_610_933_9, 19.0),
            (100.0 / 100_000.0, 1.0, 30_000, 1e-7, 1.415_498_849_544_484_5, 13.0),
        ];
        for (q, sigma, steps, delta, expected, order) in cases {
            let result = epsilon(q, sigma, steps, delta).unwrap();
            assert!(
                relative_error(result.epsilon, expected) < 1e-9,
                "q={q} sigma={sigma} steps={steps}: epsilon {} expected {expected}",
                result.epsilon
            );
            assert_eq!(result.order, order, "q={q} sigma={sigma}");
        }
    }

    #[test]
    fn full_batch_is_the_gaussian_mechanism() {
        assert_eq!(rdp_step(1.0, 2.0, 3.0), 3.0 / 8.0);
    }

    #[test]
    fn zero_sample_rate_costs_nothing() {
        assert_eq!(rdp_step(0.0, 1.0, 5.0), 0.0);
    }

    #[test]
    fn zero_noise_is_infinite() {
        assert_eq!(rdp_step(0.1, 0.0, 5.0), f64::INFINITY);
    }

    #[test]
    fn more_noise_gives_less_epsilon() {
        let loose = epsilon(0.01, 0.8, 1000, 1e-5).unwrap().epsilon;
        let tight = epsilon(0.01, 1.6, 1000, 1e-5).unwrap().epsilon;
        assert!(tight < loose, "{tight} >= {loose}");
    }

    #[test]
    fn default_grid_has_opacus_orders() {
        let orders = default_orders();
        assert_eq!(orders.len(), 99 + 52);
        assert_eq!(orders[0], 1.1);
        assert_eq!(*orders.last().unwrap(), 63.0);
    }
}
