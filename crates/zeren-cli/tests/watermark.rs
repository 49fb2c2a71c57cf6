//! End-to-end tests of `zeren watermark detect`: text is generated with the library and a key from
//! `zeren keygen`, then tested by the command as a user would run it.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use predicates::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use tempfile::TempDir;
use zeren_watermark::label::sidecar_path;
use zeren_watermark::{
    ContentMetadata, Detection, Detector, DetectorConfig, Generator, Label, Tokenizer, WatermarkKey, WatermarkParams,
    WatermarkRecord, Watermarker,
};

fn zeren() -> Command {
    Command::cargo_bin("zeren").unwrap()
}

/// A key file from `zeren keygen`, a language-model run directory with its tokenizer.json, and
/// the watermark key the command derives from the key file.
struct Setup {
    dir: TempDir,
    key_file: PathBuf,
    run_dir: PathBuf,
    key: WatermarkKey,
    tokenizer: Tokenizer,
}

impl Setup {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let key_file = dir.path().join("zeren.key");
        zeren().args(["keygen", "--out"]).arg(&key_file).assert().success();
        let signing_key = SigningKey::from_pkcs8_pem(&fs::read_to_string(&key_file).unwrap()).unwrap();
        let key = WatermarkKey::derive(&signing_key.to_bytes()).unwrap();

        // 400 Chinese characters, lowercase letters, space and full stop.
        let corpus: String =
            (0x4E00u32..0x4E00 + 400).filter_map(char::from_u32).chain('a'..='z').chain([' ', '。']).collect();
        let tokenizer = Tokenizer::fit_chars(&corpus, 1).unwrap();
        let run_dir = dir.path().join("lm-run");
        fs::create_dir(&run_dir).unwrap();
        tokenizer.save(&run_dir.join("tokenizer.json")).unwrap();
        Self { dir, key_file, run_dir, key, tokenizer }
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    /// Samples `length` tokens after `prefix` from uniform logits with the watermark, skipping the
    /// unknown token.
    fn watermarked(&self, params: WatermarkParams, prefix: &[u32], length: usize, rng: &mut ChaCha20Rng) -> Vec<u32> {
        let watermarker = Watermarker::for_tokenizer(&self.key, params, &self.tokenizer).unwrap();
        let mut tokens = prefix.to_vec();
        for _ in 0..length {
            let mut logits = vec![0.0f32; self.tokenizer.vocab_size()];
            watermarker.apply(&tokens, &mut logits).unwrap();
            let weights: Vec<f64> = logits.iter().map(|&logit| f64::from(logit).exp()).collect();
            let mut draw = rng.random::<f64>() * weights[1..].iter().sum::<f64>();
            let mut next = weights.len() - 1;
            for (id, weight) in weights.iter().enumerate().skip(1) {
                if draw < *weight {
                    next = id;
                    break;
                }
                draw -= weight;
            }
            tokens.push(next as u32);
        }
        tokens[prefix.len()..].to_vec()
    }

    fn random(&self, length: usize, rng: &mut ChaCha20Rng) -> Vec<u32> {
        (0..length).map(|_| rng.random_range(1..self.tokenizer.vocab_size() as u32)).collect()
    }

    /// Tests `text` with the library, as the command should at false-positive rate `fpr`.
    fn expected(&self, text: &str, fpr: f64) -> Detection {
        let config = DetectorConfig { fpr, ..DetectorConfig::default() };
        Detector::new(&self.key, &WatermarkParams::default(), config).unwrap().detect(&self.tokenizer, text)
    }

    fn detect(&self, extra: &[&str], files: &[&Path]) -> assert_cmd::assert::Assert {
        zeren()
            .args(["watermark", "detect", "--key"])
            .arg(&self.key_file)
            .arg("--tokenizer")
            .arg(&self.run_dir)
            .args(extra)
            .args(files)
            .assert()
    }
}

/// False-positive rate of checks that expect no verdict of "watermarked". The key from keygen is
/// random in each run, so at the default 0.01 such a check could fail in up to one run in 100.
const STRICT_FPR: &str = "1e-6";

