//! End-to-end tests of the `zeren` command, run as a user would run it.

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

/// Builds a small valid training file with a Chinese sensitive column: `x` (numeric), `city`
/// (categorical), `性别` (sensitive) and `y` (`yes`/`no`, learnable from `x`).
fn small_csv(rows: usize) -> String {
    let mut text = String::from("x,city,性别,y\n");
    for i in 0..rows {
        let x = (i as f64 * 7.0) % 10.0;
        let label = if x >= 5.0 { "yes" } else { "no" };
        let city = ["北京", "上海", "Shenzhen"][i % 3];
        let sex = ["男", "女"][(i / 2) % 2];
        text.push_str(&format!("{x},{city},{sex},{label}\n"));
    }
    text
}

fn write(dir: &TempDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, contents).unwrap();
    path
}

/// Asserts that a failed run left neither its output directory nor a staging directory behind.
fn assert_nothing_written(dir: &TempDir, out: &Path) {
    assert!(!out.exists(), "{} was created", out.display());
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".zeren-partial"))
        .collect();
    assert!(leftovers.is_empty(), "staging directories left: {leftovers:?}");
}

fn train_small(dir: &TempDir, data: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    let out = dir.path().join("run");
    zeren()
        .args(["train", "--data"])
        .arg(data)
        .args([
            "--target",
            "y",
            "--positive-label",
            "yes",
            "--sensitive",
            "性别",
            "--epochs",
            "3",
            "--bootstrap",
            "0",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .args(extra)
        .assert()
}

#[test]
fn adult_meets_reference_accuracy() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("adult");
    zeren()
        .args(["train", "--dataset", "adult", "--quiet", "--bootstrap", "50", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("test accuracy"));

    let report = read_json(&out.join("report.json"));
    // scikit-learn 1.9.1 on the official split: logistic regression 0.8525 accuracy and 0.906
    // ROC AUC; an MLP with 64 hidden units 0.859 and 0.911.
    let accuracy = report["metrics"]["test"]["accuracy"].as_f64().unwrap();
    let auc = report["metrics"]["test"]["roc_auc"].as_f64().unwrap();
    assert!(accuracy >= 0.852, "test accuracy {accuracy}");
    assert!(auc >= 0.905, "test ROC AUC {auc}");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(
        report["data"]["rows"]["train"].as_u64().unwrap() + report["data"]["rows"]["validation"].as_u64().unwrap(),
        32_561
    );
    assert_eq!(report["data"]["rows"]["test"], 16_281);
    assert!(report["training"]["epochs_run"].as_u64().unwrap() >= 1);
    for column in ["sex", "race"] {
        for measure in [
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "equalized_odds_difference",
            "equalized_odds_ratio",
        ] {
            let value = &report["fairness"][column][measure];
            assert!(value.is_f64(), "fairness.{column}.{measure} = {value}");
        }
    }
    assert!(report["fairness"]["sex & race"]["groups"].as_object().unwrap().len() >= 8);
    // Sensitive columns are not model inputs by default.
    let columns: Vec<&str> =
        report["data"]["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(!columns.contains(&"sex"), "sex is a model input");
    assert!(!columns.contains(&"race"), "race is a model input");
    for file in ["model.json", "preprocessing.json", "config.toml", "report.md", "test_predictions.csv"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
}

#[test]
fn german_and_compas_train() {
    for (name, column) in [("german", "age_group"), ("compas", "race")] {
        let dir = TempDir::new().unwrap();
        let out = dir.path().join(name);
        zeren()
            .args(["train", "--dataset", name, "--quiet", "--epochs", "5", "--bootstrap", "0", "--out"])
            .arg(&out)
            .assert()
            .success();
        let report = read_json(&out.join("report.json"));
        assert!(report["metrics"]["test"]["roc_auc"].as_f64().unwrap() > 0.65, "{name}");
        assert!(report["fairness"][column]["demographic_parity_difference"].is_f64(), "{name}");
    }
}

#[test]
fn same_seed_reproduces_weights() {
    let dir = TempDir::new().unwrap();
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        zeren()
            .args(["train", "--dataset", "german", "--quiet", "--bootstrap", "0", "--seed", seed, "--out"])
            .arg(&out)
            .assert()
            .success();
        fs::read(out.join("model.json")).unwrap()
    };
    let first = run("a", "4");
    assert_eq!(first, run("b", "4"));
    assert_ne!(first, run("c", "5"));
}

#[test]
fn config_file_sets_options_and_flags_override() {
    let dir = TempDir::new().unwrap();
    let config =
        write(&dir, "run.toml", "dataset = \"german\"\nepochs = 2\nhidden = [8, 4]\nbootstrap = 0\nquiet = true\n");
    let out = dir.path().join("run");
    zeren()
        .args(["train", "--config"])
        .arg(&config)
        .args(["--epochs", "3", "--patience", "9", "--out"])
        .arg(&out)
        .assert()
        .success();
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["model"]["hidden"], serde_json::json!([8, 4]));
    assert_eq!(report["training"]["epochs_run"], 3);
    let resolved = fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(resolved.contains("epochs = 3"), "{resolved}");
}

#[test]
fn config_file_unknown_key_is_named() {
    let dir = TempDir::new().unwrap();
    let config = write(&dir, "bad.toml", "dataset = \"adult\"\nlearning_rate = 0.1\n");
    zeren()
        .args(["train", "--config"])
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown field `learning_rate`"));
}

#[test]
fn example_config_is_valid() {
    let dir = TempDir::new().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/adult.toml");
    let out = dir.path().join("run");
    zeren()
        .args(["train", "--config"])
        .arg(&example)
        .args(["--epochs", "1", "--bootstrap", "0", "--quiet", "--out"])
        .arg(&out)
        .assert()
        .success();
}

#[test]
fn chinese_csv_trains_predicts_and_audits() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "train.csv", &small_csv(120));
    train_small(&dir, &data, &["--epochs", "40", "--learning-rate", "0.05"]).success();
    let out = dir.path().join("run");
    let report = read_json(&out.join("report.json"));
    assert!(report["fairness"]["性别"]["groups"]["女"].is_object());
    assert!(report["metrics"]["test"]["accuracy"].as_f64().unwrap() > 0.8);

    let new = write(&dir, "new.csv", "性别,y,city,x\n男,?,北京,9\n女,?,广州,1\n");
    let predictions = dir.path().join("predictions.csv");
    zeren()
        .args(["predict", "--model"])
        .arg(&out)
        .arg("--data")
        .arg(&new)
        .arg("--out")
        .arg(&predictions)
        .assert()
        .success()
        .stderr(predicate::str::contains("column 'city': 1 rows have a category not seen in training"));
    let text = fs::read_to_string(&predictions).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "性别,y,city,x,probability,prediction");
    assert!(lines[1].ends_with(",yes"), "{}", lines[1]);
    assert!(lines[2].ends_with(",no"), "{}", lines[2]);
}

