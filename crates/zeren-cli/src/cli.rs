//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use zeren_train::device::DeviceKind;
use zeren_train::dp::Clipping;
use zeren_train::{Activation, LossKind, OptimizerKind};

/// Train neural networks with privacy, fairness and accountability built in.
#[derive(Debug, Parser)]
#[command(name = "zeren", version, about, long_about = None, args_override_self = true, allow_negative_numbers = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a classifier, evaluate it, audit its fairness and write a run directory.
    #[command(allow_negative_numbers = true)]
    Train(Box<TrainArgs>),
    /// Score a CSV file with a trained model and write probabilities and labels.
    Predict(PredictArgs),
    /// Audit the fairness of predictions in a CSV file from any model.
    Audit(AuditArgs),
    /// List the built-in datasets.
    Datasets,
    /// Compute the privacy guarantee of DP-SGD, or the noise for a target guarantee.
    #[command(subcommand)]
    Privacy(PrivacyCommand),
    /// Find personal identifiers in CSV, JSON Lines and text files, without printing them.
    Scan(ScanArgs),
    /// Write a copy of a file with personal identifiers replaced by a policy's operators.
    Redact(RedactArgs),
    /// Create an Ed25519 key pair for signing run manifests.
    Keygen(KeygenArgs),
    /// Check a run directory against its manifest and, with a public key, its signature.
    Verify(VerifyArgs),
    /// Compare runs side by side: accuracy, ROC AUC, disparities and epsilon.
    Compare(CompareArgs),
    /// Render a run's model card (report.html) again from its report.json.
    Report(ReportArgs),
    /// Detect the watermark of generated text.
    #[command(subcommand)]
    Watermark(crate::commands::watermark::WatermarkCommand),
    /// Train a small transformer language model, or generate labelled text from one.
    #[command(subcommand)]
    Lm(crate::commands::lm::LmCommand),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directory written by `zeren train`.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// HTML file to write (default RUN_DIR/report.html, replaced whole).
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run directories written by `zeren train`.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Prefix of the CSV and Markdown tables to write (PREFIX.csv, PREFIX.md).
    #[arg(long, value_name = "PREFIX", default_value = "comparison")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Private key file to create (PKCS#8 PEM, mode 0600); the public key goes to PATH.pub.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Run directory written by `zeren train`.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Public key (PEM) to check the signature with.
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories (searched recursively) to scan.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print one JSON object per finding, one per line, instead of the summary table.
    #[arg(long)]
    pub json: bool,
    /// JSON report with counts, locations and masked examples. An existing file is replaced only
    /// when it is an earlier scan report.
    #[arg(long, value_name = "FILE", default_value = "pii-report.json")]
    pub report: PathBuf,
    /// Findings below this score are ignored.
    #[arg(long, value_name = "S", default_value_t = 0.5)]
    pub min_score: f64,
    /// CSV field delimiter: one character, or `tab` (default: `,`, or tab for .tsv files).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
}

#[derive(Debug, Args)]
pub struct RedactArgs {
    /// File to redact: CSV (.csv, .tsv) by rows and columns, anything else as text lines.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output file; it must not exist. Written whole or not at all.
    #[arg(short, long, value_name = "OUT")]
    pub out: PathBuf,
    /// TOML policy choosing an operator per entity type and column (default: replace every
    /// finding with its tag).
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<PathBuf>,
    /// Secret key file for the hash operator (at least 32 bytes).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Findings below this score are left as they are.
    #[arg(long, value_name = "S", default_value_t = 0.5)]
    pub min_score: f64,
    /// CSV field delimiter: one character, or `tab` (default: `,`, or tab for .tsv files).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Print the epsilon of DP-SGD with the given sample rate, noise multiplier and steps.
    #[command(allow_negative_numbers = true)]
    Epsilon(EpsilonArgs),
    /// Print the smallest noise multiplier that reaches a target epsilon.
    #[command(allow_negative_numbers = true)]
    Noise(NoiseArgs),
}

/// Privacy accountant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountantKind {
    /// Rényi DP of the subsampled Gaussian (Mironov et al. 2019), converted with Balle et al. 2020.
    #[default]
    Rdp,
    /// Privacy random variables composed by FFT (Gopi et al. 2021): tighter, with a stated error.
    Prv,
}

impl From<AccountantKind> for zeren_privacy::Accountant {
    fn from(kind: AccountantKind) -> Self {
        match kind {
            AccountantKind::Rdp => zeren_privacy::Accountant::Rdp,
            AccountantKind::Prv => zeren_privacy::Accountant::Prv,
        }
    }
}

