//! Mistakes in a command line that only a command can see after clap has
//! parsed it (a flag that cannot apply to an existing cluster, a file name
//! the protocol cannot carry). `main` reports them the way clap reports its
//! own, with the command's usage and exit status 2; failures while running
//! stay status 1.

use std::fmt::Display;

/// A bad command line, with what is wrong in it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

/// A bad command line described by `message`, as an error `main` knows.
pub fn error(message: impl Display) -> anyhow::Error {
    Error(message.to_string()).into()
}
