//! `zeren redact`: write a copy of a file with identifiers replaced.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rayon::prelude::*;
use zeren_pii::columns::name_hint;
use zeren_pii::operators::{Operator, Policy, Redactor};
use zeren_pii::{EntityType, Finding, Scanner};

use crate::cli::RedactArgs;
use crate::commands::text_lines::{FileKind, Lines, file_kind, looks_binary};
use crate::config::parse_delimiter;
use crate::error::CliError;
use crate::run_dir::AtomicFile;

/// Key files shorter than this are rejected: HMAC-SHA-256 keys should carry 256 bits.
const MIN_KEY_BYTES: usize = 32;

/// Runs `zeren redact`.
pub fn run(args: RedactArgs) -> Result<(), CliError> {
    if !args.file.is_file() {
        return Err(CliError::usage(format!("{}: file not found; check the path", args.file.display())));
    }
    if args.out.is_dir() {
        return Err(CliError::usage(format!(
            "{}: -o is a directory; give the path of a file to write",
            args.out.display()
        )));
    }
    if args.out.exists() {
        return Err(CliError::usage(format!(
            "{}: file already exists; choose another -o or remove it",
            args.out.display()
        )));
    }
    let policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("{}: cannot read policy: {e}", path.display())))?;
            Policy::from_toml(&path.display().to_string(), &text).map_err(|e| CliError::usage(e.to_string()))?
        }
        None => Policy::default(),
    };
    let key = match &args.key {
        Some(path) => {
            let key = std::fs::read(path)
                .map_err(|e| CliError::usage(format!("{}: cannot read key: {e}", path.display())))?;
            if key.len() < MIN_KEY_BYTES {
                return Err(CliError::usage(format!(
                    "{}: the key has {} bytes; use at least {MIN_KEY_BYTES} random bytes (head -c 32 /dev/urandom > pii.key)",
                    path.display(),
                    key.len()
                )));
            }
            Some(key)
        }
        None => None,
    };
    let redactor = Redactor::new(&policy, key).map_err(|e| CliError::usage(e.to_string()))?;
    if looks_binary(&args.file)? {
        return Err(CliError::Failure(anyhow::anyhow!(
            "{}: looks binary (it contains NUL bytes); redact only text and CSV files",
            args.file.display()
        )));
    }

    let scanner = Scanner::new();
    let delimiter = args.delimiter.as_deref().map(parse_delimiter).transpose()?;
    // Batches of lines or rows are redacted and written as they are read, so memory stays flat.
    let mut output = AtomicFile::create(&args.out)?;
    match file_kind(&args.file, delimiter) {
        FileKind::Text => redact_text(&scanner, &redactor, &args.file, args.min_score, output.writer())?,
        FileKind::Csv { delimiter } => {
            redact_csv(&scanner, &redactor, &policy, &args.file, delimiter, args.min_score, output.writer())?
        }
    }
    output.commit()?;
    eprintln!("zeren: wrote {}", args.out.display());
    Ok(())
}

/// Redacts the valid UTF-8 stretches of `bytes` and copies invalid bytes through unchanged.
fn redact_bytes(
    scanner: &Scanner,
    redactor: &Redactor<'_>,
    bytes: &[u8],
    column: Option<&str>,
    min_score: f64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let text = chunk.valid();
        let findings: Vec<Finding> = scanner.scan(text).into_iter().filter(|f| f.score >= min_score).collect();
        out.extend_from_slice(redactor.redact_text(text, &findings, column).as_bytes());
        out.extend_from_slice(chunk.invalid());
    }
    out
}

fn redact_text(
    scanner: &Scanner,
    redactor: &Redactor<'_>,
    path: &Path,
    min_score: f64,
    output: &mut impl Write,
) -> Result<(), CliError> {
    let failed = |e: std::io::Error| CliError::Failure(anyhow::Error::new(e).context("cannot write the redacted copy"));
    let mut lines = Lines::open(path)?;
    let mut invalid_lines = 0;
    loop {
        let batch = lines.next_batch()?;
        if batch.is_empty() {
            break;
        }
        let redacted: Vec<Vec<u8>> =
            batch.par_iter().map(|line| redact_bytes(scanner, redactor, &line.bytes, None, min_score)).collect();
        for (line, bytes) in batch.iter().zip(redacted) {
            invalid_lines += usize::from(std::str::from_utf8(&line.bytes).is_err());
            output.write_all(&bytes).map_err(failed)?;
            output.write_all(line.ending).map_err(failed)?;
        }
    }
    if invalid_lines > 0 {
        eprintln!(
            "zeren: warning: {}: {invalid_lines} lines are not valid UTF-8; their invalid bytes were copied unchanged and \
             not searched. A file in GBK (as Excel saves Chinese text) needs converting first, so that Chinese context \
             words are read: iconv -f GBK -t UTF-8 FILE > FILE.utf8",
            path.display()
        );
    }
    Ok(())
}