#[derive(Debug, Args)]
pub struct EpsilonArgs {
    /// Probability q that a record joins a batch: expected batch size / number of records.
    #[arg(long, value_name = "Q")]
    pub sample_rate: f64,
    /// Noise standard deviation divided by the clipping norm.
    #[arg(long, value_name = "SIGMA")]
    pub noise_multiplier: f64,
    /// Number of noisy gradient steps.
    #[arg(long, value_name = "T")]
    pub steps: u64,
    /// Target delta, the probability the epsilon bound may fail.
    #[arg(long, value_name = "D")]
    pub delta: f64,
    /// Privacy accountant.
    #[arg(long, value_enum, default_value_t)]
    pub accountant: AccountantKind,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NoiseArgs {
    /// Epsilon to reach.
    #[arg(long, value_name = "E")]
    pub target_epsilon: f64,
    /// Probability q that a record joins a batch: expected batch size / number of records.
    #[arg(long, value_name = "Q")]
    pub sample_rate: f64,
    /// Number of noisy gradient steps.
    #[arg(long, value_name = "T")]
    pub steps: u64,
    /// Target delta.
    #[arg(long, value_name = "D")]
    pub delta: f64,
    /// Privacy accountant.
    #[arg(long, value_enum, default_value_t)]
    pub accountant: AccountantKind,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `zeren train`.
///
/// The same struct reads the `--config` TOML file, so every flag has a key of the same name
/// (`learning-rate = 0.001`) and an unknown key is an error. Flags override the file.
#[derive(Debug, Clone, Args, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrainArgs {
    /// TOML file with any of these options, named as here (`learning-rate = 0.001`).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Built-in dataset to train on: adult, german or compas.
    #[arg(long, value_name = "NAME", conflicts_with = "data")]
    pub dataset: Option<String>,
    /// CSV file to train on.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// CSV file to test on; without it, a stratified share of --data is held out.
    #[arg(long, value_name = "FILE")]
    pub test_data: Option<PathBuf>,
    /// Target column to predict.
    #[arg(long, value_name = "COL")]
    pub target: Option<String>,
    /// Value of the target column that is the positive class.
    #[arg(long, value_name = "VALUE")]
    pub positive_label: Option<String>,
    /// Sensitive columns to audit, comma-separated.
    #[arg(long, value_name = "COL[,COL]", value_delimiter = ',')]
    pub sensitive: Option<Vec<String>>,
    /// Also use the sensitive columns as model inputs (off by default).
    #[arg(long)]
    #[serde(default)]
    pub sensitive_as_features: bool,
    /// Columns never used as model inputs, comma-separated.
    #[arg(long, value_name = "COL[,COL]", value_delimiter = ',')]
    pub exclude: Option<Vec<String>>,
    /// Columns to treat as categorical even if they hold numbers, comma-separated.
    #[arg(long, value_name = "COL[,COL]", value_delimiter = ',')]
    pub categorical: Option<Vec<String>>,
    /// Columns that must be numeric, comma-separated.
    #[arg(long, value_name = "COL[,COL]", value_delimiter = ',')]
    pub numeric: Option<Vec<String>>,

    /// Field delimiter of the CSV files: one character, or `tab`.
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
    /// The CSV files have no header row; columns are named column_1, column_2, ...
    #[arg(long)]
    #[serde(default)]
    pub no_header: bool,
    /// Cell values that mean "missing", comma-separated (default: ?,NA,N/A; empty cells always).
    #[arg(long, value_name = "TOKEN[,TOKEN]", value_delimiter = ',')]
    pub missing_values: Option<Vec<String>>,

    /// Share of rows held out for testing when there is no --test-data (default 0.2).
    #[arg(long, value_name = "SHARE")]
    pub test_fraction: Option<f64>,
    /// Share of training rows held out for early stopping (default 0.1; 0 turns it off).
    #[arg(long, value_name = "SHARE")]
    pub validation_fraction: Option<f64>,
    /// Test rows may lack a sensitive group seen in training (it is then not audited).
    #[arg(long)]
    #[serde(default)]
    pub allow_missing_groups: bool,

    /// Directory to write the run to; it must not exist (default: runs/NAME-TIMESTAMP).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// Seed of weights, batch order, splits and bootstrap (default 0).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Maximum number of epochs (default 30).
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Rows per mini-batch (default 256).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Optimiser step size (default 0.001).
    #[arg(long, value_name = "X")]
    pub learning_rate: Option<f64>,
    /// Model: a multilayer perceptron (default) or logistic regression, which is a network
    /// without hidden layers.
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Hidden layer widths of the perceptron, comma-separated (default 64); `--hidden` alone
    /// gives logistic regression, like `--model logistic`.
    #[arg(long, value_name = "N[,N]", value_delimiter = ',', num_args = 0..)]
    pub hidden: Option<Vec<usize>>,
    /// Hidden-layer activation (default relu).
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// Loss function (default bce).
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// Optimiser (default adam).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// SGD momentum in [0, 1) (default 0.9; Adam ignores it).
    #[arg(long, value_name = "X")]
    pub momentum: Option<f64>,
    /// L2 weight decay (default 0).
    #[arg(long, value_name = "X")]
    pub weight_decay: Option<f64>,
    /// Epochs without validation-loss improvement before stopping (default 5).
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Stop when the epoch's mean training loss falls below this value.
    #[arg(long, value_name = "X")]
    pub loss_threshold: Option<f64>,
    /// Probability at or above which a row is predicted positive (default 0.5).
    #[arg(long, value_name = "P")]
    pub decision_threshold: Option<f64>,
    /// Bootstrap resamples for fairness confidence intervals (default 200; 0 skips them).
    #[arg(long, value_name = "N")]
    pub bootstrap: Option<usize>,
    /// Train with DP-SGD to this epsilon: the noise multiplier is calibrated for the planned steps.
    #[arg(long, value_name = "E")]
    pub dp_epsilon: Option<f64>,
    /// Delta of the DP guarantee (default: the largest power of ten below 1/N for N training rows).
    #[arg(long, value_name = "D")]
    pub dp_delta: Option<f64>,
    /// Per-example gradient clipping norm C of DP-SGD (default 1).
    #[arg(long, value_name = "C")]
    pub max_grad_norm: Option<f64>,
    /// Clipping scheme of DP-SGD (default flat).
    #[arg(long, value_enum)]
    pub dp_clipping: Option<Clipping>,
    /// Privacy accountant that calibrates the noise and reports epsilon (default rdp).
    #[arg(long, value_enum)]
    pub dp_accountant: Option<AccountantKind>,
    /// With --dp-epsilon, also train a non-private model with the same seed and settings and
    /// report its per-group accuracy beside the private model's.
    #[arg(long)]
    #[serde(default)]
    pub compare_non_private: bool,
    /// Action when a feature column contains personal identifiers: fail (default), drop the
    /// column, mask the identifiers with their entity tag, or allow training on them.
    #[arg(long, value_enum)]
    pub pii: Option<PiiAction>,
    /// Bias mitigation, with groups formed by all sensitive columns together; the unmitigated
    /// baseline (same seed) is reported beside the mitigated model.
    #[arg(long, value_enum)]
    pub mitigation: Option<MitigationMethod>,
    /// Fairness constraint the mitigation meets (default demographic-parity; reweighing targets
    /// demographic parity whatever it is).
    #[arg(long, value_enum)]
    pub constraint: Option<FairnessConstraint>,
    /// Allowed violation of the constraint, in rate units. For exponentiated-gradient it bounds
    /// the gap between each group's rate and the overall rate (default 0.01), for threshold the
    /// gap between groups' rates (default: equal rates), and reweighing only records it.
    #[arg(long, value_name = "EPS")]
    pub tolerance: Option<f64>,
    /// Quantity that --mitigation threshold maximises under the constraint (default accuracy).
    #[arg(long, value_enum)]
    pub objective: Option<ThresholdObjective>,
    /// Split whose scores --mitigation threshold fits the group thresholds on (default
    /// validation, rows the model did not train on).
    #[arg(long, value_enum)]
    pub threshold_split: Option<ThresholdSplit>,
    /// Most iterations of --mitigation exponentiated-gradient; each trains the model up to
    /// twice (default 50).
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<usize>,
    /// Private key (from `zeren keygen`) that signs the run's manifest.
    #[arg(long, value_name = "PATH")]
    pub signing_key: Option<PathBuf>,
    /// Device to train on (default cpu).
    #[arg(long, value_enum)]
    pub device: Option<DeviceKind>,
    /// Print nothing but errors and the final summary.
    #[arg(long)]
    #[serde(default)]
    pub quiet: bool,
    /// Model-card facts a machine cannot know: owners, intended use, limitations.
    /// Only in the config file, as a `[card]` table. It is the last field because TOML writes tables last.
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<crate::card::CardInfo>,
}

/// The model `zeren train` fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Multilayer perceptron with the --hidden layers.
    #[default]
    Mlp,
    /// Logistic regression: one linear layer and a sigmoid.
    Logistic,
}