#[test]
fn audit_json_matches_report_fairness() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("run");
    zeren()
        .args(["train", "--dataset", "german", "--quiet", "--bootstrap", "100", "--out"])
        .arg(&out)
        .assert()
        .success();
    let report = read_json(&out.join("report.json"));

    let output = zeren()
        .args(["audit", "--data"])
        .arg(out.join("test_predictions.csv"))
        .args([
            "--label",
            "credit",
            "--prediction",
            "prediction",
            "--sensitive",
            "sex,age_group",
            "--positive-label",
            "good",
            "--bootstrap",
            "100",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let audit: Value = serde_json::from_slice(&output.stdout).unwrap();
    for column in ["sex", "age_group", "sex & age_group"] {
        for measure in ["demographic_parity_difference", "equalized_odds_ratio", "equal_opportunity_difference"] {
            assert_eq!(audit[column][measure], report["fairness"][column][measure], "{column} {measure}");
        }
        assert_eq!(
            audit[column]["confidence_intervals"]["between_groups"],
            report["fairness"][column]["confidence_intervals"]["between_groups"],
            "{column} intervals"
        );
    }
}

#[test]
fn audit_needs_positive_label_for_text_labels() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "p.csv", "label,pred,g\nhigh,low,a\nlow,low,b\n");
    zeren()
        .args(["audit", "--data"])
        .arg(&data)
        .args(["--label", "label", "--prediction", "pred", "--sensitive", "g"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --positive-label"));
}

// Bad input: each case names the file, column and line, exits 2 (usage) or 1 (failure), and
// writes nothing.

#[test]
fn missing_file_is_usage_error() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("absent.csv");
    train_small(&dir, &data, &[]).code(2).stderr(predicate::str::contains("absent.csv: file not found"));
    assert_nothing_written(&dir, &dir.path().join("run"));
}

#[test]
fn unknown_column_is_usage_error() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &small_csv(40));
    train_small(&dir, &data, &["--target", "收入"])
        .code(2)
        .stderr(predicate::str::contains("column '收入' not found; available columns: x, city, 性别, y"));
    assert_nothing_written(&dir, &dir.path().join("run"));
}

#[test]
fn non_binary_target_fails() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &small_csv(40).replacen(",no\n", ",maybe\n", 1));
    train_small(&dir, &data, &[]).code(1).stderr(predicate::str::contains("the target has 3 distinct values"));
    assert_nothing_written(&dir, &dir.path().join("run"));
}

#[test]
fn text_in_numeric_column_names_line() {
    let dir = TempDir::new().unwrap();
    let mut text = small_csv(40);
    text.push_str("seven,北京,男,yes\n");
    let data = write(&dir, "d.csv", &text);
    train_small(&dir, &data, &[])
        .code(1)
        .stderr(predicate::str::contains("d.csv, column 'x', line 42: value 'seven' is not a number"));
    assert_nothing_written(&dir, &dir.path().join("run"));
}

#[test]
fn nan_and_infinite_values_fail() {
    for bad in ["NaN", "inf"] {
        let dir = TempDir::new().unwrap();
        let mut text = small_csv(40);
        text.push_str(&format!("{bad},北京,男,yes\n"));
        let data = write(&dir, "d.csv", &text);
        train_small(&dir, &data, &[])
            .code(1)
            .stderr(predicate::str::contains(format!("column 'x', line 42: value '{bad}' is not a finite number")));
        assert_nothing_written(&dir, &dir.path().join("run"));
    }
}

#[test]
fn empty_file_fails() {
    let dir = TempDir::new().unwrap();
    for (name, contents) in [("empty.csv", ""), ("header.csv", "x,city,性别,y\n")] {
        let data = write(&dir, name, contents);
        train_small(&dir, &data, &[]).code(1).stderr(predicate::str::contains(format!("{name}: no data rows")));
    }
    assert_nothing_written(&dir, &dir.path().join("run"));
}

#[test]
fn one_class_training_set_fails() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &small_csv(40).replace(",no\n", ",yes\n"));
    train_small(&dir, &data, &[]).code(1).stderr(predicate::str::contains("every training row has the label 'yes'"));
    assert_nothing_written(&dir, &dir.path().join("run"));
}

#[test]
fn sensitive_group_absent_from_test_fails() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "train.csv", &small_csv(40));
    let test = write(&dir, "test.csv", "x,city,性别,y\n9,北京,男,yes\n1,上海,男,no\n");
    train_small(&dir, &data, &["--test-data", test.to_str().unwrap()]).code(1).stderr(predicate::str::contains(
        "test.csv, column '性别': group '女' has training rows but none in the test split",
    ));
    assert_nothing_written(&dir, &dir.path().join("run"));

    train_small(&dir, &data, &["--test-data", test.to_str().unwrap(), "--allow-missing-groups"]).success();
}

