//! `zeren privacy`: accounting for DP-SGD without training.

use serde_json::json;
use zeren_privacy::{Accountant, calibrate, epsilon};

use crate::cli::PrivacyCommand;
use crate::error::CliError;

/// Runs `zeren privacy epsilon` or `zeren privacy noise`.
pub fn run(command: PrivacyCommand) -> Result<(), CliError> {
    match command {
        PrivacyCommand::Epsilon(args) => {
            if args.steps == 0 {
                return Err(CliError::usage("--steps must be at least 1"));
            }
            let accountant = Accountant::from(args.accountant);
            let spent = epsilon(accountant, args.sample_rate, args.noise_multiplier, args.steps, args.delta)?;
            if args.json {
                let mut value = json!({"epsilon": spent.epsilon, "delta": args.delta, "accountant": accountant.name()});
                if let Some(order) = spent.order {
                    value["order"] = json!(order);
                }
                if let Some(error) = spent.epsilon_error {
                    value["epsilon_error"] = json!(error);
                }
                println!("{value}");
            } else {
                println!(
                    "epsilon {:.6}{} at delta {} ({} accountant) after {} steps at sample rate {} with noise multiplier {}",
                    spent.epsilon,
                    detail(spent.order, spent.epsilon_error),
                    args.delta,
                    accountant.name(),
                    args.steps,
                    args.sample_rate,
                    args.noise_multiplier
                );
            }
        }
        PrivacyCommand::Noise(args) => {
            let accountant = Accountant::from(args.accountant);
            let calibration = calibrate::noise_multiplier_with(
                accountant,
                args.target_epsilon,
                args.sample_rate,
                args.steps,
                args.delta,
            )?;
            if args.json {
                let mut value = json!({
                    "noise_multiplier": calibration.noise_multiplier,
                    "epsilon": calibration.epsilon,
                    "delta": args.delta,
                    "accountant": accountant.name(),
                });
                if let Some(order) = calibration.order {
                    value["order"] = json!(order);
                }
                if let Some(error) = calibration.epsilon_error {
                    value["epsilon_error"] = json!(error);
                }
                println!("{value}");
            } else {
                println!(
                    "noise multiplier {:.6} gives epsilon {:.6}{} at delta {} ({} accountant) after {} steps at sample rate {}",
                    calibration.noise_multiplier,
                    calibration.epsilon,
                    detail(calibration.order, calibration.epsilon_error),
                    args.delta,
                    accountant.name(),
                    args.steps,
                    args.sample_rate
                );
            }
        }
    }
    Ok(())
}

fn detail(order: Option<f64>, error: Option<f64>) -> String {
    match (order, error) {
        (Some(order), _) => format!(" (best RDP order {order})"),
        (_, Some(error)) => format!(" (upper bound; error interval width {error:.4})"),
        _ => String::new(),
    }
}
