//! `zeren scan`: find personal identifiers in files without revealing them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;
use zeren_pii::columns::{ColumnOptions, ColumnReport, ColumnStats};
use zeren_pii::{EntityType, Finding, Scanner};

use crate::cli::ScanArgs;
use crate::commands::text_lines::{FileKind, Lines, expand, file_kind, looks_binary};
use crate::config::parse_delimiter;
use crate::error::CliError;
use crate::run_dir::output_directory;

/// Invalid UTF-8 ranges listed per file; more are counted but not listed.
const LISTED_INVALID_RANGES: usize = 100;

/// Tally of one entity type's findings at one location, with the rows they touch.
#[derive(Debug, Default, Serialize)]
struct Tally {
    findings: usize,
    rows: usize,
    /// A masked example, such as `*********78`.
    example: String,
}

/// Findings and problems of one file.
#[derive(Debug, Default, Serialize)]
struct FileReport {
    path: String,
    kind: &'static str,
    /// Lines of text or data rows of CSV (header excluded).
    rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
    /// Byte ranges `[start, end)` that were not valid UTF-8, scanned around.
    invalid_utf8: Vec<[u64; 2]>,
    invalid_utf8_ranges: usize,
    /// Data rows (1-based) whose field count differs from the header's.
    ragged_rows: Vec<u64>,
    columns: Vec<ColumnReport>,
    /// Tallies by location (a column name, or `(text)`) and entity name.
    findings: BTreeMap<String, BTreeMap<String, Tally>>,
}

/// A CSV field's findings with masked examples, its invalid byte ranges and its text.
type ScannedField = (Vec<(Finding, String)>, Vec<[usize; 2]>, String);

/// Masks all but the last two characters, so a report never contains a whole identifier.
fn masked(value: &str) -> String {
    let count = value.chars().count();
    value.chars().enumerate().map(|(i, c)| if i + 2 >= count { c } else { '*' }).collect()
}

/// Scans the valid UTF-8 stretches of `bytes`; offsets are relative to `bytes`.
fn scan_bytes(scanner: &Scanner, bytes: &[u8], min_score: f64) -> (Vec<(Finding, String)>, Vec<[usize; 2]>) {
    let mut findings = Vec::new();
    let mut invalid: Vec<[usize; 2]> = Vec::new();
    let mut offset = 0;
    for chunk in bytes.utf8_chunks() {
        let text = chunk.valid();
        for finding in scanner.scan(text) {
            if finding.score >= min_score {
                let example = masked(&text[finding.start..finding.end]);
                findings
                    .push((Finding { start: finding.start + offset, end: finding.end + offset, ..finding }, example));
            }
        }
        offset += text.len();
        if !chunk.invalid().is_empty() {
            let end = offset + chunk.invalid().len();
            // Each invalid sequence is its own chunk, so adjacent ones are joined into one range.
            match invalid.last_mut() {
                Some(last) if last[1] == offset => last[1] = end,
                _ => invalid.push([offset, end]),
            }
            offset = end;
        }
    }
    (findings, invalid)
}

fn tally(report: &mut FileReport, location: &str, entity: EntityType, count: usize, example: &str) {
    let entry = report.findings.entry(location.to_string()).or_default().entry(entity.name().to_string()).or_default();
    entry.findings += count;
    entry.rows += 1;
    if entry.example.is_empty() {
        entry.example = example.to_string();
    }
}

/// Runs `zeren scan`.
pub fn run(args: ScanArgs) -> Result<(), CliError> {
    if !(0.0..=1.0).contains(&args.min_score) {
        return Err(CliError::usage(format!("--min-score {} is invalid; use a value in [0, 1]", args.min_score)));
    }
    let delimiter = args.delimiter.as_deref().map(parse_delimiter).transpose()?;
    let scanner = Scanner::new();
    let files = expand(&args.paths)?;
    check_report_path(&args.report, &files)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut reports = Vec::new();

    for path in &files {
        let display = path.display().to_string();
        let mut report = FileReport { path: display.clone(), ..FileReport::default() };
        if looks_binary(path)? {
            eprintln!("zeren: warning: {display}: skipped, it looks binary (it contains NUL bytes)");
            report.kind = "binary";
            report.skipped = Some("binary file (contains NUL bytes)".to_string());
            reports.push(report);
            continue;
        }
        match file_kind(path, delimiter) {
            FileKind::Text => scan_text(&scanner, path, &args, &mut report, &mut out)?,
            FileKind::Csv { delimiter } => scan_csv(&scanner, path, delimiter, &args, &mut report, &mut out)?,
        }
        if report.invalid_utf8_ranges > 0 {
            eprintln!(
                "zeren: warning: {display}: {} byte ranges are not valid UTF-8; they were skipped and are listed in the \
                 report. A file in GBK (as Excel saves Chinese text) needs converting first, so that its Chinese column \
                 names and context words are read: iconv -f GBK -t UTF-8 FILE > FILE.utf8",
                report.invalid_utf8_ranges
            );
        }
        if !report.ragged_rows.is_empty() {
            eprintln!(
                "zeren: warning: {display}: {} data rows have a different number of fields than the header (first: data row {}, header excluded)",
                report.ragged_rows.len(),
                report.ragged_rows[0]
            );
        }
        reports.push(report);
    }

    if !args.json {
        print_summary(&reports, &mut out).map_err(|e| CliError::Failure(e.into()))?;
    }
    let report = json!({ "format": REPORT_FORMAT, "files": reports });
    let text = serde_json::to_string_pretty(&report).map_err(|e| CliError::Failure(e.into()))?;
    write_report(&args.report, text.as_bytes())?;
    Ok(())
}

