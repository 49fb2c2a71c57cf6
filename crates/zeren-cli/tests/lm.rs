//! End-to-end tests of `zeren lm train` and `zeren lm generate` on tiny models, run as a user
//! would run them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// Builds a short corpus of Chinese verse: three lines repeated 20 times.
fn verse() -> String {
    let lines = ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。", "春眠不觉晓，处处闻啼鸟。"];
    (0..60).map(|i| format!("{}\n", lines[i % 3])).collect()
}

/// Trains a tiny model on `corpus` into `DIR/run` and returns the run directory.
fn train_tiny(dir: &TempDir, corpus: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.path().join("run");
    zeren()
        .args(["lm", "train", "--corpus"])
        .arg(corpus)
        .args(["--out"])
        .arg(&out)
        .args(["--epochs", "2", "--steps-per-epoch", "15", "--batch-size", "8", "--warmup-steps", "5"])
        .args(["--context-len", "16", "--d-model", "32", "--heads", "2", "--layers", "1", "--d-ff", "64", "--quiet"])
        .args(extra)
        .assert()
        .success()
        .stdout(predicate::str::contains("bits per token"));
    out
}

fn write(dir: &TempDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, contents).unwrap();
    path
}

/// Generates from the prompt 床前 into `out` with a strong watermark (temperature 1.5, delta 4),
/// so that a short text from a tiny model still carries it.
fn generate_marked(run: &Path, key: &Path, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    zeren()
        .args(["lm", "generate", "--model"])
        .arg(run)
        .args(["--prompt", "床前", "--temperature", "1.5", "--delta", "4", "--watermark-key"])
        .arg(key)
        .arg("--out")
        .arg(out)
        .args(extra)
        .assert()
}

/// Runs `zeren watermark detect` on `text` with the key and the run's tokenizer.
fn detect(key: &Path, run: &Path, text: &Path) -> assert_cmd::assert::Assert {
    zeren().args(["watermark", "detect", "--key"]).arg(key).arg("--tokenizer").arg(run).arg(text).assert()
}

fn keygen(dir: &TempDir) -> PathBuf {
    let key = dir.path().join("zeren.key");
    zeren().args(["keygen", "--out"]).arg(&key).assert().success();
    key
}

#[test]
fn train_writes_run_directory() {
    let dir = TempDir::new().unwrap();
    let corpus = write(&dir, "verse.txt", &verse());
    let run = train_tiny(&dir, &corpus, &["--seed", "4"]);

    for name in ["tokenizer.json", "model.safetensors", "config.json", "report.json", "manifest.json"] {
        assert!(run.join(name).is_file(), "{name} is missing");
    }
    let report = read_json(&run.join("report.json"));
    let bits = report["validation_bits_per_token"].as_f64().unwrap();
    let loss = report["validation_loss"].as_f64().unwrap();
    assert!((bits - loss / std::f64::consts::LN_2).abs() < 1e-9);
    assert!((report["validation_perplexity"].as_f64().unwrap() - loss.exp()).abs() < 1e-9);
    assert!(report["unigram_bits_per_token"].as_f64().unwrap() > 0.0);
    assert_eq!(report["epochs_run"], 2);
    assert_eq!(report["steps"], 30);
    // 29 distinct characters (line break included) and the unknown token.
    assert_eq!(report["vocab_size"], 30);

    let config = read_json(&run.join("config.json"));
    assert_eq!(config["model"]["d_model"], 32);
    assert_eq!(config["training"]["seed"], 4);
    let manifest = fs::read_to_string(run.join("manifest.json")).unwrap();
    let weights_digest = hex::encode(Sha256::digest(fs::read(run.join("model.safetensors")).unwrap()));
    assert!(manifest.contains(&weights_digest), "the manifest does not list the weights' digest");
}

#[test]
fn train_reads_gzip_corpus_bytewise() {
    let dir = TempDir::new().unwrap();
    let corpus = dir.path().join("verse.txt.gz");
    let mut encoder = flate2::write::GzEncoder::new(fs::File::create(&corpus).unwrap(), flate2::Compression::fast());
    encoder.write_all(verse().as_bytes()).unwrap();
    encoder.finish().unwrap();

    let run = train_tiny(&dir, &corpus, &["--tokenizer", "byte"]);
    let report = read_json(&run.join("report.json"));
    assert_eq!(report["vocab_size"], 256);
    assert_eq!(report["train_tokens"].as_u64().unwrap() + report["validation_tokens"].as_u64().unwrap(), 2220);
}

