//! `zeren lm generate`: samples text from a run directory's model, with a visible label, a
//! provenance sidecar and, given a key, a watermark.

use std::path::Path;

use anyhow::Context;
use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};
use zeren_train::Device;
use zeren_train::device;
use zeren_train::lm::{GenerateConfig, TransformerLm, generate};
use zeren_watermark::label::sidecar_path;
use zeren_watermark::{
    ContentMetadata, Generator, Label, LabelPosition, Tokenizer, WatermarkKey, WatermarkParams, WatermarkRecord,
    Watermarker,
};

use super::{LmGenerateArgs, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::commands::watermark::signature_path;
use crate::error::CliError;
use crate::manifest;
use crate::run_dir::write_file_atomically;

pub(super) fn generate_text(args: LmGenerateArgs) -> Result<(), CliError> {
    let config = GenerateConfig {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
    };
    config.validate()?;
    if args.prompt.is_empty() {
        return Err(CliError::usage("--prompt is empty; give at least one character to continue"));
    }
    let custom_label = match &args.label {
        Some(wording) => Some(
            Label::new(wording.clone(), LabelPosition::Start).map_err(|e| CliError::usage(format!("--label: {e}")))?,
        ),
        None => None,
    };
    // Check the outputs and the key before the slow part, so a mistake is reported at once.
    let signing_key = args.signing_key.as_deref().map(manifest::read_signing_key).transpose()?;
    if let Some(out) = &args.out {
        for path in [out.clone(), sidecar_path(out), signature_path(out)] {
            if path.exists() {
                return Err(CliError::usage(format!(
                    "{}: file already exists; choose another --out or remove it",
                    path.display()
                )));
            }
        }
    }

    let device = device::select(args.device)?;
    let (tokenizer, model, model_sha256) = load_run(&args.model, &device)?;
    let watermark = match &args.watermark_key {
        Some(path) => {
            let signing_key = manifest::read_signing_key(path)?;
            let key = WatermarkKey::derive(&signing_key.to_bytes())
                .map_err(|e| CliError::Failure(anyhow::anyhow!("{}: {e}", path.display())))?;
            let defaults = WatermarkParams::default();
            let params = WatermarkParams {
                gamma: args.gamma.unwrap_or(defaults.gamma),
                delta: args.delta.unwrap_or(defaults.delta),
                ..defaults
            };
            params.validate().map_err(|e| CliError::usage(e.to_string()))?;
            let watermarker =
                Watermarker::for_tokenizer(&key, params, &tokenizer).map_err(|e| CliError::usage(e.to_string()))?;
            Some((watermarker, WatermarkRecord::new(&params, &key)))
        }
        None => None,
    };

    let prompt = tokenizer.encode(&args.prompt);
    let unknown_id = tokenizer.unknown_id();
    let unknown = unknown_id.map_or(0, |unknown| prompt.iter().filter(|&&id| id == unknown).count());
    if unknown > 0 {
        tracing::warn!(
            "{unknown} characters of the prompt are not in the model's vocabulary and are read as the unknown token"
        );
    }
    let mut hook_error = None;
    let generated = generate(&model, &prompt, &config, |context, logits| {
        if let Some((watermarker, _)) = &watermark
            && let Err(error) = watermarker.apply(context, logits)
        {
            hook_error.get_or_insert(error);
        }
        // The unknown token stands for characters the vocabulary dropped, so it is never written.
        if let Some(unknown) = unknown_id {
            logits[unknown as usize] = f32::NEG_INFINITY;
        }
    })?;
    if let Some(error) = hook_error {
        return Err(CliError::Failure(anyhow::anyhow!("the watermark could not be applied: {error}")));
    }

    let mut text = args.prompt.clone();
    text.push_str(&tokenizer.decode(&generated));
    // The default label's language follows the text: Chinese when most of its letters are.
    let label = match (args.no_label, custom_label) {
        (true, _) => None,
        (false, Some(label)) => Some(label),
        (false, None) => Some(Label::for_text(&text)),
    };
    let text = match &label {
        Some(label) => label.apply(&text),
        None => text,
    };
    match &args.out {
        Some(out) => {
            let generator = Generator { name: "zeren".to_string(), version: env!("CARGO_PKG_VERSION").to_string() };
            let record = watermark.map(|(_, record)| record);
            let metadata = ContentMetadata::new(generator, model_sha256, &tokenizer, record, &text, label.as_ref());
            let sidecar = metadata.to_json();
            write_file_atomically(out, text.as_bytes())?;
            write_file_atomically(&sidecar_path(out), sidecar.as_bytes())?;
            eprintln!("zeren: wrote {} and {}", out.display(), sidecar_path(out).display());
            if let Some(key) = &signing_key {
                let signature = hex::encode(key.sign(sidecar.as_bytes()).to_bytes());
                write_file_atomically(&signature_path(out), format!("{signature}\n").as_bytes())?;
                eprintln!("zeren: signed it in {}", signature_path(out).display());
            }
        }
        None => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
    Ok(())
}

/// Loads the tokenizer and the model of a run directory, and the SHA-256 of the weights file.
fn load_run(run_dir: &Path, device: &Device) -> Result<(Tokenizer, TransformerLm, String), CliError> {
    if !run_dir.is_dir() {
        return Err(CliError::usage(format!(
            "{}: directory not found; --model takes a run directory written by zeren lm train",
            run_dir.display()
        )));
    }
    for name in [TOKENIZER_FILE, WEIGHTS_FILE] {
        if !run_dir.join(name).is_file() {
            return Err(CliError::usage(format!(
                "{}: {name} not found; --model takes a run directory written by zeren lm train",
                run_dir.display()
            )));
        }
    }
    let tokenizer = Tokenizer::load(&run_dir.join(TOKENIZER_FILE)).map_err(|e| CliError::Failure(e.into()))?;
    let weights_path = run_dir.join(WEIGHTS_FILE);
    let weights = std::fs::read(&weights_path).with_context(|| format!("{}: cannot read", weights_path.display()))?;
    let model = TransformerLm::from_bytes(&weights, device)
        .map_err(|e| CliError::Failure(anyhow::anyhow!("{}: {e}", weights_path.display())))?;
    if model.config().vocab_size != tokenizer.vocab_size() {
        return Err(CliError::Failure(anyhow::anyhow!(
            "{}: the model has {} tokens but {TOKENIZER_FILE} has {}; the run directory is inconsistent",
            run_dir.display(),
            model.config().vocab_size,
            tokenizer.vocab_size()
        )));
    }
    Ok((tokenizer, model, hex::encode(Sha256::digest(&weights))))
}
