//! The replicated versioned file server (work in progress).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod command;
pub mod linearizability;
pub mod protocol;
pub mod store;
