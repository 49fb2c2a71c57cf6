//! End-to-end tests of threshold and exponentiated-gradient mitigation in `zeren train` and
//! `zeren predict`, run as a user would run them, on small files and few epochs.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

fn zeren() -> Command {
    Command::cargo_bin("zeren").unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn write(dir: &TempDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, contents).unwrap();
    path
}

/// Builds a training file whose groups differ in base rate. `x` of 女 rows is 0.6 times that of
/// 男 rows, and `y` is `yes` from `x >= 5` with every seventh label flipped. The model reads `x`
/// alone, so its predictions select 男 far more often.
fn biased_csv(rows: usize) -> String {
    let mut text = String::from("x,性别,y\n");
    for i in 0..rows {
        let sex = ["男", "女"][i % 2];
        let scale = if sex == "男" { 1.0 } else { 0.6 };
        let x = (i * 37 % 100) as f64 / 10.0 * scale;
        let label = if (x >= 5.0) != (i % 7 == 0) { "yes" } else { "no" };
        text.push_str(&format!("{x},{sex},{label}\n"));
    }
    text
}

/// Trains on `data` with 性别 as the sensitive column and returns the command's assertion.
fn train(data: &Path, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    zeren()
        .args(["train", "--data"])
        .arg(data)
        .args(["--target", "y", "--positive-label", "yes", "--sensitive", "性别", "--epochs", "5"])
        .args(["--learning-rate", "0.05", "--bootstrap", "0", "--quiet", "--out"])
        .arg(out)
        .args(extra)
        .assert()
}

fn predict(run: &Path, data: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    zeren().args(["predict", "--model"]).arg(run).arg("--data").arg(data).args(extra).assert()
}

