//! `zeren report`: renders a run's model card again from its `report.json`.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::artifacts::{REPORT_HTML, REPORT_JSON};
use crate::card;
use crate::cli::ReportArgs;
use crate::error::CliError;
use crate::manifest::{MANIFEST, Statement};

pub fn run(args: ReportArgs) -> Result<(), CliError> {
    let run = &args.run;
    if run.is_file() {
        return Err(CliError::usage(format!(
            "{}: a file, not a run directory; give the directory zeren train wrote",
            run.display()
        )));
    }
    if !run.is_dir() {
        return Err(CliError::usage(format!(
            "{}: no such run directory; give a directory written by zeren train",
            run.display()
        )));
    }
    let report_path = run.join(REPORT_JSON);
    if !report_path.is_file() {
        return Err(CliError::usage(format!(
            "{}: not a zeren run directory: it has no {REPORT_JSON}; give a directory written by zeren train",
            run.display()
        )));
    }
    let text =
        std::fs::read_to_string(&report_path).with_context(|| format!("{}: cannot read", report_path.display()))?;
    let report = card::parse_report(&text).map_err(|e| anyhow::anyhow!("{}: {e}", report_path.display()))?;
    let html = card::render_html(&report).map_err(|e| anyhow::anyhow!("{}: {e}", report_path.display()))?;

    let out = args.out.clone().unwrap_or_else(|| run.join(REPORT_HTML));
    // The run's own card is rendered again in place; any other existing file is left alone.
    if args.out.is_some() && out.exists() && out != run.join(REPORT_HTML) {
        return Err(CliError::usage(format!(
            "{}: file already exists; choose another --out or remove it",
            out.display()
        )));
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
        return Err(CliError::usage(format!(
            "{}: no such directory for --out; create it first or choose another path",
            parent.display()
        )));
    }
    if std::fs::read(&out).is_ok_and(|old| old == html.as_bytes()) {
        println!("zeren: {} is up to date", out.display());
        return Ok(());
    }
    replace_atomically(&out, html.as_bytes())?;
    if out == run.join(REPORT_HTML) && listed_with_other_digest(run, html.as_bytes()) {
        tracing::warn!(
            "{}: the new card differs from the one the manifest lists, so zeren verify will report it changed; \
             write it elsewhere with --out to keep the run verifiable",
            out.display()
        );
    }
    println!("zeren: wrote {}", out.display());
    Ok(())
}

/// Replaces `path` whole: readers see the old file or the new one, never a mix.
fn replace_atomically(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".zeren-partial-")
        .tempfile_in(parent)
        .with_context(|| format!("{}: cannot create a file in this directory", parent.display()))?;
    file.write_all(contents).with_context(|| format!("{}: cannot write", path.display()))?;
    file.persist(path).map_err(|e| anyhow::Error::new(e.error).context(format!("{}: cannot write", path.display())))?;
    Ok(())
}

/// Checks whether the run's manifest lists `report.html` with a digest other than that of `contents`.
fn listed_with_other_digest(run: &Path, contents: &[u8]) -> bool {
    let Ok(bytes) = std::fs::read(run.join(MANIFEST)) else { return false };
    let Ok(statement) = serde_json::from_slice::<Statement>(&bytes) else { return false };
    let digest = hex::encode(Sha256::digest(contents));
    statement.subject.iter().any(|s| s.name == REPORT_HTML && s.digest.get("sha256").is_some_and(|d| *d != digest))
}