fn scan_text(
    scanner: &Scanner,
    path: &Path,
    args: &ScanArgs,
    report: &mut FileReport,
    out: &mut impl Write,
) -> Result<(), CliError> {
    report.kind = "text";
    let mut lines = Lines::open(path)?;
    let mut batch = lines.next_batch()?;
    while !batch.is_empty() {
        // The next batch is read while this one is scanned, so reading does not leave a core idle.
        let (next, results): (_, Vec<_>) = rayon::join(
            || lines.next_batch(),
            || batch.par_iter().map(|line| scan_bytes(scanner, &line.bytes, args.min_score)).collect(),
        );
        for (line, (findings, invalid)) in batch.iter().zip(results) {
            report.rows = line.number;
            for [start, end] in invalid {
                report.invalid_utf8_ranges += 1;
                if report.invalid_utf8.len() < LISTED_INVALID_RANGES {
                    report.invalid_utf8.push([line.offset + start as u64, line.offset + end as u64]);
                }
            }
            let mut per_entity: BTreeMap<EntityType, (usize, String)> = BTreeMap::new();
            for (finding, example) in &findings {
                if args.json {
                    let record = json!({
                        "entity": finding.entity.name(),
                        "score": finding.score,
                        "path": report.path,
                        "line": line.number,
                        "start": line.offset + finding.start as u64,
                        "end": line.offset + finding.end as u64,
                    });
                    writeln!(out, "{record}").map_err(|e| CliError::Failure(e.into()))?;
                }
                let entry = per_entity.entry(finding.entity).or_insert((0, example.clone()));
                entry.0 += 1;
            }
            for (entity, (count, example)) in per_entity {
                tally(report, "(text)", entity, count, &example);
            }
        }
        batch = next?;
    }
    Ok(())
}

fn scan_csv(
    scanner: &Scanner,
    path: &Path,
    delimiter: u8,
    args: &ScanArgs,
    report: &mut FileReport,
    out: &mut impl Write,
) -> Result<(), CliError> {
    report.kind = "csv";
    let file = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(std::io::BufReader::new(file));
    let header: Vec<String> = reader
        .byte_headers()
        .with_context(|| format!("{}: cannot read the header", path.display()))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    let column_name = |index: usize| header.get(index).cloned().unwrap_or_else(|| format!("column_{}", index + 1));
    let mut stats: Vec<ColumnStats> = header.iter().map(|h| ColumnStats::new(h)).collect();

    let mut records = reader.byte_records();
    let mut row = 0u64;
    loop {
        let mut batch = Vec::with_capacity(4096);
        for record in records.by_ref().take(4096) {
            let record = record.with_context(|| {
                format!("{}: malformed CSV after data row {}", path.display(), row + batch.len() as u64)
            })?;
            batch.push(record);
        }
        if batch.is_empty() {
            break;
        }
        let results: Vec<Vec<ScannedField>> = batch
            .par_iter()
            .map(|record| {
                record
                    .iter()
                    .map(|field| {
                        let (findings, invalid) = scan_bytes(scanner, field, args.min_score);
                        (findings, invalid, String::from_utf8_lossy(field).into_owned())
                    })
                    .collect()
            })
            .collect();
        for fields in results {
            row += 1;
            if fields.len() != header.len() {
                report.ragged_rows.push(row);
            }
            for (index, (findings, invalid, value)) in fields.into_iter().enumerate() {
                let column = column_name(index);
                report.invalid_utf8_ranges += invalid.len();
                if index >= stats.len() {
                    stats.push(ColumnStats::new(&column));
                }
                let plain: Vec<Finding> = findings.iter().map(|(f, _)| *f).collect();
                stats[index].add(&value, &plain);
                let mut per_entity: BTreeMap<EntityType, (usize, String)> = BTreeMap::new();
                for (finding, example) in &findings {
                    if args.json {
                        let record = json!({
                            "entity": finding.entity.name(),
                            "score": finding.score,
                            "path": report.path,
                            "row": row,
                            "column": column,
                        });
                        writeln!(out, "{record}").map_err(|e| CliError::Failure(e.into()))?;
                    }
                    per_entity.entry(finding.entity).or_insert((0, example.clone())).0 += 1;
                }
                for (entity, (count, example)) in per_entity {
                    tally(report, &column, entity, count, &example);
                }
            }
        }
    }
    report.rows = row;
    report.columns = stats.iter().map(|s| s.finish(&ColumnOptions::default())).collect();
    Ok(())
}