#[test]
fn threshold_run_meets_parity_and_saves_rules() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &biased_csv(400));
    let run = dir.path().join("run");
    train(&data, &run, &["--mitigation", "threshold"]).success();

    let report = read_json(&run.join("report.json"));
    let mitigation = &report["mitigation"];
    assert_eq!(mitigation["method"], "threshold");
    assert_eq!(mitigation["constraint"], "demographic-parity");
    let threshold = &mitigation["threshold"];
    assert_eq!(threshold["fitted_on"], "validation");
    assert_eq!(threshold["fitted_rows"], report["data"]["rows"]["validation"]);
    assert!(threshold["fitted_disparity"].as_f64().unwrap() < 1e-9, "{threshold}");
    assert!(threshold["groups"]["男"]["upper"].is_number() || threshold["groups"]["男"]["upper"].is_string());
    // The report's metrics are those of the thresholds, not of the plain model.
    assert_eq!(mitigation["mitigated"]["accuracy"], report["metrics"]["test"]["accuracy"]);
    let baseline = mitigation["baseline"]["demographic_parity_difference"].as_f64().unwrap();
    let mitigated = mitigation["mitigated"]["demographic_parity_difference"].as_f64().unwrap();
    assert!(baseline > 0.15, "the data should be biased: {baseline}");
    assert!(mitigated < baseline / 2.0, "{baseline} -> {mitigated}");

    let saved = read_json(&run.join("mitigation.json"));
    assert_eq!(saved["method"], "threshold");
    assert_eq!(saved["groups_from"], serde_json::json!(["性别"]));
    assert_eq!(saved["thresholds"]["groups"].as_object().unwrap().len(), 2);

    // test_predictions.csv contains the same drawn predictions as the metrics.
    let text = fs::read_to_string(run.join("test_predictions.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "row,性别,y,probability,prediction");
    let correct = lines[1..].iter().filter(|line| line.split(',').nth(2) == line.split(',').nth(4)).count();
    let accuracy = correct as f64 / (lines.len() - 1) as f64;
    assert!((accuracy - report["metrics"]["test"]["accuracy"].as_f64().unwrap()).abs() < 1e-12);
    let markdown = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(markdown.contains("fitted on the model's probabilities"), "{markdown}");
}

#[test]
fn two_sensitive_columns_reported_each_and_joint() {
    // A second sensitive column, 城市, cuts across 性别: rows alternate 男, 女 and every third
    // row is 南, so the joint groups are four.
    let dir = TempDir::new().unwrap();
    let text: String = biased_csv(600)
        .lines()
        .enumerate()
        .map(|(index, line)| match index {
            0 => format!("{line},城市\n"),
            row => format!("{line},{}\n", if row % 3 == 0 { "南" } else { "北" }),
        })
        .collect();
    let data = write(&dir, "d.csv", &text);
    let run = dir.path().join("run");
    zeren()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--target", "y", "--positive-label", "yes", "--sensitive", "性别,城市", "--epochs", "5"])
        .args(["--learning-rate", "0.05", "--bootstrap", "0", "--quiet", "--mitigation", "threshold", "--out"])
        .arg(&run)
        .assert()
        .success();

    let report = read_json(&run.join("report.json"));
    let mitigation = &report["mitigation"];
    assert_eq!(mitigation["measured_on"], "性别 & 城市");
    let by_groups = mitigation["by_groups"].as_array().unwrap();
    let names: Vec<&str> = by_groups.iter().map(|entry| entry["groups"].as_str().unwrap()).collect();
    assert_eq!(names, ["城市", "性别", "性别 & 城市"]);

    // The top-level figures are those of the joint groups, and thresholds on them shrink the
    // joint disparity.
    let joint = &by_groups[2];
    for model in ["baseline", "mitigated"] {
        assert_eq!(joint[model]["demographic_parity_difference"], mitigation[model]["demographic_parity_difference"]);
        assert_eq!(joint[model]["equalized_odds_difference"], mitigation[model]["equalized_odds_difference"]);
    }
    let before = joint["baseline"]["demographic_parity_difference"].as_f64().unwrap();
    let after = joint["mitigated"]["demographic_parity_difference"].as_f64().unwrap();
    assert!(after < before / 2.0, "{before} -> {after}");
    // Each column's figures equal the fairness section's audit of the deployed model.
    for column in ["性别", "城市"] {
        let entry = by_groups.iter().find(|entry| entry["groups"] == column).unwrap();
        let audited = &report["fairness"][column]["demographic_parity_difference"];
        assert_eq!(&entry["mitigated"]["demographic_parity_difference"], audited, "{column}");
    }

    let markdown = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(markdown.contains("Disparities by sensitive column and on the joint groups"), "{markdown}");
    assert!(markdown.contains("| 性别 & 城市 | "), "{markdown}");
    assert!(markdown.contains("| group | fitted rows | lower threshold"), "{markdown}");
    // About 60 validation rows over four joint groups: every group's thresholds rest on few rows.
    let caveats = markdown.split("## Caveats found in this run").nth(1).unwrap();
    assert!(caveats.contains("were fitted on fewer than 30 rows each"), "{caveats}");
    assert!(caveats.contains("'女, 南'"), "{caveats}");
    let card = fs::read_to_string(run.join("report.html")).unwrap();
    assert!(card.contains("<td>性别 &amp; 城市</td>"), "the card should list the joint groups");
}

#[test]
fn threshold_predict_needs_the_sensitive_column() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &biased_csv(400));
    let run = dir.path().join("run");
    train(&data, &run, &["--mitigation", "threshold", "--constraint", "equalized-odds"]).success();

    let without = write(&dir, "new.csv", "x\n2.5\n8\n");
    predict(&run, &without, &[])
        .code(2)
        .stderr(predicate::str::contains("column '性别' is missing"))
        .stderr(predicate::str::contains("a different threshold to each group"))
        .stderr(predicate::str::contains("add the column"));

    let unseen = write(&dir, "unseen.csv", "x,性别\n2.5,其他\n");
    predict(&run, &unseen, &[]).code(1).stderr(predicate::str::contains("group '其他' was not seen"));

    let new = write(&dir, "with.csv", &biased_csv(200));
    let output = |seed: &str| {
        let out = predict(&run, &new, &["--seed", seed]).success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    let first = output("3");
    assert_eq!(first, output("3"));
    assert_eq!(first.lines().next().unwrap(), "x,性别,y,probability,prediction");
    assert_eq!(first.lines().count(), 201);
    predict(&run, &new, &["--decision-threshold", "0.3"])
        .code(2)
        .stderr(predicate::str::contains("--decision-threshold does not apply to a mitigated run"));
}

