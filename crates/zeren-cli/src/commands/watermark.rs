//! `zeren watermark detect`: test text files for the watermark of a key, without the model.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;
use zeren_watermark::label::sidecar_path;
use zeren_watermark::{
    ContentMetadata, Detection, Detector, DetectorConfig, Tokenizer, Verdict, WatermarkKey, WatermarkParams,
    WatermarkRecord, WindowScan,
};

use crate::error::CliError;
use crate::manifest;

/// File name of the tokenizer inside a language-model run directory.
const TOKENIZER_FILE: &str = "tokenizer.json";

#[derive(Debug, Subcommand)]
pub enum WatermarkCommand {
    /// Test text files for the watermark of a key; needs the model's tokenizer, not the model.
    Detect(DetectArgs),
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Private key written by `zeren keygen`; the watermark key is derived from it.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Run directory of the language model, which contains tokenizer.json.
    #[arg(long, value_name = "RUN_DIR")]
    pub tokenizer: PathBuf,
    /// False-positive rate: the largest p-value reported as watermarked.
    #[arg(long, value_name = "RATE", default_value_t = 0.01)]
    pub fpr: f64,
    /// Also scan windows of N scored tokens for watermarked passages; the false-positive rate
    /// applies to all windows of a file together (Bonferroni correction).
    #[arg(long, value_name = "N")]
    pub window: Option<usize>,
    /// Green-list share gamma used at generation (default: from FILE.meta.json, else 0.25).
    #[arg(long, value_name = "GAMMA")]
    pub gamma: Option<f64>,
    /// Number of previous tokens that selected each green list at generation (default: from
    /// FILE.meta.json, else 1).
    #[arg(long, value_name = "H")]
    pub context_width: Option<usize>,
    /// Print one JSON object per file, one per line.
    #[arg(long)]
    pub json: bool,
    /// UTF-8 text files to test.
    #[arg(required = true, value_name = "TEXT_FILE")]
    pub files: Vec<PathBuf>,
}

/// One line of `--json` output.
#[derive(Serialize)]
struct FileReport<'a> {
    file: String,
    watermarked: bool,
    #[serde(flatten)]
    detection: &'a Detection,
    gamma: f64,
    context_width: usize,
    key_fingerprint: String,
    tokenizer_fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_scan: Option<&'a WindowScan>,
    /// Whether FILE.meta.json carries a valid signature by the key: `valid`, `invalid`,
    /// `unsigned`, `unreadable`, or `no-sidecar`.
    sidecar_signature: SidecarSignature,
    /// Whether the text's SHA-256 equals the one FILE.meta.json records; `null` without a
    /// readable sidecar.
    text_matches_sidecar: Option<bool>,
}

/// State of the signature of a text's provenance sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SidecarSignature {
    /// Signed by the key's owner, and unchanged since.
    Valid,
    /// The signature does not match: another key signed it, or the sidecar changed.
    Invalid,
    /// The sidecar has no signature file.
    Unsigned,
    /// The sidecar is not valid metadata, so it is ignored.
    Unreadable,
    /// The text has no sidecar.
    NoSidecar,
}

/// Path of the signature of `text_file`'s provenance sidecar: `FILE.meta.json.sig`.
pub fn signature_path(text_file: &Path) -> std::path::PathBuf {
    let mut name = sidecar_path(text_file).into_os_string();
    name.push(".sig");
    name.into()
}

/// Checks the signature of `text_file`'s sidecar with the public half of `key`.
fn sidecar_signature(text_file: &Path, key: &ed25519_dalek::SigningKey) -> SidecarSignature {
    let Ok(sidecar) = std::fs::read(sidecar_path(text_file)) else { return SidecarSignature::NoSidecar };
    if ContentMetadata::load(&sidecar_path(text_file)).is_err() {
        return SidecarSignature::Unreadable;
    }
    let Ok(signature) = std::fs::read_to_string(signature_path(text_file)) else {
        return SidecarSignature::Unsigned;
    };
    let valid = hex::decode(signature.trim())
        .ok()
        .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
        .is_some_and(|signature| key.verifying_key().verify_strict(&sidecar, &signature).is_ok());
    if valid { SidecarSignature::Valid } else { SidecarSignature::Invalid }
}

/// Runs `zeren watermark`.
pub fn run(command: WatermarkCommand) -> Result<(), CliError> {
    match command {
        WatermarkCommand::Detect(args) => detect(args),
    }
}