#[test]
fn header_mismatch_at_predict_fails() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &small_csv(40));
    train_small(&dir, &data, &[]).success();
    let new = write(&dir, "new.csv", "x,town\n1,北京\n");
    let out = dir.path().join("p.csv");
    zeren()
        .args(["predict", "--model"])
        .arg(dir.path().join("run"))
        .arg("--data")
        .arg(&new)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("new.csv: the header does not match the model: missing column(s) city"));
    assert!(!out.exists());
}

#[test]
fn existing_output_directory_is_kept() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &small_csv(40));
    let out = dir.path().join("run");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("keep.txt"), "precious").unwrap();
    train_small(&dir, &data, &[]).code(2).stderr(predicate::str::contains("output directory already exists"));
    assert_eq!(fs::read_to_string(out.join("keep.txt")).unwrap(), "precious");
}

#[test]
fn ragged_row_names_line() {
    let dir = TempDir::new().unwrap();
    let mut text = small_csv(10);
    text.push_str("1,北京\n");
    let data = write(&dir, "d.csv", &text);
    train_small(&dir, &data, &[]).code(1).stderr(predicate::str::contains("d.csv, line 12: expected 4 fields"));
}

#[test]
fn invalid_flag_values_are_usage_errors() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &small_csv(40));
    train_small(&dir, &data, &["--learning-rate=-1"])
        .code(2)
        .stderr(predicate::str::contains("learning rate -1 is invalid"));
    train_small(&dir, &data, &["--activation", "gelu"]).code(2);
    train_small(&dir, &data, &["--positive-label", "oui"])
        .code(2)
        .stderr(predicate::str::contains("positive label 'oui' not found"));
    zeren()
        .args(["train", "--dataset", "mnist"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown dataset 'mnist'"));
    zeren().args(["train"]).assert().code(2).stderr(predicate::str::contains("nothing to train on"));
    assert_nothing_written(&dir, &dir.path().join("run"));
}

#[test]
fn errors_do_not_panic_or_show_backtraces() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", "\u{0}\u{1}garbage");
    train_small(&dir, &data, &[])
        .failure()
        .stderr(predicate::str::contains("panicked").not())
        .stderr(predicate::str::contains("zeren: error:"));
}

// Differential privacy.

#[test]
fn private_training_reports_guarantee() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("private");
    zeren()
        .args(["train", "--dataset", "german", "--quiet", "--bootstrap", "0", "--epochs", "4", "--batch-size", "50"])
        .args(["--dp-epsilon", "3", "--compare-non-private", "--out"])
        .arg(&out)
        .assert()
        .success();
    let report = read_json(&out.join("report.json"));
    let privacy = &report["privacy"];
    let epsilon = privacy["epsilon"].as_f64().unwrap();
    assert!(epsilon <= 3.0, "epsilon {epsilon} exceeds the target");
    assert!(epsilon > 2.9, "epsilon {epsilon} far below the target");
    // German keeps 720 training rows after the test and validation splits: delta is the largest
    // power of ten below 1/720.
    assert_eq!(privacy["delta"].as_f64().unwrap(), 1e-3);
    assert!(privacy["noise_multiplier"].as_f64().unwrap() > 0.0);
    assert_eq!(privacy["max_grad_norm"].as_f64().unwrap(), 1.0);
    assert_eq!(privacy["accountant"], "rdp");
    assert_eq!(privacy["secure_noise"], true);
    let steps = privacy["steps"].as_u64().unwrap();
    let rows = report["data"]["rows"]["train"].as_f64().unwrap();
    assert!((privacy["sample_rate"].as_f64().unwrap() - 50.0 / rows).abs() < 1e-12);
    assert_eq!(steps, 4 * (rows / 50.0).round() as u64);
    assert!(privacy["non_private_reference"]["group_accuracy"]["sex"]["female"].is_f64());
    for field in ["auc", "advantage", "epsilon_lower_bound"] {
        assert!(report["membership_inference"][field].is_f64(), "membership_inference.{field}");
    }
    let markdown = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        markdown.contains("differentially private with respect to adding or removing any one of the"),
        "{markdown}"
    );
}

#[test]
fn early_stopped_private_run_counts_steps_run() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("private");
    zeren()
        .args(["train", "--dataset", "german", "--quiet", "--bootstrap", "0", "--epochs", "200", "--patience", "1"])
        .args(["--dp-epsilon", "2", "--out"])
        .arg(&out)
        .assert()
        .success();
    let report = read_json(&out.join("report.json"));
    let epochs_run = report["training"]["epochs_run"].as_u64().unwrap();
    assert!(epochs_run < 200, "early stopping never triggered");
    let privacy = &report["privacy"];
    assert_eq!(privacy["steps"].as_u64().unwrap(), epochs_run * (privacy["planned_steps"].as_u64().unwrap() / 200));
    assert!(privacy["epsilon"].as_f64().unwrap() < 2.0);
}

#[test]
fn seeded_private_run_warns_noise_is_not_secure() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("private");
    zeren()
        .args([
            "train",
            "--dataset",
            "german",
            "--quiet",
            "--bootstrap",
            "0",
            "--epochs",
            "1",
            "--seed",
            "3",
            "--dp-epsilon",
            "5",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("not safe to release"));
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["privacy"]["secure_noise"], false);
}

#[test]
fn invalid_privacy_settings_are_usage_errors() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("run");
    let cases: [(&[&str], &str); 5] = [
        (&["--dp-epsilon=0"], "epsilon 0 is invalid"),
        (&["--dp-epsilon=-1"], "epsilon -1 is invalid"),
        (&["--dp-epsilon", "1", "--dp-delta", "1.5"], "delta 1.5 is invalid"),
        (&["--dp-epsilon", "1", "--max-grad-norm", "0"], "max grad norm 0 is invalid"),
        (&["--max-grad-norm", "2"], "need --dp-epsilon"),
    ];
    for (flags, message) in cases {
        zeren()
            .args(["train", "--dataset", "german", "--quiet", "--epochs", "1", "--out"])
            .arg(&out)
            .args(flags)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
        assert!(!out.exists());
    }
}