#[test]
fn equalized_odds_thresholds_warn_tolerance_unused() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &biased_csv(400));
    let run = dir.path().join("run");
    let flags = ["--mitigation", "threshold", "--constraint", "equalized-odds", "--tolerance", "0.05"];
    train(&data, &run, &flags).success().stderr(predicate::str::contains("--tolerance 0.05 is not used"));
    let report = read_json(&run.join("report.json"));
    assert_eq!(report["mitigation"]["tolerance"], 0.05);
    assert!(report["mitigation"]["threshold"]["fitted_disparity"].as_f64().unwrap() < 1e-9);
}

#[test]
fn threshold_can_fit_on_the_training_split() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &biased_csv(400));
    let run = dir.path().join("run");
    let constraint = ["--constraint", "true-positive-rate-parity"];
    let split = ["--threshold-split", "train", "--objective", "balanced-accuracy"];
    train(&data, &run, &[&["--mitigation", "threshold"][..], &constraint, &split].concat()).success();
    let report = read_json(&run.join("report.json"));
    let threshold = &report["mitigation"]["threshold"];
    assert_eq!(threshold["fitted_on"], "train");
    assert_eq!(threshold["objective"], "balanced-accuracy");
    assert_eq!(threshold["fitted_rows"], report["data"]["rows"]["train"]);
    for group in ["男", "女"] {
        let rates = &threshold["groups"][group]["fitted"];
        let other = &threshold["groups"][if group == "男" { "女" } else { "男" }]["fitted"];
        let gap = rates["true_positive_rate"].as_f64().unwrap() - other["true_positive_rate"].as_f64().unwrap();
        assert!(gap.abs() < 1e-9, "{threshold}");
    }
}

#[test]
fn reduction_run_reports_and_predicts_reproducibly() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &biased_csv(400));
    let flags = ["--mitigation", "exponentiated-gradient", "--max-iterations", "6", "--model", "logistic"];
    let first = dir.path().join("first");
    train(&data, &first, &flags).success();

    let report = read_json(&first.join("report.json"));
    assert_eq!(report["model"]["architecture"], "logistic");
    let mitigation = &report["mitigation"];
    assert_eq!(mitigation["method"], "exponentiated-gradient");
    assert_eq!(mitigation["tolerance"], 0.01);
    let reduction = &mitigation["reduction"];
    assert_eq!(reduction["base_learner"], "logistic regression");
    assert_eq!(reduction["config"]["bound"], 100.0);
    let iterations = reduction["history"].as_array().unwrap().len();
    assert!((1..=6).contains(&iterations), "{reduction}");
    assert!(reduction["base_learner_fits"].as_u64().unwrap() <= 12);
    assert_eq!(mitigation["mitigated"]["accuracy"], report["metrics"]["test"]["accuracy"]);

    let saved = read_json(&first.join("mitigation.json"));
    assert_eq!(saved["method"], "exponentiated-gradient");
    let weights: Vec<f64> =
        saved["classifier"]["weights"].as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
    assert_eq!(weights.len(), saved["models"].as_array().unwrap().len());
    assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{weights:?}");

    // The same seed trains the same randomised classifier and draws the same predictions.
    let second = dir.path().join("second");
    train(&data, &second, &flags).success();
    let predictions = |run: &Path| fs::read_to_string(run.join("test_predictions.csv")).unwrap();
    assert_eq!(predictions(&first), predictions(&second));

    // The networks do not read the sensitive column, so prediction works without it.
    let new = write(&dir, "new.csv", "x\n1\n5\n9\n");
    let output = |extra: &[&str]| {
        let out = predict(&first, &new, extra).success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    assert_eq!(output(&["--seed", "8"]), output(&["--seed", "8"]));
    assert_eq!(output(&[]).lines().count(), 4);
}

