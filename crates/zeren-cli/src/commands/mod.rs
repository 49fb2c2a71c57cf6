//! One module per subcommand.

pub mod audit;
pub mod compare;
pub mod datasets;
pub mod lm;
pub mod mitigate;
pub mod predict;
pub mod privacy;
pub mod redact;
pub mod report;
pub mod scan;
mod text_lines;
pub mod train;
pub mod watermark;