fn redact_csv(
    scanner: &Scanner,
    redactor: &Redactor<'_>,
    policy: &Policy,
    path: &Path,
    delimiter: u8,
    min_score: f64,
    output: &mut impl Write,
) -> Result<(), CliError> {
    let file = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(std::io::BufReader::new(file));
    let header = reader.byte_headers().with_context(|| format!("{}: cannot read the header", path.display()))?.clone();
    // Column rules and name columns are matched by column name. A header that is not UTF-8 (a
    // GBK file, as Excel saves Chinese text) would leave a name column in clear without a word.
    if let Some(index) = header.iter().position(|name| std::str::from_utf8(name).is_err()) {
        return Err(CliError::Failure(anyhow::anyhow!(
            "{}: column {} of the header is not valid UTF-8, so column rules and name columns cannot be matched; \
             convert the file to UTF-8 first (for a GBK file saved by Excel: iconv -f GBK -t UTF-8 FILE > FILE.utf8.csv)",
            path.display(),
            index + 1
        )));
    }
    let names: Vec<String> =
        header.iter().map(|h| String::from_utf8_lossy(h).trim_start_matches('\u{feff}').trim().to_string()).collect();
    if let Some(unknown) = policy.columns.keys().find(|c| !names.contains(c)) {
        return Err(CliError::usage(format!(
            "{}: the policy names column '{unknown}', which the file does not have; its columns are: {}",
            path.display(),
            names.join(", ")
        )));
    }
    let keep: Vec<bool> = names.iter().map(|n| policy.columns.get(n) != Some(&Operator::Drop)).collect();

    let mut writer = csv::WriterBuilder::new().delimiter(delimiter).flexible(true).from_writer(output);
    let kept_header: Vec<&[u8]> = header.iter().zip(&keep).filter(|(_, k)| **k).map(|(h, _)| h).collect();
    // An empty file has no header, and its copy stays empty rather than gaining a `""` line.
    if !header.is_empty() {
        writer.write_record(&kept_header).map_err(|e| CliError::Failure(e.into()))?;
    }

    let mut ragged = Vec::new();
    let mut row = 0u64;
    let mut records = reader.byte_records();
    loop {
        let mut batch = Vec::with_capacity(4096);
        for record in records.by_ref().take(4096) {
            batch.push(record.with_context(|| {
                format!("{}: malformed CSV after data row {}", path.display(), row + batch.len() as u64)
            })?);
        }
        if batch.is_empty() {
            break;
        }
        let redacted: Vec<Vec<Vec<u8>>> = batch
            .par_iter()
            .map(|record| {
                record
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| keep.get(*index).copied().unwrap_or(true))
                    .map(|(index, field)| {
                        let column = names.get(index).map(String::as_str);
                        let person = column.is_some_and(|c| name_hint(c) == Some(EntityType::Person));
                        match column.and_then(|c| policy.columns.get(c)) {
                            // A column rule covers the whole cell, found or not.
                            Some(Operator::Keep) => field.to_vec(),
                            // Names cannot be found inside text, so a column named like one
                            // (name, 姓名) is treated as all names.
                            None if person && !field.is_empty() => redactor
                                .replace(EntityType::Person, column, &String::from_utf8_lossy(field))
                                .into_bytes(),
                            Some(_) if !field.is_empty() => {
                                let value = String::from_utf8_lossy(field);
                                let entity = scanner.scan(&value).first().map_or(EntityType::Person, |f| f.entity);
                                redactor.replace(entity, column, &value).into_bytes()
                            }
                            _ => redact_bytes(scanner, redactor, field, column, min_score),
                        }
                    })
                    .collect()
            })
            .collect();
        for (record, fields) in batch.iter().zip(redacted) {
            row += 1;
            if record.len() != header.len() {
                ragged.push(row);
            }
            writer.write_record(&fields).map_err(|e| CliError::Failure(e.into()))?;
        }
    }
    if !ragged.is_empty() {
        eprintln!(
            "zeren: warning: {}: {} data rows have a different number of fields than the header (data rows {}, header excluded); they were redacted as they are",
            path.display(),
            ragged.len(),
            ragged.iter().take(10).map(u64::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    writer.flush().map_err(|e| CliError::Failure(anyhow::Error::new(e).context("cannot write the redacted CSV")))?;
    Ok(())
}