/// A bias-mitigation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MitigationMethod {
    /// Kamiran and Calders (2012): sample weights that make label and group independent.
    Reweighing,
    /// Agarwal et al. (2018): a randomised mix of models retrained on reweighted, relabelled
    /// rows until the constraint holds on the training split.
    ExponentiatedGradient,
    /// Hardt et al. (2016): group-specific, randomised thresholds on the model's scores.
    Threshold,
}

/// The quantity the threshold optimiser maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThresholdObjective {
    /// Share of correct predictions.
    #[default]
    Accuracy,
    /// Mean of the true positive and true negative rates.
    BalancedAccuracy,
}

impl From<ThresholdObjective> for zeren_fairness::mitigation::Objective {
    fn from(objective: ThresholdObjective) -> Self {
        match objective {
            ThresholdObjective::Accuracy => zeren_fairness::mitigation::Objective::Accuracy,
            ThresholdObjective::BalancedAccuracy => zeren_fairness::mitigation::Objective::BalancedAccuracy,
        }
    }
}

/// The split the threshold optimiser is fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdSplit {
    /// The validation split, held out from training.
    #[default]
    Validation,
    /// The training split.
    Train,
}

/// A group-fairness constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FairnessConstraint {
    /// Equal selection rates.
    #[default]
    DemographicParity,
    /// Equal true and false positive rates.
    EqualizedOdds,
    /// Equal true positive rates.
    TruePositiveRateParity,
}

