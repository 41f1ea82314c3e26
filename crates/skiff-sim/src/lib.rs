//! Drivers of `skiff-core` that need no real I/O: the scenario runner
//! (`scenario`) and the deterministic cluster simulator.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod scenario;
