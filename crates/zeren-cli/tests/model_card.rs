//! The model card (`report.html`) as a reader sees it: self-contained, complete, and rendered
//! by a real browser without errors.
//!
//! The browser check runs headless Chromium. Without it the check is skipped with a loud
//! message, unless `ZEREN_REQUIRE_BROWSER` is set (CI sets it), in which case it fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

fn zeren() -> Command {
    Command::cargo_bin("zeren").unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// A file with a Chinese sensitive column, Chinese column names and a column of mobile numbers,
/// which the PII screen must drop.
fn phone_csv(rows: usize) -> String {
    let mut text = String::from("年龄,收入,性别,手机号,label\n");
    for i in 0..rows {
        let sex = ["男", "女"][i % 2];
        let income = 30.0 + ((i * 37) % 41) as f64 + if sex == "男" { 6.0 } else { 0.0 };
        let label = if income > 52.0 { "yes" } else { "no" };
        let phone = format!("13{:09}", (i as u64 * 7_919_993) % 1_000_000_000);
        text.push_str(&format!("{},{income},{sex},{phone},{label}\n", 20 + i % 50));
    }
    text
}

/// Trains the German credit data privately with reweighing: every chart but the PII one.
fn private_mitigated_run(dir: &TempDir) -> PathBuf {
    let config = dir.path().join("card.toml");
    fs::write(
        &config,
        "dataset = \"german\"\nepochs = 3\ndp-epsilon = 2.0\nmitigation = \"reweighing\"\n\n[card]\n\
         name = \"Credit screen 信用筛查\"\nowners = [\"Risk team <risk@example.org>\"]\n\
         intended-uses = [\"Teaching responsible training\"]\n",
    )
    .unwrap();
    let out = dir.path().join("private");
    zeren().args(["train", "--quiet", "--config"]).arg(&config).arg("--out").arg(&out).assert().success();
    out
}

/// Trains the phone-number file without privacy: the PII chart, no ε chart.
fn pii_run(dir: &TempDir) -> PathBuf {
    let data = dir.path().join("phones.csv");
    fs::write(&data, phone_csv(300)).unwrap();
    let out = dir.path().join("pii");
    zeren()
        .args(["train", "--quiet", "--data"])
        .arg(&data)
        .args(["--target", "label", "--positive-label", "yes", "--sensitive", "性别", "--pii", "drop"])
        .args(["--epochs", "3", "--out"])
        .arg(&out)
        .assert()
        .success();
    out
}

/// The charts a card must hold, derived from report.json independently of the renderer.
fn expected_charts(report: &Value) -> Vec<String> {
    let mut ids = vec!["chart-loss".to_string()];
    if report["pii"]["columns"].as_array().is_some_and(|c| !c.is_empty()) {
        ids.push("chart-pii".into());
    }
    for (index, column) in report["data"]["sensitive"].as_array().unwrap().iter().enumerate() {
        ids.push(format!("chart-rates-{}", index + 1));
        if report["roc_curves"][column.as_str().unwrap()].as_object().is_some_and(|g| !g.is_empty()) {
            ids.push(format!("chart-roc-{}", index + 1));
        }
    }
    if !report["mitigation"].is_null() {
        ids.push("chart-tradeoff".into());
    }
    if !report["privacy"].is_null() {
        ids.push("chart-epsilon".into());
    }
    ids
}

/// Returns the `<svg>` element with this id, up to its end tag.
fn svg_element<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let start = html.find(&format!("<svg id=\"{id}\""))?;
    let end = html[start..].find("</svg>")?;
    Some(&html[start..start + end])
}

