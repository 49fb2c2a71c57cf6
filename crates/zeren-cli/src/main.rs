//! The `zeren` command-line tool.

mod artifacts;
mod card;
mod charts;
mod cli;
mod commands;
mod config;
mod error;
mod manifest;
mod progress;
mod report;
mod run_dir;

use clap::Parser;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::{Cli, Command};

/// Formats log events like zeren's other messages: `zeren: warning: ...`, `zeren: ...` for
/// progress, so that every line on standard error starts the same way.
struct Prefixed;

impl<S, N> FormatEvent<S, N> for Prefixed
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::INFO => "",
            _ => "debug: ",
        };
        write!(writer, "zeren: {level}")?;
        context.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn main() {
    // SAFETY: restoring the default SIGPIPE action at start-up, before any other thread exists,
    // only changes how the process ends when its reader closes a pipe (`zeren datasets | head`):
    // quietly, as Unix filters do, instead of panicking on the failed write.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // Warnings go to standard error; RUST_LOG=debug shows more.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .event_format(Prefixed)
        .init();
    run_dir::remove_pending_on_interrupt();

    let result = match cli.command {
        Command::Train(args) => commands::train::run(*args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Audit(args) => commands::audit::run(args),
        Command::Datasets => commands::datasets::run(),
        Command::Privacy(command) => commands::privacy::run(command),
        Command::Scan(args) => commands::scan::run(args),
        Command::Redact(args) => commands::redact::run(args),
        Command::Keygen(args) => manifest::keygen(&args.out),
        Command::Compare(args) => commands::compare::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Verify(args) => manifest::verify(&args.run, args.public_key.as_deref()),
        Command::Watermark(command) => commands::watermark::run(command),
        Command::Lm(command) => commands::lm::run(command),
    };
    if let Err(error) = result {
        eprintln!("zeren: error: {error}");
        std::process::exit(error.exit_code());
    }
}