#[test]
fn large_delta_warns() {
    let dir = TempDir::new().unwrap();
    zeren()
        .args([
            "train",
            "--dataset",
            "german",
            "--quiet",
            "--bootstrap",
            "0",
            "--epochs",
            "1",
            "--dp-epsilon",
            "5",
            "--dp-delta",
            "0.01",
            "--out",
        ])
        .arg(dir.path().join("run"))
        .assert()
        .success()
        .stderr(predicate::str::contains("is at least 1/N"));
    let report = read_json(&dir.path().join("run/report.json"));
    let warnings = report["privacy"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].as_str().unwrap().starts_with("delta 0.01 is at least 1/N"));
    let card = fs::read_to_string(dir.path().join("run/report.html")).unwrap();
    assert!(card.contains("Privacy: delta 0.01 is at least 1/N"), "the card lists the weak delta among its caveats");
}

#[test]
fn privacy_epsilon_json_matches_opacus() {
    let output = zeren()
        .args([
            "privacy",
            "epsilon",
            "--sample-rate",
            "0.04",
            "--noise-multiplier",
            "1.5",
            "--steps",
            "2250",
            "--delta",
            "1e-5",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    // Opacus 1.6 RDPAccountant: 7.3291111714386545 at order 3.9.
    assert!((value["epsilon"].as_f64().unwrap() - 7.329_111_171_438_654_5).abs() < 1e-8);
    assert_eq!(value["order"].as_f64().unwrap(), 3.9);
    assert_eq!(value["accountant"], "rdp");
    assert_eq!(value["delta"].as_f64().unwrap(), 1e-5);
}

#[test]
fn privacy_noise_json_never_overshoots() {
    let output = zeren()
        .args([
            "privacy",
            "noise",
            "--target-epsilon",
            "8",
            "--sample-rate",
            "0.04",
            "--steps",
            "2250",
            "--delta",
            "1e-5",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    let sigma = value["noise_multiplier"].as_f64().unwrap();
    assert!((sigma - 1.416).abs() < 0.002, "sigma {sigma}");
    assert!(value["epsilon"].as_f64().unwrap() <= 8.0);
}

#[test]
fn privacy_commands_reject_bad_values() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["epsilon", "--sample-rate", "0", "--noise-multiplier", "1", "--steps", "10", "--delta", "1e-5"],
            "sample rate 0 is invalid",
        ),
        (
            &["epsilon", "--sample-rate", "0.1", "--noise-multiplier", "0", "--steps", "10", "--delta", "1e-5"],
            "noise multiplier 0 is invalid",
        ),
        (
            &["epsilon", "--sample-rate", "0.1", "--noise-multiplier", "1", "--steps", "10", "--delta", "0"],
            "delta 0 is invalid",
        ),
        (
            &["noise", "--target-epsilon", "0.000001", "--sample-rate", "1", "--steps", "1000000", "--delta", "1e-5"],
            "cannot be reached",
        ),
    ];
    for (flags, message) in cases {
        zeren().arg("privacy").args(flags).assert().code(2).stderr(predicate::str::contains(message));
    }
}

// Found by trying the tool as a new user.

#[test]
fn audit_rejects_absent_positive_label() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "p.csv", "label,pred,g\nyes,no,a\nno,no,b\nyes,yes,a\n");
    zeren()
        .args(["audit", "--data"])
        .arg(&data)
        .args(["--label", "label", "--prediction", "pred", "--sensitive", "g", "--positive-label", "maybe"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("positive label 'maybe' not found in column 'label' (values: no, yes)"));
}

#[test]
fn audit_rejects_predictions_in_other_labels() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "p.csv", "label,pred,g\nyes,1,a\nno,0,b\n");
    zeren()
        .args(["audit", "--data"])
        .arg(&data)
        .args(["--label", "label", "--prediction", "pred", "--sensitive", "g", "--positive-label", "yes"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "column 'pred' has values (0, 1) that are not labels of column 'label' (no, yes)",
        ));
}

#[test]
fn audit_matches_true_false_in_any_case() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "p.csv", "label,pred,g\nTrue,TRUE,a\nfalse,False,a\ntrue,false,b\nFALSE,true,b\n");
    let output = zeren()
        .args(["audit", "--data"])
        .arg(&data)
        .args(["--label", "label", "--prediction", "pred", "--sensitive", "g", "--bootstrap", "0", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let audit: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(audit["g"]["groups"]["a"]["accuracy"], 1.0);
    assert_eq!(audit["g"]["groups"]["b"]["accuracy"], 0.0);
}

#[test]
fn resolved_config_reruns_from_anywhere() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    fs::create_dir(&data_dir).unwrap();
    fs::write(data_dir.join("train.csv"), small_csv(60)).unwrap();
    zeren()
        .current_dir(&data_dir)
        .args(["train", "--data", "train.csv", "--target", "y", "--positive-label", "yes", "--sensitive", "性别"])
        .args(["--epochs", "2", "--bootstrap", "0", "--quiet", "--seed", "5", "--out", "../first"])
        .assert()
        .success();
    zeren()
        .current_dir(dir.path())
        .args(["train", "--config", "first/config.toml", "--out", "second"])
        .assert()
        .success();
    assert_eq!(
        fs::read(dir.path().join("first/model.json")).unwrap(),
        fs::read(dir.path().join("second/model.json")).unwrap()
    );
}