#[test]
fn card_is_self_contained_and_complete() {
    let dir = TempDir::new().unwrap();
    for run in [private_mitigated_run(&dir), pii_run(&dir)] {
        let html = fs::read_to_string(run.join("report.html")).unwrap();
        for forbidden in ["http://", "https://", "<script", "<link", "<img", "<iframe", "@import", "url("] {
            assert!(!html.contains(forbidden), "{}: report.html contains {forbidden}", run.display());
        }
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta name=\"viewport\""), "not laid out for phones");
        assert!(html.contains("@media print"), "no print styles");
        let report = read_json(&run.join("report.json"));
        for id in expected_charts(&report) {
            let svg = svg_element(&html, &id).unwrap_or_else(|| panic!("{}: chart {id} is missing", run.display()));
            assert!(svg.contains("<polyline") || svg.contains("<rect") || svg.contains("<circle"), "{id} is empty");
        }
        for section in [
            "model-details",
            "intended-use",
            "training-data",
            "evaluation-data",
            "metrics",
            "fairness",
            "privacy",
            "considerations",
            "reproducibility",
        ] {
            assert!(html.contains(&format!("<section id=\"{section}\">")), "section {section} missing");
        }
        // The rerun command names the digest of the config it reads.
        let config_digest = hex::encode(Sha256::digest(fs::read(run.join("config.toml")).unwrap()));
        assert_eq!(report["reproduce"]["config_sha256"], config_digest.as_str());
        assert!(html.contains(&config_digest));
    }
}

#[test]
fn card_states_privacy_guarantee_or_absence() {
    let dir = TempDir::new().unwrap();
    let private = fs::read_to_string(private_mitigated_run(&dir).join("report.html")).unwrap();
    let report = read_json(&dir.path().join("private/report.json"));
    let epsilon = report["privacy"]["epsilon"].as_f64().unwrap();
    assert!(private.contains(&format!("ε = {epsilon:.4}, δ = 0.001")), "ε and δ not stated");
    assert!(private.contains("Bit-identical result expected: no."), "secure noise makes reruns differ");
    assert!(private.contains("Risk team &lt;risk@example.org&gt;"), "owners from the config missing");
    assert!(private.contains("Credit screen 信用筛查"));
    assert!(private.contains("<p>Teaching responsible training</p>"), "intended uses from the config missing");
    assert!(!private.contains("has no <code>intended-uses</code>"));
    // Fields left out of [card] are named as not stated.
    assert!(private.contains("has no <code>out-of-scope-uses</code>"));
    assert!(private.contains("has no <code>limitations</code>"));

    let plain = fs::read_to_string(pii_run(&dir).join("report.html")).unwrap();
    assert!(plain.contains("No formal privacy guarantee applies"));
    assert!(plain.contains("Membership inference (loss threshold"), "the attack's result is missing");
    assert!(plain.contains("Bit-identical result expected: yes."));
    assert!(plain.contains("手机号: PHONE_NUMBER"), "PII chart should name the column and type");
    assert!(plain.contains("has no <code>owners</code>"));
}

