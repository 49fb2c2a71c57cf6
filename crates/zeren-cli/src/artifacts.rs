//! Files of a run directory that `zeren predict` reads back.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use zeren_data::{CsvOptions, FeatureEncoder, LabelEncoding};
use zeren_fairness::mitigation::exponentiated_gradient::RandomizedClassifier;
use zeren_fairness::mitigation::threshold::ThresholdOptimizer;
use zeren_train::MlpWeights;

use crate::error::CliError;

/// Weights file of a run directory.
pub const MODEL_FILE: &str = "model.json";
/// Preprocessing file of a run directory.
pub const PREPROCESSING_FILE: &str = "preprocessing.json";
/// Resolved configuration of a run directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Machine-readable report.
pub const REPORT_JSON: &str = "report.json";
/// Report for people.
pub const REPORT_MARKDOWN: &str = "report.md";
/// The model card, one self-contained HTML page.
pub const REPORT_HTML: &str = "report.html";
/// Test-split predictions, for auditing with other tools.
pub const TEST_PREDICTIONS: &str = "test_predictions.csv";
/// The mitigated classifier of a threshold or exponentiated-gradient run.
pub const MITIGATION_FILE: &str = "mitigation.json";

/// Format version of `model.json` and `preprocessing.json`.
pub const FORMAT_VERSION: u32 = 1;

/// `model.json`: the network's shape and weights.
#[derive(Debug, Serialize, Deserialize)]
pub struct ModelFile {
    pub format_version: u32,
    #[serde(flatten)]
    pub weights: MlpWeights,
}

/// `preprocessing.json`: how to turn a CSV file into model inputs.
#[derive(Debug, Serialize, Deserialize)]
pub struct PreprocessingFile {
    pub format_version: u32,
    /// Options for reading input files.
    pub csv: CsvOptions,
    /// The fitted feature encoding.
    pub encoder: FeatureEncoder,
    /// Target column and labels.
    pub label: LabelEncoding,
    /// Sensitive columns of the training run.
    pub sensitive: Vec<String>,
    /// Probability at or above which a row is predicted positive.
    pub decision_threshold: f64,
    /// Columns whose identifiers the PII gate masked (`--pii mask`), with their entity type;
    /// `zeren predict` masks them the same way before encoding.
    #[serde(default)]
    pub pii_masked: Vec<(String, zeren_pii::EntityType)>,
}

/// `mitigation.json`: the classifier that a threshold or exponentiated-gradient run deploys in
/// place of `model.json` alone.
#[derive(Debug, Serialize, Deserialize)]
pub struct MitigationFile {
    pub format_version: u32,
    /// Sensitive columns whose values, joined by `", "`, form a row's group.
    pub groups_from: Vec<String>,
    /// Default seed of the coin flips at prediction time: the training run's seed.
    pub seed: u64,
    /// The mitigated classifier.
    #[serde(flatten)]
    pub classifier: MitigatedClassifier,
}

/// The classifier of a mitigated run, tagged by `method`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum MitigatedClassifier {
    /// Group rules on the probabilities of the model in `model.json`.
    Threshold { thresholds: ThresholdOptimizer },
    /// A distribution over networks; network `j` predicts positive at probability >=
    /// `decision_threshold`, and is drawn with probability `classifier.weights[j]`.
    ExponentiatedGradient { classifier: RandomizedClassifier, decision_threshold: f64, models: Vec<MlpWeights> },
}

/// Reads and checks a JSON artifact of a run directory.
pub fn read_artifact<T: for<'de> Deserialize<'de>>(run: &Path, name: &str) -> Result<T, CliError> {
    let path = run.join(name);
    if !run.is_dir() {
        return Err(CliError::usage(format!(
            "{}: run directory not found; pass the --out directory of `zeren train`",
            run.display()
        )));
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read; is this a complete zeren run directory?", path.display()))?;
    let value: T =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid or damaged file", path.display()))?;
    Ok(value)
}

/// Checks the format version of an artifact.
pub fn check_version(run: &Path, name: &str, version: u32) -> Result<(), CliError> {
    if version != FORMAT_VERSION {
        return Err(CliError::Failure(anyhow::anyhow!(
            "{}: format version {version} is not supported by this zeren (expects {FORMAT_VERSION}); use the zeren version that wrote it",
            run.join(name).display()
        )));
    }
    Ok(())
}
