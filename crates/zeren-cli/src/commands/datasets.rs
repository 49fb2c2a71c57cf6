//! `zeren datasets`: list the built-in datasets.

use zeren_data::builtin::{BUILTIN_DATASETS, load_builtin};

use crate::error::CliError;

/// Prints each built-in dataset with its task and size.
pub fn run() -> Result<(), CliError> {
    for name in BUILTIN_DATASETS {
        let dataset = load_builtin(name)?;
        let test_rows = dataset.test.as_ref().map_or(0, |t| t.len());
        println!("{name}: {}", dataset.description);
        println!(
            "  {} training rows{}; target {} (positive label {}); sensitive {}",
            dataset.train.len(),
            if test_rows > 0 { format!(" + {test_rows} official test rows") } else { String::new() },
            dataset.target,
            dataset.positive_label,
            dataset.sensitive.join(", ")
        );
        println!("  source: {}", dataset.provenance);
    }
    Ok(())
}
