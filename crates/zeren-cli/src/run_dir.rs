//! A run directory that appears whole or not at all.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use std::os::unix::fs::PermissionsExt;

use tempfile::TempDir;

use crate::error::CliError;

/// Temporary directories and files to remove if the process is interrupted (Ctrl-C or SIGTERM).
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Installs a handler for Ctrl-C and SIGTERM that removes unfinished outputs and exits with 130.
pub fn remove_pending_on_interrupt() {
    let _ = ctrlc::set_handler(|| {
        if let Ok(pending) = PENDING.lock() {
            for path in pending.iter() {
                if path.is_dir() {
                    let _ = fs::remove_dir_all(path);
                } else {
                    let _ = fs::remove_file(path);
                }
            }
        }
        eprintln!("zeren: interrupted; no output was written");
        std::process::exit(130);
    });
}

/// A run directory being written.
///
/// Files go into a hidden temporary directory beside the destination; [`RunDirectory::commit`]
/// renames it into place in one step. Dropping it without committing (an error, a panic) removes
/// the temporary directory, and so does the Ctrl-C handler.
#[derive(Debug)]
pub struct RunDirectory {
    /// The temporary directory; `None` once committed.
    staging: Option<TempDir>,
    staging_path: PathBuf,
    destination: PathBuf,
    /// Name and digest of every file written so far, for the manifest.
    written: Mutex<Vec<crate::manifest::Resource>>,
}

impl RunDirectory {
    /// Starts a run directory at `destination`, which must not exist yet.
    ///
    /// # Errors
    ///
    /// Returns a usage error when the destination exists, and a failure when its parent cannot
    /// be created or written.
    pub fn create(destination: &Path) -> Result<Self, CliError> {
        if destination.exists() {
            return Err(CliError::usage(format!(
                "{}: output directory already exists; choose another --out or remove it",
                destination.display()
            )));
        }
        let parent = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).with_context(|| format!("{}: cannot create directory", parent.display()))?;
        let staging = tempfile::Builder::new()
            .prefix(".zeren-partial-")
            .tempdir_in(&parent)
            .with_context(|| format!("{}: cannot create a directory here", parent.display()))?;
        let staging_path = staging.path().to_path_buf();
        if let Ok(mut pending) = PENDING.lock() {
            pending.push(staging_path.clone());
        }
        Ok(Self {
            staging: Some(staging),
            staging_path,
            destination: destination.to_path_buf(),
            written: Mutex::new(Vec::new()),
        })
    }

    /// Writes one file into the run directory.
    ///
    /// # Errors
    ///
    /// Returns a failure when the file cannot be written.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<(), CliError> {
        let path = self.staging_path.join(name);
        fs::write(&path, contents.as_ref()).with_context(|| format!("cannot write {name} of the run directory"))?;
        if let Ok(mut written) = self.written.lock() {
            written.push(crate::manifest::Resource::of(name, contents.as_ref()));
        }
        Ok(())
    }

    /// Names and digests of the files written so far.
    pub fn written(&self) -> Vec<crate::manifest::Resource> {
        self.written.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Moves the finished directory into place and returns its path.
    ///
    /// # Errors
    ///
    /// Returns a failure when the rename fails (for example, the destination appeared meanwhile).
    pub fn commit(mut self) -> Result<PathBuf, CliError> {
        if self.destination.exists() {
            return Err(CliError::usage(format!(
                "{}: output directory appeared while training; choose another --out",
                self.destination.display()
            )));
        }
        let Some(staging) = self.staging.take() else {
            return Ok(self.destination.clone());
        };
        let kept = staging.keep();
        if let Err(error) = fs::rename(&kept, &self.destination) {
            let _ = fs::remove_dir_all(&kept);
            return Err(CliError::Failure(
                anyhow::Error::new(error).context(format!("cannot move the run into {}", self.destination.display())),
            ));
        }
        Ok(self.destination.clone())
    }
}

impl Drop for RunDirectory {
    fn drop(&mut self) {
        // The staging directory itself, if still there, is removed by `TempDir`'s own drop.
        if let Ok(mut pending) = PENDING.lock() {
            pending.retain(|p| *p != self.staging_path);
        }
    }
}

/// A new file written through a hidden staging file beside it, renamed into place by
/// [`AtomicFile::commit`]: readers never see it half-written, and an error, Ctrl-C or SIGTERM
/// leaves nothing behind. Missing parent directories are created; the file gets mode `0644`.
pub struct AtomicFile {
    /// The staging file; `None` once committed.
    file: Option<std::io::BufWriter<tempfile::NamedTempFile>>,
    staging: PathBuf,
    destination: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path`, which must not exist.
    ///
    /// # Errors
    ///
    /// Returns a usage error when the file exists (nothing is overwritten), and a failure when
    /// the directory cannot be written.
    pub fn create(path: &Path) -> Result<Self, CliError> {
        if path.is_dir() {
            return Err(CliError::usage(format!(
                "{}: is a directory; give the path of a file to write",
                path.display()
            )));
        }
        if path.exists() {
            return Err(CliError::usage(format!(
                "{}: file already exists; choose another output or remove it",
                path.display()
            )));
        }
        let parent = output_directory(path)?;
        let file = tempfile::Builder::new()
            .prefix(".zeren-partial-")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(parent)
            .with_context(|| format!("{}: cannot create a file in this directory", parent.display()))?;
        let staging = file.path().to_path_buf();
        if let Ok(mut pending) = PENDING.lock() {
            pending.push(staging.clone());
        }
        Ok(Self {
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            staging,
            destination: path.to_path_buf(),
        })
    }

    /// Returns the writer of the staging file.
    pub fn writer(&mut self) -> &mut impl std::io::Write {
        self.file.as_mut().expect("the file is written only before commit, which consumes it")
    }

    /// Moves the finished file into place.
    ///
    /// # Errors
    ///
    /// Returns a failure when flushing or renaming fails, or the destination appeared meanwhile.
    pub fn commit(mut self) -> Result<(), CliError> {
        let destination = self.destination.clone();
        let file = self.file.take().expect("commit runs once");
        let file = file.into_inner().map_err(|e| {
            anyhow::Error::new(e.into_error()).context(format!("{}: cannot write", destination.display()))
        })?;
        file.persist_noclobber(&destination)
            .map_err(|e| anyhow::Error::new(e.error).context(format!("{}: cannot write", destination.display())))?;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // The staging file itself, if not renamed, is removed by `NamedTempFile`'s own drop.
        if let Ok(mut pending) = PENDING.lock() {
            pending.retain(|p| *p != self.staging);
        }
    }
}

/// Returns the directory a file at `path` goes in, which must exist: a missing directory is more
/// often a mistyped path than a request to create one.
///
/// # Errors
///
/// Returns a usage error naming the directory when it does not exist.
pub fn output_directory(path: &Path) -> Result<&Path, CliError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(CliError::usage(format!(
            "{}: directory not found; create it first or choose another output",
            parent.display()
        )));
    }
    Ok(parent)
}

/// Writes a new file atomically (see [`AtomicFile`]).
///
/// # Errors
///
/// As [`AtomicFile::create`] and [`AtomicFile::commit`].
pub fn write_file_atomically(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    let mut file = AtomicFile::create(path)?;
    std::io::Write::write_all(file.writer(), contents).with_context(|| format!("{}: cannot write", path.display()))?;
    file.commit()
}