#[test]
fn zero_width_hidden_layer_is_usage_error() {
    let dir = TempDir::new().unwrap();
    zeren()
        .args(["train", "--dataset", "german", "--hidden", "0", "--out"])
        .arg(dir.path().join("run"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("hidden layer 1 has width 0"));
}

#[test]
fn predict_keeps_existing_output_file() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &small_csv(40));
    train_small(&dir, &data, &[]).success();
    let out = write(&dir, "scored.csv", "precious");
    zeren()
        .args(["predict", "--model"])
        .arg(dir.path().join("run"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("file already exists"));
    assert_eq!(fs::read_to_string(&out).unwrap(), "precious");
}

#[test]
fn terminated_run_leaves_nothing() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("run");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("zeren"))
        .args(["train", "--dataset", "adult", "--epochs", "500", "--patience", "500", "--quiet", "--out"])
        .arg(&out)
        .spawn()
        .unwrap();
    // Wait until the staging directory exists, so the signal arrives mid-run.
    let started = std::time::Instant::now();
    while !fs::read_dir(dir.path())
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".zeren-partial"))
    {
        assert!(started.elapsed().as_secs() < 60, "the run never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_nothing_written(&dir, &out);
}

// PII screening.

fn people_csv() -> String {
    let mut text = String::from("姓名,手机号,年龄,城市,收入\n");
    for i in 0..60 {
        let age = 20 + (i * 7) % 40;
        let income = if age > 40 { "高" } else { "低" };
        let city = ["北京", "上海"][i % 2];
        text.push_str(&format!("人{i},138{:08},{age},{city},{income}\n", 10_000_000 + i * 7919));
    }
    text
}

fn train_people(dir: &TempDir, extra: &[&str]) -> assert_cmd::assert::Assert {
    let data = write(dir, "people.csv", &people_csv());
    zeren()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--target", "收入", "--positive-label", "高", "--epochs", "2", "--bootstrap", "0", "--quiet", "--out"])
        .arg(dir.path().join("run"))
        .args(extra)
        .assert()
}

#[test]
fn pii_gate_fails_on_identifier_columns() {
    let dir = TempDir::new().unwrap();
    train_people(&dir, &[])
        .code(1)
        .stderr(predicate::str::contains("'手机号' (PHONE_NUMBER in 100% of sampled values)"))
        .stderr(predicate::str::contains("'姓名' (PERSON"))
        .stderr(predicate::str::contains("--pii drop"));
    assert_nothing_written(&dir, &dir.path().join("run"));
}

#[test]
fn pii_gate_drops_or_masks_columns() {
    for action in ["drop", "mask", "allow"] {
        let dir = TempDir::new().unwrap();
        train_people(&dir, &["--pii", action]).success();
        let report = read_json(&dir.path().join("run/report.json"));
        assert_eq!(report["pii"]["action"], action);
        let columns: Vec<&str> =
            report["pii"]["columns"].as_array().unwrap().iter().map(|c| c["column"].as_str().unwrap()).collect();
        assert!(columns.contains(&"手机号"), "{action}: {columns:?}");
        let features: Vec<&str> =
            report["data"]["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(features.contains(&"手机号"), action != "drop", "{action}: {features:?}");
    }
}

#[test]
fn scan_reports_without_revealing_values() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "people.csv", &people_csv());
    let notes = dir.path().join("notes.txt");
    fs::write(&notes, b"call 138 1234 5678\n\xffbad\nmail li.wei@example.com\n").unwrap();
    let report = dir.path().join("scan.json");
    let output = zeren().args(["scan", "--json", "--report"]).arg(&report).arg(&data).arg(&notes).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!stdout.contains("13812345678"), "a full phone number was printed");
    assert!(!stdout.contains("li.wei"), "a full e-mail address was printed");
    let findings: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let email = findings.iter().find(|f| f["entity"] == "EMAIL_ADDRESS").unwrap();
    assert_eq!(email["line"], 3);
    let (start, end) = (email["start"].as_u64().unwrap() as usize, email["end"].as_u64().unwrap() as usize);
    assert_eq!(&fs::read(&notes).unwrap()[start..end], b"li.wei@example.com");
    let phone = findings.iter().find(|f| f["column"] == "手机号").unwrap();
    assert_eq!(phone["row"], 1);

    let written = fs::read_to_string(&report).unwrap();
    assert!(!written.contains("li.wei@example.com"), "the report holds a full value");
    let parsed: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(parsed["files"][1]["invalid_utf8_ranges"], 1);
}

#[test]
fn scan_report_never_replaces_data() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "people.csv", &people_csv());
    let notes = write(&dir, "notes.txt", "call 138 1234 5678\n");
    let original = fs::read(&data).unwrap();

    // The report path names the file being scanned, or another file that is not a report.
    for target in [&data, &notes] {
        zeren()
            .args(["scan", "--report"])
            .arg(target)
            .arg(&data)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("not a zeren scan report").or(predicate::str::contains("being scanned")));
    }
    assert_eq!(fs::read(&data).unwrap(), original);
    assert_eq!(fs::read_to_string(&notes).unwrap(), "call 138 1234 5678\n");

    // An earlier report is replaced, also when a directory scan reads it.
    let report = dir.path().join("pii-report.json");
    zeren().current_dir(dir.path()).args(["scan", "people.csv"]).assert().success();
    let first = read_json(&report);
    assert_eq!(first["format"], "zeren-pii-report");
    zeren().current_dir(dir.path()).args(["scan", "."]).assert().success();
    assert_eq!(read_json(&report)["files"].as_array().unwrap().len(), 3);

    zeren()
        .args(["scan", "--report"])
        .arg(dir.path())
        .arg(&data)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--report is a directory"));
    zeren()
        .args(["scan", "--report"])
        .arg(dir.path().join("missing").join("r.json"))
        .arg(&data)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("directory not found"));
    assert!(!dir.path().join("missing").exists());
}

