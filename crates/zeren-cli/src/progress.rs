//! Training progress on the terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use zeren_train::EpochRecord;

/// Shows each epoch: a progress bar on a terminal, one plain line per epoch otherwise (CI logs),
/// nothing when quiet.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    epochs: usize,
}

impl Progress {
    /// Creates the display for a run of at most `epochs` epochs.
    pub fn new(epochs: usize, quiet: bool) -> Self {
        if quiet {
            return Self { bar: None, plain: false, epochs };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(epochs as u64);
            let style =
                ProgressStyle::with_template("{bar:30} epoch {pos}/{len} {msg} [{elapsed} elapsed, ~{eta} left]")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            Self { bar: Some(bar), plain: false, epochs }
        } else {
            Self { bar: None, plain: true, epochs }
        }
    }

    /// Shows one finished epoch.
    pub fn epoch(&self, record: &EpochRecord) {
        let mut message = format!("train loss {:.4}", record.train_loss);
        if let (Some(loss), Some(accuracy)) = (record.validation_loss, record.validation_accuracy) {
            message.push_str(&format!(", validation loss {loss:.4}, validation accuracy {accuracy:.4}"));
        }
        if let Some(bar) = &self.bar {
            bar.set_position(record.epoch as u64);
            bar.set_message(message);
        } else if self.plain {
            eprintln!("zeren: epoch {}/{}: {message} ({:.2} s)", record.epoch, self.epochs, record.seconds);
        }
    }

    /// Removes the bar once training ends.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
