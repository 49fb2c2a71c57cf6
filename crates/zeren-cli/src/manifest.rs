//! Signed run manifests: the SHA-256 of every file a run read and wrote, as an in-toto statement,
//! signed with Ed25519.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::CliError;

/// Manifest file of a run directory.
pub const MANIFEST: &str = "manifest.json";
/// Detached signature of the manifest's bytes, hex-encoded.
pub const SIGNATURE: &str = "manifest.sig";

/// A file and its digest, as in-toto's `ResourceDescriptor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Resource {
    /// Describes bytes under a name.
    pub fn of(name: &str, bytes: &[u8]) -> Self {
        let mut digest = BTreeMap::new();
        digest.insert("sha256".to_string(), hex::encode(Sha256::digest(bytes)));
        Self { name: name.to_string(), digest }
    }
}

/// Description of the run: the predicate of the statement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunPredicate {
    pub zeren_version: String,
    pub command: Vec<String>,
    pub seed: u64,
    /// Files the run read: training and test data (built-in datasets by their embedded bytes).
    pub materials: Vec<Resource>,
}

/// An in-toto Statement v1 whose subjects are the files the run wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Resource>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: RunPredicate,
}

/// Builds the manifest of a run directory's files (sorted by name) and its signature, if a key
/// is given. Returns the manifest bytes and the hex signature.
pub fn build(
    mut subject: Vec<Resource>,
    predicate: RunPredicate,
    key: Option<&SigningKey>,
) -> Result<(Vec<u8>, Option<String>), CliError> {
    subject.sort_by(|a, b| a.name.cmp(&b.name));
    let statement = Statement {
        statement_type: "https://in-toto.io/Statement/v1".to_string(),
        subject,
        predicate_type: "https://github.com/zeren-ml/zeren/run/v1".to_string(),
        predicate,
    };
    let bytes = serde_json::to_vec_pretty(&statement).map_err(|e| CliError::Failure(e.into()))?;
    let signature = key.map(|key| hex::encode(key.sign(&bytes).to_bytes()));
    Ok((bytes, signature))
}

/// Reads a private key written by `zeren keygen`, given with `--signing-key`.
///
/// # Errors
///
/// As [`read_private_key`].
pub fn read_signing_key(path: &Path) -> Result<SigningKey, CliError> {
    read_private_key(path, "--signing-key")
}

/// Reads a private key written by `zeren keygen`, given with the option `flag`.
///
/// # Errors
///
/// Returns a usage error naming `flag` when the file is missing, is a public key, is not an
/// Ed25519 PKCS#8 PEM key, or is readable by others than its owner.
pub fn read_private_key(path: &Path, flag: &str) -> Result<SigningKey, CliError> {
    let shown = path.display();
    let bytes = fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            CliError::usage(format!("{flag} {shown}: file not found; create a key pair with zeren keygen --out PATH"))
        }
        _ => CliError::usage(format!("{flag} {shown}: cannot read the key: {e}")),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("BEGIN PUBLIC KEY") {
        return Err(CliError::usage(format!(
            "{flag} {shown}: this is a public key; give the private key, the file without .pub that zeren keygen wrote"
        )));
    }
    let key = SigningKey::from_pkcs8_pem(&text).map_err(|_| {
        CliError::usage(format!(
            "{flag} {shown}: not an Ed25519 private key in PKCS#8 PEM; create one with zeren keygen --out PATH"
        ))
    })?;
    // Checked after the format, so that the advice fits the file: a private key others can read.
    let mode = fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    if mode & 0o077 != 0 {
        return Err(CliError::usage(format!(
            "{flag} {shown}: the private key is readable by others (mode {mode:o}); restrict it with chmod 600"
        )));
    }
    Ok(key)
}