fn detect(args: DetectArgs) -> Result<(), CliError> {
    let config = DetectorConfig { fpr: args.fpr, ..DetectorConfig::default() };
    config.validate().map_err(|e| CliError::usage(format!("--fpr: {e}")))?;
    if let Some(window) = args.window
        && window < config.min_scored_tokens
    {
        return Err(CliError::usage(format!(
            "--window {window} is too small; use at least {} scored tokens",
            config.min_scored_tokens
        )));
    }
    let flag_params = WatermarkParams {
        gamma: args.gamma.unwrap_or(WatermarkParams::default().gamma),
        context_width: args.context_width.unwrap_or(WatermarkParams::default().context_width),
        ..WatermarkParams::default()
    };
    flag_params.validate().map_err(|e| CliError::usage(e.to_string()))?;

    let signing_key = manifest::read_private_key(&args.key, "--key")?;
    let key = WatermarkKey::derive(&signing_key.to_bytes())
        .map_err(|e| CliError::Failure(anyhow::anyhow!("{}: {e}", args.key.display())))?;
    let tokenizer = load_tokenizer(&args.tokenizer)?;
    // Read every file before printing anything, so a bad file stops the command without a
    // partial report.
    let texts = args.files.iter().map(|path| read_text(path)).collect::<Result<Vec<_>, _>>()?;

    for (path, text) in args.files.iter().zip(&texts) {
        let params = file_params(&args, path, text, &key, &tokenizer)?;
        let detector = Detector::new(&key, &params, config)
            .map_err(|e| CliError::Failure(anyhow::anyhow!("{}: {e}", path.display())))?;
        let detection = detector.detect(&tokenizer, text);
        let window_scan = match args.window {
            Some(window) => Some(
                detector
                    .scan_windows(&tokenizer, text, window)
                    .map_err(|e| CliError::usage(format!("--window: {e}")))?,
            ),
            None => None,
        };

        let signature = sidecar_signature(path, &signing_key);
        let text_matches_sidecar = ContentMetadata::load(&sidecar_path(path)).ok().map(|m| m.matches_text(text));
        if signature == SidecarSignature::Invalid {
            eprintln!(
                "zeren: warning: {}: the signature does not match: another key signed the sidecar, or it changed after signing",
                signature_path(path).display()
            );
        }
        if args.json {
            let report = FileReport {
                sidecar_signature: signature,
                text_matches_sidecar,
                file: path.display().to_string(),
                watermarked: detection.is_watermarked(),
                detection: &detection,
                gamma: params.gamma,
                context_width: params.context_width,
                key_fingerprint: key.fingerprint(),
                tokenizer_fingerprint: tokenizer.fingerprint(),
                window_scan: window_scan.as_ref(),
            };
            let line = serde_json::to_string(&report).map_err(|e| CliError::Failure(e.into()))?;
            println!("{line}");
        } else {
            print_detection(path, &args.tokenizer, &detection, config.min_scored_tokens);
            let provenance = match (signature, text_matches_sidecar) {
                (SidecarSignature::Valid, Some(true)) => "signed by this key; the text is unchanged",
                (SidecarSignature::Valid, _) => "signed by this key, but the text CHANGED after it was written",
                (SidecarSignature::Invalid, _) => "signature INVALID (another key, or the sidecar changed)",
                (SidecarSignature::Unsigned, Some(false)) => "unsigned, and the text changed after it was written",
                (SidecarSignature::Unsigned, _) => "present, unsigned",
                (SidecarSignature::Unreadable, _) => "present but unreadable, ignored",
                (SidecarSignature::NoSidecar, _) => "none",
            };
            println!("  provenance sidecar: {provenance}");
            if let Some(scan) = &window_scan {
                if !detection.is_watermarked() && !scan.spans.is_empty() {
                    println!(
                        "  the file as a whole does not test as watermarked, but it contains watermarked passages:"
                    );
                }
                print_window_scan(scan);
            }
        }
    }
    Ok(())
}

/// Loads `RUN_DIR/tokenizer.json`.
fn load_tokenizer(run_dir: &Path) -> Result<Tokenizer, CliError> {
    if !run_dir.is_dir() {
        return Err(CliError::usage(format!(
            "{}: directory not found; --tokenizer takes the run directory of a language model",
            run_dir.display()
        )));
    }
    let path = run_dir.join(TOKENIZER_FILE);
    if !path.is_file() {
        return Err(CliError::usage(format!(
            "{}: not found; --tokenizer takes the run directory of a language model, which contains {TOKENIZER_FILE}",
            path.display()
        )));
    }
    Tokenizer::load(&path).map_err(|e| CliError::Failure(e.into()))
}

