//! Differential-privacy accounting for DP-SGD, with no deep-learning dependency.
//!
//! DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016) is the repeated
//! Poisson-subsampled Gaussian mechanism. This crate computes the (ε, δ) it guarantees with the
//! RDP accountant of Opacus 1.6 and picks the noise multiplier for a target ε.
//!
//! ```
//! use zeren_privacy::{calibrate, rdp};
//!
//! let spent = rdp::epsilon(0.04, 1.5, 2250, 1e-5).unwrap();
//! assert!((spent.epsilon - 7.3291).abs() < 1e-4);
//! let sigma = calibrate::noise_multiplier(8.0, 0.04, 2250, 1e-5).unwrap();
//! assert!(sigma.epsilon <= 8.0);
//! ```
//!
//! # Privacy
//!
//! The guarantee is record-level (add-or-remove one record) differential privacy of the
//! sequence of all noisy gradient sums, assuming each record joins each batch independently with
//! probability `q` (Poisson sampling), gradients are clipped to the stated norm, and the noise is
//! drawn from a generator the adversary cannot predict.

pub mod calibrate;
pub mod membership;
pub mod prv;
pub mod rdp;
mod special;

/// A privacy accountant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accountant {
    /// Rényi DP (Mironov, Talwar and Zhang 2019) with the conversion of Balle et al. (2020).
    #[default]
    Rdp,
    /// Privacy random variables composed by FFT (Gopi, Lee and Wutschitz 2021), tighter, with an
    /// explicit error.
    Prv,
}

impl Accountant {
    /// Returns the name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Accountant::Rdp => "rdp",
            Accountant::Prv => "prv",
        }
    }
}

/// ε from an accountant, with what the accountant adds to it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spent {
    /// ε (an upper bound for both accountants).
    pub epsilon: f64,
    /// The RDP order that gave ε (RDP only).
    pub order: Option<f64>,
    /// Width of the PRV accountant's error interval (PRV only).
    pub epsilon_error: Option<f64>,
}

/// Computes ε after `steps` steps of DP-SGD with the given accountant.
///
/// # Errors
///
/// Returns an error for invalid parameters.
pub fn epsilon(
    accountant: Accountant,
    sample_rate: f64,
    noise_multiplier: f64,
    steps: u64,
    delta: f64,
) -> Result<Spent, PrivacyError> {
    match accountant {
        Accountant::Rdp => {
            let spent = rdp::epsilon(sample_rate, noise_multiplier, steps, delta)?;
            Ok(Spent { epsilon: spent.epsilon, order: Some(spent.order), epsilon_error: None })
        }
        Accountant::Prv => {
            let spent = prv::epsilon(sample_rate, noise_multiplier, steps, delta)?;
            Ok(Spent { epsilon: spent.epsilon, order: None, epsilon_error: Some(spent.epsilon_error) })
        }
    }
}

/// Errors from invalid privacy parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrivacyError {
    /// ε is not a positive finite number.
    #[error("epsilon {0} is invalid; use a positive number such as 1 or 8")]
    InvalidEpsilon(f64),
    /// δ is outside (0, 1).
    #[error("delta {0} is invalid; use a value in (0, 1), well below 1/N for N training records (for example 1e-5)")]
    InvalidDelta(f64),
    /// The sample rate is outside (0, 1].
    #[error("sample rate {0} is invalid; use q in (0, 1], the expected batch size divided by the number of records")]
    InvalidSampleRate(f64),
    /// The noise multiplier is negative or not finite.
    #[error("noise multiplier {0} is invalid; use a positive number (a noise multiplier of 0 gives no privacy)")]
    InvalidNoiseMultiplier(f64),
    /// The number of steps is 0.
    #[error("steps must be at least 1")]
    InvalidSteps,
    /// No RDP order gives a finite ε.
    #[error("no finite epsilon: the noise multiplier is too small for this many steps; add noise or train fewer steps")]
    NoFiniteEpsilon,
    /// The PRV accountant was given a sample rate of 1.
    #[error(
        "the PRV accountant needs a sample rate below 1 (Poisson subsampling); use the RDP accountant, which is exact without subsampling"
    )]
    PrvNeedsSubsampling,
    /// The PRV accountant would need a larger grid than it allows.
    #[error(
        "the PRV accountant needs a grid of {points} points for these parameters, more than it allows; use the RDP accountant"
    )]
    GridTooLarge { points: usize },
    /// No noise multiplier up to the search limit reaches the target.
    #[error(
        "epsilon {target_epsilon} cannot be reached in {steps} steps at sample rate {sample_rate} with a noise multiplier up to 2000; \
         raise the target, lower the sample rate or train fewer steps"
    )]
    Unreachable { target_epsilon: f64, sample_rate: f64, steps: u64 },
}

/// Checks a sample rate in (0, 1], a noise multiplier above 0 and a δ in (0, 1).
///
/// # Errors
///
/// Returns the error naming the first invalid value.
pub fn check_parameters(sample_rate: f64, noise_multiplier: f64, delta: f64) -> Result<(), PrivacyError> {
    if !(sample_rate > 0.0 && sample_rate <= 1.0) {
        return Err(PrivacyError::InvalidSampleRate(sample_rate));
    }
    if !(noise_multiplier.is_finite() && noise_multiplier > 0.0) {
        return Err(PrivacyError::InvalidNoiseMultiplier(noise_multiplier));
    }
    rdp::check_delta(delta)
}
