//! The library behind the `skiff` tool's cluster commands (`up`, `status`,
//! `demo`), public so that process-level tests drive real clusters exactly
//! the way the tool does.
//!
//! # Layout
//!
//! * [`process_cluster`]: a cluster of `skiff node` child processes on
//!   loopback: generating its configuration, starting, killing and
//!   restarting nodes, and stopping every child when dropped.
//! * [`inherited_listeners`]: handing bound listeners to a `skiff node`
//!   child as inherited descriptors, so its ports are never free.
//! * [`status_probe`]: the `status` extension of the file protocol from the
//!   client side: ask servers for their view, find the leader they agree on.
//! * [`member_client`]: the `member` extension from the client side:
//!   change the membership at the leader, following `not the leader`
//!   answers, and read the leader's view of it.
//! * [`shutdown`]: waiting for Ctrl-C or SIGTERM.
//! * [`ui`]: the timeline page (`sim --html`, `scenario --html`) and its
//!   live server (`up --ui`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod inherited_listeners;
pub mod member_client;
pub mod process_cluster;
pub mod shutdown;
pub mod status_probe;
pub mod ui;
