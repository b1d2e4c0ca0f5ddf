//! Errors of the command line and of start-up, with the exit code each maps to.
#![forbid(unsafe_code)]

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// Bad arguments or bad input: exit 2.
    Usage(String),
    /// The command could not do what was asked: exit 1.
    Failed(String),
    /// Exit with this code; the output has said why (`follow` of a run
    /// that failed).
    Silent(u8),
}

impl Error {
    /// The exit code of bad arguments or input.
    pub const USAGE: u8 = 2;
    /// The exit code of a command that failed.
    pub const FAILED: u8 = 1;

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => Error::USAGE,
            Error::Failed(_) => Error::FAILED,
            Error::Silent(code) => *code,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) | Error::Failed(msg) => f.write_str(msg),
            Error::Silent(code) => write!(f, "exit status {code}"),
        }
    }
}

impl From<crate::ops::OpError> for Error {
    fn from(e: crate::ops::OpError) -> Error {
        Error::Failed(e.to_string())
    }
}