/// Pads `text` with spaces to `width` terminal columns. Chinese characters take two columns,
/// which `format!`'s width, counting characters, does not know.
fn padded(text: &str, width: usize) -> String {
    let used = unicode_width::UnicodeWidthStr::width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(used)))
}

fn print_summary(reports: &[FileReport], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{:<16} {:<40} {:>9} {:>8}  example", "entity", "file: column", "findings", "rows")?;
    let mut any = false;
    for report in reports {
        for (location, entities) in &report.findings {
            for (entity, tally) in entities {
                any = true;
                let share = tally.rows as f64 / report.rows.max(1) as f64;
                let place =
                    if location == "(text)" { report.path.clone() } else { format!("{}: {location}", report.path) };
                writeln!(
                    out,
                    "{entity:<16} {} {:>9} {:>7.1}%  {}",
                    padded(&place, 40),
                    tally.findings,
                    share * 100.0,
                    tally.example
                )?;
            }
        }
        for column in report.columns.iter().filter(|c| c.quasi_identifier && c.entity.is_none()) {
            any = true;
            writeln!(
                out,
                "{:<16} {} {:>9} {:>8}  unique per row",
                "QUASI_IDENTIFIER",
                padded(&format!("{}: {}", report.path, column.column), 40),
                "-",
                "-"
            )?;
        }
        for column in report.columns.iter().filter(|c| c.entity == Some(EntityType::Person)) {
            any = true;
            writeln!(
                out,
                "{:<16} {} {:>9} {:>8}  by column name",
                "PERSON",
                padded(&format!("{}: {}", report.path, column.column), 40),
                "-",
                "-"
            )?;
        }
    }
    if !any {
        writeln!(out, "no personal identifiers found")?;
    }
    Ok(())
}

/// Value of the `format` field of a scan report, which marks a file `zeren scan` may replace.
const REPORT_FORMAT: &str = "zeren-pii-report";

/// Checks, before anything is scanned, that the report may be written to `path`: its directory
/// exists, and the file there, if any, is an earlier scan report rather than data. A report
/// from before the `format` field is recognised by being an object with `files` alone.
fn check_report_path(path: &Path, inputs: &[PathBuf]) -> Result<(), CliError> {
    output_directory(path)?;
    if path.is_dir() {
        return Err(CliError::usage(format!(
            "{}: --report is a directory; give the path of a file to write",
            path.display()
        )));
    }
    if !path.exists() {
        return Ok(());
    }
    let earlier: Option<serde_json::Value> =
        std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let is_report = earlier.as_ref().and_then(serde_json::Value::as_object).is_some_and(|object| {
        object.get("format").and_then(serde_json::Value::as_str) == Some(REPORT_FORMAT)
            || (object.len() == 1 && object.get("files").is_some_and(serde_json::Value::is_array))
    });
    if is_report {
        return Ok(());
    }
    let canonical = path.canonicalize().ok();
    if inputs.iter().any(|input| input.canonicalize().ok() == canonical) {
        return Err(CliError::usage(format!(
            "{}: --report names a file being scanned; choose another report path",
            path.display()
        )));
    }
    Err(CliError::usage(format!(
        "{}: file already exists and is not a zeren scan report; choose another --report or remove it",
        path.display()
    )))
}

/// Writes the report through a temporary file, replacing an earlier report.
fn write_report(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    let parent = output_directory(path)?;
    let mut file =
        tempfile::NamedTempFile::new_in(parent).with_context(|| format!("{}: cannot write here", parent.display()))?;
    file.write_all(contents).with_context(|| format!("{}: cannot write", path.display()))?;
    file.persist(path).map_err(|e| anyhow::Error::new(e.error).context(format!("{}: cannot write", path.display())))?;
    Ok(())
}