impl From<FairnessConstraint> for zeren_fairness::mitigation::Constraint {
    fn from(constraint: FairnessConstraint) -> Self {
        match constraint {
            FairnessConstraint::DemographicParity => zeren_fairness::mitigation::Constraint::DemographicParity,
            FairnessConstraint::EqualizedOdds => zeren_fairness::mitigation::Constraint::EqualizedOdds,
            FairnessConstraint::TruePositiveRateParity => {
                zeren_fairness::mitigation::Constraint::TruePositiveRateParity
            }
        }
    }
}

/// The PII gate's action on feature columns that hold personal identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiAction {
    /// Stop and list the columns.
    #[default]
    Fail,
    /// Leave the columns out of the model inputs.
    Drop,
    /// Replace each identifier with its entity tag, such as `<PHONE_NUMBER>`.
    Mask,
    /// Train on the columns as they are.
    Allow,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Run directory written by `zeren train`.
    #[arg(long, value_name = "RUN_DIR")]
    pub model: PathBuf,
    /// CSV file to score, with the columns the model was trained on.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Output CSV file (default: standard output). Written whole or not at all.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Probability at or above which a row is predicted positive (default: the training run's).
    /// Not for mitigated runs, whose thresholds come from the mitigation.
    #[arg(long, value_name = "P")]
    pub decision_threshold: Option<f64>,
    /// Seed of the coin flips of a randomised (threshold or exponentiated-gradient) run: each
    /// row's flip depends on the seed and its position in the file (default: the training
    /// run's seed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// CSV file with labels, predictions and sensitive columns.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Column of true labels.
    #[arg(long, value_name = "COL")]
    pub label: String,
    /// Column of predicted labels.
    #[arg(long, value_name = "COL")]
    pub prediction: String,
    /// Sensitive columns, comma-separated.
    #[arg(long, value_name = "COL[,COL]", value_delimiter = ',', required = true)]
    pub sensitive: Vec<String>,
    /// Label value of the positive class (needed unless labels are 0/1 or true/false).
    #[arg(long, value_name = "VALUE")]
    pub positive_label: Option<String>,
    /// Column of scores or probabilities, for per-group ROC AUC.
    #[arg(long, value_name = "COL")]
    pub score: Option<String>,
    /// Column of non-negative sample weights.
    #[arg(long, value_name = "COL")]
    pub sample_weight: Option<String>,
    /// Bootstrap resamples for confidence intervals (default 200; 0 skips them).
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Field delimiter: one character, or `tab`.
    #[arg(long, value_name = "CHAR", default_value = ",")]
    pub delimiter: String,
    /// Print the audit as JSON, in the structure of the `fairness` section of report.json.
    #[arg(long)]
    pub json: bool,
}