#[test]
fn bpe_tokenizer_trains_generates_and_detects() {
    let dir = TempDir::new().unwrap();
    let corpus = write(&dir, "verse.txt", &verse());
    let run = train_tiny(&dir, &corpus, &["--tokenizer", "bpe", "--vocab-size", "300"]);
    let report = read_json(&run.join("report.json"));
    assert_eq!(report["vocab_size"], 300);
    // Merges make far fewer tokens than the corpus's 2,220 bytes.
    let tokens = report["train_tokens"].as_u64().unwrap() + report["validation_tokens"].as_u64().unwrap();
    assert!(tokens < 1000, "{tokens} tokens");
    let tokenizer = read_json(&run.join("tokenizer.json"));
    assert_eq!(tokenizer["kind"], "bpe");
    assert_eq!(tokenizer["merges"].as_array().unwrap().len(), 44);
    assert_eq!(read_json(&run.join("config.json"))["vocab_size"], 300);

    let key = keygen(&dir);
    let out = dir.path().join("poem.txt");
    generate_marked(&run, &key, &out, &["--max-tokens", "150", "--no-label"]).success();
    detect(&key, &run, &out).success().stdout(predicate::str::contains("poem.txt: watermarked"));
}

#[test]
fn generate_watermarks_and_labels_text() {
    let dir = TempDir::new().unwrap();
    let corpus = write(&dir, "verse.txt", &verse());
    let run = train_tiny(&dir, &corpus, &[]);
    let key = keygen(&dir);
    let out = dir.path().join("poem.txt");

    generate_marked(&run, &key, &out, &["--max-tokens", "200"]).success();

    let text = fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("【本文由人工智能生成】\n床前"), "{text}");
    assert!(!text.contains('\u{FFFD}'), "the unknown token was generated: {text}");
    let metadata = read_json(&dir.path().join("poem.txt.meta.json"));
    let weights_digest = hex::encode(Sha256::digest(fs::read(run.join("model.safetensors")).unwrap()));
    assert_eq!(metadata["model_sha256"], weights_digest.as_str());
    assert_eq!(metadata["text_sha256"], hex::encode(Sha256::digest(text.as_bytes())).as_str());
    assert_eq!(metadata["watermark"]["delta"], 4.0);
    assert_eq!(metadata["watermark"]["gamma"], 0.25);
    assert_eq!(metadata["label"], "【本文由人工智能生成】");

    detect(&key, &run, &out).success().stdout(predicate::str::contains("poem.txt: watermarked"));
}

#[test]
fn signed_sidecar_verifies_with_own_key() {
    let dir = TempDir::new().unwrap();
    let corpus = write(&dir, "verse.txt", &verse());
    let run = train_tiny(&dir, &corpus, &[]);
    let key = keygen(&dir);
    let out = dir.path().join("poem.txt");
    zeren()
        .args(["lm", "generate", "--model"])
        .arg(&run)
        .args(["--prompt", "床前", "--max-tokens", "60", "--watermark-key"])
        .arg(&key)
        .arg("--signing-key")
        .arg(&key)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let signature = dir.path().join("poem.txt.meta.json.sig");
    assert_eq!(fs::read_to_string(&signature).unwrap().trim().len(), 128, "a hex Ed25519 signature");

    let detect = |key: &Path| {
        let output = zeren()
            .args(["watermark", "detect", "--json", "--key"])
            .arg(key)
            .arg("--tokenizer")
            .arg(&run)
            .arg(&out)
            .output()
            .unwrap();
        let line: Value = serde_json::from_slice(&output.stdout).unwrap();
        line["sidecar_signature"].as_str().unwrap().to_string()
    };
    assert_eq!(detect(&key), "valid");
    let edited_text = format!("{}\nadded later", fs::read_to_string(&out).unwrap());
    let original_text = fs::read_to_string(&out).unwrap();
    fs::write(&out, &edited_text).unwrap();
    let output = zeren()
        .args(["watermark", "detect", "--json", "--key"])
        .arg(&key)
        .arg("--tokenizer")
        .arg(&run)
        .arg(&out)
        .output()
        .unwrap();
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["text_matches_sidecar"], false, "an edited text no longer matches its signed record");
    fs::write(&out, original_text).unwrap();

    let other_dir = TempDir::new().unwrap();
    assert_eq!(detect(&keygen(&other_dir)), "invalid", "another key's holder cannot vouch for it");

    let sidecar = dir.path().join("poem.txt.meta.json");
    let edited = fs::read_to_string(&sidecar).unwrap().replace("\"zeren\"", "\"someone\"");
    fs::write(&sidecar, edited).unwrap();
    assert_eq!(detect(&key), "invalid", "a sidecar edited after signing fails");
    fs::remove_file(&signature).unwrap();
    assert_eq!(detect(&key), "unsigned");
}

