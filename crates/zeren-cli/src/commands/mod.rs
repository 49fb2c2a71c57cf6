//! One module per subcommand.

pub mod audit;
pub mod datasets;
pub mod predict;
pub mod privacy;
pub mod train;