/// Runs `zeren keygen`: a new Ed25519 key pair from the operating system's generator.
pub fn keygen(out: &Path) -> Result<(), CliError> {
    let public = PathBuf::from(format!("{}.pub", out.display()));
    for path in [out, public.as_path()] {
        if path.exists() {
            return Err(CliError::usage(format!(
                "{}: file already exists; choose another --out or remove it",
                path.display()
            )));
        }
    }
    let mut seed = [0u8; 32];
    ChaCha20Rng::from_os_rng().fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| CliError::Failure(anyhow::anyhow!("cannot encode the key: {e}")))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| CliError::Failure(anyhow::anyhow!("cannot encode the key: {e}")))?;

    // Create the private key with mode 0600 from the start, so it is never readable by others.
    let mut options = fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(options.write(true).create_new(true), 0o600);
    let mut file = options.open(out).with_context(|| format!("{}: cannot create", out.display()))?;
    std::io::Write::write_all(&mut file, private_pem.as_bytes())
        .with_context(|| format!("{}: cannot write", out.display()))?;
    fs::write(&public, public_pem).with_context(|| format!("{}: cannot write", public.display()))?;
    println!("zeren: wrote private key {} (keep it secret) and public key {}", out.display(), public.display());
    Ok(())
}

/// Runs `zeren verify`: every listed file present and unchanged, no file added, and a valid
/// signature when a public key is given. Exits 0 only when all of that holds.
pub fn verify(run: &Path, public_key: Option<&Path>) -> Result<(), CliError> {
    let manifest_path = run.join(MANIFEST);
    if !run.is_dir() {
        return Err(CliError::usage(format!("{}: run directory not found", run.display())));
    }
    let bytes = fs::read(&manifest_path).map_err(|_| {
        CliError::Failure(anyhow::anyhow!(
            "{}: no manifest.json; this is not a zeren run directory, or it was written before manifests",
            run.display()
        ))
    })?;
    let statement: Statement = serde_json::from_slice(&bytes).map_err(|e| {
        CliError::Failure(anyhow::anyhow!("{}: invalid or damaged manifest: {e}", manifest_path.display()))
    })?;

    let mut problems = Vec::new();
    let listed: BTreeMap<&str, &Resource> = statement.subject.iter().map(|r| (r.name.as_str(), r)).collect();
    for (name, resource) in &listed {
        // Subjects are plain file names; a path could make verify read files outside the run.
        let plain = Path::new(name).components().count() == 1 && !name.contains('/') && *name != ".." && *name != ".";
        if !plain {
            problems.push(format!("{name}: not a file name inside the run directory; the manifest was edited"));
            continue;
        }
        match fs::read(run.join(name)) {
            Ok(contents) => {
                if Resource::of(name, &contents).digest != resource.digest {
                    problems.push(format!("{name}: changed (SHA-256 differs from the manifest)"));
                }
            }
            Err(_) => problems.push(format!("{name}: missing")),
        }
    }
    let mut present: Vec<String> = fs::read_dir(run)
        .with_context(|| format!("{}: cannot list", run.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    present.sort();
    for name in present {
        if name != MANIFEST && name != SIGNATURE && !listed.contains_key(name.as_str()) {
            problems.push(format!("{name}: added (not in the manifest)"));
        }
    }

    let signature_path = run.join(SIGNATURE);
    let signed = signature_path.exists();
    match (public_key, signed) {
        (Some(key_path), true) => {
            let text = fs::read_to_string(key_path)
                .map_err(|e| CliError::usage(format!("{}: cannot read the public key: {e}", key_path.display())))?;
            let key = VerifyingKey::from_public_key_pem(&text).map_err(|e| {
                CliError::usage(format!("{}: not an Ed25519 public key in PEM ({e})", key_path.display()))
            })?;
            let hex_signature = fs::read_to_string(&signature_path).unwrap_or_default();
            let valid = hex::decode(hex_signature.trim())
                .ok()
                .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
                .is_some_and(|b| key.verify(&bytes, &Signature::from_bytes(&b)).is_ok());
            if !valid {
                problems.push(format!(
                    "{MANIFEST}: the signature does not match this public key, or the manifest was edited after signing"
                ));
            }
        }
        (Some(_), false) => problems.push(format!("{SIGNATURE}: missing; the run is unsigned")),
        (None, true) => {
            eprintln!("zeren: the run is signed, but no --public-key was given, so only digests were checked")
        }
        (None, false) => eprintln!("zeren: the run is unsigned; only digests were checked"),
    }

    if problems.is_empty() {
        println!(
            "zeren: {}: all {} files match the manifest{}",
            run.display(),
            listed.len(),
            if public_key.is_some() { " and the signature is valid" } else { "" }
        );
        Ok(())
    } else {
        for problem in &problems {
            eprintln!("zeren: {}: {problem}", run.display());
        }
        Err(CliError::Failure(anyhow::anyhow!("{}: verification failed: {} problem(s)", run.display(), problems.len())))
    }
}