#[test]
fn generate_without_key_is_unmarked_and_reproducible() {
    let dir = TempDir::new().unwrap();
    let corpus = write(&dir, "verse.txt", &verse());
    let run = train_tiny(&dir, &corpus, &[]);
    let sample = |seed: &str| {
        let output = zeren()
            .args(["lm", "generate", "--model"])
            .arg(&run)
            .args(["--prompt", "举头", "--max-tokens", "40", "--no-label", "--seed", seed])
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let first = sample("9");
    assert!(first.starts_with("举头"), "{first}");
    assert_eq!(first, sample("9"));
    assert_ne!(first, sample("10"));

    // A watermark with delta 0 changes no logit, so the text equals the unwatermarked one.
    let key = keygen(&dir);
    let zero_delta = zeren()
        .args(["lm", "generate", "--model"])
        .arg(&run)
        .args(["--prompt", "举头", "--max-tokens", "40", "--no-label", "--seed", "9", "--delta", "0"])
        .arg("--watermark-key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(zero_delta.status.success());
    assert_eq!(String::from_utf8(zero_delta.stdout).unwrap(), first);

    let out = dir.path().join("plain.txt");
    zeren()
        .args(["lm", "generate", "--model"])
        .arg(&run)
        .args(["--prompt", "举头", "--label", "[generated]", "--out"])
        .arg(&out)
        .assert()
        .success();
    assert!(fs::read_to_string(&out).unwrap().starts_with("[generated]\n举头"));
    let metadata = read_json(&dir.path().join("plain.txt.meta.json"));
    assert_eq!(metadata["watermark"], Value::Null);
    assert_eq!(metadata["label"], "[generated]");
}

#[test]
fn train_help_states_library_defaults() {
    // The flags are optional so that the library's defaults apply, so the help must name those.
    let model = zeren_train::lm::TransformerLmConfig::with_vocab_size(256);
    let training = zeren_train::lm::LmTrainConfig::default();
    let output = zeren().args(["lm", "train", "--help"]).output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    let expected = [
        ("epochs", training.epochs.to_string()),
        ("per epoch", training.steps_per_epoch.to_string()),
        ("per step", training.batch_size.to_string()),
        ("AdamW", training.learning_rate.to_string()),
        ("warmup", training.warmup_steps.to_string()),
        ("attends over", model.context_len.to_string()),
        ("residual stream", model.d_model.to_string()),
        ("--d-model", model.n_heads.to_string()),
        ("Transformer blocks", model.n_layers.to_string()),
        ("feed-forward network", model.d_ff.to_string()),
    ];
    for (phrase, value) in expected {
        let pattern = format!("{phrase} (default {value})");
        assert!(help.contains(&pattern), "the help lacks '{pattern}'");
    }
}

#[test]
fn lm_rejects_invalid_flags() {
    let dir = TempDir::new().unwrap();
    let corpus = write(&dir, "verse.txt", &verse());
    let run = train_tiny(&dir, &corpus, &[]);
    let taken = write(&dir, "taken.txt", "already here");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--corpus", "missing.txt"], "file not found"),
        (vec!["train", "--corpus", corpus.to_str().unwrap(), "--tokenizer", "byte", "--min-count", "2"], "--min-count"),
        (vec!["train", "--corpus", corpus.to_str().unwrap(), "--vocab-size", "500"], "--vocab-size applies"),
        (vec!["train", "--corpus", corpus.to_str().unwrap(), "--tokenizer", "bpe", "--vocab-size", "256"], "use 257"),
        (vec!["train", "--corpus", corpus.to_str().unwrap(), "--heads", "3"], "multiple of the 3 attention heads"),
        (vec!["train", "--corpus", corpus.to_str().unwrap(), "--validation-fraction", "1"], "--validation-fraction"),
        (vec!["generate", "--model", "missing-run", "--prompt", "床"], "directory not found"),
        (vec!["generate", "--model", run.to_str().unwrap(), "--prompt", ""], "--prompt is empty"),
        (vec!["generate", "--model", run.to_str().unwrap(), "--prompt", "床", "--top-p", "0"], "top-p 0"),
        (vec!["generate", "--model", run.to_str().unwrap(), "--prompt", "床", "--gamma", "0.5"], "--watermark-key"),
        (vec!["generate", "--model", run.to_str().unwrap(), "--prompt", "床", "--no-label", "--label", "x"], "--label"),
        (
            vec!["generate", "--model", run.to_str().unwrap(), "--prompt", "床", "--out", taken.to_str().unwrap()],
            "exists",
        ),
    ];
    for (args, message) in cases {
        zeren()
            .current_dir(dir.path())
            .arg("lm")
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
    }
    assert_eq!(fs::read_to_string(&taken).unwrap(), "already here");
    assert!(!dir.path().join("taken.txt.meta.json").exists());
}