#[test]
fn reduction_lowers_the_parity_gap() {
    // With the group as an input, the networks can select the groups at different rates.
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &biased_csv(400));
    let run = dir.path().join("run");
    let flags = ["--mitigation", "exponentiated-gradient", "--model", "logistic", "--sensitive-as-features"];
    train(&data, &run, &flags).success();
    let report = read_json(&run.join("report.json"));
    let mitigation = &report["mitigation"];
    let baseline = mitigation["baseline"]["demographic_parity_difference"].as_f64().unwrap();
    let mitigated = mitigation["mitigated"]["demographic_parity_difference"].as_f64().unwrap();
    assert!(mitigated < baseline / 2.0, "{baseline} -> {mitigated}");
    // On the training split, the classifier meets the tolerance of 0.01 against the overall rate.
    let violation = mitigation["reduction"]["max_violation"].as_f64().unwrap();
    assert!(violation <= 0.01 + 1e-9, "{violation}");
    assert!(mitigation["reduction"]["base_learner_fits"].as_u64().unwrap() <= 100);
}

#[test]
fn model_logistic_has_no_hidden_layers() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &biased_csv(100));
    let run = dir.path().join("run");
    train(&data, &run, &["--model", "logistic"]).success();
    let report = read_json(&run.join("report.json"));
    assert_eq!(report["model"]["hidden"], serde_json::json!([]));
    assert_eq!(report["model"]["parameters"], 2);
    let resolved = fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(resolved.contains("model = \"logistic\""), "{resolved}");
    train(&data, &dir.path().join("other"), &["--model", "logistic", "--hidden", "8"])
        .code(2)
        .stderr(predicate::str::contains("--model logistic has no hidden layers"));
}

#[test]
fn bad_mitigation_flags_are_usage_errors() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &biased_csv(100));
    let out = dir.path().join("run");
    let cases: [(&[&str], &str); 8] = [
        (&["--mitigation", "threshold", "--tolerance", "0"], "--tolerance 0 is invalid"),
        (&["--mitigation", "exponentiated-gradient", "--tolerance=-0.1"], "--tolerance -0.1 is invalid"),
        (&["--mitigation", "threshold", "--tolerance", "1.5"], "--tolerance 1.5 is invalid"),
        (&["--mitigation", "reweighing", "--objective", "accuracy"], "need --mitigation threshold"),
        (&["--mitigation", "threshold", "--max-iterations", "5"], "needs --mitigation exponentiated-gradient"),
        (&["--mitigation", "exponentiated-gradient", "--max-iterations", "0"], "--max-iterations 0 is invalid"),
        (&["--mitigation", "exponentiated-gradient", "--dp-epsilon", "3"], "cannot be combined"),
        (&["--mitigation", "threshold", "--validation-fraction", "0"], "the validation split, which is empty"),
    ];
    for (flags, message) in cases {
        train(&data, &out, flags).code(2).stderr(predicate::str::contains(message));
        assert!(!out.exists(), "{flags:?} wrote a run");
    }
}

#[test]
fn group_with_one_class_is_named() {
    // Every 女 row is negative, so her true positive rate is undefined.
    let dir = TempDir::new().unwrap();
    let text: String =
        biased_csv(200)
            .lines()
            .map(|line| {
                if line.contains(",女,") { format!("{}\n", line.replace(",yes", ",no")) } else { format!("{line}\n") }
            })
            .collect();
    let data = write(&dir, "d.csv", &text);
    for method in ["threshold", "exponentiated-gradient"] {
        train(&data, &dir.path().join(method), &["--mitigation", method, "--constraint", "equalized-odds"])
            .code(1)
            .stderr(predicate::str::contains("group '女' has no actual positive rows"))
            .stderr(predicate::str::contains("merge it with another group"));
    }
}