#[test]
fn report_command_rerenders_identical_card() {
    let dir = TempDir::new().unwrap();
    let run = pii_run(&dir);
    let original = fs::read(run.join("report.html")).unwrap();
    zeren().arg("report").arg(&run).assert().success().stdout(predicate::str::contains("up to date"));
    fs::remove_file(run.join("report.html")).unwrap();
    zeren().arg("report").arg(&run).assert().success().stdout(predicate::str::contains("wrote"));
    assert_eq!(fs::read(run.join("report.html")).unwrap(), original, "re-rendering changed the card");
    zeren().arg("verify").arg(&run).assert().success();

    let elsewhere = dir.path().join("card.html");
    zeren().arg("report").arg(&run).arg("--out").arg(&elsewhere).assert().success();
    assert_eq!(fs::read(&elsewhere).unwrap(), original);
    // Another existing file is never overwritten, and a missing directory is named.
    zeren()
        .arg("report")
        .arg(&run)
        .arg("--out")
        .arg(&elsewhere)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("file already exists"));
    zeren()
        .arg("report")
        .arg(&run)
        .arg("--out")
        .arg(dir.path().join("absent/card.html"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such directory for --out"));
}

#[test]
fn report_command_rejects_what_is_not_a_run() {
    let dir = TempDir::new().unwrap();
    zeren()
        .arg("report")
        .arg(dir.path().join("absent"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such run directory"));
    zeren()
        .arg("report")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a zeren run directory: it has no report.json"));

    let not_a_directory = dir.path().join("config.toml");
    fs::write(&not_a_directory, "dataset = \"german\"\n").unwrap();
    zeren()
        .arg("report")
        .arg(&not_a_directory)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("a file, not a run directory"));

    fs::write(dir.path().join("report.json"), "{\"schema_version\": 1, \"run\": ").unwrap();
    zeren().arg("report").arg(dir.path()).assert().code(1).stderr(
        predicate::str::contains("report.json is not valid JSON").and(predicate::str::contains("panicked").not()),
    );
    fs::write(dir.path().join("report.json"), "{\"schema_version\": 7}").unwrap();
    zeren().arg("report").arg(dir.path()).assert().code(1).stderr(predicate::str::contains("schema_version 7"));
    fs::write(dir.path().join("report.json"), "{\"schema_version\": 1, \"data\": {}}").unwrap();
    zeren().arg("report").arg(dir.path()).assert().code(1).stderr(predicate::str::contains("has no 'run.started_at'"));
    assert!(!dir.path().join("report.html").exists(), "nothing is written for a bad report");
}

#[test]
fn card_config_rejects_unknown_keys() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("bad.toml");
    fs::write(&config, "dataset = \"german\"\n[card]\nowner = \"me\"\n").unwrap();
    zeren()
        .args(["train", "--config"])
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown field `owner`"));
}

/// Headless Chromium, from `ZEREN_CHROMIUM` or the usual names on the path.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ZEREN_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs headless Chromium on a file with the given extra flags, from a fresh profile, and
/// returns its standard error (where `--enable-logging=stderr` puts the page's console).
fn run_chromium(browser: &Path, page: &Path, profile: &Path, extra: &[String]) -> String {
    let output = Process::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("Chromium starts");
    assert!(output.status.success(), "Chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Decodes a PNG and returns its size and the share of pixels that are not white.
fn png_coverage(path: &Path) -> (u32, u32, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buffer[..info.buffer_size()];
    let inked = pixels.chunks(channels).filter(|p| p.iter().take(3).any(|&c| c < 200)).count();
    (info.width, info.height, inked as f64 / (pixels.len() / channels) as f64)
}

#[test]
fn chromium_renders_every_chart_without_console_errors() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("ZEREN_REQUIRE_BROWSER").is_none(),
            "ZEREN_REQUIRE_BROWSER is set but no Chromium was found; install the Debian package chromium"
        );
        eprintln!(
            "\n*** SKIPPED: no Chromium found (install the Debian package chromium, or set ZEREN_CHROMIUM) ***\n"
        );
        return;
    };
    let dir = TempDir::new().unwrap();
    for run in [private_mitigated_run(&dir), pii_run(&dir)] {
        let page = run.join("report.html");
        let report = read_json(&run.join("report.json"));
        let profile = TempDir::new().unwrap();

        let desktop = dir.path().join("desktop.png");
        let console = run_chromium(
            &browser,
            &page,
            profile.path(),
            &[format!("--screenshot={}", desktop.display()), "--window-size=1280,2000".into()],
        );
        let messages: Vec<&str> = console.lines().filter(|l| l.contains("CONSOLE")).collect();
        assert!(messages.is_empty(), "{}: console messages: {messages:?}", page.display());
        let (width, height, inked) = png_coverage(&desktop);
        assert_eq!((width, height), (1280, 2000));
        assert!(inked > 0.02, "the desktop screenshot is nearly blank ({inked:.4} inked)");

        let phone = dir.path().join("phone.png");
        run_chromium(
            &browser,
            &page,
            profile.path(),
            &[format!("--screenshot={}", phone.display()), "--window-size=390,844".into()],
        );
        assert!(png_coverage(&phone).2 > 0.02, "the phone screenshot is nearly blank");

        let pdf = dir.path().join("card.pdf");
        run_chromium(
            &browser,
            &page,
            profile.path(),
            &[format!("--print-to-pdf={}", pdf.display()), "--no-pdf-header-footer".into()],
        );
        let bytes = fs::read(&pdf).unwrap();
        assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
        let pages = bytes.windows(10).filter(|w| w == b"/Type /Pag" || w == b"/Type/Page").count();
        assert!(pages >= 2, "the printed card has {pages} pages");

        // The document as the browser built it contains every chart with its drawing.
        let dom = Process::new(&browser)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&dom.stdout);
        for id in expected_charts(&report) {
            let svg =
                svg_element(&dom, &id).unwrap_or_else(|| panic!("{}: Chromium has no chart {id}", page.display()));
            assert!(svg.contains("<text"), "{id} has no text");
        }
    }
}