/// Runs `zeren redact DATA -o OUT --policy POLICY`.
fn redact(data: &Path, out: &Path, policy: &Path) -> assert_cmd::assert::Assert {
    zeren().args(["redact"]).arg(data).arg("-o").arg(out).arg("--policy").arg(policy).assert()
}

#[test]
fn redact_into_missing_directory_fails() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "people.csv", &people_csv());
    let policy = write(&dir, "policy.toml", "[entities]\nPHONE_NUMBER = \"replace\"\n");
    let out = dir.path().join("typo").join("clean.csv");
    redact(&data, &out, &policy).code(2).stderr(predicate::str::contains("directory not found"));
    assert!(!dir.path().join("typo").exists());

    redact(&data, dir.path(), &policy).code(2).stderr(predicate::str::contains("is a directory"));
}

#[test]
fn redact_rejects_gbk_header() {
    // 姓名,手机号 in GBK, then one row: the name column cannot be recognised by its name.
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("people.csv");
    fs::write(&data, b"\xd0\xd5\xc3\xfb,\xca\xd6\xbb\xfa\xba\xc5\n\xd5\xc5\xc8\xfd,13812345678\n").unwrap();
    let policy = write(&dir, "policy.toml", "default = \"replace\"\n");
    let out = dir.path().join("clean.csv");
    redact(&data, &out, &policy)
        .code(1)
        .stderr(predicate::str::contains("column 1 of the header is not valid UTF-8"))
        .stderr(predicate::str::contains("iconv -f GBK -t UTF-8"));
    assert!(!out.exists(), "a partial copy was left");
}

#[test]
fn adjacent_invalid_bytes_are_one_range() {
    let dir = TempDir::new().unwrap();
    let notes = dir.path().join("notes.txt");
    fs::write(&notes, b"ok \xff\xfe\xfd then \xc3 end\n").unwrap();
    let report = dir.path().join("scan.json");
    zeren().args(["scan", "--report"]).arg(&report).arg(&notes).assert().success();
    let file = &read_json(&report)["files"][0];
    assert_eq!(file["invalid_utf8_ranges"], 2);
    assert_eq!(file["invalid_utf8"], serde_json::json!([[3, 6], [12, 13]]));
}

#[test]
fn repeated_sensitive_column_is_usage_error() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &small_csv(40));
    let out = dir.path().join("run");
    zeren()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--target", "y", "--positive-label", "yes", "--sensitive", "性别,city,性别", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--sensitive names column '性别' twice"));
    assert_nothing_written(&dir, &out);
}

#[test]
fn redact_applies_policy_to_csv() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "people.csv", &people_csv());
    let policy = write(
        &dir,
        "policy.toml",
        "[entities]\nPHONE_NUMBER = { operator = \"mask\", keep-last = 4 }\n[columns]\n\"姓名\" = \"drop\"\n",
    );
    let out = dir.path().join("clean.csv");
    zeren().args(["redact"]).arg(&data).arg("-o").arg(&out).arg("--policy").arg(&policy).assert().success();
    let text = fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "手机号,年龄,城市,收入");
    assert!(lines[1].starts_with("*******"), "{}", lines[1]);
    assert_eq!(lines.len(), 61);

    let bad = write(&dir, "bad.toml", "[entities]\nPHONE = \"mask\"\n");
    zeren()
        .args(["redact"])
        .arg(&data)
        .arg("-o")
        .arg(dir.path().join("other.csv"))
        .arg("--policy")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown entity 'PHONE'"));
}

#[test]
fn redact_keeps_invalid_bytes_and_line_breaks() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("notes.txt");
    fs::write(&input, b"tel 13812345678\r\n\xff\xfe kept\nlast line").unwrap();
    let out = dir.path().join("clean.txt");
    zeren()
        .args(["redact"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("1 lines are not valid UTF-8"));
    assert_eq!(fs::read(&out).unwrap(), b"tel <PHONE_NUMBER>\r\n\xff\xfe kept\nlast line");
}

#[test]
fn scan_skips_binary_and_empty_files() {
    let dir = TempDir::new().unwrap();
    let binary = dir.path().join("blob.bin");
    fs::write(&binary, b"abc\0def").unwrap();
    let empty = write(&dir, "empty.txt", "");
    zeren()
        .args(["scan", "--report"])
        .arg(dir.path().join("r.json"))
        .arg(&binary)
        .arg(&empty)
        .assert()
        .success()
        .stderr(predicate::str::contains("blob.bin: skipped, it looks binary"))
        .stdout(predicate::str::contains("no personal identifiers found"));
}

