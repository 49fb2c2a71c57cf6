//! Reading files for the PII commands: kind detection and byte-exact line streaming.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::error::CliError;

/// Lines read per batch, scanned in parallel.
pub const BATCH_LINES: usize = 4096;

/// Reading mode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Rows and named columns.
    Csv { delimiter: u8 },
    /// Lines of text (JSON Lines included), scanned as text.
    Text,
}

/// Picks CSV for `.csv` and `.tsv` files and text for everything else.
pub fn file_kind(path: &Path, delimiter: Option<u8>) -> FileKind {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => FileKind::Csv { delimiter: delimiter.unwrap_or(b',') },
        Some("tsv") => FileKind::Csv { delimiter: delimiter.unwrap_or(b'\t') },
        _ => FileKind::Text,
    }
}

/// Expands directories into the files below them, sorted, so output order is stable.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("{}: cannot read directory", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            files.extend(expand(&entries)?);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(CliError::usage(format!("{}: file not found; check the path", path.display())));
        }
    }
    Ok(files)
}

/// Checks whether the first 8 KiB of a file contain a NUL byte, which text never does.
pub fn looks_binary(path: &Path) -> Result<bool, CliError> {
    let mut head = [0u8; 8192];
    let mut file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let read = file.read(&mut head).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(head[..read].contains(&0))
}

/// A line of a file: its bytes without the line break, its 1-based number and its offset.
pub struct Line {
    pub number: u64,
    pub offset: u64,
    pub bytes: Vec<u8>,
    /// The line break that ended it (`\n`, `\r\n`, or nothing at the end of the file).
    pub ending: &'static [u8],
}

/// Reads lines in batches of [`BATCH_LINES`], whatever their length, with memory bounded by the
/// batch.
pub struct Lines {
    reader: BufReader<File>,
    number: u64,
    offset: u64,
    path: PathBuf,
}

impl Lines {
    /// Opens a file for reading by lines.
    pub fn open(path: &Path) -> Result<Self, CliError> {
        let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(Self { reader: BufReader::with_capacity(1 << 20, file), number: 0, offset: 0, path: path.to_path_buf() })
    }

    /// Returns the next batch of lines; empty at the end of the file.
    pub fn next_batch(&mut self) -> Result<Vec<Line>, CliError> {
        let mut batch = Vec::with_capacity(BATCH_LINES);
        while batch.len() < BATCH_LINES {
            let mut bytes = Vec::new();
            let read = self
                .reader
                .read_until(b'\n', &mut bytes)
                .with_context(|| format!("{}: cannot read line {}", self.path.display(), self.number + 1))?;
            if read == 0 {
                break;
            }
            self.number += 1;
            let ending: &'static [u8] = if bytes.ends_with(b"\r\n") {
                b"\r\n"
            } else if bytes.ends_with(b"\n") {
                b"\n"
            } else {
                b""
            };
            bytes.truncate(bytes.len() - ending.len());
            batch.push(Line { number: self.number, offset: self.offset, bytes, ending });
            self.offset += read as u64;
        }
        Ok(batch)
    }
}
