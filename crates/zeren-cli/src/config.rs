//! The `zeren train` configuration: TOML file, flags, and defaults.

use std::path::{Path, PathBuf};

use zeren_train::device::DeviceKind;
use zeren_train::dp::Clipping;
use zeren_train::{Activation, LossKind, OptimizerKind};

use crate::cli::{FairnessConstraint, MitigationMethod, ThresholdObjective, ThresholdSplit, TrainArgs};
use crate::error::CliError;

/// Defaults of every option that has one. They give a 64-unit MLP trained with Adam, which
/// reaches the Adult reference figures of scikit-learn's `MLPClassifier` (see the benchmarks page).
pub mod defaults {
    pub const SEED: u64 = 0;
    pub const EPOCHS: usize = 30;
    pub const BATCH_SIZE: usize = 256;
    pub const LEARNING_RATE: f64 = 0.001;
    pub const HIDDEN: [usize; 1] = [64];
    pub const MOMENTUM: f64 = 0.9;
    pub const WEIGHT_DECAY: f64 = 0.0;
    pub const PATIENCE: usize = 5;
    pub const TEST_FRACTION: f64 = 0.2;
    pub const VALIDATION_FRACTION: f64 = 0.1;
    pub const DECISION_THRESHOLD: f64 = 0.5;
    pub const BOOTSTRAP: usize = 200;
    pub const DELIMITER: &str = ",";
    pub const MAX_GRAD_NORM: f64 = 1.0;
    /// Fairlearn 0.15's default `eps` of `ExponentiatedGradient`.
    pub const REDUCTION_TOLERANCE: f64 = 0.01;
    /// Fairlearn 0.15's default `max_iter` of `ExponentiatedGradient`.
    pub const MAX_ITERATIONS: usize = 50;
}

/// Reads the config file named by `--config`, if any, and lets the flags override it.
///
/// Relative paths in the file are taken relative to the file's directory, so a config file and
/// its data can move together.
///
/// # Errors
///
/// Returns a usage error when the file cannot be read or parsed, or has an unknown key.
pub fn merge_config_file(flags: TrainArgs) -> Result<TrainArgs, CliError> {
    let Some(path) = flags.config.clone() else {
        return Ok(flags);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::usage(format!("{}: cannot read config file: {e}", path.display())))?;
    let mut file: TrainArgs = toml::from_str(&text)
        .map_err(|e| CliError::usage(format!("{}: invalid config: {}", path.display(), e.to_string().trim_end())))?;

    let base = path.parent().unwrap_or(Path::new("."));
    for file_path in [&mut file.data, &mut file.test_data, &mut file.out, &mut file.signing_key].into_iter().flatten() {
        if file_path.is_relative() {
            *file_path = base.join(&*file_path);
        }
    }
    Ok(overlay(flags, file))
}

/// Takes each option from the flags when given there, otherwise from the file.
fn overlay(flags: TrainArgs, file: TrainArgs) -> TrainArgs {
    macro_rules! pick {
        ($($field:ident),* ; $($flag:ident),*) => {
            TrainArgs {
                config: flags.config,
                $($field: flags.$field.or(file.$field),)*
                $($flag: flags.$flag || file.$flag,)*
            }
        };
    }
    pick!(
        dataset, data, test_data, target, positive_label, sensitive, exclude, categorical, numeric,
        delimiter, missing_values, test_fraction, validation_fraction, out, seed, epochs, batch_size,
        learning_rate, model, hidden, activation, loss, optimizer, momentum, weight_decay, patience,
        loss_threshold, decision_threshold, bootstrap, dp_epsilon, dp_delta, max_grad_norm, dp_clipping, dp_accountant, pii, mitigation, constraint, tolerance, objective, threshold_split, max_iterations, signing_key, device, card;
        sensitive_as_features, no_header, allow_missing_groups, compare_non_private, quiet
    )
}

