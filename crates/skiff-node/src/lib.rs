//! A Raft node (work in progress).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod storage;
pub mod transport;

/// The largest entry data [`submit`] accepts.
pub const ENTRY_BYTES_MAX: usize = 1 << 20;
