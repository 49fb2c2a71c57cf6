//! Choosing the noise multiplier for a target ε.

use serde::Serialize;

use crate::{Accountant, PrivacyError, rdp};

/// Largest noise multiplier the search tries before declaring the target unreachable, as Opacus.
pub const MAX_NOISE_MULTIPLIER: f64 = 2000.0;

/// Relative width of the final bracket of the search.
const RELATIVE_TOLERANCE: f64 = 1e-6;

/// A calibrated noise multiplier and the ε it gives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Calibration {
    /// The noise multiplier σ.
    pub noise_multiplier: f64,
    /// The ε that σ gives; never above the target.
    pub epsilon: f64,
    /// The RDP order of that ε (RDP only).
    pub order: Option<f64>,
    /// Width of the PRV accountant's error interval (PRV only).
    pub epsilon_error: Option<f64>,
}

/// Finds the smallest noise multiplier (to a relative 1e-6) whose RDP ε after `steps` steps at
/// `sample_rate` and `delta` does not exceed `target_epsilon`.
///
/// ε decreases as σ grows, so bisection keeps an upper end whose ε is at most the target and
/// returns it: the result never overshoots the target.
///
/// # Errors
///
/// Returns an error for invalid parameters, or when even σ = 2000 does not reach the target.
pub fn noise_multiplier(
    target_epsilon: f64,
    sample_rate: f64,
    steps: u64,
    delta: f64,
) -> Result<Calibration, PrivacyError> {
    if !(target_epsilon.is_finite() && target_epsilon > 0.0) {
        return Err(PrivacyError::InvalidEpsilon(target_epsilon));
    }
    crate::check_parameters(sample_rate, 1.0, delta)?;
    if steps == 0 {
        return Err(PrivacyError::InvalidSteps);
    }
    let epsilon_at = |sigma: f64| rdp::epsilon(sample_rate, sigma, steps, delta);

    let mut low = 0.0;
    let mut high = 1.0;
    let mut best = epsilon_at(high)?;
    while best.epsilon > target_epsilon {
        low = high;
        high *= 2.0;
        if high > MAX_NOISE_MULTIPLIER {
            return Err(PrivacyError::Unreachable { target_epsilon, sample_rate, steps });
        }
        best = epsilon_at(high)?;
    }

    while high - low > RELATIVE_TOLERANCE * high {
        let middle = (low + high) / 2.0;
        let candidate = epsilon_at(middle)?;
        if candidate.epsilon <= target_epsilon {
            high = middle;
            best = candidate;
        } else {
            low = middle;
        }
    }
    Ok(Calibration { noise_multiplier: high, epsilon: best.epsilon, order: Some(best.order), epsilon_error: None })
}

/// Relative width of the final bracket of the PRV search, coarser because each PRV evaluation
/// takes about a second.
const PRV_RELATIVE_TOLERANCE: f64 = 1e-3;

/// Finds the smallest noise multiplier whose ε under `accountant` does not exceed the target.
///
/// For PRV, the RDP calibration gives the upper end of the bracket (RDP's ε is never below the
/// PRV bound, so that σ already meets the target) and bisection lowers it while the PRV bound
/// stays within the target.
///
/// # Errors
///
/// As [`noise_multiplier`].
pub fn noise_multiplier_with(
    accountant: Accountant,
    target_epsilon: f64,
    sample_rate: f64,
    steps: u64,
    delta: f64,
) -> Result<Calibration, PrivacyError> {
    let by_rdp = noise_multiplier(target_epsilon, sample_rate, steps, delta)?;
    if accountant == Accountant::Rdp {
        return Ok(by_rdp);
    }
    let epsilon_at = |sigma: f64| crate::prv::epsilon(sample_rate, sigma, steps, delta);
    let mut high = by_rdp.noise_multiplier;
    let mut best = epsilon_at(high)?;
    let mut low = high / 2.0;
    loop {
        let candidate = epsilon_at(low)?;
        if candidate.epsilon > target_epsilon {
            break;
        }
        high = low;
        best = candidate;
        low /= 2.0;
    }
    while high - low > PRV_RELATIVE_TOLERANCE * high {
        let middle = (low + high) / 2.0;
        let candidate = epsilon_at(middle)?;
        if candidate.epsilon <= target_epsilon {
            high = middle;
            best = candidate;
        } else {
            low = middle;
        }
    }
    Ok(Calibration {
        noise_multiplier: high,
        epsilon: best.epsilon,
        order: None,
        epsilon_error: Some(best.epsilon_error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_matches_opacus() {
        // Opacus 1.6 get_noise_multiplier(target_epsilon=8, target_delta=1e-5, sample_rate=0.04,
        // steps=2250) gives about 1.416; its search stops within 0.01 of the target ε.
        let calibration = noise_multiplier(8.0, 0.04, 2250, 1e-5).unwrap();
        assert!((calibration.noise_multiplier - 1.416).abs() < 0.002, "{calibration:?}");
        assert!(calibration.epsilon <= 8.0);
        assert!(calibration.epsilon > 7.999);
    }

    #[test]
    fn calibration_never_overshoots() {
        for target in [0.5, 1.0, 3.0, 10.0] {
            let calibration = noise_multiplier(target, 256.0 / 32_561.0, 2_544, 1e-5).unwrap();
            let check = rdp::epsilon(256.0 / 32_561.0, calibration.noise_multiplier, 2_544, 1e-5).unwrap();
            assert!(check.epsilon <= target, "target {target}: epsilon {}", check.epsilon);
        }
    }

    #[test]
    fn tiny_epsilon_with_full_batches_is_unreachable() {
        let error = noise_multiplier(1e-6, 1.0, 1_000_000, 1e-5).unwrap_err();
        assert!(matches!(error, PrivacyError::Unreachable { .. }), "{error}");
    }

    #[test]
    fn prv_calibration_needs_less_noise_and_meets_target() {
        let rdp = noise_multiplier_with(Accountant::Rdp, 1.0, 0.01, 100, 1e-5).unwrap();
        let prv = noise_multiplier_with(Accountant::Prv, 1.0, 0.01, 100, 1e-5).unwrap();
        assert!(prv.noise_multiplier < rdp.noise_multiplier, "{prv:?} {rdp:?}");
        let check = crate::prv::epsilon(0.01, prv.noise_multiplier, 100, 1e-5).unwrap();
        assert!(check.epsilon <= 1.0, "{check:?}");
    }

    #[test]
    fn rejects_non_positive_epsilon() {
        assert_eq!(noise_multiplier(0.0, 0.01, 10, 1e-5).unwrap_err(), PrivacyError::InvalidEpsilon(0.0));
    }
}