/// Fills in every default of a run's options, as recorded in the run directory.
pub fn with_defaults(mut args: TrainArgs) -> TrainArgs {
    args.seed.get_or_insert(defaults::SEED);
    args.epochs.get_or_insert(defaults::EPOCHS);
    args.batch_size.get_or_insert(defaults::BATCH_SIZE);
    args.learning_rate.get_or_insert(defaults::LEARNING_RATE);
    let model = *args.model.get_or_insert(crate::cli::ModelKind::default());
    let hidden = if model == crate::cli::ModelKind::Logistic { Vec::new() } else { defaults::HIDDEN.to_vec() };
    args.hidden.get_or_insert(hidden);
    args.activation.get_or_insert(Activation::default());
    args.loss.get_or_insert(LossKind::default());
    args.optimizer.get_or_insert(OptimizerKind::default());
    args.momentum.get_or_insert(defaults::MOMENTUM);
    args.weight_decay.get_or_insert(defaults::WEIGHT_DECAY);
    args.test_fraction.get_or_insert(defaults::TEST_FRACTION);
    args.validation_fraction.get_or_insert(defaults::VALIDATION_FRACTION);
    args.decision_threshold.get_or_insert(defaults::DECISION_THRESHOLD);
    args.bootstrap.get_or_insert(defaults::BOOTSTRAP);
    args.device.get_or_insert(DeviceKind::default());
    args.pii.get_or_insert(crate::cli::PiiAction::default());
    args.delimiter.get_or_insert(defaults::DELIMITER.to_string());
    if args.dp_epsilon.is_some() {
        args.max_grad_norm.get_or_insert(defaults::MAX_GRAD_NORM);
        args.dp_clipping.get_or_insert(Clipping::default());
        args.dp_accountant.get_or_insert(crate::cli::AccountantKind::default());
    }
    match args.mitigation {
        Some(MitigationMethod::ExponentiatedGradient) => {
            args.constraint.get_or_insert(FairnessConstraint::default());
            args.tolerance.get_or_insert(defaults::REDUCTION_TOLERANCE);
            args.max_iterations.get_or_insert(defaults::MAX_ITERATIONS);
        }
        Some(MitigationMethod::Threshold) => {
            args.constraint.get_or_insert(FairnessConstraint::default());
            args.objective.get_or_insert(ThresholdObjective::default());
            args.threshold_split.get_or_insert(ThresholdSplit::default());
        }
        Some(MitigationMethod::Reweighing) | None => {}
    }
    if args.patience.is_none() && args.validation_fraction != Some(0.0) {
        args.patience = Some(defaults::PATIENCE);
    }
    args
}

/// Returns the default δ for `rows` training records: the largest power of ten strictly below
/// `1/rows`, so that δ < 1/N as the DP guarantee needs to be meaningful (a mechanism that
/// publishes one random record whole is (0, 1/N)-DP).
pub fn default_delta(rows: usize) -> f64 {
    let inverse = 1.0 / rows.max(1) as f64;
    let mut exponent = inverse.log10().floor();
    if 10f64.powf(exponent) >= inverse {
        exponent -= 1.0;
    }
    10f64.powf(exponent)
}

/// Parses a delimiter option: one ASCII character, or `tab`.
///
/// # Errors
///
/// Returns a usage error for anything else.
pub fn parse_delimiter(value: &str) -> Result<u8, CliError> {
    match value {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if value.len() == 1 && value.is_ascii() => Ok(value.as_bytes()[0]),
        _ => Err(CliError::usage(format!(
            "delimiter '{value}' is invalid; use one ASCII character such as ',' or ';', or 'tab'"
        ))),
    }
}

/// Default run directory: `runs/NAME-YYYYMMDD-HHMMSS` in UTC, with `-2`, `-3`, ... appended when
/// a run of the same second exists.
pub fn default_out(name: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let base = PathBuf::from("runs").join(format!("{name}-{stamp}"));
    let mut candidate = base.clone();
    let mut suffix = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{suffix}", base.display()));
        suffix += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_values() {
        let flags = TrainArgs { epochs: Some(3), quiet: true, ..TrainArgs::default() };
        let file: TrainArgs = toml::from_str("epochs = 9\nbatch-size = 16\nhidden = [8, 4]\n").unwrap();
        let merged = overlay(flags, file);
        assert_eq!(merged.epochs, Some(3));
        assert_eq!(merged.batch_size, Some(16));
        assert_eq!(merged.hidden, Some(vec![8, 4]));
        assert!(merged.quiet);
    }

    #[test]
    fn unknown_key_is_named() {
        let error = toml::from_str::<TrainArgs>("learning_rate = 0.1\n").unwrap_err();
        assert!(error.to_string().contains("unknown field `learning_rate`"), "{error}");
    }

    #[test]
    fn enum_values_parse_from_toml() {
        let args: TrainArgs = toml::from_str("activation = \"tanh\"\noptimizer = \"sgd\"\nloss = \"mse\"\n").unwrap();
        assert_eq!(args.activation, Some(Activation::Tanh));
        assert_eq!(args.optimizer, Some(OptimizerKind::Sgd));
        assert_eq!(args.loss, Some(LossKind::Mse));
    }

    #[test]
    fn resolved_config_round_trips() {
        let resolved = with_defaults(TrainArgs { dataset: Some("adult".into()), ..TrainArgs::default() });
        let text = toml::to_string(&resolved).unwrap();
        let parsed: TrainArgs = toml::from_str(&text).unwrap();
        assert_eq!(parsed.epochs, Some(defaults::EPOCHS));
        assert_eq!(parsed.patience, Some(defaults::PATIENCE));
    }

    #[test]
    fn default_delta_is_below_one_over_n() {
        assert_eq!(default_delta(29_305), 1e-5);
        assert_eq!(default_delta(1_000), 1e-4);
        assert_eq!(default_delta(60_000), 1e-5);
        for rows in [1, 7, 100, 12_345, 1_000_000] {
            assert!(default_delta(rows) < 1.0 / rows as f64, "{rows}");
        }
    }

    #[test]
    fn delimiter_accepts_tab_and_single_characters() {
        assert_eq!(parse_delimiter("tab").unwrap(), b'\t');
        assert_eq!(parse_delimiter(";").unwrap(), b';');
        assert!(parse_delimiter("ab").is_err());
        assert!(parse_delimiter("，").is_err());
    }
}