#[test]
fn gpu_device_without_feature_is_usage_error() {
    let dir = TempDir::new().unwrap();
    zeren()
        .args(["train", "--dataset", "german", "--device", "cuda", "--out"])
        .arg(dir.path().join("run"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("device 'cuda' is not available in this build"));
}

// Signed manifests.

fn signed_run(dir: &TempDir) -> (PathBuf, PathBuf) {
    let key = dir.path().join("key");
    zeren().args(["keygen", "--out"]).arg(&key).assert().success();
    let run = dir.path().join("run");
    zeren()
        .args(["train", "--dataset", "german", "--epochs", "2", "--bootstrap", "0", "--quiet", "--signing-key"])
        .arg(&key)
        .arg("--out")
        .arg(&run)
        .assert()
        .success();
    (run, dir.path().join("key.pub"))
}

fn verify(run: &Path, public_key: &Path) -> assert_cmd::assert::Assert {
    zeren().arg("verify").arg(run).arg("--public-key").arg(public_key).assert()
}

#[test]
fn signed_run_verifies() {
    let dir = TempDir::new().unwrap();
    let (run, public_key) = signed_run(&dir);
    verify(&run, &public_key)
        .success()
        .stdout(predicate::str::contains("all 7 files match the manifest and the signature is valid"));
    let manifest = read_json(&run.join("manifest.json"));
    assert_eq!(manifest["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(manifest["predicate"]["materials"][0]["name"], "builtin:german/german.data.gz");
    let mode = fs::metadata(dir.path().join("key")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
}

#[test]
fn verify_names_changed_missing_and_added_files() {
    let dir = TempDir::new().unwrap();
    let (run, public_key) = signed_run(&dir);
    let mut model = fs::read(run.join("model.json")).unwrap();
    model[10] ^= 1;
    fs::write(run.join("model.json"), model).unwrap();
    fs::remove_file(run.join("report.md")).unwrap();
    fs::write(run.join("extra.txt"), "x").unwrap();
    verify(&run, &public_key)
        .code(1)
        .stderr(predicate::str::contains("model.json: changed"))
        .stderr(predicate::str::contains("report.md: missing"))
        .stderr(predicate::str::contains("extra.txt: added"));
}

#[test]
fn verify_rejects_other_key_and_edited_manifest() {
    let dir = TempDir::new().unwrap();
    let (run, public_key) = signed_run(&dir);
    let other = dir.path().join("other");
    zeren().args(["keygen", "--out"]).arg(&other).assert().success();
    verify(&run, &dir.path().join("other.pub")).code(1).stderr(predicate::str::contains("signature does not match"));

    let manifest = fs::read_to_string(run.join("manifest.json")).unwrap();
    fs::write(run.join("manifest.json"), manifest.replace("\"seed\": 0", "\"seed\": 1")).unwrap();
    verify(&run, &public_key).code(1).stderr(predicate::str::contains("signature does not match"));
}

#[test]
fn unsigned_run_checks_digests_only() {
    let dir = TempDir::new().unwrap();
    let run = dir.path().join("run");
    zeren()
        .args(["train", "--dataset", "german", "--epochs", "1", "--bootstrap", "0", "--quiet", "--out"])
        .arg(&run)
        .assert()
        .success();
    zeren().arg("verify").arg(&run).assert().success().stderr(predicate::str::contains("the run is unsigned"));
    let key = dir.path().join("key");
    zeren().args(["keygen", "--out"]).arg(&key).assert().success();
    verify(&run, &dir.path().join("key.pub")).code(1).stderr(predicate::str::contains("missing; the run is unsigned"));
}

#[test]
fn keygen_and_keys_reject_bad_input() {
    let dir = TempDir::new().unwrap();
    let key = dir.path().join("key");
    zeren().args(["keygen", "--out"]).arg(&key).assert().success();
    zeren().args(["keygen", "--out"]).arg(&key).assert().code(2).stderr(predicate::str::contains("already exists"));

    let garbage = dir.path().join("garbage");
    fs::write(&garbage, "not a key").unwrap();
    fs::set_permissions(&garbage, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    zeren()
        .args(["train", "--dataset", "german", "--signing-key"])
        .arg(&garbage)
        .arg("--out")
        .arg(dir.path().join("run"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not an Ed25519 private key"));
    // A public key, or a missing file, is named as such rather than as a permission problem.
    zeren()
        .args(["train", "--dataset", "german", "--signing-key"])
        .arg(dir.path().join("key.pub"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("this is a public key; give the private key"));
    zeren()
        .args(["train", "--dataset", "german", "--signing-key"])
        .arg(dir.path().join("absent"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--signing-key").and(predicate::str::contains("file not found")));
    zeren().arg("verify").arg(dir.path()).assert().code(1).stderr(predicate::str::contains("no manifest.json"));
}

// Bias mitigation and comparison.

#[test]
fn reweighing_reports_baseline_and_lowers_parity_gap() {
    let dir = TempDir::new().unwrap();
    let run = dir.path().join("rw");
    zeren()
        .args(["train", "--dataset", "adult", "--sensitive", "sex", "--bootstrap", "0", "--quiet"])
        .args(["--mitigation", "reweighing", "--constraint", "demographic-parity", "--out"])
        .arg(&run)
        .assert()
        .success();
    let report = read_json(&run.join("report.json"));
    let mitigation = &report["mitigation"];
    assert_eq!(mitigation["method"], "reweighing");
    assert_eq!(mitigation["constraint"], "demographic-parity");
    let baseline = mitigation["baseline"]["demographic_parity_difference"].as_f64().unwrap();
    let mitigated = mitigation["mitigated"]["demographic_parity_difference"].as_f64().unwrap();
    assert!(mitigated < baseline, "reweighing did not lower the gap: {baseline} -> {mitigated}");
    assert!(mitigation["mitigated"]["accuracy"].as_f64().unwrap() > 0.8);
    assert_eq!(mitigation["mitigated"]["accuracy"], report["metrics"]["test"]["accuracy"]);
}

#[test]
fn mitigation_flags_need_their_partners() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "d.csv", &small_csv(40));
    zeren()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--target", "y", "--positive-label", "yes", "--mitigation", "reweighing", "--out"])
        .arg(dir.path().join("run"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--mitigation needs --sensitive"));
    zeren()
        .args(["train", "--dataset", "german", "--constraint", "equalized-odds", "--out"])
        .arg(dir.path().join("run"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("need --mitigation"));
}

#[test]
fn compare_writes_csv_and_markdown() {
    let dir = TempDir::new().unwrap();
    for (name, extra) in [("plain", vec![]), ("private", vec!["--dp-epsilon", "3"])] {
        zeren()
            .args(["train", "--dataset", "german", "--epochs", "2", "--bootstrap", "0", "--quiet", "--out"])
            .arg(dir.path().join(name))
            .args(extra)
            .assert()
            .success();
    }
    let prefix = dir.path().join("table");
    zeren()
        .current_dir(dir.path())
        .args(["compare", "plain", "private", "--out"])
        .arg(&prefix)
        .assert()
        .success()
        .stdout(predicate::str::contains("| plain |"));
    let csv = fs::read_to_string(dir.path().join("table.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "run,accuracy,roc_auc,sensitive,demographic_parity_difference,equalized_odds_difference,epsilon,mitigation"
    );
    assert!(lines[1].starts_with("plain,"), "{}", lines[1]);
    assert!(lines[1].ends_with(",-,-"), "the plain run has no epsilon or mitigation: {}", lines[1]);
    assert!(!lines[2].contains(",-,-"), "the private run has an epsilon: {}", lines[2]);
    assert!(dir.path().join("table.md").is_file());

    // With one of the two outputs taken, neither is written and nothing is printed.
    let other = dir.path().join("other");
    fs::write(dir.path().join("other.md"), "mine").unwrap();
    zeren()
        .current_dir(dir.path())
        .args(["compare", "plain", "private", "--out"])
        .arg(&other)
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("other.md: file already exists"));
    assert!(!dir.path().join("other.csv").exists(), "half of the pair was written");
    zeren()
        .args(["compare"])
        .arg(dir.path().join("nothing"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no report.json"));
}

// Found by a second round of trying zeren as a new user.

#[test]
fn redact_replaces_name_columns_by_default() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "people.csv", &people_csv());
    let out = dir.path().join("clean.csv");
    zeren().args(["redact"]).arg(&data).arg("-o").arg(&out).assert().success();
    let text = fs::read_to_string(&out).unwrap();
    let first = text.lines().nth(1).unwrap();
    assert!(first.starts_with("<PERSON>,<PHONE_NUMBER>,"), "{first}");
}

#[test]
fn pii_gate_flags_sparse_identifiers() {
    let dir = TempDir::new().unwrap();
    let mut text = String::from("phone,x,y\n");
    for i in 0..100 {
        let phone = if i % 10 == 0 { format!("138{:08}", 10_000_000 + i) } else { "none".to_string() };
        text.push_str(&format!("{phone},{i},{}\n", if i % 2 == 0 { "yes" } else { "no" }));
    }
    let data = write(&dir, "sparse.csv", &text);
    zeren()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--target", "y", "--positive-label", "yes", "--quiet", "--out"])
        .arg(dir.path().join("run"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("'phone' (PHONE_NUMBER in 10% of sampled values)"));
}

#[test]
fn prv_rejects_full_batches_without_panic() {
    zeren()
        .args([
            "privacy",
            "epsilon",
            "--sample-rate",
            "1",
            "--noise-multiplier",
            "1",
            "--steps",
            "100",
            "--delta",
            "1e-5",
            "--accountant",
            "prv",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs a sample rate below 1"))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn secure_private_run_is_not_reproducible() {
    let dir = TempDir::new().unwrap();
    let run = dir.path().join("run");
    zeren()
        .args([
            "train",
            "--dataset",
            "german",
            "--epochs",
            "1",
            "--bootstrap",
            "0",
            "--quiet",
            "--dp-epsilon",
            "3",
            "--out",
        ])
        .arg(&run)
        .assert()
        .success();
    let report = read_json(&run.join("report.json"));
    assert_eq!(report["run"]["reproducible"], false);
    let config = fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(!config.contains("seed ="), "a rerun would seed the noise: {config}");
}

#[test]
fn negative_values_parse_with_a_space() {
    let dir = TempDir::new().unwrap();
    zeren()
        .args(["train", "--dataset", "german", "--learning-rate", "-1", "--out"])
        .arg(dir.path().join("run"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("learning rate -1 is invalid"));
    zeren()
        .args([
            "privacy",
            "epsilon",
            "--sample-rate",
            "-0.1",
            "--noise-multiplier",
            "1",
            "--steps",
            "10",
            "--delta",
            "1e-5",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sample rate -0.1 is invalid"));
}

#[test]
fn masked_model_masks_at_predict_time() {
    let dir = TempDir::new().unwrap();
    train_people(&dir, &["--pii", "mask"]).success();
    let data = dir.path().join("people.csv");
    let out = dir.path().join("scored.csv");
    zeren()
        .args(["predict", "--model"])
        .arg(dir.path().join("run"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("not seen in training").not());
    let scored = fs::read_to_string(&out).unwrap();
    assert!(scored.lines().nth(1).unwrap().contains(",138"), "the output keeps the input's values");
}

#[test]
fn verify_rejects_paths_outside_the_run() {
    let dir = TempDir::new().unwrap();
    let run = dir.path().join("run");
    zeren()
        .args(["train", "--dataset", "german", "--epochs", "1", "--bootstrap", "0", "--quiet", "--out"])
        .arg(&run)
        .assert()
        .success();
    let outside = write(&dir, "outside.txt", "x");
    let mut manifest = read_json(&run.join("manifest.json"));
    let digest = format!("{:x}", sha2_digest(&fs::read(&outside).unwrap()));
    manifest["subject"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "../outside.txt", "digest": {"sha256": digest}}));
    fs::write(run.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    zeren()
        .arg("verify")
        .arg(&run)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("../outside.txt: not a file name inside the run directory"));
}

fn sha2_digest(bytes: &[u8]) -> impl std::fmt::LowerHex {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
}

#[test]
fn redact_rejects_policy_mistakes() {
    let dir = TempDir::new().unwrap();
    let data = write(&dir, "people.csv", &people_csv());
    for (policy, message) in [
        ("[columns]\nnosuch = \"drop\"\n", "names column 'nosuch', which the file does not have"),
        ("[entities]\nEMAIL_ADDRESS = \"drop\"\n", "drop removes whole columns"),
    ] {
        let path = write(&dir, "policy.toml", policy);
        zeren()
            .args(["redact"])
            .arg(&data)
            .arg("-o")
            .arg(dir.path().join("clean.csv"))
            .arg("--policy")
            .arg(&path)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
        assert!(!dir.path().join("clean.csv").exists());
    }
}
