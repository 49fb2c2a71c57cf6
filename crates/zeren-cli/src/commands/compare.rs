//! `zeren compare`: several runs side by side, to pick a model on the accuracy-fairness trade-off.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use crate::artifacts::REPORT_JSON;
use crate::cli::CompareArgs;
use crate::error::CliError;
use crate::run_dir::write_file_atomically;

/// Columns of the comparison.
const HEADER: [&str; 8] = [
    "run",
    "accuracy",
    "roc_auc",
    "sensitive",
    "demographic_parity_difference",
    "equalized_odds_difference",
    "epsilon",
    "mitigation",
];

/// Runs `zeren compare`.
pub fn run(args: CompareArgs) -> Result<(), CliError> {
    let mut rows = Vec::with_capacity(args.runs.len());
    for run in &args.runs {
        let path = run.join(REPORT_JSON);
        let text = std::fs::read_to_string(&path).map_err(|_| {
            CliError::usage(format!("{}: no report.json; pass run directories written by zeren train", run.display()))
        })?;
        let report: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::Failure(anyhow::anyhow!("{}: invalid or damaged report: {e}", path.display())))?;
        rows.push(row(&run.display().to_string(), &report));
    }

    let csv_path = PathBuf::from(format!("{}.csv", args.out.display()));
    let markdown_path = PathBuf::from(format!("{}.md", args.out.display()));
    // Both outputs are checked first, so that a clash leaves neither file half of a pair.
    for path in [&csv_path, &markdown_path] {
        if path.exists() {
            return Err(CliError::usage(format!(
                "{}: file already exists; choose another --out or remove it",
                path.display()
            )));
        }
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(HEADER).map_err(|e| CliError::Failure(e.into()))?;
    for row in &rows {
        writer.write_record(row).map_err(|e| CliError::Failure(e.into()))?;
    }
    let csv_bytes =
        writer.into_inner().map_err(|e| CliError::Failure(anyhow::anyhow!("cannot write the comparison: {e}")))?;

    let mut markdown = format!("| {} |\n|{}\n", HEADER.join(" | "), "---|".repeat(HEADER.len()));
    for row in &rows {
        let _ = writeln!(markdown, "| {} |", row.join(" | "));
    }
    write_file_atomically(&csv_path, &csv_bytes)?;
    write_file_atomically(&markdown_path, markdown.as_bytes())?;
    print!("{markdown}");
    eprintln!("zeren: wrote {} and {}", csv_path.display(), markdown_path.display());
    Ok(())
}

fn number(value: &Value) -> String {
    value.as_f64().map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

/// Builds one row: figures of the test split, disparities on the first sensitive column.
fn row(name: &str, report: &Value) -> Vec<String> {
    let sensitive = report["data"]["sensitive"].get(0).and_then(Value::as_str).unwrap_or("");
    let fairness = &report["fairness"][sensitive];
    vec![
        name.to_string(),
        number(&report["metrics"]["test"]["accuracy"]),
        number(&report["metrics"]["test"]["roc_auc"]),
        sensitive.to_string(),
        number(&fairness["demographic_parity_difference"]),
        number(&fairness["equalized_odds_difference"]),
        number(&report["privacy"]["epsilon"]),
        report["mitigation"]["method"].as_str().unwrap_or("-").to_string(),
    ]
}