/// Reads a text file, rejecting one that is empty or not UTF-8.
fn read_text(path: &Path) -> Result<String, CliError> {
    if !path.is_file() {
        return Err(CliError::usage(format!("{}: file not found; check the path", path.display())));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::Failure(anyhow::anyhow!("{}: cannot read the file: {e}", path.display())))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(CliError::Failure(anyhow::anyhow!(
            "{}: the file is empty; there is no text to test",
            path.display()
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        CliError::Failure(anyhow::anyhow!(
            "{}: not valid UTF-8 (invalid byte at offset {}); the watermark is tested on UTF-8 text",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Returns the parameters to test `path` with: flags first, then the file's sidecar, then the
/// defaults. Prints a warning for each sidecar record that does not match the key, tokenizer or
/// text.
fn file_params(
    args: &DetectArgs,
    path: &Path,
    text: &str,
    key: &WatermarkKey,
    tokenizer: &Tokenizer,
) -> Result<WatermarkParams, CliError> {
    let sidecar = sidecar_path(path);
    let recorded = if sidecar.is_file() {
        match ContentMetadata::load(&sidecar) {
            Ok(metadata) => Some(metadata),
            Err(error) => {
                eprintln!("zeren: warning: {error}; the sidecar is ignored");
                None
            }
        }
    } else {
        None
    };

    let mut params = WatermarkParams::default();
    if let Some(metadata) = &recorded {
        check_sidecar(path, &sidecar, metadata, text, key, tokenizer);
        if let Some(record) = &metadata.watermark {
            params = record.params();
            params.validate().map_err(|e| CliError::Failure(anyhow::anyhow!("{}: {e}", sidecar.display())))?;
        }
    }
    if let Some(gamma) = args.gamma {
        params.gamma = gamma;
    }
    if let Some(context_width) = args.context_width {
        params.context_width = context_width;
    }
    Ok(params)
}

fn check_sidecar(
    path: &Path,
    sidecar: &Path,
    metadata: &ContentMetadata,
    text: &str,
    key: &WatermarkKey,
    tokenizer: &Tokenizer,
) {
    let sidecar = sidecar.display();
    match &metadata.watermark {
        Some(WatermarkRecord { key_fingerprint, .. }) if *key_fingerprint != key.fingerprint() => eprintln!(
            "zeren: warning: {sidecar} records watermark key {key_fingerprint}, but --key gives {}; \
             this key cannot find that watermark",
            key.fingerprint()
        ),
        Some(_) => {}
        None => eprintln!("zeren: warning: {sidecar} records that the text was generated without a watermark"),
    }
    if metadata.tokenizer_fingerprint != tokenizer.fingerprint() {
        eprintln!(
            "zeren: warning: {sidecar} records another tokenizer than --tokenizer; token ids differ from generation, \
             so the verdict below may miss a watermark that is there"
        );
    }
    if !metadata.matches_text(text) {
        eprintln!(
            "zeren: warning: {}: the text changed after {sidecar} was written; it is tested as it is now",
            path.display()
        );
    }
}

fn print_detection(path: &Path, run_dir: &Path, detection: &Detection, min_scored_tokens: usize) {
    let file = path.display();
    let p = format_p(detection.p_value, detection.ln_p_value);
    match detection.verdict {
        Verdict::Watermarked => println!("{file}: watermarked (p-value {p} <= {})", detection.fpr),
        Verdict::NotWatermarked => println!("{file}: not watermarked (p-value {p} > {})", detection.fpr),
        Verdict::TooShort => println!(
            "{file}: no verdict: {} scored tokens, fewer than the {min_scored_tokens} a verdict needs",
            detection.scored_tokens
        ),
        Verdict::TokenizerMismatch => println!(
            "{file}: no verdict: {} of {} characters are unknown to {}/{TOKENIZER_FILE}, so the text was probably \
             not written with this tokenizer",
            detection.unknown_tokens,
            detection.tokens,
            run_dir.display()
        ),
    }
    println!(
        "  z-score {:.2}, p-value {p} (ln p = {:.2}), green fraction {:.3} ({} of {} scored tokens)",
        detection.z_score,
        detection.ln_p_value,
        detection.green_fraction,
        detection.green_tokens,
        detection.scored_tokens
    );
}

fn print_window_scan(scan: &WindowScan) {
    if scan.windows == 0 {
        println!("  windows of {} scored tokens: none tested, the text is shorter or has no verdict", scan.window);
        return;
    }
    println!(
        "  windows of {} scored tokens: {} tested at p-value <= {:.3e} each (Bonferroni); {} watermarked passage(s)",
        scan.window,
        scan.windows,
        scan.window_fpr,
        scan.spans.len()
    );
    for span in &scan.spans {
        println!(
            "    bytes {}..{} (characters {}..{}, tokens {}..{}): green fraction {:.3}, z-score {:.2}, smallest window p-value {}",
            span.bytes.start,
            span.bytes.end,
            span.chars.start,
            span.chars.end,
            span.tokens.start,
            span.tokens.end,
            span.green_fraction,
            span.z_score,
            format_p(span.min_window_p_value, span.min_window_ln_p_value)
        );
    }
}

/// Formats a p-value: plainly down to 0.0001, then in scientific notation, and as a power of e
/// where it underflows to 0 in double precision.
fn format_p(p_value: f64, ln_p_value: f64) -> String {
    if p_value >= 1e-4 {
        format!("{p_value:.4}")
    } else if p_value > 0.0 {
        format!("{p_value:.3e}")
    } else {
        format!("e^{ln_p_value:.1}")
    }
}
