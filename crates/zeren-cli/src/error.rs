//! Errors of the command line and their exit codes.

use zeren_data::DataError;

/// Exit code of a usage error: a wrong flag, file name, column or option value.
pub const EXIT_USAGE: i32 = 2;
/// Exit code of a failure: bad data, a failed computation, or an I/O error.
pub const EXIT_FAILURE: i32 = 1;

/// An error that ends a command, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The request is wrong; the user fixes the command line or the config file.
    #[error("{0}")]
    Usage(String),
    /// The request is right but running it failed.
    #[error("{0:#}")]
    Failure(anyhow::Error),
}

impl CliError {
    /// Builds a usage error from a message.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    /// Exit code of the error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Failure(_) => EXIT_FAILURE,
        }
    }
}

impl From<DataError> for CliError {
    fn from(error: DataError) -> Self {
        if error.is_usage() { CliError::Usage(error.to_string()) } else { CliError::Failure(error.into()) }
    }
}

impl From<zeren_train::TrainError> for CliError {
    fn from(error: zeren_train::TrainError) -> Self {
        match error {
            zeren_train::TrainError::InvalidConfig(_) | zeren_train::TrainError::Device(_) => {
                CliError::Usage(error.to_string())
            }
            other => CliError::Failure(other.into()),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        CliError::Failure(error)
    }
}

impl From<zeren_fairness::FairnessError> for CliError {
    fn from(error: zeren_fairness::FairnessError) -> Self {
        CliError::Failure(error.into())
    }
}

impl From<zeren_privacy::PrivacyError> for CliError {
    fn from(error: zeren_privacy::PrivacyError) -> Self {
        CliError::Usage(error.to_string())
    }
}
