//! `zeren privacy`: accounting for DP-SGD without training.

use serde_json::json;
use zeren_privacy::{calibrate, rdp};

use crate::cli::{AccountantKind, PrivacyCommand};
use crate::error::CliError;

/// Runs `zeren privacy epsilon` or `zeren privacy noise`.
pub fn run(command: PrivacyCommand) -> Result<(), CliError> {
    match command {
        PrivacyCommand::Epsilon(args) => {
            let AccountantKind::Rdp = args.accountant;
            if args.steps == 0 {
                return Err(CliError::usage("--steps must be at least 1"));
            }
            let spent = rdp::epsilon(args.sample_rate, args.noise_multiplier, args.steps, args.delta)?;
            if args.json {
                println!("{}", json!({"epsilon": spent.epsilon, "delta": args.delta, "accountant": "rdp", "order": spent.order}));
            } else {
                println!(
                    "epsilon {:.6} at delta {} (RDP accountant, best order {}) after {} steps at sample rate {} with noise multiplier {}",
                    spent.epsilon, args.delta, spent.order, args.steps, args.sample_rate, args.noise_multiplier
                );
            }
        }
        PrivacyCommand::Noise(args) => {
            let AccountantKind::Rdp = args.accountant;
            let calibration = calibrate::noise_multiplier(args.target_epsilon, args.sample_rate, args.steps, args.delta)?;
            if args.json {
                println!(
                    "{}",
                    json!({
                        "noise_multiplier": calibration.noise_multiplier,
                        "epsilon": calibration.epsilon,
                        "delta": args.delta,
                        "accountant": "rdp",
                        "order": calibration.order,
                    })
                );
            } else {
                println!(
                    "noise multiplier {:.6} gives epsilon {:.6} at delta {} (RDP accountant) after {} steps at sample rate {}",
                    calibration.noise_multiplier, calibration.epsilon, args.delta, args.steps, args.sample_rate
                );
            }
        }
    }
    Ok(())
}