fn json_lines(output: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(output).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn detect_separates_watermarked_and_plain_text() {
    let setup = Setup::new();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let text = setup.tokenizer.decode(&setup.watermarked(WatermarkParams::default(), &[5], 300, &mut rng));
    let generated = setup.write("generated.txt", &text);
    let plain = setup.write("plain.txt", setup.tokenizer.decode(&setup.random(300, &mut rng)));

    let output =
        setup.detect(&["--json", "--fpr", STRICT_FPR], &[&generated, &plain]).success().get_output().stdout.clone();
    let reports = json_lines(&output);
    assert_eq!(reports.len(), 2);

    let watermarked = &reports[0];
    assert_eq!(watermarked["file"], generated.display().to_string());
    assert_eq!(watermarked["watermarked"], true);
    assert_eq!(watermarked["verdict"], "watermarked");
    assert!(watermarked["z_score"].as_f64().unwrap() > 10.0, "{watermarked}");
    assert!(watermarked["p_value"].as_f64().unwrap() < 1e-20, "{watermarked}");
    assert!(watermarked["green_fraction"].as_f64().unwrap() > 0.6, "{watermarked}");
    // The number of repeated pairs in the sample depends on the random key.
    let expected = setup.expected(&text, 1e-6);
    assert_eq!(watermarked["scored_tokens"], expected.scored_tokens);
    assert_eq!(watermarked["green_tokens"], expected.green_tokens);
    // serde_json parses floats with best-effort precision unless its float_roundtrip feature is on.
    let ln_p_value = watermarked["ln_p_value"].as_f64().unwrap();
    assert!((ln_p_value - expected.ln_p_value).abs() <= 1e-12 * expected.ln_p_value.abs(), "{ln_p_value}");
    assert_eq!(watermarked["key_fingerprint"], setup.key.fingerprint());
    assert_eq!(watermarked["tokenizer_fingerprint"], setup.tokenizer.fingerprint());

    let plain_report = &reports[1];
    assert_eq!(plain_report["watermarked"], false);
    assert_eq!(plain_report["verdict"], "not_watermarked");
    assert!(plain_report["p_value"].as_f64().unwrap() > 1e-6, "{plain_report}");
}

#[test]
fn detect_prints_verdict_and_statistics() {
    let setup = Setup::new();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let story = setup.tokenizer.decode(&setup.watermarked(WatermarkParams::default(), &[9], 200, &mut rng));
    let generated = setup.write("story.txt", &story);
    let expected = setup.expected(&story, 0.01);
    let short = setup.write("short.txt", setup.tokenizer.decode(&setup.random(10, &mut rng)));
    setup
        .detect(&[], &[&generated, &short])
        .success()
        .stdout(predicate::str::contains(format!("{}: watermarked (p-value", generated.display())))
        .stdout(predicate::str::contains("z-score"))
        .stdout(predicate::str::contains(format!(
            "({} of {} scored tokens)",
            expected.green_tokens, expected.scored_tokens
        )))
        .stdout(predicate::str::contains(format!(
            "{}: no verdict: 9 scored tokens, fewer than the 16 a verdict needs",
            short.display()
        )));
}

#[test]
fn detect_window_finds_inserted_passage() {
    let setup = Setup::new();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut ids = setup.random(1_000, &mut rng);
    let passage = setup.watermarked(WatermarkParams::default(), &ids, 250, &mut rng);
    ids.extend(&passage);
    ids.extend(setup.random(1_000, &mut rng));
    let text = setup.tokenizer.decode(&ids);
    let mixed = setup.write("mixed.txt", &text);

    let output = setup
        .detect(&["--json", "--fpr", STRICT_FPR, "--window", "100"], &[&mixed])
        .success()
        .get_output()
        .stdout
        .clone();
    let report = &json_lines(&output)[0];
    let scan = &report["window_scan"];
    assert_eq!(scan["window"], 100);
    assert_eq!(scan["correction"], "bonferroni");
    let spans = scan["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "{scan}");

    // The passage covers characters 1000..1250; a flagged window reaches less than 100 beyond it.
    let start = spans[0]["chars"]["start"].as_u64().unwrap() as usize;
    let end = spans[0]["chars"]["end"].as_u64().unwrap() as usize;
    assert!((900..=1_060).contains(&start), "{scan}");
    assert!((1_190..=1_350).contains(&end), "{scan}");
    let bytes_start = spans[0]["bytes"]["start"].as_u64().unwrap() as usize;
    assert_eq!(text[..bytes_start].chars().count(), start);

    // At a false-positive rate so strict that the diluted whole file does not pass, the printed
    // report states that the file nevertheless contains a watermarked passage. A short, strongly
    // marked passage keeps both outcomes far from the threshold whatever key keygen drew: the
    // whole file's z is about 5 against 9.2 needed, a window's about 16.
    let mut ids = setup.random(1_000, &mut rng);
    let strong = WatermarkParams { delta: 4.0, ..WatermarkParams::default() };
    let passage = setup.watermarked(strong, &ids, 150, &mut rng);
    ids.extend(&passage);
    ids.extend(setup.random(1_000, &mut rng));
    let diluted = setup.write("diluted.txt", setup.tokenizer.decode(&ids));
    let printed =
        setup.detect(&["--fpr", "1e-20", "--window", "100"], &[&diluted]).success().get_output().stdout.clone();
    let printed = String::from_utf8(printed).unwrap();
    assert!(printed.contains("not watermarked"), "{printed}");
    assert!(printed.contains("but it contains watermarked passages"), "{printed}");
}

#[test]
fn detect_reads_parameters_from_sidecar() {
    let setup = Setup::new();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let params = WatermarkParams { context_width: 2, gamma: 0.5, ..WatermarkParams::default() };
    let label = Label::chinese();
    let text = label.apply(&setup.tokenizer.decode(&setup.watermarked(params, &[3, 4], 300, &mut rng)));
    let generated = setup.write("generated.txt", &text);
    let metadata = ContentMetadata::new(
        Generator { name: "zeren".to_string(), version: "test".to_string() },
        "00".repeat(32),
        &setup.tokenizer,
        Some(WatermarkRecord::new(&params, &setup.key)),
        &text,
        Some(&label),
    );
    metadata.save(&sidecar_path(&generated)).unwrap();

    let output = setup.detect(&["--json"], &[&generated]).success().get_output().stdout.clone();
    let report = &json_lines(&output)[0];
    assert_eq!(report["context_width"], 2);
    assert_eq!(report["gamma"], 0.5);
    assert_eq!(report["watermarked"], true, "{report}");

    // Flags win over the sidecar; with the wrong context width the watermark is not found.
    let output = setup
        .detect(&["--json", "--fpr", STRICT_FPR, "--context-width", "1"], &[&generated])
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(json_lines(&output)[0]["watermarked"], false);

    // Another key is reported, and finds nothing.
    let other_key = setup.dir.path().join("other.key");
    zeren().args(["keygen", "--out"]).arg(&other_key).assert().success();
    zeren()
        .args(["watermark", "detect", "--json", "--fpr", STRICT_FPR, "--key"])
        .arg(&other_key)
        .arg("--tokenizer")
        .arg(&setup.run_dir)
        .arg(&generated)
        .assert()
        .success()
        .stdout(predicate::str::contains("\"watermarked\":false"))
        .stderr(predicate::str::contains("this key cannot find that watermark"));
}

#[test]
fn detect_rejects_bad_input_with_clear_errors() {
    let setup = Setup::new();
    let text = setup.write("text.txt", "一二三");
    let run_dir = setup.run_dir.display().to_string();
    let key_file = setup.key_file.display().to_string();

    let garbage = setup.write("garbage.key", "not a key");
    fs::set_permissions(&garbage, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let empty = setup.write("empty.txt", "");
    let binary = setup.write("binary.txt", [0x61u8, 0xff, 0xfe, 0x62]);
    let no_tokenizer = setup.dir.path().join("no-tokenizer");
    fs::create_dir(&no_tokenizer).unwrap();
    let bad_tokenizer = setup.dir.path().join("bad-tokenizer");
    fs::create_dir(&bad_tokenizer).unwrap();
    fs::write(bad_tokenizer.join("tokenizer.json"), "{}").unwrap();

    let garbage_arg = garbage.display().to_string();
    let no_tokenizer_arg = no_tokenizer.display().to_string();
    let bad_tokenizer_arg = bad_tokenizer.display().to_string();
    let text_arg = text.display().to_string();
    let empty_arg = empty.display().to_string();
    let binary_arg = binary.display().to_string();
    let missing_arg = setup.dir.path().join("missing.txt").display().to_string();
    let cases: [(Vec<&str>, i32, String); 9] = [
        (vec![&garbage_arg, &run_dir, &text_arg], 2, format!("--key {garbage_arg}: not an Ed25519 private key")),
        (vec![&key_file, &no_tokenizer_arg, &text_arg], 2, format!("{no_tokenizer_arg}/tokenizer.json: not found")),
        (vec![&key_file, &bad_tokenizer_arg, &text_arg], 1, "not a zeren tokenizer file".to_string()),
        (vec![&key_file, &run_dir, &empty_arg], 1, format!("{empty_arg}: the file is empty")),
        (
            vec![&key_file, &run_dir, &binary_arg],
            1,
            format!("{binary_arg}: not valid UTF-8 (invalid byte at offset 1)"),
        ),
        (vec![&key_file, &run_dir, &missing_arg], 2, format!("{missing_arg}: file not found")),
        (vec![&key_file, &run_dir, "--fpr", "1.5", &text_arg], 2, "--fpr: invalid false-positive rate 1.5".to_string()),
        (vec![&key_file, &run_dir, "--window", "5", &text_arg], 2, "--window 5 is too small".to_string()),
        (vec![&key_file, &run_dir, "--gamma", "0", &text_arg], 2, "invalid gamma 0".to_string()),
    ];
    for (arguments, code, message) in cases {
        let (key, tokenizer, rest) = (arguments[0], arguments[1], &arguments[2..]);
        zeren()
            .args(["watermark", "detect", "--key", key, "--tokenizer", tokenizer])
            .args(rest)
            .assert()
            .code(code)
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains(message.as_str()))
            .stderr(predicate::str::contains("panicked").not());
    }
}
